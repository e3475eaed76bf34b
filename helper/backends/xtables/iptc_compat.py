"""python-iptables on iptables >= 1.8.11 (Debian trixie): its option tables, walked right.

iptables 1.8.11 appended `base` to `struct xt_option_entry` (48 -> 56 bytes on 64-bit).
python-iptables (1.2.0, ldx/python-iptables#353, open) keeps a ctypes copy of the old
struct, so it walks an extension's x6 option table (udp, addrtype, ...) with the old
stride and finds only its first option: `udp: no such parameter dport`. The libxtables that
has the field exports `xtables_strtoul_base` (the same patch series), so that symbol picks
the stride; the two methods that walk a table then walk it by address. Where the struct
copy already has the library's size (bookworm's 1.8.9, or a fixed python-iptables),
nothing is changed.
"""

from __future__ import annotations

import ctypes
from types import ModuleType
from typing import Any

# 64-bit layouts: name, type, id, excl, also, flags, ptroff, size, min, max (+ base, padded).
STRIDE_BEFORE_1_8_11 = 48
STRIDE_SINCE_1_8_11 = 56


def option_entry_stride(libxtables: Any) -> int:
    """The size of one `struct xt_option_entry` in the loaded libxtables."""
    has_base = hasattr(libxtables, "xtables_strtoul_base")
    return STRIDE_SINCE_1_8_11 if has_base else STRIDE_BEFORE_1_8_11


def entries(table: Any, entry_type: Any, stride: int) -> list[Any]:
    """The option table's entries up to its terminator (a NULL name), `stride` bytes apart."""
    if not table:
        return []
    start = ctypes.addressof(table.contents)
    found: list[Any] = []
    while (entry := entry_type.from_address(start + len(found) * stride)).name:
        found.append(entry)
    return found


def adapt(xtables: ModuleType) -> bool:
    """Make python-iptables' `xtables` module walk option tables with the library's
    stride; whether anything had to change."""
    entry_type = xtables.xt_option_entry
    stride = option_entry_stride(xtables._lib_xtables)  # its loaded library
    if ctypes.sizeof(entry_type) == stride:
        return False
    walker = xtables.xtables
    mandatory = xtables.XTOPT_MAND

    def option_lookup(self: object, table: Any, name: bytes) -> Any:
        return next((e for e in entries(table, entry_type, stride) if e.name == name), None)

    def options_fcheck(self: object, name: bytes, xflags: int, table: Any) -> None:
        for entry in entries(table, entry_type, stride):
            if entry.flags & mandatory and not xflags & (1 << entry.id):
                raise xtables.XTablesError(f"{name!r}: --{entry.name!r} must be specified")

    walker._option_lookup = option_lookup  # the two walkers of a table
    walker._options_fcheck = options_fcheck
    return True
