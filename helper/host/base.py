"""What the engine needs from the machine, as an interface: the real one is
`helper.host.kernel.KernelHost`; `helper.testing.FakeHost` stands in for it in
millisecond tests of the engine's branches."""

# Annotations evaluated at import, no __future__ import: see helper/__init__.py.
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import NamedTuple, Protocol, TypeVar

from helper.backends.base import Backend
from helper.plan.model import Family
from helper.system import StrPath
from helper.system.netns_lock import DEFAULT_TIMEOUT

T = TypeVar("T")


# Named tuples, not frozen dataclasses: ~0.1 ms to define instead of ~0.5 ms, paid in
# every init container's start.
class Target(NamedTuple):
    """Where an operation acts, and how it may wait for another podnat there."""

    netns: StrPath | None = None  # a network namespace by path; None: the caller's own
    backend: str = "auto"  # auto, nft or iptables-legacy
    lock_file: StrPath | None = None  # the xtables lock (None: $XTABLES_LOCKFILE or the default)
    lock_timeout: float = DEFAULT_TIMEOUT


class Session(NamedTuple):
    """One operation's view of a namespace: its backends (nft first), opened there
    and valid only inside the session, and the families it has global addresses for."""

    backends: tuple[Backend, ...]
    global_families: Callable[[], frozenset[Family]]


class Host(Protocol):
    def run(self, netns: StrPath | None, work: Callable[[], T]) -> T:
        """Run `work` inside `netns` (None: where the caller is), leaving the caller's
        thread, and every other thread, in the namespace it was in."""
        ...

    def session(self, target: Target, *, shared: bool) -> AbstractContextManager[Session]:
        """Backends for the namespace `run` entered, under its podnat lock (`shared`:
        for readers, which may overlap each other); released when the session ends."""
        ...
