"""The iptables-legacy backend, through python-iptables (libiptc in-process).

podnat owns the chains PODNAT-PREROUTING / PODNAT-OUTPUT in the nat table and
one jump to each, first in PREROUTING / OUTPUT. Each family's table lives in its
own worker process (see xtables_worker). An apply is a two-phase commit:
every family stages its whole table first (any error: nothing changed); then
all commit, and if one commit fails the others are rolled back to what they
held before, so a pod never runs with half of its redirects.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helper.backends.base import BackendError, Probe
from helper.backends.xtables_lock import xtables_lock
from helper.model import Family, ResolvedPlan

if TYPE_CHECKING:
    from helper.backends.xtables_worker import FamilyWorker
    from helper.render.iptables import XtRuleset

# xtables_worker and render.iptables are imported on first use ("lazy" below): in
# most pods nft is chosen after a look at /proc alone, and they are ~15 ms of the
# init container's start.

_TABLE_NAMES = {Family.IPV4: "/proc/net/ip_tables_names", Family.IPV6: "/proc/net/ip6_tables_names"}
_FAMILIES = (Family.IPV4, Family.IPV6)


class IptablesLegacyBackend:
    name = "iptables-legacy"

    def __init__(self, lock_path: Path | None = None) -> None:
        self._lock_path = lock_path
        self._workers: dict[Family, FamilyWorker] = {}

    def _worker(self, family: Family) -> FamilyWorker:
        if family not in self._workers:
            from helper.backends.xtables_worker import FamilyWorker  # noqa: PLC0415 - lazy

            self._workers[family] = FamilyWorker(family)
        return self._workers[family]

    def close(self) -> None:
        for worker in self._workers.values():
            worker.close()
        self._workers.clear()

    def _loaded_families(self) -> list[Family]:
        """Families whose legacy nat table exists in this netns, read without touching it.

        The kernel creates a netns's legacy tables on first use, so an absent name
        means nothing, podnat or other, has ever put a rule there.
        """
        out = []
        for family in _FAMILIES:
            try:
                names = Path(_TABLE_NAMES[family]).read_text().split()
            except OSError:
                continue
            if "nat" in names:
                out.append(family)
        return out

    def probe(self) -> Probe:
        families: set[Family] = set()
        reasons: list[str] = []
        with xtables_lock(self._lock_path):
            for family in _FAMILIES:
                try:
                    self._worker(family).call("probe")
                    families.add(family)
                except BackendError as err:
                    reasons.append(str(err))
        if not families:
            return Probe(False, "probe write into the nat table failed: " + "; ".join(reasons))
        reason = "a probe write into the nat table succeeded for " + ", ".join(sorted(families))
        if reasons:
            reason += f" ({'; '.join(reasons)})"
        return Probe(True, reason, frozenset(families))

    def _status(self) -> list[tuple[bool, bool]]:
        return [
            (bool(reply["own"]), bool(reply["foreign"]))
            for reply in self._each(self._loaded_families(), "status")
        ]

    def holds_own_rules(self) -> bool:
        return any(own for own, _ in self._status())

    def holds_foreign_nat_rules(self) -> bool:
        return any(foreign for _, foreign in self._status())

    def _each(
        self, families: list[Family], op: str, resolved: ResolvedPlan | None = None
    ) -> list[dict[str, Any]]:
        """Send `op` to every family's worker at once (they run in parallel), then collect."""
        try:
            for family in families:
                self._worker(family).send(op, resolved)
            return [self._worker(family).receive(op) for family in families]
        except BackendError as err:
            raise BackendError(f"iptables-legacy: {err}") from err

    def render(self, resolved: ResolvedPlan) -> str:
        from helper.render import iptables  # noqa: PLC0415 - lazy

        return iptables.render_text(resolved)

    def expected_listing(self, resolved: ResolvedPlan) -> str:
        from helper.render import iptables  # noqa: PLC0415 - lazy

        return _listing_text(list(iptables.render_rulesets(resolved)))

    def listing(self) -> str:
        replies = self._each(self._loaded_families(), "read")
        live: list[XtRuleset] = [reply["ruleset"] for reply in replies]
        return _listing_text([r for r in live if r.chains or r.rules])

    def apply(self, resolved: ResolvedPlan) -> str:
        with xtables_lock(self._lock_path):
            # Families with nothing wanted still get staged: stale podnat rules go.
            wanted = resolved.families
            families = [f for f in _FAMILIES if f in wanted or f in self._loaded_families()]
            try:
                replies = self._each(families, "stage", resolved)
            except BackendError as err:
                raise BackendError(f"{err}; nothing changed") from err
            self._commit_all(families)
        # What libiptc committed, not a read-back: decoding rules through python-iptables
        # costs ~250 µs each. `podnat verify` reads the kernel's copy back.
        return _join_listings(
            (family, reply["listing"]) for family, reply in zip(families, replies, strict=True)
        )

    def _commit_all(self, families: list[Family]) -> None:
        """Commit every family at once; if any fails, roll the committed ones back."""
        for family in families:
            self._worker(family).send("commit")
        done: list[Family] = []
        failures: list[str] = []
        for family in families:
            try:
                self._worker(family).receive("commit")
                done.append(family)
            except BackendError as err:
                failures.append(str(err))
        if failures:
            for committed in done:
                self._worker(committed).call("rollback")
            undone = ", ".join(done) or "nothing had changed"
            raise BackendError(f"iptables-legacy: {'; '.join(failures)}; rolled back: {undone}")

    def cleanup(self) -> bool:
        removed = False
        with xtables_lock(self._lock_path):
            for family in self._loaded_families():
                try:
                    reply: dict[str, Any] = self._worker(family).call("cleanup")
                except BackendError as err:
                    raise BackendError(f"iptables-legacy: {err}") from err
                removed = removed or bool(reply["removed"])
        return removed


def _listing_text(rulesets: list[XtRuleset]) -> str:
    return _join_listings((r.family, r.listing()) for r in rulesets)


def _join_listings(listings: Iterable[tuple[Family, str | None]]) -> str:
    from helper.render.iptables import COMMANDS  # noqa: PLC0415 - lazy

    return "\n".join(f"# {COMMANDS[f]} -t nat\n{text}" for f, text in listings if text)
