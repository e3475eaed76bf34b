"""Every branch of the engine, in milliseconds, against fake backends (helper.testing).

What the kernel does with a ruleset is proven in tests/netns and tests/reliability;
these prove the engine's decisions: which backend, what it is given, what happens
to the others, what is reported, and that nothing leaks between namespaces.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from helper.backends.base import BackendError
from helper.engine import Engine, NotAddressedError, Receipt, read_plan
from helper.errors import ExitCode
from helper.host.base import Target
from helper.plan.model import Family, RedirectPlan
from helper.plan.parse import InvalidPlanError, parse_plan
from helper.plan.resolve import resolve
from helper.render import nft, rulesets
from helper.render.rulesets import NftRuleset, XtRulesets
from helper.system import StrPath
from helper.system.netns import NetnsError
from helper.testing import BOTH, STALE, FakeBackend, FakeHost
from tests.cases import F, R

PLAN = parse_plan({R: "4321:1234, 5353:53/udp"})
POD_A, POD_B = Path("/run/netns/pod-a"), Path("/run/netns/pod-b")
IPV4_ONLY = frozenset({Family.IPV4})


def backends(**legacy: object) -> tuple[FakeBackend, FakeBackend]:
    return FakeBackend("nft"), FakeBackend("iptables-legacy", **legacy)  # type: ignore[arg-type]


def engine_for(*fakes: FakeBackend, netns: Path | None = None) -> tuple[Engine, FakeHost]:
    host = FakeHost({netns: fakes})
    return Engine(host), host


def expected(plan: RedirectPlan, backend: str) -> rulesets.Ruleset:
    resolved = resolve(plan, global_families=BOTH, nat_families=BOTH, backend=backend).resolved
    return rulesets.render(backend, resolved)


# backend choice: the documented `auto` rule


def test_auto_takes_nft_where_no_backend_holds_nat_rules() -> None:
    fake_nft, legacy = backends()
    engine, _ = engine_for(fake_nft, legacy)
    outcome = engine.apply(PLAN, Target())
    assert outcome.exit_code is ExitCode.OK
    assert outcome.summary == "applied with nft (ipv4/ipv6): 4321:1234/tcp, 5353:53/udp"
    assert fake_nft.applied == [expected(PLAN, "nft")]
    assert legacy.applied == []
    assert legacy.probes == 0  # it cannot win: not even probed


def test_auto_keeps_the_backend_that_holds_podnats_rules() -> None:
    fake_nft, legacy = backends(own=True)
    engine, _ = engine_for(fake_nft, legacy)
    assert engine.apply(PLAN, Target()).summary.startswith("applied with iptables-legacy")
    assert legacy.applied == [expected(PLAN, "iptables-legacy")]
    assert isinstance(legacy.applied[0], XtRulesets)


def test_auto_takes_the_only_backend_with_other_tools_nat_rules(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_nft, legacy = backends(foreign=True)
    engine, _ = engine_for(fake_nft, legacy)
    with caplog.at_level(logging.INFO, "podnat"):
        engine.apply(PLAN, Target())
    assert legacy.applied and not fake_nft.applied
    why = "iptables-legacy already holds this netns's other nat rules"
    assert f"backend iptables-legacy: {why}" in caplog.messages


def test_auto_falls_back_to_legacy_when_nft_is_unusable() -> None:
    fake_nft, legacy = FakeBackend("nft", usable=False), FakeBackend("iptables-legacy")
    engine, _ = engine_for(fake_nft, legacy)
    assert engine.apply(PLAN, Target()).summary.startswith("applied with iptables-legacy")


def test_no_usable_backend_is_a_backend_error_naming_each() -> None:
    engine, host = engine_for(
        FakeBackend("nft", usable=False), FakeBackend("iptables-legacy", usable=False)
    )
    with pytest.raises(BackendError, match="no usable backend") as raised:
        engine.apply(PLAN, Target())
    assert raised.value.exit_code is ExitCode.BACKEND
    assert host.open_sessions == 0


def test_a_requested_backend_that_is_unusable_is_refused() -> None:
    engine, _ = engine_for(FakeBackend("nft"), FakeBackend("iptables-legacy", usable=False))
    with pytest.raises(BackendError, match="iptables-legacy: the fake backend was told"):
        engine.apply(PLAN, Target(backend="iptables-legacy"))


def test_the_backends_families_decide_what_is_rendered() -> None:
    legacy = FakeBackend("iptables-legacy", families=frozenset({Family.IPV4}))
    engine, _ = engine_for(FakeBackend("nft", usable=False), legacy)
    assert "(ipv4)" in engine.apply(PLAN, Target()).summary
    applied = legacy.applied[0]
    assert isinstance(applied, XtRulesets)
    assert applied.families == (Family.IPV4,)


# stale rules in the other backend


def test_stale_rules_in_the_other_backend_go_after_a_successful_apply(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_nft, legacy = backends(own=True)
    engine, _ = engine_for(fake_nft, legacy)
    engine.apply(PLAN, Target(backend="nft"))
    assert fake_nft.held == nft.render_listing(
        resolve(PLAN, global_families=BOTH, nat_families=BOTH, backend="nft").resolved
    )
    assert legacy.held == ""
    assert "removed stale podnat rules from the iptables-legacy backend" in caplog.messages


# a probe left to the apply (nft's: one kernel transaction, not two)


def test_a_deferring_backend_is_proven_by_its_apply_without_a_probe_write() -> None:
    fake_nft = FakeBackend("nft", defers_probe=True)
    legacy = FakeBackend("iptables-legacy")
    engine, _ = engine_for(fake_nft, legacy)
    outcome = engine.apply(PLAN, Target())
    assert outcome.summary.startswith("applied with nft (ipv4/ipv6)")
    assert fake_nft.probes == 0 and legacy.probes == 0
    assert fake_nft.applied == [expected(PLAN, "nft")]


def test_a_deferring_backend_whose_apply_and_probe_fail_gives_way_to_the_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_nft = FakeBackend("nft", usable=False, defers_probe=True)
    legacy = FakeBackend("iptables-legacy")
    engine, host = engine_for(fake_nft, legacy)
    with caplog.at_level(logging.INFO, "podnat"):
        outcome = engine.apply(PLAN, Target())
    assert outcome.summary.startswith("applied with iptables-legacy")
    assert fake_nft.probes == 1  # the real probe, after its apply was refused
    assert fake_nft.held == "" and legacy.applied == [expected(PLAN, "iptables-legacy")]
    assert "nft is unusable after all: choosing again" in caplog.messages
    assert any("nft: the fake backend was told it is unusable" in m for m in caplog.messages)
    assert host.open_sessions == 0


def test_a_deferring_backend_that_works_but_refuses_the_ruleset_is_an_error() -> None:
    fake_nft = FakeBackend("nft", defers_probe=True, fail_commits={1})
    legacy = FakeBackend("iptables-legacy", own=True)
    engine, _ = engine_for(fake_nft, legacy)
    with pytest.raises(BackendError, match="commit 1 refused"):
        engine.apply(PLAN, Target(backend="nft"))
    assert fake_nft.probes == 1  # it works: the ruleset was refused, as before
    assert legacy.held == STALE and legacy.applied == []


def test_a_requested_deferring_backend_that_is_unusable_says_so_as_its_probe_did() -> None:
    fake_nft = FakeBackend("nft", usable=False, defers_probe=True)
    engine, _ = engine_for(fake_nft, FakeBackend("iptables-legacy"))
    with pytest.raises(BackendError, match=r"^nft: the fake backend was told it is unusable$"):
        engine.apply(PLAN, Target(backend="nft"))


def test_a_dry_run_probes_for_real_since_it_writes_nothing() -> None:
    fake_nft = FakeBackend("nft", defers_probe=True)
    engine, _ = engine_for(fake_nft, FakeBackend("iptables-legacy"))
    engine.apply(PLAN, Target(), dry_run=True)
    assert fake_nft.probes == 1 and fake_nft.applied == []


# converge: apply unless already right, in one session


def test_converge_writes_nothing_where_the_chosen_backend_holds_the_plan() -> None:
    fake_nft = FakeBackend("nft", defers_probe=True)
    engine, host = engine_for(fake_nft, FakeBackend("iptables-legacy"))
    assert engine.converge(PLAN, Target()).changed
    host.sessions.clear()
    outcome = engine.converge(PLAN, Target())
    assert outcome[:5] == (
        "verified: nft holds exactly the planned ruleset",
        ExitCode.OK,
        "",
        False,
        False,
    )
    assert fake_nft.applied == [expected(PLAN, "nft")]  # the first converge's only
    assert fake_nft.probes == 0  # no probe write: a verify would have made one
    assert host.sessions == [(None, False)]  # one visit, under the exclusive lock


def test_converge_with_its_receipt_lists_only_the_receipts_backend() -> None:
    fake_nft, legacy = FakeBackend("nft", defers_probe=True), FakeBackend("iptables-legacy")
    engine, _ = engine_for(fake_nft, legacy)
    first = engine.converge(PLAN, Target())
    assert first.receipt == Receipt(PLAN, "nft", BOTH, expected(PLAN, "nft").listing)
    fake_nft.reads = legacy.reads = 0
    again = engine.converge(PLAN, Target(), receipt=first.receipt)
    assert (again.changed, again.receipt, again.summary) == (
        False,
        first.receipt,
        "verified: nft holds exactly the planned ruleset",
    )
    assert (fake_nft.reads, legacy.reads, fake_nft.probes, legacy.probes) == (0, 0, 0, 0)


def test_a_receipt_that_no_longer_holds_is_the_whole_converge() -> None:
    fake_nft, legacy = FakeBackend("nft", defers_probe=True), FakeBackend("iptables-legacy")
    engine, host = engine_for(fake_nft, legacy)
    receipt = engine.converge(PLAN, Target()).receipt
    assert receipt is not None
    other = parse_plan({"podnat.io/redirect": "4322:1234"})
    stale = {
        "drift": (PLAN, fake_nft.cleanup),
        "another plan": (other, lambda: None),
        "new addresses": (PLAN, lambda: setattr(host, "global_families", IPV4_ONLY)),
    }
    for why, (plan, change) in stale.items():
        change()
        fake_nft.reads = 0
        outcome = engine.converge(plan, Target(), receipt=receipt)
        assert outcome.changed, why
        assert fake_nft.reads == 1, why  # the backend was chosen again
        assert outcome.receipt is not None and outcome.receipt.plan == plan, why
        assert fake_nft.held == outcome.receipt.listing, why
        receipt = outcome.receipt


def test_a_receipt_for_another_backend_than_the_one_asked_for_is_not_used() -> None:
    fake_nft, legacy = FakeBackend("nft", defers_probe=True), FakeBackend("iptables-legacy")
    engine, _ = engine_for(fake_nft, legacy)
    receipt = engine.converge(PLAN, Target()).receipt
    outcome = engine.converge(PLAN, Target(backend="iptables-legacy"), receipt=receipt)
    assert outcome.changed and legacy.applied and outcome.receipt is not None
    assert outcome.receipt.backend == "iptables-legacy"


def test_converge_applies_over_drift_and_says_so() -> None:
    fake_nft = FakeBackend("nft", defers_probe=True, own=True)  # stale rules: drift
    engine, _ = engine_for(fake_nft, FakeBackend("iptables-legacy"))
    outcome = engine.converge(PLAN, Target())
    assert outcome.changed and outcome.summary.startswith("applied with nft (ipv4/ipv6)")
    assert fake_nft.held == expected(PLAN, "nft").listing


def test_converge_on_a_backend_found_unusable_chooses_again_and_writes() -> None:
    fake_nft = FakeBackend("nft", usable=False, defers_probe=True)
    legacy = FakeBackend("iptables-legacy")
    engine, _ = engine_for(fake_nft, legacy)
    outcome = engine.converge(PLAN, Target())
    assert outcome.changed and outcome.summary.startswith("applied with iptables-legacy")
    assert legacy.applied == [expected(PLAN, "iptables-legacy")]


def test_converge_addressed_writes_nothing_in_a_namespace_with_no_global_address() -> None:
    fake_nft = FakeBackend("nft", defers_probe=True)
    host = FakeHost({None: (fake_nft, FakeBackend("iptables-legacy"))}, frozenset())
    engine = Engine(host)
    with pytest.raises(NotAddressedError, match="no global address yet"):
        engine.converge(PLAN, Target(), addressed=True)
    assert fake_nft.applied == [] and host.open_sessions == 0
    # Families named in the plan need no address to choose them; nor an unaddressed call.
    named = parse_plan({R: "4321:1234", F: "ipv4"})
    assert engine.converge(named, Target(), addressed=True).summary.endswith(
        "(ipv4): 4321:1234/tcp"
    )
    assert engine.converge(PLAN, Target()).summary.startswith("applied with nft (no family)")


def test_apply_always_writes_and_says_it_changed_something() -> None:
    fake_nft = FakeBackend("nft")
    engine, _ = engine_for(fake_nft, FakeBackend("iptables-legacy"))
    assert engine.apply(PLAN, Target()).changed and engine.apply(PLAN, Target()).changed
    assert len(fake_nft.applied) == 2


# commit failure and rollback


def test_a_refused_commit_changes_nothing_and_leaves_the_other_backend_alone() -> None:
    fake_nft = FakeBackend("nft", fail_commits={1})
    legacy = FakeBackend("iptables-legacy", own=True)
    engine, host = engine_for(fake_nft, legacy)
    with pytest.raises(BackendError, match="commit 1 refused"):
        engine.apply(PLAN, Target(backend="nft"))
    assert fake_nft.held == ""
    assert legacy.held == STALE  # not removed: the new rules never landed
    assert host.open_sessions == 0


def test_after_a_refused_commit_the_previous_ruleset_stays_and_a_rerun_converges() -> None:
    fake_nft = FakeBackend("nft", fail_commits={2})
    engine, _ = engine_for(fake_nft, FakeBackend("iptables-legacy"))
    engine.apply(PLAN, Target())
    first = fake_nft.held
    other = parse_plan({R: "8080:80"})
    with pytest.raises(BackendError):
        engine.apply(other, Target())
    assert fake_nft.held == first
    assert engine.verify(PLAN, Target()).exit_code is ExitCode.OK
    engine.apply(other, Target())
    assert engine.verify(other, Target()).exit_code is ExitCode.OK
    assert len(fake_nft.applied) == 3


# invalid plans


class _Annotations:
    def __init__(self, annotations: dict[str, str]) -> None:
        self.annotations = annotations

    def describe(self) -> str:
        return "a test"

    def read(self) -> dict[str, str]:
        return self.annotations


def test_an_invalid_plan_is_refused_before_any_namespace_is_touched() -> None:
    fake_nft, legacy = backends()
    _, host = engine_for(fake_nft, legacy)
    with pytest.raises(InvalidPlanError) as raised:
        read_plan(_Annotations({R: "4321:1234, 99999:1, banana"}))
    assert raised.value.exit_code is ExitCode.INVALID
    assert len(raised.value.lines()) == 2
    assert host.entered == []


def test_an_unknown_namespace_is_a_backend_error() -> None:
    engine, host = engine_for(*backends())
    with pytest.raises(NetnsError) as raised:
        engine.apply(PLAN, Target(netns=Path("/run/netns/none")))
    assert raised.value.exit_code is ExitCode.BACKEND
    assert host.sessions == []


# dry run, verify, cleanup: outputs are returned, never printed


def test_dry_run_returns_the_ruleset_and_changes_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_nft, legacy = backends()
    engine, _ = engine_for(fake_nft, legacy)
    outcome = engine.apply(PLAN, Target(), dry_run=True)
    ruleset = expected(PLAN, "nft")
    assert isinstance(ruleset, NftRuleset)
    assert (
        outcome.output
        == ruleset.text
        == nft.render_transaction(
            resolve(PLAN, global_families=BOTH, nat_families=BOTH, backend="nft").resolved
        )
    )
    assert outcome.summary == "dry run: nft ruleset printed, nothing changed"
    assert fake_nft.applied == []
    assert capsys.readouterr().out == ""


def test_verify_returns_the_diff_and_exit_1_on_drift(capsys: pytest.CaptureFixture[str]) -> None:
    fake_nft, legacy = backends()
    engine, host = engine_for(fake_nft, legacy)
    engine.apply(PLAN, Target())
    assert engine.verify(PLAN, Target()).summary == (
        "verified: nft holds exactly the planned ruleset"
    )
    fake_nft.held = fake_nft.held.replace("4321", "4322")
    outcome = engine.verify(PLAN, Target())
    assert outcome.exit_code is ExitCode.DRIFT
    assert outcome.summary == "drift: the nft ruleset differs from the plan"
    assert "--- planned\n+++ live (nft)\n" in outcome.output
    assert "-\t\ttcp dport 4321 dnat to :1234" in outcome.output
    assert capsys.readouterr().out == ""
    assert [shared for _, shared in host.sessions] == [False, True, True]  # readers share


def test_verify_names_a_split_between_iptables_families() -> None:
    legacy = FakeBackend("iptables-legacy", own=True)
    engine, _ = engine_for(FakeBackend("nft"), legacy)
    planned = expected(PLAN, "iptables-legacy")
    assert isinstance(planned, XtRulesets)
    ipv4 = planned.for_family(Family.IPV4)
    assert ipv4 is not None
    legacy.held = XtRulesets((ipv4,)).listing  # IPv6 lost its rules
    outcome = engine.verify(PLAN, Target())
    assert outcome.exit_code is ExitCode.DRIFT
    assert "IPv4 holds the planned ruleset, IPv6 does not" in outcome.summary


def test_verify_of_an_empty_plan_expects_no_rules() -> None:
    engine, _ = engine_for(*backends())
    assert engine.verify(RedirectPlan(redirects=()), Target()).exit_code is ExitCode.OK


def test_cleanup_removes_from_every_backend_or_only_the_named_one() -> None:
    fake_nft, legacy = FakeBackend("nft", own=True), FakeBackend("iptables-legacy", own=True)
    engine, _ = engine_for(fake_nft, legacy)
    assert engine.cleanup(Target(backend="nft")).summary == "removed podnat's rules from nft"
    assert legacy.held == STALE
    assert engine.cleanup(Target()).summary == "removed podnat's rules from iptables-legacy"
    assert engine.cleanup(Target()).summary == "no podnat rules found: nothing to remove"


# several namespaces in one process


def test_several_namespaces_from_several_threads_each_get_their_own_plan() -> None:
    pods: dict[StrPath | None, tuple[FakeBackend, ...]] = {
        POD_A: backends(),
        POD_B: backends(own=True),
    }
    host = FakeHost(pods)
    engine = Engine(host)
    plans = {POD_A: parse_plan({R: "1111:1"}), POD_B: parse_plan({R: "2222:2"})}
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def apply_many(path: Path) -> None:
        start.wait()
        try:
            for _ in range(20):
                engine.apply(plans[path], Target(netns=path))
                assert engine.verify(plans[path], Target(netns=path)).exit_code is ExitCode.OK
        except BaseException as err:  # handed to the test's thread
            failures.append(err)

    threads = [threading.Thread(target=apply_many, args=(path,)) for path in pods]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert "1111" in pods[POD_A][0].held and "2222" not in pods[POD_A][0].held
    assert "2222" in pods[POD_B][1].held and "1111" not in pods[POD_B][1].held
    assert {ruleset.listing for ruleset in pods[POD_A][0].applied} == {pods[POD_A][0].held}
    assert host.entered.count(POD_A) == host.entered.count(POD_B) == 40
    assert host.open_sessions == 0


# probing only what the plan can use: an unused iptables-legacy family costs a worker


@pytest.mark.parametrize(
    ("annotations", "present", "probed"),
    [
        ({R: "4321:1234"}, frozenset({Family.IPV4}), (Family.IPV4,)),
        ({R: "4321:1234"}, frozenset({Family.IPV6}), (Family.IPV6,)),
        ({R: "4321:1234"}, BOTH, (Family.IPV4, Family.IPV6)),
        # named families are probed whatever the addresses say: a missing one must fail
        ({R: "4321:1234", F: "ipv6"}, frozenset({Family.IPV4}), (Family.IPV6,)),
        # no address at all: every family, so the backend is still proven usable
        ({R: "4321:1234"}, frozenset(), (Family.IPV4, Family.IPV6)),
    ],
)
def test_apply_probes_only_the_families_the_plan_can_use(
    annotations: dict[str, str], present: frozenset[Family], probed: tuple[Family, ...]
) -> None:
    fake_nft, legacy = backends()
    engine = Engine(FakeHost({None: (fake_nft, legacy)}, global_families=present))
    engine.apply(parse_plan(annotations), Target(backend="iptables-legacy"))
    assert legacy.probed_families == [probed]


def test_verify_still_probes_every_family() -> None:
    fake_nft, legacy = backends(own=True)
    engine = Engine(FakeHost({None: (fake_nft, legacy)}, global_families=frozenset()))
    engine.verify(PLAN, Target(backend="iptables-legacy"))
    assert legacy.probed_families == [None]
