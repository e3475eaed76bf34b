"""The backend-choice rule, as a pure function over what was observed."""

from __future__ import annotations

import pytest

from helper.backends.base import BackendError, Probe
from helper.backends.select import Observation, choose
from helper.plan.model import Family

WORKS = Probe(True, "ok", frozenset({Family.IPV4}))
FAILS = Probe(False, "nat table does not exist")


def obs(name: str, probe: Probe = WORKS, own: bool = False, foreign: bool = False) -> Observation:
    return Observation(name, probe, own, foreign)


def test_nft_is_preferred_when_nobody_holds_nat_rules() -> None:
    assert choose([obs("nft"), obs("iptables-legacy")]).name == "nft"


def test_the_backend_with_podnats_rules_wins() -> None:
    assert choose([obs("nft"), obs("iptables-legacy", own=True)]).name == "iptables-legacy"


def test_the_only_backend_with_foreign_nat_rules_wins() -> None:
    choice = choose([obs("nft"), obs("iptables-legacy", foreign=True)])
    assert choice.name == "iptables-legacy"
    assert "other nat rules" in choice.reason


def test_when_both_hold_rules_the_preferred_one_wins() -> None:
    assert choose([obs("nft", foreign=True), obs("iptables-legacy", foreign=True)]).name == "nft"


def test_an_unusable_backend_never_wins_even_holding_rules() -> None:
    choice = choose([obs("nft", FAILS, own=True), obs("iptables-legacy")])
    assert choice.name == "iptables-legacy"
    assert "nft: nat table does not exist" in choice.reason


def test_no_usable_backend_is_an_error_naming_each_reason() -> None:
    with pytest.raises(BackendError, match="nft: nat table does not exist; iptables-legacy: "):
        choose([obs("nft", FAILS), obs("iptables-legacy", FAILS)])
