"""The comma-separated values: bounded splitting, and `podnat.io/redirect-sources`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from helper.plan import annotations as keys
from helper.plan.limits import MAX_ITEM_CHARS, MAX_SOURCE_ITEMS, MAX_VALUE_BYTES, utf8_size
from helper.plan.problems import Problem

if TYPE_CHECKING:
    import ipaddress

    from helper.plan.model import IPNetwork


def within_size(raw: str, annotation: str, problems: list[Problem]) -> bool:
    """Whether the value is small enough to read at all (checked before any splitting)."""
    size = utf8_size(raw)
    if size > MAX_VALUE_BYTES:
        reason = f"value is too large ({size} bytes; at most {MAX_VALUE_BYTES})"
        problems.append(Problem(annotation, None, reason))
        return False
    return True


def split_items(raw: str, annotation: str, max_items: int, problems: list[Problem]) -> list[str]:
    """The non-empty items of a list value; [] (and a problem) when the value is out of bounds."""
    if not within_size(raw, annotation, problems):
        return []
    count = raw.count(",") + 1
    if count > max_items:
        problems.append(Problem(annotation, None, f"has {count} items; at most {max_items}"))
        return []
    if not raw.strip():
        problems.append(Problem(annotation, None, "value is empty"))
        return []
    items = [item.strip() for item in raw.split(",")]
    kept = []
    for position, item in enumerate(items, start=1):
        if not item:
            problems.append(Problem(annotation, None, f"item {position} is empty (stray comma?)"))
        elif len(item) > MAX_ITEM_CHARS:
            reason = f"is too long ({len(item)} characters; at most {MAX_ITEM_CHARS})"
            problems.append(Problem(annotation, item, reason))
        else:
            kept.append(item)
    return kept


def parse_sources(raw: str | None, problems: list[Problem]) -> tuple[IPNetwork, ...] | None:
    if raw is None:
        return None
    import ipaddress  # noqa: PLC0415 - only pods that restrict sources need it (~2 ms)

    networks: list[IPNetwork] = []
    for item in split_items(raw, keys.SOURCES, MAX_SOURCE_ITEMS, problems):
        if "%" in item:
            # ipaddress keeps a zone; nft would drop it silently, iptables fail on it.
            reason = "scoped IPv6 addresses (%zone) are not allowed"
            problems.append(Problem(keys.SOURCES, item, reason))
            continue
        try:
            # Straight to the family: ip_network() tries IPv4 first, a third of the cost.
            family = ipaddress.IPv6Network if ":" in item else ipaddress.IPv4Network
            networks.append(family(item, strict=True))
        except ValueError:
            problems.append(Problem(keys.SOURCES, item, _network_reason(item)))
    v4 = _collapse([n for n in networks if n.version == 4], ipaddress.IPv4Address)
    v6 = _collapse([n for n in networks if n.version == 6], ipaddress.IPv6Address)
    return (*v4, *v6)


def _collapse(
    networks: list[IPNetwork], address: type[ipaddress.IPv4Address | ipaddress.IPv6Address]
) -> list[IPNetwork]:
    """What ipaddress.collapse_addresses gives, in one sort and sweep over integer spans.

    collapse_addresses builds a supernet object per step; at 1,000 sources that alone
    was most of the validation time. A network that merges with no other is kept as is.
    """
    import ipaddress  # noqa: PLC0415 - see parse_sources

    spans = sorted(
        (int(net.network_address), (1 << (net.max_prefixlen - net.prefixlen)) - 1, index)
        for index, net in enumerate(networks)
    )
    merged: list[tuple[int, int, IPNetwork | None]] = []  # None: several merged, re-cut
    for start, size, index in spans:
        end = start + size
        if merged and start <= merged[-1][1] + 1:
            first, last, alone = merged[-1]
            merged[-1] = (first, last, alone) if end <= last else (first, end, None)
        else:
            merged.append((start, end, networks[index]))
    out: list[IPNetwork] = []
    for start, end, alone in merged:
        if alone is not None:
            out.append(alone)
        else:
            out.extend(ipaddress.summarize_address_range(address(start), address(end)))
    return out


def _network_reason(item: str) -> str:
    import ipaddress  # noqa: PLC0415 - see parse_sources

    try:
        loose = ipaddress.ip_network(item, strict=False)
    except ValueError:
        return "is not an IP address or CIDR"
    return f"has host bits set; did you mean {loose}?"
