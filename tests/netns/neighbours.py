"""Other tools' nat rules, installed in a lab's pod namespace before podnat runs, and
their state read back in a form that must not change (podnat's own parts cut out).

Scenarios: kube-proxy- and istio-style rules through iptables-nft and through
iptables-legacy, native nft tables at other priorities, and one of each kind that
redirects podnat's own port (4321) to 4322.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.kit.lab import Netns

PORT, TO, THEIRS = 4321, 1234, 4322


def _dnat(to: str) -> list[str]:
    return ["-j", "DNAT", "--to-destination", to]


def _xt(tool: str, six: bool, same_port: bool) -> list[list[str]]:
    """kube-proxy's service DNAT and an istio-style inbound capture, other ports only."""
    svc, pod = ("fd00:10:96::a", "[fd00:10:244::5]:53") if six else ("10.96.0.10", "10.244.0.5:53")
    rules = [
        ["-N", "KUBE-SERVICES"],
        ["-N", "ISTIO_INBOUND"],
        ["-N", "ISTIO_IN_REDIRECT"],
        ["-A", "PREROUTING", "-m", "comment", "--comment", "k8s portals", "-j", "KUBE-SERVICES"],
        ["-A", "OUTPUT", "-j", "KUBE-SERVICES"],
        ["-A", "KUBE-SERVICES", "-d", svc, "-p", "udp", "--dport", "53", *_dnat(pod)],
        ["-A", "PREROUTING", "-p", "tcp", "-j", "ISTIO_INBOUND"],
        ["-A", "ISTIO_INBOUND", "-p", "tcp", "--dport", "15008", "-j", "RETURN"],
        ["-A", "ISTIO_INBOUND", "-p", "tcp", "--dport", "8080", "-j", "ISTIO_IN_REDIRECT"],
        ["-A", "ISTIO_IN_REDIRECT", "-p", "tcp", "-j", "REDIRECT", "--to-ports", "15006"],
    ]
    if tool == "legacy":  # python-iptables reads multiport; iptables-nft's JSON does not
        rules.append(
            [
                "-A",
                "ISTIO_INBOUND",
                "-p",
                "tcp",
                "-m",
                "multiport",
                "--dports",
                "9000:9010",
                "-j",
                "ISTIO_IN_REDIRECT",
            ]
        )
    if same_port:
        rules.append(
            [
                "-A",
                "PREROUTING",
                "-p",
                "tcp",
                "--dport",
                str(PORT),
                "-j",
                "REDIRECT",
                "--to-ports",
                str(THEIRS),
            ]
        )
    return rules


def _nft(priority: str, same_port: bool) -> str:
    ours = (
        f"tcp dport {PORT} redirect to :{THEIRS}"
        if same_port
        else "tcp dport 5555 redirect to :5556"
    )
    chains = [
        ("inet neighbour", "pre", f"prerouting priority {priority}", ours),
        ("ip late", "pre", "prerouting priority dstnat + 10", "udp dport 5353 redirect to :53"),
        ("ip6 out6", "out", "output priority -90", "tcp dport 7000 dnat to [::1]:7001"),
    ]
    return "".join(
        f"table {table} {{\n\tchain {chain} {{\n\t\ttype nat hook {hook}; policy accept;\n"
        f"\t\t{rule}\n\t}}\n}}\n"
        for table, chain, hook, rule in chains
    )


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "nft" (native), "iptables-nft", "iptables-legacy"
    same_port: bool = False
    priority: str = "dstnat - 10"  # native nft only: the neighbour chain's priority

    @property
    def auto_choice(self) -> str:
        """What README's rule (3) picks: the one backend holding other tools' nat rules."""
        return "iptables-legacy" if self.kind == "iptables-legacy" else "nft"

    def install(self, ns: Netns) -> None:
        if self.kind == "nft":
            ns.run("nft", "-f", "-", stdin=_nft(self.priority, self.same_port))
            return
        tool = "legacy" if self.kind == "iptables-legacy" else "nft"
        for six in (False, True):
            command = f"ip6tables-{tool}" if six else f"iptables-{tool}"
            for rule in _xt(tool, six, self.same_port):
                ns.run(command, "-w", "5", "-t", "nat", *rule)

    def order(self, backend: str) -> str:
        """Who a connection to PORT meets first, by the kernel's rules (see neighbours.py)."""
        if not self.same_port:
            return "served"
        if self.kind == "nft":
            return "neighbour first" if self.priority.startswith("dstnat -") else "podnat first"
        if self.kind == "iptables-legacy" and backend == "iptables-legacy":
            return "podnat first"  # its jump is first in the legacy PREROUTING
        return "undefined: warned"  # both hook in at dstnat (-100)


SCENARIOS = [
    Scenario("nft tables, other ports", "nft"),
    Scenario("iptables-nft, other ports", "iptables-nft"),
    Scenario("iptables-legacy, other ports", "iptables-legacy"),
    Scenario("nft, same port, dstnat-10", "nft", same_port=True),
    Scenario("nft, same port, dstnat+10", "nft", same_port=True, priority="dstnat + 10"),
    Scenario("iptables-nft, same port", "iptables-nft", same_port=True),
    Scenario("iptables-legacy, same port", "iptables-legacy", same_port=True),
]

_COUNTERS = [
    (re.compile(r"counter packets \d+ bytes \d+"), "counter packets 0 bytes 0"),
    (re.compile(r"\[\d+:\d+\]"), "[0:0]"),
]


_DUMPS = (
    "iptables-nft-save",
    "ip6tables-nft-save",
    "iptables-legacy-save",
    "ip6tables-legacy-save",
)


def neighbours_state(ns: Netns) -> str:
    """Every nat rule in the namespace but podnat's, counters zeroed: must not change."""
    separator = "=== podnat-test-dump ==="
    script = "; ".join(["nft list ruleset", *(f"echo '{separator}'; {d}" for d in _DUMPS)])
    ruleset, *saves = ns.run("sh", "-ec", script).split(separator + "\n")
    text = "\n".join([_without_podnat_table(ruleset), *map(_save, saves)])
    for pattern, zero in _COUNTERS:
        text = pattern.sub(zero, text)
    return text


def _save(text: str) -> str:
    """iptables-save output without podnat's lines, and without tables that hold no
    rule (an apply through iptables-legacy instantiates an empty nat table)."""
    out: list[str] = []
    block: list[str] = []
    for line in text.splitlines():
        if line.startswith("#") or "PODNAT" in line:
            continue
        block.append(line)
        if line == "COMMIT":
            if any(not (b.startswith((":", "*")) or b == "COMMIT") for b in block) or any(
                b.startswith(":") and " - " in b for b in block
            ):
                out += block
            block = []
    return "\n".join(out + block)


def _without_podnat_table(ruleset: str) -> str:
    out, skipping = [], False
    for line in ruleset.splitlines():
        if line == "table inet podnat {":
            skipping = True
        elif skipping and line == "}":
            skipping = False
            continue
        if not skipping:
            out.append(line)
    return "\n".join(out)
