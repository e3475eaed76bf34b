"""Which rule wins beside other tools' redirects: the pure parts, in milliseconds.

The kernel tier (tests/netns/test_neighbours.py) proves these orders with traffic;
here every branch of the judgement, nft's JSON reading, the engine's outcome, and
the bounds against a hostile ruleset.
"""

from __future__ import annotations

import time
from typing import Any

from helper.backends.neighbours import (
    MAX_REDIRECTS,
    MAX_SPANS,
    NeighbourRedirect,
    Neighbours,
    judge,
)
from helper.backends.nft.neighbours import read_neighbours
from helper.engine import Engine
from helper.host.base import Target
from helper.plan.model import Family
from helper.plan.parse import parse_plan
from helper.plan.resolve import ALL_FAMILIES, resolve
from helper.testing import FakeBackend, FakeHost

BOTH = frozenset({Family.IPV4, Family.IPV6})
OWN = {("inet", "podnat")}


def _resolved(annotations: dict[str, str]) -> object:
    plan = parse_plan(annotations)
    return resolve(plan, global_families=ALL_FAMILIES, nat_families=ALL_FAMILIES, backend="nft")


def _plan(value: str = "4321:1234", **more: str):  # type: ignore[no-untyped-def]
    return _resolved({"podnat.io/redirect": value, **more}).resolved  # type: ignore[attr-defined]


def _nft(priority: int, ports: tuple[tuple[int, int], ...] | None = ((4321, 4321),), **kw):  # type: ignore[no-untyped-def]
    fields = {
        "backend": "nft",
        "chain": "table ip other chain pre",
        "hook": "prerouting",
        "priority": priority,
        "families": frozenset({Family.IPV4}),
        "proto": "tcp",
        "ports": ports,
    }
    fields.update(kw)
    return NeighbourRedirect(**fields)  # type: ignore[arg-type]


def test_a_lower_priority_neighbour_shadows_podnat() -> None:
    found = judge("nft", _plan(), [Neighbours((_nft(-110),))])
    assert found.summary() == (
        "podnat's 4321→1234 is shadowed by table ip other chain pre (priority dstnat-10) "
        "which redirects tcp dport 4321 first"
    )
    assert found.warning


def test_a_higher_priority_neighbour_comes_after_podnat() -> None:
    found = judge("iptables-legacy", _plan(), [Neighbours((_nft(-90),))])
    assert found.summary().startswith("podnat's 4321→1234 runs first")
    assert "dstnat+10" in found.summary()
    assert not found.warning


def test_the_same_priority_is_undefined_and_says_what_to_do() -> None:
    legacy = _nft(-100, backend="iptables-legacy", chain="iptables-legacy nat PREROUTING (IPv4)")
    found = judge("nft", _plan(), [Neighbours((legacy,))])
    assert found.summary().startswith("WARNING order undefined: podnat's 4321→1234")
    assert "--backend iptables-legacy" in found.summary()
    assert found.warning
    native = judge("nft", _plan(), [Neighbours((_nft(-100),))]).summary()
    assert "give table ip other chain pre a priority after dstnat" in native
    xt = _nft(-100, chain="table ip nat chain PREROUTING (iptables-nft)")
    assert "a priority after" not in judge("nft", _plan(), [Neighbours((xt,))]).summary()


def test_within_legacy_podnats_first_jump_wins() -> None:
    legacy = _nft(-100, backend="iptables-legacy", chain="iptables-legacy nat PREROUTING (IPv4)")
    found = judge("iptables-legacy", _plan(), [Neighbours((legacy,))])
    assert "its jump is first in the legacy nat chain" in found.summary()
    assert not found.warning


def test_other_ports_protocols_families_and_hooks_are_no_conflict() -> None:
    plan = _plan("4321:1234", **{"podnat.io/ip-families": "ipv6"})
    others = Neighbours(
        (
            _nft(-110, families=BOTH, ports=((4000, 4320), (4322, 5000))),
            _nft(-110, families=BOTH, proto="udp", ports=None),
            _nft(-110),  # IPv4 only, and the pod's rules are IPv6 only
            _nft(-110, families=BOTH, hook="output"),  # no redirect-local
        )
    )
    assert judge("nft", plan, [others]).summary() == ""
    local = _plan("4321:1234", **{"podnat.io/redirect-local": "true"})
    out = Neighbours((_nft(-110, hook="output", ports=None, proto=None),))
    assert "redirects any protocol on any port first" in judge("nft", local, [out]).summary()


def test_findings_are_capped_and_counted() -> None:
    plan = _plan(",".join(f"{p}:1" for p in range(2000, 2100)))
    found = judge("nft", plan, [Neighbours((_nft(-110, ports=None),))])
    assert len(found.shadowed) == 5 and found.counts["s"] == 100
    assert found.summary().endswith("(and 99 more, see the log)")


def test_judging_the_largest_plan_against_the_most_neighbours_is_fast() -> None:
    plan = _plan(",".join(f"{p}:1" for p in range(2, 2002)))  # 2,000 items: the limit
    spans = tuple((p, p) for p in range(3000, 3000 + 2 * MAX_SPANS, 2))
    others = Neighbours(tuple(_nft(-110 + i, ports=spans) for i in range(MAX_REDIRECTS)))
    started = time.perf_counter()
    found = judge("nft", plan, [others])
    assert time.perf_counter() - started < 1.0
    assert found.counts["s"] == 0  # no port in common


