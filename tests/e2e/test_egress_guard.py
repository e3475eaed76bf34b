"""The offline harness's egress guard (hack/cluster/egress-guard.sh) holds, for both IP families.

Never relies on the real uplink: a sink namespace behind a veth stands in for "the outside".
The documentation ranges 198.51.100.0/24 and 2001:db8::/32 are routed to it, and nft counters
in the sink count what arrives. First the path is shown to work (from the host, and forwarded
from a node while the veth is not yet an uplink); then the veth is added to the guard's uplinks
and nothing sent from a node or from a pod on each node (both families) reaches the sink.
Only for the offline harness
(hack/cluster/e2e-cluster.sh); hack/cluster/e2e-kind.sh deselects the `egress_guard` marker.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.kit.cluster import Cluster
from tests.kit.lab import Netns, sh
from tests.kit.paths import REPO

pytestmark = pytest.mark.egress_guard

GUARD = str(REPO / "hack" / "cluster" / "egress-guard.sh")
SINK4, SINK6 = "198.51.100.1", "2001:db8::1"
SEND = (  # one UDP datagram, from any process with python3 (the podnat image) or bash
    "import socket, sys; f = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET; "
    "socket.socket(f, socket.SOCK_DGRAM).sendto(b'x', (sys.argv[1], 9))"
)
BASH_SEND = "echo x > /dev/udp/{0}/9"


@dataclass
class Sink:
    ns: Netns
    host_dev: str

    def counts(self) -> dict[int, int]:
        """Packets that arrived, per family."""
        table = json.loads(self.ns.run("nft", "-j", "list", "table", "inet", "sink"))
        found = {}
        for entry in table["nftables"]:
            counter = entry.get("counter")
            if counter and counter["name"] in ("v4", "v6"):
                found[int(counter["name"][1])] = counter["packets"]
        return found

    def reset(self) -> None:
        self.ns.run("nft", "reset", "counters", "table", "inet", "sink")


@pytest.fixture
def sink() -> Iterator[Sink]:
    tag = uuid.uuid4().hex[:6]
    ns, host_dev = Netns(f"pnt-{tag}-sink"), f"pgs{tag}"
    sh("ip", "netns", "add", ns.name)
    try:
        sh("ip", "link", "add", host_dev, "type", "veth", "peer", "name", "up0", "netns", ns.name)
        sh("ip", "addr", "add", "198.51.100.254/24", "dev", host_dev)
        sh("ip", "addr", "add", "2001:db8::fe/64", "dev", host_dev, "nodad")
        sh("ip", "link", "set", host_dev, "up")
        sh("ip", "-6", "route", "add", "2001:db8::/32", "dev", host_dev)
        ns.run("ip", "addr", "add", f"{SINK4}/24", "dev", "up0")
        ns.run("ip", "addr", "add", f"{SINK6}/64", "dev", "up0", "nodad")
        ns.run("ip", "link", "set", "up0", "up")
        ns.run("nft", "-f", "-", stdin=f"""
table inet sink {{
    counter v4 {{ }}
    counter v6 {{ }}
    chain prerouting {{
        type filter hook prerouting priority raw; policy accept;
        ip daddr {SINK4} udp dport 9 counter name v4
        ip6 daddr {SINK6} udp dport 9 counter name v6
    }}
}}
""")  # fmt: skip
        yield Sink(ns, host_dev)
    finally:
        sh("ip", "link", "del", host_dev, check=False)
        sh("ip", "netns", "del", ns.name, check=False)


def nodes(cluster: Cluster) -> list[str]:
    out = cluster.kubectl("get", "nodes", "-o", "jsonpath={.items[*].metadata.name}").stdout
    return out.split()


def send_from_nodes(cluster: Cluster, *targets: str) -> None:
    for node in nodes(cluster):
        for target in targets:
            # Refused locally (no route) is as good as dropped: nothing is sent.
            cluster.node_exec(node, "bash", "-c", BASH_SEND.format(target) + " || true")


def guard_dropped() -> int:
    """Packets the guard's drop rule has counted."""
    listing: dict[str, Any] = json.loads(
        sh("nft", "-j", "list", "table", "inet", "podnat_egress_guard")
    )
    rules = [e["rule"] for e in listing["nftables"] if "rule" in e]
    return sum(x["counter"]["packets"] for r in rules for x in r["expr"] if "counter" in x)


def test_nothing_forwarded_out_of_an_uplink_reaches_it_in_either_family(
    cluster: Cluster, sink: Sink, clients: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # The path works: the host reaches the sink in both families...
    sh("bash", "-c", BASH_SEND.format(SINK4))
    sh("bash", "-c", BASH_SEND.format(SINK6))
    assert sink.counts() == {4: 1, 6: 1}
    # ...and so does a node's packet, forwarded by the host while the veth is no uplink:
    # this is what the guard must stop once the veth counts as one.
    send_from_nodes(cluster, SINK4, SINK6)
    forwarded = sink.counts()
    assert forwarded[4] > 1, f"a node's IPv4 packet was not forwarded to the sink: {forwarded}"
    assert forwarded[6] > 1, f"a node's IPv6 packet was not forwarded to the sink: {forwarded}"

    subprocess.run([GUARD, "add-uplink", sink.host_dev], check=True)
    sink.reset()
    dropped_before = guard_dropped()
    pods = ("client-a", "client-b")  # one on each node (tests/e2e/conftest.py)
    assert len({cluster.get("pod", p)["spec"]["nodeName"] for p in pods}) == len(nodes(cluster))
    for _ in range(3):
        send_from_nodes(cluster, SINK4, SINK6)
        for pod in pods:
            for target in (SINK4, SINK6):
                cluster.exec(pod, "python3", "-c", SEND, target)
    assert sink.counts() == {4: 0, 6: 0}
    # Every datagram reached the guard and was dropped there (none refused on the way).
    assert guard_dropped() >= dropped_before + 3 * (len(nodes(cluster)) + len(pods)) * 2

    with capsys.disabled():
        print("\negress guard, with the cluster up:\n" + sh(GUARD, "show"))  # noqa: T201 - the issue asks for the rules in the output
