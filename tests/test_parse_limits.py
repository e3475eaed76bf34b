"""The parser's bounds: linear work, capped inputs, short one-line messages, whatever the input."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helper.plan.limits import (
    MAX_ITEM_CHARS,
    MAX_REDIRECT_ITEMS,
    MAX_SOURCE_ITEMS,
    MAX_VALUE_BYTES,
)
from helper.plan.model import PortRange
from helper.plan.parse import InvalidPlanError, parse_plan
from tests.cases import L, R, S


def caught(annotations: dict[str, str]) -> InvalidPlanError:
    with pytest.raises(InvalidPlanError) as error:
        parse_plan(annotations)
    return error.value


def test_duplicates_are_each_reported_once_in_linear_time() -> None:
    started = time.perf_counter()
    error = caught({R: ", ".join(["100-200:1"] * MAX_REDIRECT_ITEMS)})
    # Pairwise, this was 1,999,000 problems, seconds and hundreds of MB.
    assert time.perf_counter() - started < 1.0
    assert len(error.problems) + error.omitted == MAX_REDIRECT_ITEMS - 1
    assert {str(p) for p in error.problems} == {
        'podnat.io/redirect: "100-200:1": tcp port 100-200 is already redirected by "100-200:1"'
    }
    assert error.lines()[-1] == f"... and {MAX_REDIRECT_ITEMS - 1 - 20} more problems"


def test_an_overlap_names_an_item_that_covers_it_in_input_order() -> None:
    error = caught({R: "1-10:100, 30:31, 5-20:200, 15:300, 40:41/udp, 40:42"})
    assert [str(p) for p in error.problems] == [
        'podnat.io/redirect: "5-20:200": tcp port 5-10 is already redirected by "1-10:100"',
        'podnat.io/redirect: "15:300": tcp port 15 is already redirected by "5-20:200"',
    ]


ITEMS = st.tuples(st.sampled_from(["tcp", "udp"]), st.integers(1, 60), st.integers(0, 8))


@settings(max_examples=300)
@given(st.lists(ITEMS, min_size=1, max_size=12))
def test_the_sweep_reports_exactly_the_items_that_overlap_an_earlier_one(
    items: list[tuple[str, int, int]],
) -> None:
    texts = [f"{first}-{first + extra}:1000/{proto}" for proto, first, extra in items]
    ranges = [(proto, PortRange(first, first + extra)) for proto, first, extra in items]

    def before(i: int, j: int) -> bool:  # j comes before i: a lower first port, or a tie and
        return (ranges[j][1].first, j) < (ranges[i][1].first, i)  # earlier in the value

    expected = [
        i
        for i, (proto, ports) in enumerate(ranges)
        if any(
            before(i, j) and other_proto == proto and other.overlaps(ports)
            for j, (other_proto, other) in enumerate(ranges)
        )
    ]
    try:
        parse_plan({R: ", ".join(texts)})
    except InvalidPlanError as error:
        problems = [*error.problems]
        assert error.omitted == 0
    else:
        problems = []
    assert [p.item for p in problems] == [texts[i] for i in expected]
    for problem in problems:  # the one named really overlaps, same protocol
        assert problem.item is not None
        other = problem.reason.split('"')[1]
        i, j = texts.index(problem.item), texts.index(other)
        assert ranges[i][0] == ranges[j][0]
        assert ranges[i][1].overlaps(ranges[j][1])


def test_the_maximum_item_counts_are_accepted() -> None:
    redirects = ", ".join(f"{1000 + i}:{30000 + i}" for i in range(MAX_REDIRECT_ITEMS))
    sources = ", ".join(f"10.{i // 256}.{i % 256}.1" for i in range(MAX_SOURCE_ITEMS))
    plan = parse_plan({R: redirects, S: sources})
    assert len(plan.redirects) == MAX_REDIRECT_ITEMS
    assert plan.sources is not None
    assert len(plan.sources) == MAX_SOURCE_ITEMS


def test_one_item_more_is_refused_before_parsing_any() -> None:
    error = caught(
        {R: ",".join(["x"] * (MAX_REDIRECT_ITEMS + 1)), S: ",".join(["y"] * 1001), L: "true"}
    )
    assert [str(p) for p in error.problems] == [
        f"podnat.io/redirect: has {MAX_REDIRECT_ITEMS + 1} items; at most {MAX_REDIRECT_ITEMS}",
        f"podnat.io/redirect-sources: has {MAX_SOURCE_ITEMS + 1} items; at most {MAX_SOURCE_ITEMS}",
    ]


@pytest.mark.parametrize("key", [R, S, L, "podnat.io/ip-families"])
def test_a_value_over_64_kib_is_refused_before_splitting(key: str) -> None:
    value = " " * (MAX_VALUE_BYTES - 1) + "é"  # "é" is two bytes in UTF-8: one over the cap
    annotations = {R: "1:2", key: value}
    messages = [str(p) for p in caught(annotations).problems]
    assert messages == [f"{key}: value is too large ({MAX_VALUE_BYTES + 1} bytes; at most 65536)"]


@pytest.mark.parametrize("digits", [6, 99, 4301, 50_000])
def test_a_long_digit_run_is_out_of_range_never_an_int(digits: int) -> None:
    # int() of 4,301 digits raised ValueError (a traceback, exit 1, webhook 500).
    port = "7" * digits
    problems = [str(p) for p in caught({R: f"{port}:80"}).problems]
    if digits + 3 > MAX_ITEM_CHARS:
        assert problems == [
            f'podnat.io/redirect: "{"7" * 64}…": is too long ({digits + 3} characters; at most '
            f"{MAX_ITEM_CHARS})"
        ]
    else:
        shown = port if digits <= 64 else "7" * 64 + "…"
        assert problems[0].endswith(f": port {shown} is out of range 1-65535")


def test_six_digits_with_leading_zeros_are_out_of_range_as_the_grammar_says() -> None:
    problems = [str(p) for p in caught({R: "1-000080:2"}).problems]
    assert problems == ['podnat.io/redirect: "1-000080:2": port 000080 is out of range 1-65535']


@pytest.mark.parametrize("source", ["fd51::%d0/64", "fe80::1%eth0", "fd00::%25/128"])
def test_scoped_ipv6_sources_are_invalid(source: str) -> None:
    assert [str(p) for p in caught({R: "1:2", S: f"10.0.0.0/8, {source}"}).problems] == [
        f'podnat.io/redirect-sources: "{source}": scoped IPv6 addresses (%zone) are not allowed'
    ]


def test_messages_quote_at_most_64_characters_and_escape_control_characters() -> None:
    long_proto = "1:2/" + "p" * 90
    problems = [
        str(p)
        for p in caught(
            {
                R: f"a\nb:1, {long_proto}, 1:\x1b[2J",
                L: "\u202e" + "y" * 5000,
                "podnat.io/" + "k" * 10_000: "1",
            }
        ).problems
    ]
    assert all(len(p) < 400 and p.isprintable() for p in problems), problems
    assert f"podnat.io/{'k' * 110}…: unknown podnat annotation" in problems[0]
    assert "\"a\\nb:1\": FROM 'a\\nb' is not a port" in problems[1]
    assert f"protocol '{'p' * 64}…' is not one of tcp, udp, sctp" in problems[2]
    assert "TO '\\x1b[2J' is not a port" in problems[3]
    assert (
        problems[4] == f'podnat.io/redirect-local: "\\u202e{"y" * 58}…": must be one of true|false'
    )
