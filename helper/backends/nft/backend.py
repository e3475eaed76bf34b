"""The nftables backend: one `table inet podnat`, replaced in one kernel transaction."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from helper.backends.base import BackendError, NatRules, Probe
from helper.backends.neighbours import Neighbours
from helper.backends.nft.libnftables import Nft, NftError
from helper.backends.nft.neighbours import read_neighbours
from helper.log import Logger
from helper.plan.model import Family
from helper.render import nft as render
from helper.render.rulesets import NftRuleset, Ruleset

_log = Logger()
_OWN_TABLE = (render.TABLE_FAMILY, render.TABLE)
_PROBE_TABLE = "podnat_probe"
_DEFERRED = "no probe write: the apply transaction is one (an inet nat chain)"
_TABLES_ONE_BY_ONE = 16  # other tables listed one by one; more: the whole ruleset
# Adding and deleting a nat chain in one batch is a real write the kernel must
# accept (permission, nat chain type), yet it leaves nothing behind.
_PROBE = (
    f"add table inet {_PROBE_TABLE}\n"
    f"add chain inet {_PROBE_TABLE} probe {{ type nat hook prerouting priority dstnat; }}\n"
    f"delete table inet {_PROBE_TABLE}\n"
)


class NftBackend:
    """One libnftables context, opened on first use in the caller's network namespace
    (its netlink socket stays bound there): one backend per namespace operation.

    `free_on_close=False` leaves the context to the process's exit: a one-shot CLI
    saves the ~10 ms teardown; a long-lived process must free it, in place or through
    `closer` (a thread of its own: see closer.py).
    """

    name = "nft"

    def __init__(
        self, *, free_on_close: bool = True, closer: Callable[[Nft], None] | None = None
    ) -> None:
        self._free_on_close, self._closer = free_on_close, closer
        self._context: Nft | None = None
        self._listed: list[dict[str, Any]] | None = None  # nat_rules()' listing, if it ran

    @property
    def _nft(self) -> Nft:
        if self._context is None:
            try:
                self._context = Nft()
            except NftError as err:
                raise BackendError(f"nft: {err.message}") from err
        return self._context

    def probe(self, families: Collection[Family] | None = None, *, defer: bool = False) -> Probe:
        # One inet table serves every family: one write proves them all.
        if defer:
            # apply() writes podnat's inet table with its nat chains in one transaction:
            # all the probe proves. A probe's own commit would cost the process's exit a
            # second RCU grace period as the netlink socket closes (~15 ms, measured).
            return Probe(True, _DEFERRED, frozenset({Family.IPV4, Family.IPV6}), deferred=True)
        try:
            self._nft.run(_PROBE)
        except (NftError, BackendError) as err:
            return Probe(False, f"probe write into an inet nat chain failed: {_message(err)}")
        return Probe(
            True,
            "a probe write into an inet nat chain succeeded",
            frozenset({Family.IPV4, Family.IPV6}),
        )

    def nat_rules(self) -> NatRules:
        try:
            own, items = self._other_tables()
        except (NftError, BackendError):
            return NatRules(own=False, foreign=False)  # unreadable: the probe will say why
        self._listed = items  # neighbours() reads them too: they are not ours
        nat_chains = {
            (c["family"], c["table"], c["name"])
            for item in items
            if (c := item.get("chain")) and c.get("type") == "nat"
        }
        foreign = any(
            (r["family"], r["table"], r["chain"]) in nat_chains
            and (r["family"], r["table"]) != _OWN_TABLE
            for item in items
            if (r := item.get("rule"))
        )
        return NatRules(own=own, foreign=foreign)

    def neighbours(self) -> Neighbours:
        """Other tables' nat redirects on prerouting/output (iptables-nft's included)."""
        items = self._listed
        if items is None:  # one listing per operation: reading is linear in its size
            try:
                _, items = self._other_tables()
            except NftError as err:
                raise BackendError(f"nft: cannot list the ruleset: {err.message}") from err
        return read_neighbours(items, {_OWN_TABLE, (render.TABLE_FAMILY, _PROBE_TABLE)})

    def _other_tables(self) -> tuple[bool, list[dict[str, Any]]]:
        """Whether podnat's table is there, and the JSON items of every other table.

        Listed table by table, so that podnat's own is never printed and parsed: with
        1,000 rules that was ~25 ms of an apply (measured). Many tables, a name nft's
        syntax would need quoted, or one gone meanwhile: the whole ruleset, as before.
        """
        listed = self._nft.run_json("list tables").get("nftables", [])
        names = [(t["family"], t["name"]) for item in listed if (t := item.get("table"))]
        others = [name for name in names if name != _OWN_TABLE]
        items: list[dict[str, Any]] = []
        try:
            if len(others) > _TABLES_ONE_BY_ONE or not all(map(_plain, others)):
                raise NftError("listed whole")
            for family, name in others:  # one command a call: nft 1.0.6 fails several
                items += self._nft.run_json(f"list table {family} {name}").get("nftables", [])
        except NftError:
            ruleset = self._nft.run_json("list ruleset").get("nftables", [])
            items = [i for i in ruleset if _table_of(i) != _OWN_TABLE]
        return _OWN_TABLE in names, items

    def _holds_own_table(self, doing: str) -> bool:
        """Whether podnat's table exists: looked up, not read from an error's text."""
        try:
            tables = self._nft.run_json("list tables")
        except NftError as err:
            raise BackendError(f"nft: cannot {doing}: {err.message}") from err
        items: list[dict[str, Any]] = tables.get("nftables", [])
        return any(
            (t["family"], t["name"]) == _OWN_TABLE for item in items if (t := item.get("table"))
        )

    def listing(self) -> str:
        if not self._holds_own_table("list podnat's table"):
            return ""
        return self._list_own()

    def _list_own(self) -> str:
        try:
            listed = self._nft.run(f"list table {render.TABLE_FAMILY} {render.TABLE}")
        except NftError as err:
            raise BackendError(f"nft: cannot list podnat's table: {err.message}") from err
        return render.canonical_listing(listed)  # one form for every nft version

    def apply(self, ruleset: Ruleset) -> str:
        if not isinstance(ruleset, NftRuleset):
            raise TypeError(f"nft cannot apply {type(ruleset).__name__}")
        try:
            self._nft.run(ruleset.text)
        except NftError as err:
            raise BackendError(f"nft: transaction refused, nothing changed: {err.message}") from err
        listing = self._list_own()  # just made: no need to look for it first
        if listing != ruleset.listing:  # nft printing drifted from ours
            _log.warning("nft lists the ruleset differently from the plan; run podnat verify")
        return listing

    def cleanup(self) -> bool:
        if not self._holds_own_table("delete podnat's table"):
            return False
        try:
            self._nft.run(render.render_cleanup())
        except NftError as err:
            raise BackendError(f"nft: cannot delete podnat's table: {err.message}") from err
        return True

    def close(self) -> None:
        if self._context is not None and self._free_on_close:
            if self._closer is not None:
                self._closer(self._context)
            else:
                self._context.close()
        self._context = None


def _plain(table: tuple[str, str]) -> bool:
    """A family and table name nft reads as they are in a command (else: one listing)."""
    return all(
        part.isascii() and part.replace("_", "").replace("-", "").isalnum() for part in table
    )


def _table_of(item: dict[str, Any]) -> tuple[Any, Any] | None:
    """(family, table) of a listed table, chain, rule, set...; None for the metainfo."""
    for kind, value in item.items():
        if isinstance(value, dict) and "family" in value:
            return value["family"], (value.get("name") if kind == "table" else value.get("table"))
    return None


def _message(err: NftError | BackendError) -> str:
    return err.message if isinstance(err, NftError) else str(err)
