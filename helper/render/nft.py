"""ResolvedPlan → nftables ruleset, in exactly the form `nft list table inet podnat` prints.

Rendering in nft's own listing format lets `verify` compare text with text, and
the golden files double as what users will see in the kernel. One `table inet`
covers both families; a family is pinned only where the plan needs it.
Reference: https://wiki.nftables.org/wiki-nftables/index.php/Performing_Network_Address_Translation_(NAT)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from helper.plan.model import Family, Redirect, RedirectKind, ResolvedPlan

if TYPE_CHECKING:
    import ipaddress

    from helper.plan.model import IPNetwork

TABLE_FAMILY = "inet"
TABLE = "podnat"
PREROUTING = "prerouting"
OUTPUT = "output"

_NFPROTO = {Family.IPV4: "ipv4", Family.IPV6: "ipv6"}
_SADDR = {Family.IPV4: "ip saddr", Family.IPV6: "ip6 saddr"}
_DNAT_FAMILY = {Family.IPV4: "ip", Family.IPV6: "ip6"}
_DADDR = {Family.IPV4: "ip daddr", Family.IPV6: "ip6 daddr"}


def render_listing(resolved: ResolvedPlan) -> str:
    """The table as nft lists it (tabs, blank line between chains, trailing newline)."""
    chains = [(PREROUTING, "prerouting priority dstnat", _prerouting_rules(resolved))]
    if resolved.local:
        chains.append((OUTPUT, "output priority -100", _output_rules(resolved)))
    blocks = []
    for name, hook, rules in chains:
        lines = [f"\tchain {name} {{", f"\t\ttype nat hook {hook}; policy accept;"]
        lines += [f"\t\t{rule}" for rule in rules]
        lines.append("\t}")
        blocks.append("\n".join(lines))
    return f"table {TABLE_FAMILY} {TABLE} {{\n" + "\n\n".join(blocks) + "\n}\n"


# nft 1.0.7 and later (trixie's 1.1.3) list the output hook's priority -100 by its name,
# `dstnat`; 1.0.6 (bookworm) lists the number and refuses the name on that hook. Listings are
# compared in the form both accept as input: the name mapped back, nothing else touched (any
# other priority, `dstnat + 10` included, stays different from the plan's).
_OUTPUT_HOOK = "\t\ttype nat hook output priority {}; policy accept;"


def canonical_listing(listed: str) -> str:
    """`nft list table inet podnat` as any nft version prints it, in render_listing's form."""
    return listed.replace(_OUTPUT_HOOK.format("dstnat"), _OUTPUT_HOOK.format(-100))


TRANSACTION_HEADER = f"add table {TABLE_FAMILY} {TABLE}\ndelete table {TABLE_FAMILY} {TABLE}\n"


def render_transaction(resolved: ResolvedPlan) -> str:
    """One nft batch that replaces the table wholly: create-if-missing, delete, define."""
    return TRANSACTION_HEADER + render_listing(resolved)


def render_cleanup() -> str:
    return f"delete table {TABLE_FAMILY} {TABLE}\n"


def _prerouting_rules(resolved: ResolvedPlan) -> list[str]:
    rules: list[str] = []
    for redirect in resolved.redirects:
        for selector, family in _source_selectors(resolved):
            rules += _rules(selector, family, redirect)
    return rules


def _output_rules(resolved: ResolvedPlan) -> list[str]:
    # Only connections to this namespace's own addresses: never outbound traffic.
    selectors = _family_selectors(resolved)
    rules: list[str] = []
    for redirect in resolved.redirects:
        for selector, family in selectors:
            rules += _rules(_join("fib daddr type local", selector), family, redirect)
    return rules


def _source_selectors(resolved: ResolvedPlan) -> list[tuple[str, Family | None]]:
    """(match prefix, family the prefix pins or None for both) per rule to emit."""
    if resolved.plan.sources is None:
        return _family_selectors(resolved)
    out: list[tuple[str, Family | None]] = []
    for family in resolved.families:
        networks = resolved.sources_for(family) or ()
        out.append((f"{_SADDR[family]} {_set(networks)}", family))
    return out


def _family_selectors(resolved: ResolvedPlan) -> list[tuple[str, Family | None]]:
    if set(resolved.families) == {Family.IPV4, Family.IPV6}:
        return [("", None)]
    return [(f"meta nfproto {_NFPROTO[f]}", f) for f in resolved.families]


def _rules(selector: str, family: Family | None, redirect: Redirect) -> list[str]:
    proto = redirect.proto.value
    match = _join(selector, f"{proto} dport {redirect.from_ports}")
    if redirect.kind is not RedirectKind.SHIFT:
        return [f"{match} dnat to :{redirect.to_ports.first}"]
    # nft 1.0.6 has no base-port syntax: a port map that keeps the original
    # destination address shifts 1:1. The map needs a family, so emit one per family.
    offset = redirect.to_ports.first - redirect.from_ports.first
    elements = ", ".join(
        f"{port} : {port + offset}"
        for port in range(redirect.from_ports.first, redirect.from_ports.last + 1)
    )
    families = [family] if family is not None else [Family.IPV4, Family.IPV6]
    rules = []
    for fam in families:
        # `dnat ip` implies `meta nfproto ipv4`, and nft drops the explicit match when listing.
        shift_match = match.removeprefix(f"meta nfproto {_NFPROTO[fam]} ")
        shift_match = shift_match.replace(f" meta nfproto {_NFPROTO[fam]} ", " ")
        rules.append(
            f"{shift_match} dnat {_DNAT_FAMILY[fam]} to {_DADDR[fam]}:{proto} dport map "
            f"{{ {elements} }}"
        )
    return rules


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def _set(networks: tuple[IPNetwork, ...]) -> str:
    """An anonymous interval set as nft prints it: adjacent intervals merged."""
    items = [_interval_text(lo, hi) for lo, hi in _merged_intervals(networks)]
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _merged_intervals(
    networks: tuple[IPNetwork, ...],
) -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]]:
    import ipaddress  # noqa: PLC0415 - only plans with sources get here (~2 ms)

    spans: list[list[int]] = []
    version = networks[0].version if networks else 4
    for net in sorted(networks):
        lo, hi = int(net.network_address), int(net.broadcast_address)
        if spans and lo <= spans[-1][1] + 1:
            spans[-1][1] = max(spans[-1][1], hi)
        else:
            spans.append([lo, hi])
    make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    return [(make(lo), make(hi)) for lo, hi in spans]


def _interval_text(*bounds: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    import ipaddress  # noqa: PLC0415 - see _merged_intervals

    lo, hi = bounds
    if lo == hi:
        return str(lo)
    nets = list(ipaddress.summarize_address_range(lo, hi))
    if len(nets) == 1:
        return str(nets[0])
    return f"{lo}-{hi}"