ISTIO_NFT: list[
    dict[str, Any]
] = [  # `nft -j list ruleset` of iptables-nft rules, as nft 1.0.6 prints them
    {"table": {"family": "ip", "name": "nat"}},
    {"chain": {"family": "ip", "table": "nat", "name": "IN"}},
    {"chain": {"family": "ip", "table": "nat", "name": "RED"}},
    {
        "chain": {
            "family": "ip",
            "table": "nat",
            "name": "PREROUTING",
            "type": "nat",
            "hook": "prerouting",
            "prio": -100,
        }
    },
    {
        "rule": {
            "family": "ip",
            "table": "nat",
            "chain": "PREROUTING",
            "expr": [
                {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}},
                {"jump": {"target": "IN"}},
            ],
        }
    },
    {
        "rule": {
            "family": "ip",
            "table": "nat",
            "chain": "IN",
            "expr": [
                {
                    "match": {
                        "op": "==",
                        "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                        "right": {"set": [8080, {"range": [9000, 9010]}]},
                    }
                },
                {"jump": {"target": "RED"}},
            ],
        }
    },
    {
        "rule": {
            "family": "ip",
            "table": "nat",
            "chain": "IN",
            "expr": [
                {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}},
                {"xt": {"type": "match", "name": "multiport"}},
                {"jump": {"target": "RED"}},
            ],
        }
    },
    {
        "rule": {
            "family": "ip",
            "table": "nat",
            "chain": "RED",
            "expr": [
                {"xt": {"type": "target", "name": "REDIRECT"}},
            ],
        }
    },
]


def test_nft_json_of_iptables_nft_rules_is_read() -> None:
    found = read_neighbours(ISTIO_NFT, OWN)
    assert not found.incomplete
    read, unread = found.redirects
    assert (read.proto, read.ports) == ("tcp", ((8080, 8080), (9000, 9010)))
    assert read.chain == "table ip nat chain PREROUTING (iptables-nft)"
    assert read.families == frozenset({Family.IPV4})
    assert (unread.proto, unread.ports) == ("tcp", None)  # an xt match: any port


def test_a_path_whose_protocols_disagree_redirects_nothing() -> None:
    items = [*ISTIO_NFT[:4], ISTIO_NFT[4], ISTIO_NFT[7]]
    udp = {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "udp"}}
    items.append(
        {
            "rule": {
                "family": "ip",
                "table": "nat",
                "chain": "IN",
                "expr": [udp, {"jump": {"target": "RED"}}],
            }
        }
    )
    assert read_neighbours(items, OWN) == Neighbours()


def test_podnats_own_table_and_filter_chains_are_not_neighbours() -> None:
    items: list[dict[str, Any]] = [
        {
            "chain": {
                "family": "inet",
                "table": "podnat",
                "name": "prerouting",
                "type": "nat",
                "hook": "prerouting",
                "prio": -100,
            }
        },
        {
            "rule": {
                "family": "inet",
                "table": "podnat",
                "chain": "prerouting",
                "expr": [{"dnat": {"port": 1}}],
            }
        },
        {
            "chain": {
                "family": "inet",
                "table": "fw",
                "name": "in",
                "type": "filter",
                "hook": "prerouting",
                "prio": -100,
            }
        },
        {"rule": {"family": "inet", "table": "fw", "chain": "in", "expr": [{"drop": None}]}},
    ]
    assert read_neighbours(items, OWN) == Neighbours()


def test_a_hostile_nft_ruleset_is_walked_within_the_caps() -> None:
    depth = 40  # each chain jumps twice into the next: 2^40 paths without a cap
    items: list[dict[str, Any]] = [
        {
            "chain": {
                "family": "inet",
                "table": "h",
                "name": "c0",
                "type": "nat",
                "hook": "prerouting",
                "prio": -150,
            }
        },
    ]
    for i in range(depth):
        jump = {"family": "inet", "table": "h", "chain": f"c{i}"}
        items += [{"rule": {**jump, "expr": [{"jump": {"target": f"c{i + 1}"}}]}}] * 2
    big_set = {"set": list(range(1, 100_000))}
    items.append(
        {
            "rule": {
                "family": "inet",
                "table": "h",
                "chain": f"c{depth}",
                "expr": [
                    {
                        "match": {
                            "op": "==",
                            "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                            "right": big_set,
                        }
                    },
                    {"redirect": {"port": 1}},
                ],
            }
        }
    )
    started = time.perf_counter()
    found = read_neighbours(items, OWN)
    assert time.perf_counter() - started < 0.5
    assert found.incomplete


def test_the_engine_says_who_wins_in_the_outcome() -> None:
    shadow = Neighbours((_nft(-110, families=BOTH),))
    host = FakeHost({None: (FakeBackend("nft", neighbours=shadow), FakeBackend("iptables-legacy"))})
    outcome = Engine(host).apply(parse_plan({"podnat.io/redirect": "4321:1234"}), Target())
    assert outcome.summary == (
        "applied with nft (ipv4/ipv6): 4321:1234/tcp; podnat's 4321→1234 is shadowed by "
        "table ip other chain pre (priority dstnat-10) which redirects tcp dport 4321 first"
    )
    assert outcome.warning
    quiet = FakeHost({None: (FakeBackend("nft"), FakeBackend("iptables-legacy"))})
    plain = Engine(quiet).apply(parse_plan({"podnat.io/redirect": "4321:1234"}), Target())
    assert plain.summary == "applied with nft (ipv4/ipv6): 4321:1234/tcp"
    assert not plain.warning
