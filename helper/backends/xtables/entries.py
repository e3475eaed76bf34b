"""Rule entries for libiptc, fast: python-iptables builds, clones carry the ports.

python-iptables costs ~85 µs per rule even when reused well (ctypes calls per
parameter), ~100x `iptables-restore` for a thousand rules. Most of podnat's rules
differ only in ports, so per rule *shape* python-iptables builds and validates a
template, and the other rules are byte copies with the port fields rewritten.
A shape's patching is trusted only after a clone matched, byte for byte, an
entry python-iptables built itself for the same rule; otherwise every rule of
that shape is built by python-iptables. Layouts are the kernel's uapi structs:
xt_entry_match/xt_entry_target headers (32 bytes), xt_tcp/xt_udp/xt_sctp_info,
nf_nat_ipv4_multi_range_compat (DNAT rev 0) and nf_nat_range(2) (rev 1, 2).
"""

from __future__ import annotations

import ctypes
import struct
from types import ModuleType
from typing import Any

from helper.plan.model import Family
from helper.render.iptables import XtRule

_HEADER = 32  # sizeof(struct xt_entry_match) == sizeof(struct xt_entry_target)
_DPORTS = {"tcp": 4, "udp": 4, "sctp": 0}  # offset of u16 dpts[2] in the match data


class _Shape:
    """A plain class, not a dataclass: dataclasses are ~20 ms to import (runtime venv)."""

    __slots__ = ("dports_at", "nat_at", "scratch", "template", "trusted")

    def __init__(
        self, template: bytes, dports_at: int, nat_at: tuple[int, int, int | None]
    ) -> None:
        self.template = template
        self.dports_at = dports_at  # absolute offset of dpts[2], host byte order
        self.nat_at = nat_at  # min, max, base port offsets, network order
        self.trusted: bool | None = None  # None: not yet compared with python-iptables
        # libiptc copies an entry when it is appended, so one buffer serves every clone.
        self.scratch: Any = None


class EntryFactory:
    def __init__(self, iptc: ModuleType, family: Family) -> None:
        self._iptc = iptc
        self._family = family
        self._shapes: dict[tuple[object, ...], _Shape | None] = {}
        self._header = iptc.ip4tc.ipt_entry if family is Family.IPV4 else iptc.ip6tc.ip6t_entry

    def entry(self, rule: XtRule) -> Any:
        """A buffer holding the libiptc entry for `rule`, valid until the next call."""
        key = _shape_key(rule)
        if key not in self._shapes:
            built = self._build(rule)
            self._shapes[key] = _locate(bytes(built), rule, self._header)
            return built
        shape = self._shapes[key]
        if shape is None or shape.trusted is False:
            return self._build(rule)
        clone = _patch(shape, rule)
        if shape.trusted is None:
            reference = self._build(rule)
            shape.trusted = clone.raw == reference.raw
            if not shape.trusted:
                return reference
        return clone

    def _build(self, rule: XtRule) -> Any:
        built = build_rule(self._iptc, rule, self._family)
        built.final_check()
        raw = built.rule
        entry = ctypes.cast(raw, ctypes.POINTER(self._header)).contents
        data = ctypes.string_at(raw, entry.next_offset)
        return ctypes.create_string_buffer(data, len(data))


def build_rule(iptc: ModuleType, rule: XtRule, family: Family) -> Any:
    """A python-iptables Rule for `rule`, parameters parsed by the extensions themselves."""
    built = iptc.Rule() if family is Family.IPV4 else iptc.Rule6()
    if rule.source is not None:
        built.src = rule.source
    if rule.proto is not None:
        built.protocol = rule.proto
    for match in rule.matches:
        made = built.create_match(match.name)
        for key, value in match.params:
            made.parse(key, value)
    target = built.create_target(rule.target)
    for key, value in rule.target_params:
        target.parse(key, value)
    return built


def _shape_key(rule: XtRule) -> tuple[object, ...]:
    # Everything but the port values. The leading matches (addrtype) are hashed
    # whole, so other values there make another shape, as they must.
    to = rule.target_params[0][1] if rule.target_params else ""
    last = rule.matches[-1].name if rule.matches else None
    return (
        rule.chain,
        rule.source,
        rule.proto,
        rule.matches[:-1],
        last,
        rule.target,
        "-" in to,
        "/" in to,
    )


def _ports(rule: XtRule) -> tuple[int, int, int, int, int]:
    """dport first/last and DNAT min/max/base (0: none), as the renderer recorded them."""
    if rule.ports is None:
        raise ValueError(f"no port numbers recorded for {rule.save_line()}")
    return rule.ports


def _locate(entry: bytes, rule: XtRule, header: Any) -> _Shape | None:
    """Find the port fields in a template entry; None if the layout is not one we know."""
    if (
        rule.target != "DNAT"
        or rule.proto not in _DPORTS
        or rule.matches[-1].name != rule.proto
        or [k for k, _ in rule.matches[-1].params] != ["dport"]
        or [k for k, _ in rule.target_params] != ["to-destination"]
        or rule.ports is None
    ):
        return None
    fixed = header.from_buffer_copy(entry[: ctypes.sizeof(header)])
    target_offset, next_offset = fixed.target_offset, fixed.next_offset
    if next_offset != len(entry):
        return None
    dports_at = None
    position = ctypes.sizeof(header)
    while position < target_offset:
        (size,) = struct.unpack_from("=H", entry, position)
        name = entry[position + 2 : position + 31].split(b"\0")[0].decode()
        if name == rule.proto:
            dports_at = position + _HEADER + _DPORTS[name]
        position += size
    if dports_at is None:
        return None
    revision = entry[target_offset + 31]
    data = target_offset + _HEADER
    if revision == 0:  # nf_nat_ipv4_multi_range_compat: rangesize, then range[0]
        nat_at: tuple[int, int, int | None] = (data + 16, data + 18, None)
    else:  # nf_nat_range / nf_nat_range2: flags, min_addr, max_addr, min, max[, base]
        nat_at = (data + 36, data + 38, data + 40 if revision >= 2 else None)
    return _Shape(entry, dports_at, nat_at)


_HOST_PAIR = struct.Struct("=HH")
_NET_PORT = struct.Struct("!H")


def _patch(shape: _Shape, rule: XtRule) -> Any:
    d_first, d_last, low, high, base = _ports(rule)
    if shape.scratch is None:
        shape.scratch = ctypes.create_string_buffer(shape.template, len(shape.template))
    clone = shape.scratch
    _HOST_PAIR.pack_into(clone, shape.dports_at, d_first, d_last)
    min_at, max_at, base_at = shape.nat_at
    _NET_PORT.pack_into(clone, min_at, low)
    _NET_PORT.pack_into(clone, max_at, high)
    if base_at is not None and base:
        _NET_PORT.pack_into(clone, base_at, base)
    return clone
