"""The real host: network namespaces entered by a thread of their own, the
namespace lock, and backends opened inside the namespace for one operation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from helper.backends.nft.backend import NftBackend
from helper.backends.xtables.backend import IptablesLegacyBackend
from helper.host.base import Session, Target
from helper.system import StrPath
from helper.system.addresses import global_families
from helper.system.netns import entered, run_inside
from helper.system.netns_lock import namespace_lock
from helper.system.privileges import raise_permitted

if TYPE_CHECKING:
    from helper.backends.nft.closer import Closer

T = TypeVar("T")


class KernelHost:
    """`one_shot=True`: this process does one operation and exits (the CLI). It then
    works in the caller's thread (entering the namespace and going back), leaves
    its nft context to the exit (~10 ms saved) and serves its first iptables-legacy
    family in-process (a worker's start saved). A long-lived process keeps the
    default: each operation in a thread of its own that enters the namespace,
    contexts freed, every family in a worker started in the namespace it serves."""

    def __init__(self, *, one_shot: bool = False) -> None:
        self.one_shot = one_shot
        # A long-lived process frees its nft contexts in a thread: a commit's context waits
        # for an RCU grace period as it closes, which the caller need not.
        self.closer: Closer | None = None
        if not one_shot:
            from helper.backends.nft.closer import Closer  # noqa: PLC0415 - threads: not the CLI's

            self.closer = Closer()

    def run(self, netns: StrPath | None, work: Callable[[], T]) -> T:
        if netns is None:
            return work()
        if self.one_shot:
            with entered(netns):
                return work()
        return run_inside(netns, work)

    @contextmanager
    def session(self, target: Target, *, shared: bool) -> Iterator[Session]:
        # Under the namespace's podnat lock for the whole span: choosing a backend,
        # replacing its rules and removing stale ones from the others is one step
        # to any other podnat.
        with namespace_lock(shared=shared, timeout=target.lock_timeout) as lock_fd:
            raise_permitted()  # a non-root image user's NET_ADMIN/NET_RAW, before any probe
            nft = NftBackend(
                free_on_close=not self.one_shot,
                closer=None if self.closer is None else self.closer.close,
            )
            legacy = IptablesLegacyBackend(
                target.lock_file, first_family_in_process=self.one_shot, inherit_fds=(lock_fd,)
            )
            try:
                yield Session((nft, legacy), global_families)
            finally:
                nft.close()
                legacy.close()
