"""What every backend offers: what the engine proves it needs, nothing more.

Backends get rendered rulesets (`helper.render.rulesets`), never annotations or
plans; rendering and expected listings are render's business.
"""

# Annotations evaluated at import, no __future__ import: see helper/__init__.py.
from collections.abc import Collection
from typing import NamedTuple, Protocol

from helper.backends.neighbours import Neighbours
from helper.errors import ExitCode, PodnatError
from helper.plan.model import Family
from helper.render.rulesets import Ruleset


class BackendError(PodnatError):
    """The kernel refused or the backend is unusable. Nothing half-applied remains."""

    exit_code = ExitCode.BACKEND


# Named tuples, not dataclasses (see helper/__init__.py).
class Probe(NamedTuple):
    """Whether a real write into the backend's nat table succeeded, and for which families."""

    usable: bool
    reason: str
    nat_families: frozenset[Family] = frozenset()
    # Nothing written yet: the caller's apply is the write that proves the backend, and
    # a refused apply is probed again for real (helper.engine).
    deferred: bool = False


class NatRules(NamedTuple):
    own: bool  # podnat's rules are there
    foreign: bool  # another tool keeps nat rules there


class Backend(Protocol):
    """One backend, bound to the network namespace it was opened in."""

    @property
    def name(self) -> str: ...

    def nat_rules(self) -> NatRules:
        """Who keeps nat rules in this backend, in this netns (one look, no writes)."""
        ...

    def neighbours(self) -> Neighbours:
        """Other tools' nat redirects on prerouting/output here, bounded (no writes)."""
        ...

    def probe(self, families: Collection[Family] | None = None, *, defer: bool = False) -> Probe:
        """Write into the nat table (leaving nothing behind) to prove the backend works:
        for `families` at least (None: every family). A family left unproven is not in
        `nat_families`: the operation at hand cannot use it anyway.

        `defer`: the caller applies next, and probes again if that apply is refused. A
        backend whose apply proves all the probe would may then answer without writing
        (`Probe.deferred`)."""
        ...

    def apply(self, ruleset: Ruleset) -> str:
        """Replace podnat's rules wholly, in one transaction; return the new listing."""
        ...

    def listing(self) -> str:
        """podnat's rules as the kernel holds them now; empty when there are none."""
        ...

    def cleanup(self) -> bool:
        """Remove everything podnat owns and nothing else; True if anything was there."""
        ...
