"""Choosing a backend: the documented rule, as a pure function plus the probing around it.

Rule (`--backend auto`):
1. A backend is usable only if a probe write into its nat table succeeds.
   A nat table that is readable (even empty) proves nothing.
2. A usable backend that already holds podnat's rules in this netns wins (re-runs converge).
3. Else a usable backend that alone holds other tools' nat rules wins: that is
   where this netns's NAT is evidently read.
4. Else nft, if usable; else iptables-legacy.
"""

# Annotations evaluated at import, no __future__ import: see helper/__init__.py.
from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple

from helper.backends.base import Backend, BackendError, Probe
from helper.plan.model import Family

NOT_PROBED = "not probed: nft works and this backend holds no nat rules here"  # cannot win


# Named tuples, not dataclasses (see helper/__init__.py).
class Observation(NamedTuple):
    name: str
    probe: Probe
    holds_own: bool
    holds_foreign: bool


class Choice(NamedTuple):
    name: str
    reason: str


def choose(observations: Sequence[Observation]) -> Choice:
    """Apply the rule above to what was observed; observations in preference order."""
    usable = [o for o in observations if o.probe.usable]
    if not usable:
        details = "; ".join(f"{o.name}: {o.probe.reason}" for o in observations)
        raise BackendError(f"no usable backend ({details})")
    for obs in usable:
        if obs.holds_own:
            return Choice(obs.name, f"{obs.name} already holds podnat's rules in this netns")
    holding = [o for o in usable if o.holds_foreign]
    if len(holding) == 1:
        return Choice(
            holding[0].name, f"{holding[0].name} already holds this netns's other nat rules"
        )
    first = usable[0]
    if holding:
        why = "every usable backend holds nat rules; taking the preferred one"
    else:
        why = "no backend holds nat rules here; taking the preferred one"
    skipped = [f"{o.name}: {o.probe.reason}" for o in observations if not o.probe.usable]
    return Choice(first.name, "; ".join([why, *skipped]))


class Selection(NamedTuple):
    backend: Backend
    probe: Probe
    reason: str
    others: tuple[Backend, ...]


def select(
    backends: Sequence[Backend],
    requested: str,
    families: Collection[Family] | None = None,
    *,
    defer: bool = False,
    probed: Mapping[str, Probe] | None = None,
) -> Selection:
    """Probe and pick. `backends` in preference order: nft first. `families`: the ones
    the operation can use (None: every family); probes need prove no other. `defer`:
    passed to each probe (the caller applies next). `probed`: probes already made, by
    backend name, used instead of probing again."""
    by_name = {b.name: b for b in backends}
    known = probed or {}

    def probe_of(backend: Backend) -> Probe:
        if backend.name in known:
            return known[backend.name]
        return backend.probe(families, defer=defer)

    if requested != "auto":
        backend = by_name[requested]
        probe = probe_of(backend)
        if not probe.usable:
            raise BackendError(f"{backend.name}: {probe.reason}")
        others = tuple(b for b in backends if b is not backend)
        return Selection(backend, probe, f"{backend.name}: requested with --backend", others)

    observations: list[Observation] = []
    for index, backend in enumerate(backends):
        try:
            rules = backend.nat_rules()
            holds_own, holds_foreign = rules.own, rules.foreign
        except BackendError:  # unreadable; its probe will say why
            holds_own = holds_foreign = False
        # Probing iptables-legacy costs a library load; skip it when it cannot win.
        preferred_works = index > 0 and observations[0].probe.usable
        if preferred_works and not (holds_own or holds_foreign):
            probe = Probe(False, NOT_PROBED)
        else:
            probe = probe_of(backend)
        observations.append(Observation(backend.name, probe, holds_own, holds_foreign))
    choice = choose(observations)
    chosen = next(o for o in observations if o.name == choice.name)
    return Selection(
        by_name[choice.name],
        chosen.probe,
        choice.reason,
        tuple(b for b in backends if b.name != choice.name),
    )
