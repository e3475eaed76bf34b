"""The nftables backend: one `table inet podnat`, replaced in one kernel transaction."""

from __future__ import annotations

import logging
from typing import Any

from helper.backends.base import BackendError, NatRules, Probe
from helper.backends.libnftables import Nft, NftError
from helper.model import Family, ResolvedPlan
from helper.render import nft as render

_log = logging.getLogger("podnat")
_PROBE_TABLE = "podnat_probe"
# Adding and deleting a nat chain in one batch is a real write the kernel must
# accept (permission, nat chain type), yet it leaves nothing behind.
_PROBE = (
    f"add table inet {_PROBE_TABLE}\n"
    f"add chain inet {_PROBE_TABLE} probe {{ type nat hook prerouting priority dstnat; }}\n"
    f"delete table inet {_PROBE_TABLE}\n"
)


class NftBackend:
    name = "nft"

    def __init__(self, nft: Nft | None = None) -> None:
        self._nft_instance = nft

    @property
    def _nft(self) -> Nft:
        if self._nft_instance is None:
            try:
                self._nft_instance = Nft()
            except NftError as err:
                raise BackendError(f"nft: {err.message}") from err
        return self._nft_instance

    def probe(self) -> Probe:
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
        own_table = (render.TABLE_FAMILY, render.TABLE)
        try:
            ruleset = self._nft.run_json("list ruleset")
        except (NftError, BackendError):
            return NatRules(own=False, foreign=False)  # unreadable: the probe will say why
        items: list[dict[str, Any]] = ruleset.get("nftables", [])
        own = any(
            (t["family"], t["name"]) == own_table for item in items if (t := item.get("table"))
        )
        nat_chains = {
            (c["family"], c["table"], c["name"])
            for item in items
            if (c := item.get("chain")) and c.get("type") == "nat"
        }
        foreign = any(
            (r["family"], r["table"], r["chain"]) in nat_chains
            and (r["family"], r["table"]) != own_table
            for item in items
            if (r := item.get("rule"))
        )
        return NatRules(own=own, foreign=foreign)

    def render(self, resolved: ResolvedPlan) -> str:
        return render.render_transaction(resolved)

    def expected_listing(self, resolved: ResolvedPlan) -> str:
        return render.render_listing(resolved)

    def listing(self) -> str:
        try:
            return self._nft.run(f"list table {render.TABLE_FAMILY} {render.TABLE}")
        except NftError as err:
            if err.is_not_found:
                return ""
            raise BackendError(f"nft: cannot list podnat's table: {err.message}") from err

    def apply(self, resolved: ResolvedPlan) -> str:
        try:
            self._nft.run(render.render_transaction(resolved))
        except NftError as err:
            raise BackendError(f"nft: transaction refused, nothing changed: {err.message}") from err
        listing = self.listing()
        if listing != render.render_listing(resolved):  # nft printing drifted from ours
            _log.warning("nft lists the ruleset differently from the plan; run podnat verify")
        return listing

    def family_drift(self, expected: str, live: str) -> str | None:
        return None  # one inet table, replaced in one transaction: never split

    def close(self) -> None:
        if self._nft_instance is not None:
            self._nft_instance.close()
            self._nft_instance = None

    def cleanup(self) -> bool:
        try:
            self._nft.run(render.render_cleanup())
        except NftError as err:
            if err.is_not_found:
                return False
            raise BackendError(f"nft: cannot delete podnat's table: {err.message}") from err
        return True


def _message(err: NftError | BackendError) -> str:
    return err.message if isinstance(err, NftError) else str(err)
