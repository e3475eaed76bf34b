"""The one data path: annotations → plan → resolved plan → backend transaction → report."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from helper.addresses import global_families
from helper.backends.base import Backend
from helper.backends.iptables_legacy import IptablesLegacyBackend
from helper.backends.nft import NftBackend
from helper.backends.select import Selection, select
from helper.model import RedirectPlan, ResolvedPlan
from helper.netns_lock import DEFAULT_TIMEOUT, namespace_lock
from helper.parse import parse_plan
from helper.privileges import raise_permitted
from helper.resolve import ALL_FAMILIES, resolve
from helper.sources.base import AnnotationSource

BACKEND_CHOICES = ("auto", "nft", "iptables-legacy")
_log = logging.getLogger("podnat")


@dataclass(frozen=True)
class Outcome:
    """What to tell the user at the end: a one-line summary and the exit code."""

    summary: str
    exit_code: int = 0


def read_plan(source: AnnotationSource) -> RedirectPlan:
    return parse_plan(source.read())


def resolve_here(plan: RedirectPlan, selection: Selection) -> ResolvedPlan:
    resolution = resolve(
        plan,
        global_families=global_families(),
        nat_families=selection.probe.nat_families,
        backend=selection.backend.name,
    )
    for note in resolution.notes:
        _log.info("%s", note)
    for warning in resolution.warnings:
        _log.warning("%s", warning)
    return resolution.resolved


def resolve_offline(plan: RedirectPlan, backend: str) -> ResolvedPlan:
    """For `plan`: no namespace to look at, so `auto` shows every family."""
    return resolve(
        plan, global_families=ALL_FAMILIES, nat_families=ALL_FAMILIES, backend=backend
    ).resolved


# A one-shot CLI process may leave teardown to the kernel: freeing an nft
# context after a transaction costs ~10 ms of a ~100 ms budget.
RELEASE_ON_EXIT = True


@contextmanager
def opened_backends(
    lock: Path | None, *, shared: bool = False, timeout: float = DEFAULT_TIMEOUT
) -> Iterator[tuple[Backend, ...]]:
    """All backends, in preference order (nft first), closed afterwards.

    Under the namespace's podnat lock for the whole span: choosing a backend,
    replacing its rules and removing stale ones from the others is one step to
    any other podnat (`shared`: for readers, which may overlap each other).
    """
    with namespace_lock(shared=shared, timeout=timeout), _opened(lock) as opened:
        yield opened


@contextmanager
def _opened(lock: Path | None) -> Iterator[tuple[Backend, ...]]:
    raise_permitted()  # a non-root image user's NET_ADMIN/NET_RAW, before any probe
    opened: tuple[Backend, ...] = (NftBackend(), IptablesLegacyBackend(lock))
    try:
        yield opened
    finally:
        for backend in opened:
            if RELEASE_ON_EXIT or not isinstance(backend, NftBackend):
                backend.close()


def apply(
    plan: RedirectPlan,
    requested: str,
    dry_run: bool,
    lock: Path | None,
    lock_timeout: float = DEFAULT_TIMEOUT,
) -> Outcome:
    with opened_backends(lock, timeout=lock_timeout) as all_backends:
        return _apply(plan, select(all_backends, requested), dry_run)


def _apply(plan: RedirectPlan, selection: Selection, dry_run: bool) -> Outcome:
    backend = selection.backend
    _log.info("backend %s: %s", backend.name, selection.reason)
    resolved = resolve_here(plan, selection)
    if dry_run:
        print(backend.render(resolved), end="")  # noqa: T201 - the dry-run's output
        return Outcome(f"dry run: {backend.name} ruleset printed, nothing changed")
    listing = backend.apply(resolved)
    _log.info("installed ruleset (%s)", backend.name, extra={"ruleset": listing})
    for other in selection.others:
        if other.cleanup():
            _log.warning("removed stale podnat rules from the %s backend", other.name)
    families = "/".join(resolved.families) or "no family"
    return Outcome(f"applied with {backend.name} ({families}): {plan.summary()}")


def verify(
    plan: RedirectPlan,
    requested: str,
    lock: Path | None,
    lock_timeout: float = DEFAULT_TIMEOUT,
) -> Outcome:
    with opened_backends(lock, shared=True, timeout=lock_timeout) as all_backends:
        return _verify(plan, select(all_backends, requested))


def _verify(plan: RedirectPlan, selection: Selection) -> Outcome:
    backend = selection.backend
    resolved = resolve_here(plan, selection)
    expected = backend.expected_listing(resolved) if not plan.is_empty else ""
    live = backend.listing()
    if live == expected:
        return Outcome(f"verified: {backend.name} holds exactly the planned ruleset")
    import difflib  # noqa: PLC0415 - only verify needs it

    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            live.splitlines(keepends=True),
            fromfile="planned",
            tofile=f"live ({backend.name})",
        )
    )
    print(diff, end="")  # noqa: T201 - the diff is verify's output
    split = backend.family_drift(expected, live)
    detail = f": {split}" if split else ""
    return Outcome(f"drift: the {backend.name} ruleset differs from the plan{detail}", exit_code=1)


def cleanup(requested: str, lock: Path | None, lock_timeout: float = DEFAULT_TIMEOUT) -> Outcome:
    with opened_backends(lock, timeout=lock_timeout) as all_backends:
        chosen = [b for b in all_backends if requested in ("auto", b.name)]
        removed = [b.name for b in chosen if b.cleanup()]
    if removed:
        return Outcome(f"removed podnat's rules from {', '.join(removed)}")
    return Outcome("no podnat rules found: nothing to remove")
