"""ResolvedPlan → xtables rules for the nat table, one ruleset per IP family.

Rules live only in podnat's own chains; the built-in PREROUTING/OUTPUT chains get
one jump each, first, so a redirect the user asked for is not shadowed.
The text form is iptables-save's, so it reads like the `iptables -t nat -A …`
command it replaces, and `verify` can diff it against what the kernel holds.
"""

# Annotations evaluated at import, no __future__ import: see helper/__init__.py.
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from helper.plan.model import Family, Redirect, RedirectKind, ResolvedPlan

if TYPE_CHECKING:
    from helper.plan.model import IPNetwork

PREROUTING_CHAIN = "PODNAT-PREROUTING"
OUTPUT_CHAIN = "PODNAT-OUTPUT"
OWN_CHAINS = (PREROUTING_CHAIN, OUTPUT_CHAIN)
HOOKS = {PREROUTING_CHAIN: "PREROUTING", OUTPUT_CHAIN: "OUTPUT"}
COMMANDS = {Family.IPV4: "iptables", Family.IPV6: "ip6tables"}
FAMILIES = (Family.IPV4, Family.IPV6)
FAMILY_NAMES = {Family.IPV4: "IPv4", Family.IPV6: "IPv6"}

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


class XtRuleset(NamedTuple):
    """podnat's part of one family's nat table: its chains, their jumps and rules."""

    family: Family
    chains: tuple[str, ...]
    rules: tuple[XtRule, ...]

    def listing(self) -> str:
        lines = [f":{chain} - [0:0]" for chain in self.chains]
        lines += [rule.save_line() for rule in self.rules]
        return "\n".join(lines) + "\n"


def render_rulesets(resolved: ResolvedPlan) -> tuple[XtRuleset, ...]:
    """Every family's ruleset. A family's rules differ from another's only by its
    sources, so families with the same sources (none: the usual case) share one
    rendering: a thousand-rule plan is rendered once, not once per family."""
    out: list[XtRuleset] = []
    for family in resolved.families:
        same = next(
            (r for r in out if resolved.sources_for(r.family) == resolved.sources_for(family)),
            None,
        )
        if same is not None:
            out.append(XtRuleset(family, same.chains, same.rules))
        else:
            out.append(render_ruleset(resolved, family))
    return tuple(out)


def render_text(resolved: ResolvedPlan) -> str:
    """All families, each headed by the command it is for."""
    return rulesets_text(render_rulesets(resolved))


def rulesets_text(rulesets: Iterable[XtRuleset]) -> str:
    parts = [f"# {COMMANDS[r.family]} -t nat\n{r.listing()}" for r in rulesets]
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


def join_listings(listings: Iterable[tuple[Family, str | None]]) -> str:
    """One listing for every family, each headed by its command (empty parts left out)."""
    return "\n".join(f"# {COMMANDS[f]} -t nat\n{text}" for f, text in listings if text)


def split_listing(text: str) -> dict[Family, str]:
    """The per-family parts of a listing `join_listings` made (its headers split it)."""
    by_header = {f"# {command} -t nat": family for family, command in COMMANDS.items()}
    parts: dict[Family, list[str]] = {}
    current: list[str] | None = None
    for line in text.split("\n"):
        if line in by_header:
            current = parts.setdefault(by_header[line], [])
        elif current is not None:
            current.append(line)
    return {family: "\n".join(lines).rstrip("\n") for family, lines in parts.items()}


def family_drift(expected: str, live: str) -> str | None:
    """When `live` differs from `expected`: name a split between families (some hold
    the plan and others do not), if that is the case."""
    planned, held = split_listing(expected), split_listing(live)
    same = [f for f in FAMILIES if f in planned and planned[f] == held.get(f, "")]
    differ = [f for f in FAMILIES if planned.get(f, "") != held.get(f, "")]
    if not (same and differ):
        return None
    return (
        f"{_names(same)} {'holds' if len(same) == 1 else 'hold'} the planned ruleset, "
        f"{_names(differ)} {'does' if len(differ) == 1 else 'do'} not: an interrupted "
        "iptables-legacy apply (or a change by another tool); run apply again"
    )


def _names(families: list[Family]) -> str:
    return " and ".join(FAMILY_NAMES[f] for f in families)
