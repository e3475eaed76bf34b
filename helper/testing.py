"""Stand-ins for the machine, so every branch of the engine gets a millisecond test.

`FakeBackend` keeps podnat's rules as the kernel would (a listing), records every
ruleset it is given, holds other tools' rules if told, and refuses the commits it
is told to refuse (changing nothing, as a real backend's transaction does).
`FakeHost` hands the engine one set of fake backends per namespace path. The
kernel tiers (`tests/netns`, `tests/reliability`) stay the source of truth: these
fakes prove the engine's decisions, never what the kernel does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar

from helper.backends.base import BackendError, NatRules, Probe
from helper.backends.neighbours import Neighbours
from helper.host.base import Session, Target
from helper.plan.model import Family
from helper.render.rulesets import Ruleset
from helper.system import StrPath
from helper.system.netns import NetnsError

T = TypeVar("T")
BOTH = frozenset({Family.IPV4, Family.IPV6})
STALE = "stale podnat rules from an earlier apply\n"


class FakeBackend:
    def __init__(
        self,
        name: str,
        *,
        usable: bool = True,
        own: bool = False,
        foreign: bool = False,
        families: frozenset[Family] = BOTH,
        fail_commits: Iterable[int] = (),
        neighbours: Neighbours | None = None,
        defers_probe: bool = False,
    ) -> None:
        """`own`: podnat's rules from an earlier apply are there; `foreign`: another
        tool keeps nat rules here; `fail_commits`: the numbers (1 = first) of the
        apply calls whose commit is refused; `defers_probe`: asked to, it answers a
        probe without writing (as nft does), and an unusable one refuses applies."""
        self.name = name
        self.usable = usable
        self.foreign = foreign
        self.families = families
        self.fail_commits = frozenset(fail_commits)
        self.defers_probe = defers_probe
        self.held = STALE if own else ""  # podnat's rules, as listing() shows them
        self.applied: list[Ruleset] = []  # every ruleset apply() was given, in order
        self.probes = 0
        self.found = (
            neighbours or Neighbours()
        )  # other tools' redirects, as neighbours() reports them
        self.probed_families: list[Collection[Family] | None] = []  # each probe's argument
        self.reads = 0  # nat_rules() calls: a backend choice looked at this one

    def nat_rules(self) -> NatRules:
        self.reads += 1
        return NatRules(own=bool(self.held), foreign=self.foreign)

    def neighbours(self) -> Neighbours:
        return self.found

    def probe(self, families: Collection[Family] | None = None, *, defer: bool = False) -> Probe:
        if defer and self.defers_probe:
            return Probe(True, "a fake probe deferred to the apply", self.families, deferred=True)
        self.probes += 1
        self.probed_families.append(families)
        if not self.usable:
            return Probe(False, "the fake backend was told it is unusable")
        return Probe(True, "a fake probe write succeeded", self.families)

    def apply(self, ruleset: Ruleset) -> str:
        self.applied.append(ruleset)
        if not self.usable:
            raise BackendError(f"{self.name}: unusable (fake), nothing changed")
        if len(self.applied) in self.fail_commits:
            raise BackendError(
                f"{self.name}: commit {len(self.applied)} refused (fake), nothing changed"
            )
        self.held = ruleset.listing
        return self.held

    def listing(self) -> str:
        return self.held

    def cleanup(self) -> bool:
        had, self.held = bool(self.held), ""
        return had


class FakeHost:
    """Namespaces by path (None: the caller's), each with its backends (nft first)."""

    def __init__(
        self,
        namespaces: Mapping[StrPath | None, tuple[FakeBackend, ...]],
        global_families: frozenset[Family] = BOTH,
    ) -> None:
        self.namespaces = dict(namespaces)
        self.global_families = global_families
        self.entered: list[StrPath | None] = []  # every run(), in order
        self.sessions: list[tuple[StrPath | None, bool]] = []  # (netns, shared) per session
        self.open_sessions = 0
        self._guard = threading.Lock()
        self._locks = {path: threading.Lock() for path in self.namespaces}

    def run(self, netns: StrPath | None, work: Callable[[], T]) -> T:
        with self._guard:
            self.entered.append(netns)
        if netns not in self.namespaces:
            raise NetnsError(f"--netns {netns}: No such file or directory")
        return work()

    @contextmanager
    def session(self, target: Target, *, shared: bool) -> Iterator[Session]:
        path = target.netns
        with self._locks[path]:  # one operation per namespace at a time, as the flock
            with self._guard:
                self.sessions.append((path, shared))
                self.open_sessions += 1
            try:
                yield Session(self.namespaces[path], lambda: self.global_families)
            finally:
                with self._guard:
                    self.open_sessions -= 1
