"""The nftables backend: one `table inet podnat`, replaced in one kernel transaction."""

from __future__ import annotations

from typing import Any

from helper.backends.base import BackendError, Probe
from helper.backends.libnftables import Nft, NftError
from helper.model import Family, ResolvedPlan
from helper.render import nft as render

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

    def holds_own_rules(self) -> bool:
        try:
            return bool(self.listing())
        except BackendError:
            return False  # unreadable: the probe will say why

    def holds_foreign_nat_rules(self) -> bool:
        try:
            ruleset = self._nft.run_json("list ruleset")
        except NftError:
            return False
        items: list[dict[str, Any]] = ruleset.get("nftables", [])
        nat_chains = {
            (c["family"], c["table"], c["name"])
            for item in items
            if (c := item.get("chain")) and c.get("type") == "nat"
        }
        return any(
            (r["family"], r["table"], r["chain"]) in nat_chains
            and (r["family"], r["table"]) != (render.TABLE_FAMILY, render.TABLE)
            for item in items
            if (r := item.get("rule"))
        )

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
        return self.listing()

    def close(self) -> None:
        if self._nft_instance is not None:
            self._nft_instance.close()
            self._nft_instance = None

    def cleanup(self) -> bool:
        if not self.holds_own_rules():
            return False
        try:
            self._nft.run(render.render_cleanup())
        except NftError as err:
            raise BackendError(f"nft: cannot delete podnat's table: {err.message}") from err
        return True


def _message(err: NftError | BackendError) -> str:
    return err.message if isinstance(err, NftError) else str(err)
