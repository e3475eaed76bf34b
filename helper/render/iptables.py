"""ResolvedPlan → xtables rules for the nat table, one ruleset per IP family.

Rules live only in podnat's own chains; the built-in PREROUTING/OUTPUT chains get
one jump each, first, so a redirect the user asked for is not shadowed.
The text form is iptables-save's, so it reads like the `iptables -t nat -A …`
command it replaces, and `verify` can diff it against what the kernel holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from helper.model import Family, IPNetwork, Redirect, RedirectKind, ResolvedPlan

PREROUTING_CHAIN = "PODNAT-PREROUTING"
OUTPUT_CHAIN = "PODNAT-OUTPUT"
OWN_CHAINS = (PREROUTING_CHAIN, OUTPUT_CHAIN)
HOOKS = {PREROUTING_CHAIN: "PREROUTING", OUTPUT_CHAIN: "OUTPUT"}
COMMANDS = {Family.IPV4: "iptables", Family.IPV6: "ip6tables"}

Params = tuple[tuple[str, str], ...]


# Named tuples, not dataclasses: a thousand-rule pod renders a thousand of each,
# and a frozen dataclass costs ~5x more to construct.
class XtMatch(NamedTuple):
    name: str
    params: Params


class XtRule(NamedTuple):
    """One rule, in the terms python-iptables builds and reads."""

    chain: str
    target: str
    source: str | None = None  # network with prefix length, e.g. 10.0.0.0/24
    proto: str | None = None
    matches: tuple[XtMatch, ...] = ()
    target_params: Params = ()
    # The numbers behind --dport and --to-destination (first, last, to-min, to-max,
    # base or 0), so building a thousand entries needn't parse this rule's own text.
    ports: tuple[int, int, int, int, int] | None = None

    def save_line(self) -> str:
        words = ["-A", self.chain]
        if self.source is not None:
            words += ["-s", self.source]
        if self.proto is not None:
            words += ["-p", self.proto]
        for match in self.matches:
            words += ["-m", match.name]
            for key, value in match.params:
                words += [f"--{key}", value]
        words += ["-j", self.target]
        for key, value in self.target_params:
            words += [f"--{key}", value]
        return " ".join(words)


@dataclass(frozen=True)
class XtRuleset:
    """podnat's part of one family's nat table: its chains, their jumps and rules."""

    family: Family
    chains: tuple[str, ...]
    rules: tuple[XtRule, ...]

    def listing(self) -> str:
        lines = [f":{chain} - [0:0]" for chain in self.chains]
        lines += [rule.save_line() for rule in self.rules]
        return "\n".join(lines) + "\n"


def render_rulesets(resolved: ResolvedPlan) -> tuple[XtRuleset, ...]:
    return tuple(render_ruleset(resolved, family) for family in resolved.families)


def render_text(resolved: ResolvedPlan) -> str:
    """All families, each headed by the command it is for."""
    parts = []
    for ruleset in render_rulesets(resolved):
        parts.append(f"# {COMMANDS[ruleset.family]} -t nat\n{ruleset.listing()}")
    return "\n".join(parts) if parts else "# no IP family to redirect\n"


def render_ruleset(resolved: ResolvedPlan, family: Family) -> XtRuleset:
    chains = [PREROUTING_CHAIN] + ([OUTPUT_CHAIN] if resolved.local else [])
    rules = [XtRule(chain=HOOKS[chain], target=chain) for chain in chains]
    sources: tuple[IPNetwork, ...] | tuple[None] = resolved.sources_for(family) or (None,)
    for redirect in resolved.redirects:
        for source in sources:
            rules.append(_dnat(PREROUTING_CHAIN, redirect, str(source) if source else None))
    if resolved.local:
        local = (XtMatch("addrtype", (("dst-type", "LOCAL"),)),)
        rules += [_dnat(OUTPUT_CHAIN, r, None, local) for r in resolved.redirects]
    return XtRuleset(family, tuple(chains), tuple(rules))


def _dnat(
    chain: str, redirect: Redirect, source: str | None, extra: tuple[XtMatch, ...] = ()
) -> XtRule:
    proto = redirect.proto.value
    src, dst = redirect.from_ports, redirect.to_ports
    dport = str(src.first) if src.is_single else f"{src.first}:{src.last}"
    if redirect.kind is RedirectKind.SHIFT:
        # The kernel's base-port form shifts 1:1 (8003 → 9003); a bare range would be a pool.
        to = f":{dst.first}-{dst.last}/{src.first}"
        ports = (src.first, src.last, dst.first, dst.last, src.first)
    else:
        to = f":{dst.first}"
        ports = (src.first, src.last, dst.first, dst.first, 0)
    return XtRule(
        chain=chain,
        target="DNAT",
        source=source,
        proto=proto,
        matches=(*extra, XtMatch(proto, (("dport", dport),))),
        target_params=(("to-destination", to),),
        ports=ports,
    )
