"""The redirect item's two shapes, split with str methods, against the regular
expressions that defined them before (the specification, kept here)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from helper.plan.parse import split_item, split_range

ITEM = re.compile(r"(?P<from>[^:/]*):(?P<to>[^:/]*)(?:/(?P<proto>.*))?", re.DOTALL)
PORTS = re.compile(r"(?P<first>[0-9]+)(?:-(?P<last>[0-9]+))?")
ALPHABET = st.sampled_from([*"0123456789:/- \t\nabtcpud", "²", "٣", "\u2028", "tcp", "udp"])


@settings(max_examples=2000)
@given(st.lists(ALPHABET, max_size=12).map("".join))
def test_split_item_is_the_item_expression(text: str) -> None:
    match = ITEM.fullmatch(text)
    expected = None if match is None else (match["from"], match["to"], match["proto"])
    assert split_item(text) == expected


@settings(max_examples=2000)
@given(st.lists(ALPHABET, max_size=10).map("".join))
def test_split_range_is_the_ports_expression(text: str) -> None:
    match = PORTS.fullmatch(text)
    expected = None if match is None else (match["first"], match["last"])
    assert split_range(text) == expected


def test_the_shapes_at_their_edges() -> None:
    assert split_item("4321:1234") == ("4321", "1234", None)
    assert split_item("5353:53/") == ("5353", "53", "")
    assert split_item("1:2/udp/x:y") == ("1", "2", "udp/x:y")
    assert split_item("80/tcp:90") is None
    assert split_item("1:2:3") is None
    assert split_range("10-20") == ("10", "20")
    assert split_range("1-") is None
    assert split_range("²") is None
