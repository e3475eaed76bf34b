"""Property tests of the parser: total on any input, and plans survive a round trip."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from helper.plan.annotations import to_annotations
from helper.plan.model import FamilyMode, PortRange, Proto, Redirect, RedirectPlan
from helper.plan.parse import InvalidPlanError, parse_plan
from helper.plan_json import dump_plan, load_plan
from tests.cases import F, L, R, S

ALPHABET = st.sampled_from([*'0123456789:-/,. abcdefptuxyz\n\t\\"', "tcp", "udp", "sctp"])
TEXT = st.lists(ALPHABET, max_size=40).map("".join)
KEYS = st.sampled_from([R, S, L, F, "podnat.io/other", "example.com/x"])


@settings(max_examples=400)
@given(st.dictionaries(KEYS, TEXT, max_size=4))
def test_any_annotations_give_a_plan_or_validation_errors(annotations: dict[str, str]) -> None:
    try:
        plan = parse_plan(annotations)
    except InvalidPlanError as err:
        assert err.problems
        assert all(str(p).startswith("podnat.io/") for p in err.problems)
    else:
        assert isinstance(plan, RedirectPlan)


@st.composite
def plans(draw: st.DrawFn) -> RedirectPlan:
    redirects: list[Redirect] = []
    taken: dict[Proto, list[PortRange]] = {p: [] for p in Proto}
    for _ in range(draw(st.integers(1, 6))):
        proto = draw(st.sampled_from(list(Proto)))
        first = draw(st.integers(1, 65000))
        length = draw(st.integers(1, 20))
        source = PortRange(first, first + length - 1)
        if any(source.overlaps(other) for other in taken[proto]):
            continue
        to_first = draw(st.integers(1, 65535 - length + 1))
        to_len = draw(st.sampled_from([1, length]))
        target = PortRange(to_first, to_first + to_len - 1)
        if target == source:
            continue
        taken[proto].append(source)
        redirects.append(Redirect(proto, source, target))
    families = draw(st.sampled_from(list(FamilyMode)))
    sources = None
    if draw(st.booleans()):
        annotations = parse_plan(
            {
                R: "1:2",
                S: draw(
                    st.sampled_from(
                        [
                            "10.0.0.0/8",
                            "10.0.0.0/8, fd00::/8",
                            "192.168.1.7, 192.168.1.8",
                            "fd00::/64",
                        ]
                    )
                ),
            }
        )
        sources = annotations.sources
        need = {"ipv4": [4], "ipv6": [6], "dual": [4, 6]}.get(families.value, [])
        if any(v not in {n.version for n in sources or ()} for v in need):
            families = FamilyMode.AUTO
    return RedirectPlan(tuple(sorted(redirects)), sources, draw(st.booleans()), families)


@settings(max_examples=300)
@given(plans())
def test_rendered_annotations_parse_back_to_the_same_plan(plan: RedirectPlan) -> None:
    if plan.is_empty:
        return
    assert parse_plan(to_annotations(plan)) == plan


@settings(max_examples=100)
@given(plans())
def test_json_plans_round_trip_through_pydantic(plan: RedirectPlan) -> None:
    assert load_plan(dump_plan(plan)) == plan
