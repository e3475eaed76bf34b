"""The iptables-legacy backend, through python-iptables (libiptc in-process).

podnat owns the chains PODNAT-PREROUTING / PODNAT-OUTPUT in the nat table and
one jump to each, first in PREROUTING / OUTPUT. libxtables serves one address
family per process, so each family is served by a worker of its own, started in
the namespace (a one-shot CLI may serve its first family in-process: see
xtables.worker). An apply is a two-phase commit: every family stages
its whole table first (any error: nothing changed); then both commit at once, the
worker sent its commit just before the in-process family makes its own, and if
one commit fails the other is rolled back to what it held before.

The kernel swaps one table at a time, so each family changes atomically, but a
SIGKILL landing between the two commits (a window of microseconds) leaves one
family on the new ruleset and the other on the old. The next apply repairs that
(it replaces both wholly) and `verify` names it (`family_drift`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from helper.backends.base import BackendError, NatRules, Probe
from helper.backends.neighbours import Neighbours
from helper.backends.xtables.lock import xtables_lock
from helper.plan.model import Family
from helper.render.rulesets import Ruleset, XtRulesets
from helper.system import StrPath

if TYPE_CHECKING:
    from helper.backends.xtables.worker import Channel
    from helper.render.iptables import XtRuleset

# xtables.worker and render.iptables are imported on first use ("lazy" below): in
# most pods nft is chosen after a look at /proc alone, and they are ~15 ms of the
# init container's start.

# The calling thread's namespace's (/proc/net would be the main thread's).
_TABLE_NAMES = {
    Family.IPV4: "/proc/thread-self/net/ip_tables_names",
    Family.IPV6: "/proc/thread-self/net/ip6_tables_names",
}
_FAMILIES = (Family.IPV4, Family.IPV6)


class IptablesLegacyBackend:
    name = "iptables-legacy"

    def __init__(
        self,
        lock_path: StrPath | None = None,
        *,
        first_family_in_process: bool = False,
        inherit_fds: tuple[int, ...] = (),
    ) -> None:
        """Bound to the caller thread's network namespace: workers start there.

        `first_family_in_process`: this process touches no other namespace and no
        other family's libxtables (a one-shot CLI): its first family skips a worker.
        `inherit_fds`: the namespace lock, held by workers as long as they live.
        """
        self._lock_path = lock_path
        self._in_process = first_family_in_process
        self._inherit_fds = inherit_fds
        self._channels: dict[Family, Channel] = {}

    def _channel(self, family: Family) -> Channel:
        if family not in self._channels:
            from helper.backends.xtables.worker import open_channel  # noqa: PLC0415 - lazy

            in_process = self._in_process and not self._channels
            self._channels[family] = open_channel(
                family, in_process=in_process, inherit_fds=self._inherit_fds
            )
        return self._channels[family]

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    def _loaded_families(self) -> list[Family]:
        """Families whose legacy nat table exists in this netns, read without touching it.

        The kernel creates a netns's legacy tables on first use, so an absent name
        means nothing, podnat or other, has ever put a rule there.
        """
        out = []
        for family in _FAMILIES:
            try:
                with open(_TABLE_NAMES[family], encoding="utf-8") as file:
                    names = file.read().split()
            except OSError:
                continue
            if "nat" in names:
                out.append(family)
        return out

    def probe(self, families: Collection[Family] | None = None, *, defer: bool = False) -> Probe:
        # Always a real write (`defer` aside): an apply stages every family before any
        # commits, so a refusal there could not tell an unusable backend from a bad ruleset.
        # Only the families asked for: an unused one costs a worker process (a whole
        # interpreter and python-iptables, ~60 ms) in a single-stack pod.
        asked = [f for f in _FAMILIES if families is None or f in families]
        proven: set[Family] = set()
        reasons: list[str] = []
        with xtables_lock(self._lock_path):
            for family, reply in zip(asked, self._gather(asked, "probe"), strict=True):
                if isinstance(reply, BackendError):
                    reasons.append(str(reply))
                else:
                    proven.add(family)
        if not proven:
            return Probe(False, "probe write into the nat table failed: " + "; ".join(reasons))
        reason = "a probe write into the nat table succeeded for " + ", ".join(sorted(proven))
        if reasons:
            reason += f" ({'; '.join(reasons)})"
        return Probe(True, reason, frozenset(proven))

    def _status(self) -> list[tuple[bool, bool]]:
        return [
            (bool(reply["own"]), bool(reply["foreign"]))
            for reply in self._each(self._loaded_families(), "status")
        ]

    def nat_rules(self) -> NatRules:
        status = self._status()
        return NatRules(own=any(o for o, _ in status), foreign=any(f for _, f in status))

    def _each(
        self, families: list[Family], op: str, rulesets: XtRulesets | None = None
    ) -> list[dict[str, Any]]:
        """`op` for every family, concurrently; the first failure is raised."""
        replies = []
        for reply in self._gather(families, op, rulesets):
            if isinstance(reply, BackendError):
                raise BackendError(f"iptables-legacy: {reply}") from reply
            replies.append(reply)
        return replies

    def _gather(
        self, families: list[Family], op: str, rulesets: XtRulesets | None = None
    ) -> list[dict[str, Any] | BackendError]:
        """Send `op` to every family at once, then collect each reply or error."""
        if not families:  # the usual case on the nft path: nothing to load
            return []
        from helper.backends.xtables.protocol import Request  # noqa: PLC0415 - lazy
        from helper.backends.xtables.worker import LocalFamily  # noqa: PLC0415 - lazy

        channels = [self._channel(family) for family in families]
        failed: dict[int, BackendError] = {}
        # Workers first, so they run while the in-process family does its part.
        for index, channel in sorted(
            enumerate(channels), key=lambda item: isinstance(item[1], LocalFamily)
        ):
            ruleset = rulesets.for_family(channel.family) if rulesets is not None else None
            try:
                channel.send(Request(op, ruleset))
            except BackendError as err:
                failed[index] = err
        out: list[dict[str, Any] | BackendError] = []
        for index, channel in enumerate(channels):
            if index in failed:
                out.append(failed[index])
                continue
            try:
                out.append(channel.receive(op))
            except BackendError as err:
                out.append(err)
        return out

    def neighbours(self) -> Neighbours:
        """Other tools' redirects in the legacy nat tables that exist here."""
        found = [r["neighbours"] for r in self._each(self._loaded_families(), "neighbours")]
        return Neighbours(
            tuple(n for group in found for n in group.redirects),
            "; ".join(g.incomplete for g in found if g.incomplete),
        )

    def listing(self) -> str:
        from helper.render.iptables import join_listings  # noqa: PLC0415 - lazy

        replies = self._each(self._loaded_families(), "read")
        live: list[XtRuleset] = [reply["ruleset"] for reply in replies]
        return join_listings((r.family, r.listing()) for r in live if r.chains or r.rules)

    def apply(self, ruleset: Ruleset, before_commit: Callable[[], None] | None = None) -> str:
        """Stage every family, then commit them together (see `_commit_all`).

        `before_commit` runs between the two, under the xtables lock: the moment
        another tool could still change a table (tests make a commit fail there).
        """
        if not isinstance(ruleset, XtRulesets):
            raise TypeError(f"iptables-legacy cannot apply {type(ruleset).__name__}")
        from helper.render.iptables import join_listings  # noqa: PLC0415 - lazy

        with xtables_lock(self._lock_path):
            # Families with nothing wanted still get staged: stale podnat rules go.
            wanted = ruleset.families
            families = [f for f in _FAMILIES if f in wanted or f in self._loaded_families()]
            try:
                replies = self._each(families, "stage", ruleset)
            except BackendError as err:
                raise BackendError(f"{err}; nothing changed") from err
            if before_commit is not None:
                before_commit()
            self._commit_all(families)
        # What libiptc committed, not a read-back: decoding rules through python-iptables
        # costs ~250 µs each. `podnat verify` reads the kernel's copy back.
        return join_listings(
            (family, reply["listing"]) for family, reply in zip(families, replies, strict=True)
        )

    def _commit_all(self, families: list[Family]) -> None:
        """Commit every staged family back to back; if one fails, roll the others back.

        `_gather` writes the workers' commit requests first and then commits the
        in-process family at once, so the two commits run concurrently: nothing
        but a pipe write separates them. A worker that got its request commits
        even if this process is killed right after (it holds the namespace lock
        until it exits).
        """
        from helper.backends.xtables.worker import call  # noqa: PLC0415 - lazy

        replies = self._gather(families, "commit")
        failed = [
            (f, r) for f, r in zip(families, replies, strict=True) if isinstance(r, Exception)
        ]
        if not failed:
            return
        committed = [f for f, r in zip(families, replies, strict=True) if isinstance(r, dict)]
        for family in committed:
            call(self._channel(family), "rollback")
        undone = ", ".join(committed) or "nothing had changed"
        first = failed[0][1]
        raise BackendError(f"iptables-legacy: {first}; rolled back: {undone}") from first

    def cleanup(self) -> bool:
        if not self._loaded_families():  # nothing ever wrote a legacy nat table here
            return False
        removed = False
        with xtables_lock(self._lock_path):
            for family in self._loaded_families():
                reply: dict[str, Any] = self._each([family], "cleanup")[0]
                removed = removed or bool(reply["removed"])
        return removed
