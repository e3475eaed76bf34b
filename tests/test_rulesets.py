"""Ruleset values: rendered once, shared between families where they can be, and
sent to iptables-legacy's workers in a form that comes back equal."""

from __future__ import annotations

import pickle

import pytest

from helper.backends.xtables.protocol import Request, decoded
from helper.plan.model import Family
from helper.plan.parse import parse_plan
from helper.plan.resolve import resolve
from helper.render import iptables, nft, rulesets
from tests.cases import CASES

BOTH = (Family.IPV4, Family.IPV6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_shared_rendering_equals_one_rendering_per_family(name: str) -> None:
    resolved = resolve(
        parse_plan(CASES[name]), global_families=BOTH, nat_families=BOTH, backend="x"
    ).resolved
    assert iptables.render_rulesets(resolved) == tuple(
        iptables.render_ruleset(resolved, family) for family in resolved.families
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_ruleset_crosses_the_worker_pipe_unchanged(name: str) -> None:
    resolved = resolve(
        parse_plan(CASES[name]), global_families=BOTH, nat_families=BOTH, backend="x"
    ).resolved
    for ruleset in iptables.render_rulesets(resolved):
        request = Request("stage", ruleset)
        assert decoded(pickle.loads(request.encoded)) == request.body  # noqa: S301


@pytest.mark.parametrize("name", sorted(CASES))
def test_ruleset_values_show_what_the_renderers_render(name: str) -> None:
    resolved = resolve(
        parse_plan(CASES[name]), global_families=BOTH, nat_families=BOTH, backend="x"
    ).resolved
    assert rulesets.render("nft", resolved).text == nft.render_transaction(resolved)
    assert rulesets.render("iptables-legacy", resolved).text == iptables.render_text(resolved)
