"""Other tools' redirects in one family's legacy nat table, read through python-iptables.

From PREROUTING and OUTPUT (podnat's own jumps skipped), rules are walked in order,
following jumps and gotos into user chains, collecting each path that ends in DNAT
or REDIRECT with the protocol and ports its `tcp`/`udp`/`sctp` and `multiport`
matches require. Negated or unknown matches count as "any port"; RETURNs before a
redirect are not evaluated: both err on the side of a warning. Rules are read one
entry at a time (libiptc's own iteration), so a huge chain costs no more than the
caps of `helper.backends.neighbours`.
"""

from __future__ import annotations

from typing import Any

from helper.backends.neighbours import (
    DSTNAT,
    LEGACY,
    MAX_DEPTH,
    MAX_REDIRECTS,
    MAX_RULES,
    MAX_SPANS,
    NeighbourRedirect,
    Neighbours,
    Span,
    intersect,
    merge_spans,
)
from helper.plan.model import Family
from helper.render import iptables as render

_HOOKS = {"PREROUTING": "prerouting", "OUTPUT": "output"}
_PORT_MATCHES = {"tcp": "dport", "udp": "dport", "sctp": "dport", "multiport": "dports"}
_LABEL = {Family.IPV4: "IPv4", Family.IPV6: "IPv6"}


class _Walk:
    def __init__(self, iptc: Any, table: Any, family: Family) -> None:
        self.iptc, self.table, self.family = iptc, table, family
        self.budget = MAX_RULES
        self.found: dict[NeighbourRedirect, None] = {}
        self.incomplete = ""

    def entries(self, chain: str) -> list[Any]:
        """The chain's rules, at most the budget left. Taken whole before the walk goes
        on: libiptc iterates with one cursor per handle, so a nested chain's walk would
        move this chain's cursor."""
        out: list[Any] = []
        if not self.table.is_chain(chain):
            return out
        entry = self.table.first_rule(chain)
        while entry and len(out) <= self.budget:
            out.append(entry)
            entry = self.table.next_rule(entry)
        return out

    def chain(self, hook: str, name: str, proto: str | None, ports: Any, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.incomplete = f"jumps nested deeper than {MAX_DEPTH}"
            return
        handle = self.table_chain(name)
        for entry in self.entries(name):
            if self.budget <= 0 or len(self.found) >= MAX_REDIRECTS:
                self.incomplete = f"more than {MAX_RULES} rules or {MAX_REDIRECTS} redirects"
                return
            self.budget -= 1
            rule = self.table.create_rule(entry, handle)
            target = rule.target.name if rule.target is not None else ""
            if depth == 0 and target in render.OWN_CHAINS:
                continue  # podnat's own jump
            narrowed = _narrow(rule, proto, ports)
            if narrowed is None:
                continue
            if target in ("DNAT", "REDIRECT"):
                self.found[self.redirect(hook, *narrowed)] = None
            elif target and self.table.is_chain(target) and not self.table.builtin_chain(target):
                self.chain(hook, target, *narrowed, depth + 1)

    def table_chain(self, name: str) -> Any:
        return self.iptc.Chain(self.table, name)

    def redirect(self, hook: str, proto: str | None, ports: Any) -> NeighbourRedirect:
        name = {"prerouting": "PREROUTING", "output": "OUTPUT"}[hook]
        return NeighbourRedirect(
            backend=LEGACY,
            chain=f"iptables-legacy nat {name} ({_LABEL[self.family]})",
            hook=hook,
            priority=DSTNAT,
            families=frozenset({self.family}),
            proto=proto,
            ports=ports,
        )


def read_neighbours(iptc: Any, table: Any, family: Family) -> Neighbours:
    walk = _Walk(iptc, table, family)
    for chain, hook in _HOOKS.items():
        walk.chain(hook, chain, None, None, 0)
    return Neighbours(tuple(walk.found), walk.incomplete)


def _narrow(rule: Any, proto: str | None, ports: Any) -> tuple[str | None, Any] | None:
    own = rule.protocol if rule.protocol not in (None, "", "ip", "all", "0") else None
    if own is not None and own.startswith("!"):
        own = None
    if proto is not None and own is not None and own != proto:
        return None
    proto = proto or own
    for match in rule.matches:
        key = _PORT_MATCHES.get(match.name)
        if key is None:
            continue
        values = match.get_all_parameters().get(key)
        spans = _spans(values) if values else None
        if spans is None:
            continue  # negated or unreadable: any port
        if ports is not None:
            spans = intersect(ports, spans)
            if not spans:
                return None
        ports = spans
    return proto, ports


def _spans(values: list[str]) -> tuple[Span, ...] | None:
    if "!" in values or len(values) != 1:
        return None
    spans: list[Span] = []
    for part in values[0].split(",")[:MAX_SPANS]:
        low, _, high = part.partition(":")
        if not low.isdigit() or (high and not high.isdigit()):
            return None
        spans.append((int(low), int(high or low)))
    return merge_spans(spans)
