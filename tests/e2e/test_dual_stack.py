"""Dual-stack pods on two nodes: the redirect over IPv6, IPv6 sources, every ip-families value.

Servers run on the last node; client-a is on the first node (traffic crosses the harness's
routes between nodes), client-b on the same node as the servers.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

import pytest

from tests.kit.cluster import Cluster, pod_ip
from tests.kit.workloads import CLIENT, server_pod

FAMILIES = {"auto": "ipv4/ipv6", "ipv4": "ipv4", "ipv6": "ipv6", "dual": "ipv4/ipv6"}
APPLIED = re.compile(r"applied with \S+ \(([a-z0-9/ ]+)\): ")


def reach(cluster: Cluster, client: str, host: str, port: int, proto: str = "tcp") -> str:
    return cluster.exec(client, "python3", "-c", CLIENT, proto, host, str(port)).strip()


def start(cluster: Cluster, *pods: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Create PODS at once, wait until each is Ready; name -> pod as the API shows it."""
    cluster.apply(*pods)
    names = [p["metadata"]["name"] for p in pods]
    for name in names:
        cluster.wait_ready(f"pod/{name}")
    return {name: cluster.get("pod", name) for name in names}


def applied_families(cluster: Cluster, pod: str) -> tuple[str, str]:
    """The families podnat-init said it applied: in its log's summary, and in the Event."""
    records = [json.loads(line) for line in cluster.logs(pod, "podnat-init").splitlines()]
    logged = [m[1] for r in records if (m := APPLIED.match(r["msg"]))]
    events = [e["message"] for e in cluster.events(pod) if e["reason"] == "RedirectsApplied"]
    posted = [m[1] for e in events if (m := APPLIED.match(e))]
    assert len(logged) == 1, f"{pod}: podnat-init's summary: {[r['msg'] for r in records]}"
    assert posted, f"{pod}: no RedirectsApplied Event naming families: {events}"
    assert len(set(posted)) == 1, events
    return logged[0], posted[0]


@pytest.fixture(scope="module")
def node_cidrs(cluster: Cluster, nodes: list[str]) -> dict[str, list[str]]:
    return {n: cluster.get("node", n, namespace="")["spec"]["podCIDRs"] for n in nodes}


def test_a_client_on_the_other_node_is_redirected_over_ipv6(
    cluster: Cluster, image: str, clients: dict[str, str], nodes: list[str]
) -> None:
    pods = start(
        cluster, server_pod("six", image, {"podnat.io/redirect": "4321:1234"}, node=nodes[-1])
    )
    ip6 = pod_ip(pods["six"], "ipv6")
    for client in ("client-a", "client-b"):  # the other node, the same node
        assert reach(cluster, client, ip6, 4321) == "six:1234"
        assert reach(cluster, client, ip6, 4322) == "refused"
    assert reach(cluster, "client-a", pod_ip(pods["six"], "ipv4"), 4321) == "six:1234"


def test_ipv6_sources_redirect_the_listed_network_and_refuse_the_rest(
    cluster: Cluster,
    image: str,
    clients: dict[str, str],
    nodes: list[str],
    node_cidrs: dict[str, list[str]],
) -> None:
    """Sources: the first node's IPv6 pod network (client-a's) and a documentation range.
    client-b, on the server's node, is outside both; IPv4 lists no source, so no IPv4 rule."""
    (first_node_v6,) = [c for c in node_cidrs[nodes[0]] if ":" in c]
    annotations = {
        "podnat.io/redirect": "4321:1234",
        "podnat.io/redirect-sources": f"{first_node_v6}, 2001:db8::/32",
    }
    pods = start(cluster, server_pod("guarded6", image, annotations, node=nodes[-1]))
    ip6, ip4 = pod_ip(pods["guarded6"], "ipv6"), pod_ip(pods["guarded6"], "ipv4")
    client_a6 = pod_ip(cluster.get("pod", "client-a"), "ipv6")
    assert ipaddress.ip_address(client_a6) in ipaddress.ip_network(first_node_v6)
    assert reach(cluster, "client-a", ip6, 4321) == "guarded6:1234"
    assert reach(cluster, "client-b", ip6, 4321) == "refused"
    assert reach(cluster, "client-b", ip6, 1234) == "guarded6:1234"  # the app itself is open
    assert reach(cluster, "client-a", ip4, 4321) == "refused"
    assert applied_families(cluster, "guarded6") == ("ipv6", "ipv6")
    records = [json.loads(line) for line in cluster.logs("guarded6", "podnat-init").splitlines()]
    notes = [r["msg"] for r in records]
    assert "ipv4: skipped, podnat.io/redirect-sources lists no ipv4 source" in notes, notes


@pytest.fixture(scope="module")
def by_family(
    cluster: Cluster, image: str, clients: dict[str, str], nodes: list[str]
) -> dict[str, dict[str, Any]]:
    """One server pod per podnat.io/ip-families value, alternating between the nodes."""
    pods = [
        server_pod(
            f"families-{value}",
            image,
            {"podnat.io/redirect": "4321:1234", "podnat.io/ip-families": value},
            node=nodes[i % len(nodes)],
        )
        for i, value in enumerate(FAMILIES)
    ]
    return start(cluster, *pods)


@pytest.mark.parametrize("value", list(FAMILIES))
def test_each_ip_families_value_applies_its_families(
    cluster: Cluster, by_family: dict[str, dict[str, Any]], value: str
) -> None:
    name = f"families-{value}"
    pod = by_family[name]
    expected = FAMILIES[value]
    assert applied_families(cluster, name) == (expected, expected)
    for family in ("ipv4", "ipv6"):
        # From client-a, on the first node: the other node for half of the pods.
        answer = reach(cluster, "client-a", pod_ip(pod, family), 4321)
        assert answer == (f"{name}:1234" if family in expected else "refused"), family
