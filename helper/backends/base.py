"""What every backend offers. Backends get resolved plans, never annotations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from helper.errors import PodnatError
from helper.model import Family, ResolvedPlan


class BackendError(PodnatError):
    """The kernel refused or the backend is unusable. Nothing half-applied remains."""

    exit_code = 4


@dataclass(frozen=True)
class Probe:
    """Whether a real write into the backend's nat table succeeded, and for which families."""

    usable: bool
    reason: str
    nat_families: frozenset[Family] = field(default=frozenset())


@dataclass(frozen=True)
class NatRules:
    own: bool  # podnat's rules are there
    foreign: bool  # another tool keeps nat rules there


class Backend(Protocol):
    name: str

    def probe(self) -> Probe:
        """Write into the nat table (leaving nothing behind) to prove the backend works."""
        ...

    def nat_rules(self) -> NatRules:
        """Who keeps nat rules in this backend, in this netns (one look, no writes)."""
        ...

    def render(self, resolved: ResolvedPlan) -> str:
        """The exact ruleset `apply` would install, as text (for --dry-run and plan)."""
        ...

    def expected_listing(self, resolved: ResolvedPlan) -> str:
        """What `listing()` returns once `resolved` is applied (what `verify` compares)."""
        ...

    def listing(self) -> str:
        """podnat's rules as the kernel holds them now; empty when there are none."""
        ...

    def apply(self, resolved: ResolvedPlan) -> str:
        """Replace podnat's rules wholly, in one transaction; return the new listing."""
        ...

    def family_drift(self, expected: str, live: str) -> str | None:
        """When `live` differs from `expected`: a sentence naming a split between
        address families (some hold the plan, others not), if that is the case."""
        ...

    def cleanup(self) -> bool:
        """Remove everything podnat owns and nothing else; True if anything was there."""
        ...

    def close(self) -> None:
        """Release what the backend holds (library contexts, worker processes)."""
        ...
