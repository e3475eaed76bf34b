"""A single-stack pod on iptables-legacy: only its family is touched.

Probing the unused family cost a worker process (an interpreter and python-iptables)
on every start; now the probe asks only for the families the plan can use.
"""

from __future__ import annotations

from tests.cases import F, R
from tests.kit.lab import Lab
from tests.netns.podnat import nat_dump, podnat


def legacy_tables(lab: Lab, family: str) -> list[str]:
    names = "ip_tables_names" if family == "ipv4" else "ip6_tables_names"
    return lab.pod.run("cat", f"/proc/net/{names}").split()


def test_an_ipv4_only_pod_leaves_the_ipv6_legacy_nat_table_alone(lab: Lab) -> None:
    lab.pod.run("ip", "-6", "addr", "flush", "scope", "global")
    result = podnat(lab.pod, "apply", {R: "4321:1234"}, "--backend", "iptables-legacy")
    assert result.code == 0, result.stderr
    assert "applied with iptables-legacy (ipv4)" in result.stderr
    assert "nat" in legacy_tables(lab, "ipv4")
    assert "nat" not in legacy_tables(lab, "ipv6")  # never probed, never staged
    assert "--dport 4321 -j DNAT --to-destination :1234" in nat_dump(lab.pod, "iptables-legacy")
    lab.serve(lab.pod, 1234)
    assert lab.ask(lab.client_a, lab.POD_A4, 4321) == "served-by:1234"


def test_a_named_family_is_still_proven_without_an_address(lab: Lab) -> None:
    lab.pod.run("ip", "-6", "addr", "flush", "scope", "global")
    result = podnat(lab.pod, "apply", {R: "4321:1234", F: "dual"}, "--backend", "iptables-legacy")
    assert result.code == 0, result.stderr
    assert "applied with iptables-legacy (ipv4/ipv6)" in result.stderr
    assert "nat" in legacy_tables(lab, "ipv6")
