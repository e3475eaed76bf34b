"""A hostile neighbour ruleset cannot make podnat's neighbour check slow: chains that jump
twice into the next (40 deep in iptables-legacy, 2^40 paths; 12 in nft, whose kernel
refuses much deeper jumps: 2^12), and one chain of 20,000 rules, in nft and in
iptables-legacy. The walk stops at its caps, podnat's rules are applied and serve, and
the log says the check was partial."""

from __future__ import annotations

import sys
import time

import pytest

from helper.backends.neighbours import MAX_DEPTH, MAX_RULES
from helper.engine import Engine
from helper.host.base import Target
from helper.plan.parse import parse_plan
from tests.cases import R
from tests.kit.lab import Lab
from tests.netns.test_neighbours import _logged

DEPTH, NFT_DEPTH, WIDE = 40, 12, 20_000


def _nft_hostile() -> str:
    chains = [
        f"\tchain c{i} {{\n\t\tjump c{i + 1}\n\t\tjump c{i + 1}\n\t}}" for i in range(NFT_DEPTH)
    ]
    chains.append(f"\tchain c{NFT_DEPTH} {{\n\t\ttcp dport 4321 redirect to :4322\n\t}}")
    wide = "\n".join(f"\t\ttcp dport {10000 + i % 40000} redirect to :9" for i in range(WIDE))
    chains.append(f"\tchain wide {{\n{wide}\n\t}}")
    base = "\tchain pre {\n\t\ttype nat hook prerouting priority dstnat - 10; policy accept;\n"
    base += "\t\tjump wide\n\t\tjump c0\n\t}"
    return "table ip hostile {\n" + "\n".join([*chains, base]) + "\n}\n"


def _legacy_hostile() -> str:
    lines = ["*nat", *(f":C{i} - [0:0]" for i in range(DEPTH + 1)), ":WIDE - [0:0]"]
    for i in range(DEPTH):
        lines += [f"-A C{i} -j C{i + 1}"] * 2
    lines.append(f"-A C{DEPTH} -p tcp --dport 4321 -j REDIRECT --to-ports 4322")
    lines += [
        f"-A WIDE -p tcp --dport {10000 + i % 40000} -j REDIRECT --to-ports 9" for i in range(WIDE)
    ]
    lines += ["-A PREROUTING -j WIDE", "-A PREROUTING -j C0", "COMMIT", ""]
    return "\n".join(lines)


@pytest.mark.parametrize("kind", ["nft", "iptables-legacy"])
def test_a_hostile_neighbour_ruleset_is_checked_within_bounds(lab: Lab, kind: str) -> None:
    if kind == "nft":
        lab.pod.run("nft", "-f", "-", stdin=_nft_hostile())
    else:
        lab.pod.run("iptables-legacy-restore", "-w", "5", stdin=_legacy_hostile())
    lab.serve(lab.pod, 1234)
    engine = Engine()
    plan = parse_plan({R: "4321:1234"})
    with _logged() as lines:
        started = time.monotonic()
        outcome = engine.apply(plan, Target(netns=lab.pod.path, backend=kind))
        took = time.monotonic() - started
    assert outcome.summary.startswith(f"applied with {kind}"), outcome.summary
    partial = [line for line in lines if "only partly checked" in line]
    assert partial, lines
    assert f"more than {MAX_RULES} rules" in partial[0] or f"deeper than {MAX_DEPTH}" in partial[0]
    assert took < 5.0, f"apply took {took:.2f} s beside {WIDE} rules and exponential paths"
    # The neighbour's 4321 redirect sits past the caps: unseen, and podnat says it may be.
    if kind == "iptables-legacy":  # podnat's jump is first in PREROUTING
        assert lab.ask(lab.client_a, lab.POD_A4, 4321) == "served-by:1234"


READ_LEGACY = """
import sys
from helper.backends.xtables.family import FamilyTable
from helper.plan.model import Family
found = FamilyTable(Family(sys.argv[1])).neighbours()
for n in found.redirects:
    print(n.chain, n.hook, n.proto, n.ports)
print("incomplete:", found.incomplete)
"""


def test_the_legacy_reader_follows_chains_and_counts_what_it_cannot_read_as_any(
    lab: Lab,
) -> None:
    rules = [
        "-N CAPTURE",
        "-A PREROUTING -p tcp -j CAPTURE",
        "-A CAPTURE -p tcp -m multiport --dports 8080,9000:9010 -j REDIRECT --to-ports 15006",
        "-A CAPTURE -p udp --dport 4000:4400 -j DNAT --to-destination :15006",  # tcp path: no
        "-A CAPTURE -j RETURN",
        "-A PREROUTING -p udp --dport 4000:4400 -j DNAT --to-destination :15006",
        "-A OUTPUT -p tcp ! --dport 22 -j REDIRECT --to-ports 15001",
    ]
    for rule in rules:
        lab.pod.run("iptables-legacy", "-w", "5", "-t", "nat", *rule.split())
    out = lab.pod.run(sys.executable, "-c", READ_LEGACY, "ipv4").splitlines()
    assert out == [
        "iptables-legacy nat PREROUTING (IPv4) prerouting tcp ((8080, 8080), (9000, 9010))",
        "iptables-legacy nat PREROUTING (IPv4) prerouting udp ((4000, 4400),)",
        "iptables-legacy nat OUTPUT (IPv4) output tcp None",  # a negation: any port
        "incomplete: ",
    ]
