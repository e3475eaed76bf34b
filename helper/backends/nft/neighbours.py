"""Other tools' nat redirects in nft's ruleset (`nft -j list ruleset`): native tables and
iptables-nft's `table ip nat` / `ip6 nat` alike.

From each nat base chain on prerouting or output, rules are walked in order,
following jump/goto, collecting every path that ends in dnat/redirect (iptables-nft's
DNAT/REDIRECT targets included) with the protocol and destination ports its matches
require. Matches podnat cannot read (named sets, xt matches, negations) count as
"any port"; returns and accepts before a redirect are not evaluated. Both err on the
side of a warning. Bounded by the caps of `helper.backends.neighbours`.
"""

# Annotations evaluated at import, no __future__ import: see helper/__init__.py.
from collections.abc import Iterable
from typing import Any, NamedTuple

from helper.backends.neighbours import (
    HOOKS,
    IPTABLES_NFT,
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

_FAMILIES = {
    "ip": frozenset({Family.IPV4}),
    "ip6": frozenset({Family.IPV6}),
    "inet": frozenset({Family.IPV4, Family.IPV6}),
}
_REDIRECTING_XT = ("DNAT", "REDIRECT")
Ports = tuple[Span, ...] | None  # None: any port


class _Base(NamedTuple):
    family: str
    table: str
    name: str
    hook: str
    priority: int


class _Walk:
    def __init__(self, rules: dict[tuple[str, str, str], list[list[Any]]]) -> None:
        self.rules = rules
        self.budget = MAX_RULES
        self.found: dict[NeighbourRedirect, None] = {}
        self.incomplete = ""

    def chain(self, base: _Base, name: str, proto: str | None, ports: Ports, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.incomplete = f"jumps nested deeper than {MAX_DEPTH}"
            return
        for expr in self.rules.get((base.family, base.table, name), []):
            if self.budget <= 0 or len(self.found) >= MAX_REDIRECTS:
                self.incomplete = f"more than {MAX_RULES} rules or {MAX_REDIRECTS} redirects"
                return
            self.budget -= 1
            self.rule(base, expr, proto, ports, depth)

    def rule(
        self, base: _Base, expr: list[Any], proto: str | None, ports: Ports, depth: int
    ) -> None:
        for item in expr if isinstance(expr, list) else ():
            if not isinstance(item, dict):
                continue
            if "match" in item:
                narrowed = _narrow(item["match"], proto, ports)
                if narrowed is None:
                    return  # this rule cannot match on the path so far
                proto, ports = narrowed
            elif "dnat" in item or "redirect" in item or _xt_redirect(item):
                self.found[
                    NeighbourRedirect(
                        backend="nft",
                        chain=_name(base),
                        hook=base.hook,
                        priority=base.priority,
                        families=_FAMILIES[base.family],
                        proto=proto,
                        ports=ports,
                    )
                ] = None
                return
            elif (verdict := item.get("jump") or item.get("goto")) and isinstance(verdict, dict):
                self.chain(base, str(verdict.get("target")), proto, ports, depth + 1)
                return


def read_neighbours(items: Iterable[dict[str, Any]], own: set[tuple[str, str]]) -> Neighbours:
    """The redirects of every nat base chain on prerouting/output outside podnat's `own`."""
    bases: list[_Base] = []
    rules: dict[tuple[str, str, str], list[list[Any]]] = {}
    for item in items:
        if (chain := item.get("chain")) and _is_nat_base(chain, own):
            bases.append(
                _Base(chain["family"], chain["table"], chain["name"], chain["hook"], chain["prio"])
            )
        elif (rule := item.get("rule")) and (rule.get("family"), rule.get("table")) not in own:
            key = (rule.get("family"), rule.get("table"), rule.get("chain"))
            rules.setdefault(key, []).append(rule.get("expr", []))
    walk = _Walk(rules)
    for base in bases:
        walk.chain(base, base.name, None, None, 0)
    return Neighbours(tuple(walk.found), walk.incomplete)


def _name(base: _Base) -> str:
    name = f"table {base.family} {base.table} chain {base.name}"
    # iptables-nft's own layout: its tables can be changed only through iptables-nft.
    if base.family in ("ip", "ip6") and base.table == "nat" and base.name.isupper():
        return f"{name} {IPTABLES_NFT}"
    return name


def _is_nat_base(chain: dict[str, Any], own: set[tuple[str, str]]) -> bool:
    return (
        chain.get("type") == "nat"
        and chain.get("hook") in HOOKS
        and chain.get("family") in _FAMILIES
        and isinstance(chain.get("prio"), int)
        and (chain.get("family"), chain.get("table")) not in own
    )


def _xt_redirect(item: dict[str, Any]) -> bool:
    xt = item.get("xt")
    return isinstance(xt, dict) and xt.get("type") == "target" and xt.get("name") in _REDIRECTING_XT


def _narrow(match: Any, proto: str | None, ports: Ports) -> tuple[str | None, Ports] | None:
    """The path's (proto, ports) after this match; None when they cannot both hold."""
    if not isinstance(match, dict):
        return proto, ports
    left, right, equal = match.get("left"), match.get("right"), match.get("op") in ("==", "in")
    if isinstance(left, dict) and isinstance(payload := left.get("payload"), dict):
        if payload.get("field") != "dport":
            return proto, ports
        return _with(proto, ports, payload.get("protocol"), _ports(right) if equal else None)
    meta = left.get("meta") if isinstance(left, dict) else None
    if isinstance(meta, dict) and meta.get("key") == "l4proto" and equal:
        return _with(proto, ports, right, None)
    return proto, ports


def _with(
    proto: str | None, ports: Ports, new_proto: Any, new_ports: Ports
) -> tuple[str | None, Ports] | None:
    if isinstance(new_proto, str):
        if proto is not None and proto != new_proto:
            return None
        proto = new_proto
    if new_ports is None:
        return proto, ports
    if ports is None:
        return proto, new_ports
    both = intersect(ports, new_ports)
    return (proto, both) if both else None


def _ports(right: Any) -> Ports:
    """Ports of a match's right side: a number, a range, an anonymous set; else any."""
    spans: list[Span] = []
    values = right["set"] if isinstance(right, dict) and "set" in right else [right]
    if not isinstance(values, list):
        return None
    for value in values[:MAX_SPANS]:
        if isinstance(value, int):
            spans.append((value, value))
        elif isinstance(value, dict) and isinstance(bounds := value.get("range"), list):
            if len(bounds) != 2 or not all(isinstance(b, int) for b in bounds):
                return None
            spans.append((bounds[0], bounds[1]))
        else:
            return None  # a named set, a service name, a concatenation: unknown
    if len(values) > MAX_SPANS:
        return None
    return merge_spans(spans)
