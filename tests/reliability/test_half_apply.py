"""iptables-legacy across two families: the kill between the commits, its repair, its name.

strace kills the podnat process on entering its n-th setsockopt (the worker, a child,
is not traced). libiptc's commit is two setsockopts: IPT_SO_SET_REPLACE (the table
swap) then IPT_SO_SET_ADD_COUNTERS; podnat makes no other before them.
"""

from __future__ import annotations

import pytest

from tests.cases import R
from tests.kit.lab import Lab
from tests.netns.podnat import podnat
from tests.reliability.harness import family_listings, wait_until_quiet

OLD = {R: "4321:1234, 5353:53/udp"}
NEW = {R: "4444:1111, 6000-6002:7000-7002"}
LEGACY = ("--backend", "iptables-legacy")


def killed_at_setsockopt(lab: Lab, annotations: dict[str, str], nth: int) -> None:
    strace = ("strace", "-qq", "-o", "/dev/null", "-e", "trace=setsockopt")
    inject = ("-e", f"inject=setsockopt:signal=KILL:when={nth}")
    result = podnat(lab.pod, "apply", annotations, *LEGACY, prefix=(*strace, *inject))
    assert result.code != 0, "strace should have killed podnat"
    wait_until_quiet(lab.pod)  # an orphaned worker finishes its commit first


@pytest.fixture
def listings(lab: Lab) -> dict[str, dict[str, str]]:
    """Each plan's canonical listing per family, left on OLD."""
    out = {}
    for name, plan in (("new", NEW), ("old", OLD)):
        assert podnat(lab.pod, "apply", plan, *LEGACY).code == 0
        out[name] = family_listings(lab.pod, "iptables-legacy")
    assert all(out["old"][f] != out["new"][f] for f in ("ipv4", "ipv6"))
    return out


def test_a_kill_after_the_ipv4_commit_still_commits_ipv6(
    lab: Lab, listings: dict[str, dict[str, str]]
) -> None:
    # The reported case: killed inside IPv4's commit, after its table swap. The IPv6
    # worker used to wait for a request that never came; now it already has it.
    killed_at_setsockopt(lab, NEW, nth=2)
    assert family_listings(lab.pod, "iptables-legacy") == listings["new"]
    assert podnat(lab.pod, "verify", NEW, *LEGACY).code == 0


def test_a_split_between_families_is_named_by_verify_and_repaired_by_apply(
    lab: Lab, listings: dict[str, dict[str, str]]
) -> None:
    # Killed on entering IPv4's swap: the worker already had its commit, so IPv6 is
    # new and IPv4 old, the one state the kernel cannot rule out (two tables).
    killed_at_setsockopt(lab, NEW, nth=1)
    live = family_listings(lab.pod, "iptables-legacy")
    assert live == {"ipv4": listings["old"]["ipv4"], "ipv6": listings["new"]["ipv6"]}

    verdict = podnat(lab.pod, "verify", NEW, *LEGACY)
    assert verdict.code == 1
    assert (
        "IPv6 holds the planned ruleset, IPv4 does not: an interrupted iptables-legacy apply"
        in verdict.stderr
    )
    old_verdict = podnat(lab.pod, "verify", OLD, *LEGACY)
    assert "IPv4 holds the planned ruleset, IPv6 does not" in old_verdict.stderr

    # Whichever plan comes next replaces both families wholly.
    assert podnat(lab.pod, "apply", OLD, *LEGACY).code == 0
    assert family_listings(lab.pod, "iptables-legacy") == listings["old"]
    assert podnat(lab.pod, "verify", OLD, *LEGACY).code == 0
    killed_at_setsockopt(lab, NEW, nth=1)
    assert podnat(lab.pod, "apply", NEW, *LEGACY).code == 0
    assert family_listings(lab.pod, "iptables-legacy") == listings["new"]
    assert podnat(lab.pod, "verify", NEW, *LEGACY).code == 0
