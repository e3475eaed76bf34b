"""Rendered rulesets of every case, both backends, against tests/golden/.

Regenerate after an intended change: REFRESH_GOLDEN=1 make test-quick
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helper.engine import resolve_offline
from helper.plan.parse import parse_plan
from helper.render import iptables, nft
from tests.cases import CASES

GOLDEN = Path(__file__).parent / "golden"
RENDERERS = {"nft": nft.render_listing, "iptables": iptables.render_text}


@pytest.mark.parametrize("backend", sorted(RENDERERS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_rendering_matches_golden_file(case: str, backend: str) -> None:
    plan = parse_plan(CASES[case])
    rendered = RENDERERS[backend](resolve_offline(plan, backend))
    golden = GOLDEN / f"{case}.{backend}.golden"
    if os.environ.get("REFRESH_GOLDEN"):
        golden.write_text(rendered)
    assert golden.exists(), f"missing {golden}: run REFRESH_GOLDEN=1 make test-quick"
    assert rendered == golden.read_text(), (
        f"{golden.name} differs; if intended: REFRESH_GOLDEN=1 make test-quick"
    )


def test_every_golden_file_belongs_to_a_case() -> None:
    expected = {f"{c}.{b}.golden" for c in CASES for b in RENDERERS}
    assert {p.name for p in GOLDEN.glob("*.golden")} == expected
