"""Every golden case, applied for real: the kernel's listing equals the rendering.

This is what makes `verify` a plain text comparison: podnat renders nft rules in
the exact form `nft list` prints, and xtables rules as python-iptables reads them.
"""

from __future__ import annotations

import pytest

from tests.cases import CASES
from tests.kit.lab import Lab
from tests.netns.podnat import podnat


@pytest.mark.parametrize("backend", ["nft", "iptables-legacy"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_applied_case_verifies(lab: Lab, case: str, backend: str) -> None:
    applied = podnat(lab.pod, "apply", CASES[case], "--backend", backend)
    assert applied.code == 0, applied.stderr
    assert "differently from the plan" not in applied.stderr
    verified = podnat(lab.pod, "verify", CASES[case], "--backend", backend)
    assert verified.code == 0, verified.stdout + verified.stderr
