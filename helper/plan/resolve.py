"""Bind a plan to the namespace: which IP families really get rules. Pure."""

# Annotations evaluated at import, no __future__ import: see helper/__init__.py.
from collections.abc import Iterable
from typing import NamedTuple

from helper.errors import ExitCode, PodnatError
from helper.plan.annotations import FAMILIES, SOURCES
from helper.plan.model import Family, FamilyMode, RedirectPlan, ResolvedPlan

ALL_FAMILIES = (Family.IPV4, Family.IPV6)


class FamilyUnavailableError(PodnatError):
    """A family asked for by name cannot be set up by the chosen backend."""

    exit_code = ExitCode.BACKEND


# A named tuple, not a dataclass (see helper/__init__.py).
class Resolution(NamedTuple):
    resolved: ResolvedPlan
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def resolve(
    plan: RedirectPlan,
    *,
    global_families: Iterable[Family],
    nat_families: Iterable[Family],
    backend: str,
) -> Resolution:
    """Pick the families to install.

    Named families must all be supported, else FamilyUnavailableError. In `auto`, a
    family is used when the pod has a global address of it, it has a listed
    source (when sources are restricted), and the backend has nat for it.
    """
    present = set(global_families)
    nat = set(nat_families)
    explicit = plan.families.explicit_families()
    if explicit:
        missing = [f for f in explicit if f not in nat]
        if missing:
            raise FamilyUnavailableError(
                f"{FAMILIES}: {plan.families.value} asks for {', '.join(missing)}, "
                f"but the {backend} backend has no {'/'.join(missing)} nat support "
                "in this network namespace"
            )
        return Resolution(ResolvedPlan(plan, explicit))

    warnings: list[str] = []
    notes: list[str] = []
    chosen: list[Family] = []
    for family in ALL_FAMILIES:
        if family not in present:
            notes.append(f"{family}: skipped, the pod has no global {family} address")
        elif plan.sources is not None and not plan.sources_for(family):
            notes.append(f"{family}: skipped, {SOURCES} lists no {family} source")
        elif family not in nat:
            warnings.append(f"{family}: skipped, the {backend} backend has no {family} nat here")
        else:
            chosen.append(family)
    if not chosen and not plan.is_empty:
        warnings.append(f"{FAMILIES}: {FamilyMode.AUTO}: no IP family to redirect")
    return Resolution(ResolvedPlan(plan, tuple(chosen)), tuple(warnings), tuple(notes))
