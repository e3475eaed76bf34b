"""What differs between the userspaces podnat ships (bookworm, trixie) and how podnat absorbs
it: nft's listing of the output hook's priority, and iptables 1.8.11's option-table stride.
The real proof is the kernel tier in each image (tests/image/test_kernel_layer.py: every
golden case applied and verified, udp and redirect-local through iptables-legacy); these are
the pure branches."""

from __future__ import annotations

import ctypes
import types
from pathlib import Path

import pytest

from helper.backends.xtables import iptc_compat
from helper.backends.xtables.iptc_loader import load_iptc
from helper.render.nft import canonical_listing
from tests.cases import CASES

GOLDEN = Path(__file__).parent / "golden"
BOOKWORM_OUTPUT = "\t\ttype nat hook output priority -100; policy accept;\n"
# What nft 1.1.3 (trixie) lists for the same chain: the standard priority by its name.
TRIXIE_OUTPUT = "\t\ttype nat hook output priority dstnat; policy accept;\n"


@pytest.mark.parametrize("case", sorted(CASES))
def test_trixies_listing_of_every_golden_case_reads_as_the_golden_file(case: str) -> None:
    golden = (GOLDEN / f"{case}.nft.golden").read_text()
    as_trixie_lists_it = golden.replace(BOOKWORM_OUTPUT, TRIXIE_OUTPUT)
    assert canonical_listing(as_trixie_lists_it) == golden
    assert canonical_listing(golden) == golden  # bookworm's own listing: untouched


def test_another_output_priority_stays_a_difference() -> None:
    golden = (GOLDEN / "local.nft.golden").read_text()
    for listed in ("dstnat + 10", "-90", "dstnat - 1"):
        moved = golden.replace(BOOKWORM_OUTPUT, BOOKWORM_OUTPUT.replace("-100", listed))
        assert canonical_listing(moved) != golden, listed


def test_the_prerouting_hook_is_never_rewritten() -> None:
    listing = "\t\ttype nat hook prerouting priority -100; policy accept;\n"
    assert canonical_listing(listing) == listing


class _Lib:
    """A loaded libxtables as ctypes shows it: symbols are attributes."""

    def __init__(self, *symbols: str) -> None:
        for symbol in symbols:
            setattr(self, symbol, object())


def test_the_stride_follows_the_librarys_xtables_strtoul_base() -> None:
    assert iptc_compat.option_entry_stride(_Lib("xtables_init_all")) == 48
    assert iptc_compat.option_entry_stride(_Lib("xtables_strtoul_base")) == 56


class _Entry1811(ctypes.Structure):
    """iptables 1.8.11's struct xt_option_entry (`base` appended)."""

    _fields_ = [
        ("name", ctypes.c_char_p), ("type", ctypes.c_int), ("id", ctypes.c_uint),
        ("excl", ctypes.c_uint), ("also", ctypes.c_uint), ("flags", ctypes.c_uint),
        ("ptroff", ctypes.c_uint), ("size", ctypes.c_size_t), ("min", ctypes.c_uint),
        ("max", ctypes.c_uint), ("base", ctypes.c_uint),
    ]  # fmt: skip


def _udp_table(entry_type: type[ctypes.Structure]) -> ctypes.Array[ctypes.Structure]:
    names = [b"source-port", b"sport", b"destination-port", b"dport", None]
    table = (entry_type * len(names))()
    for index, name in enumerate(names):
        table[index].name = name
        table[index].id = index
    table[3].flags = 1 << 1  # mandatory, for the final check below
    return table


def _adapted_module(xtables: types.ModuleType, *symbols: str) -> types.ModuleType:
    """python-iptables' real xtables names, on a copy of its walker class."""
    module = types.ModuleType("xtables_copy")
    module.xt_option_entry = xtables.xt_option_entry  # type: ignore[attr-defined]
    module.XTOPT_MAND = xtables.XTOPT_MAND  # type: ignore[attr-defined]
    module.XTablesError = xtables.XTablesError  # type: ignore[attr-defined]
    module._lib_xtables = _Lib(*symbols)  # type: ignore[attr-defined]
    module.xtables = type("xtables", (xtables.xtables,), {})  # type: ignore[attr-defined]
    return module


def test_python_iptables_walks_a_1_8_11_table_with_the_new_stride() -> None:
    load_iptc()
    from iptc import xtables  # noqa: PLC0415 - loaded by load_iptc

    entry_type = xtables.xt_option_entry
    assert ctypes.sizeof(entry_type) == 48 == ctypes.sizeof(_Entry1811) - 8
    table = _udp_table(_Entry1811)
    pointer = ctypes.cast(table, ctypes.POINTER(entry_type))
    # Called on the class: python-iptables' walkers use nothing of the instance.
    assert xtables.xtables._option_lookup(None, pointer, b"dport") is None  # the upstream bug

    module = _adapted_module(xtables, "xtables_strtoul_base")
    assert iptc_compat.adapt(module) is True
    adapted = module.xtables
    found = adapted._option_lookup(None, pointer, b"dport")
    assert found is not None
    assert ctypes.addressof(found) == ctypes.addressof(table[3])
    names = [e.name for e in iptc_compat.entries(pointer, entry_type, 56)]
    assert names == [b"source-port", b"sport", b"destination-port", b"dport"]
    with pytest.raises(xtables.XTablesError, match="dport"):
        adapted._options_fcheck(None, b"udp", 0, pointer)
    adapted._options_fcheck(None, b"udp", 1 << 3, pointer)  # given: no error


def test_on_the_older_library_python_iptables_is_left_as_it_is() -> None:
    load_iptc()
    from iptc import xtables  # noqa: PLC0415

    module = _adapted_module(xtables, "xtables_init_all")
    before = module.xtables._option_lookup
    assert iptc_compat.adapt(module) is False
    assert module.xtables._option_lookup is before
