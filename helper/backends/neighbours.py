"""Other tools' nat redirects in the namespace, and whose rule a connection meets first.

For the first packet of a connection, the kernel's nat core runs the nat chains
registered on a hook in priority order and stops at the first one that binds a
DNAT/REDIRECT: a lower priority number wins. Chains at the *same* priority run
latest registration first (measured: a neighbour chain created after podnat's
table wins, podnat's next apply wins back) — which podnat cannot control (it
re-creates its nft table on every apply; other tools re-create theirs when they
like), so that order is undefined. podnat's own hooks: the nft table's chains at `dstnat` (-100)
and, with iptables-legacy, its jumps first in the legacy nat table, which
registers at NF_IP_PRI_NAT_DST (-100) as well.

Backends read the neighbours (bounded by the caps below); `judge` compares them
with podnat's redirects without any quadratic blow-up (each podnat redirect is
checked against at most MAX_REDIRECTS neighbour rules, each by bisection).
"""

# Annotations evaluated at import, no __future__ import: see helper/__init__.py.
import bisect
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from helper.plan.model import Family, Redirect, ResolvedPlan

DSTNAT = -100  # nft's `dstnat` on prerouting and output; iptable_nat's priority too
LEGACY = "iptables-legacy"
IPTABLES_NFT = "(iptables-nft)"  # how the nat tables iptables-nft keeps are named in messages
HOOKS = ("prerouting", "output")
MAX_RULES = 2000  # rules a backend walks (jumps followed) per family before it stops
MAX_REDIRECTS = 64  # neighbour redirects kept per backend
MAX_SPANS = 256  # port spans kept per neighbour redirect
MAX_DEPTH = 16  # nested jumps followed
MAX_MESSAGES = 5  # lines logged per kind of finding; then "... and K more"

Span = tuple[int, int]  # an inclusive port range


# Named tuples and a plain class, not dataclasses: each dataclass costs ~0.5 ms to
# define, and this module is imported in every init container's start.
class NeighbourRedirect(NamedTuple):
    """One path through another tool's nat chain that ends in DNAT or REDIRECT.

    `proto` None: any protocol; `ports` None: any port (or a match podnat cannot read,
    counted as matching: better a warning too many than a silent shadow).
    """

    backend: str  # "nft" (native tables and iptables-nft) or "iptables-legacy"
    chain: str  # as a user names it: "table ip other chain pre"
    hook: str  # "prerouting" or "output"
    priority: int
    families: frozenset[Family]
    proto: str | None
    ports: tuple[Span, ...] | None

    def covers(self, redirect: Redirect) -> Span | None:
        """The first span of podnat's FROM ports this rule redirects, if any."""
        if self.proto is not None and self.proto != redirect.proto.value:
            return None
        first, last = redirect.from_ports.first, redirect.from_ports.last
        if self.ports is None:
            return (first, last)
        # Sorted, merged, disjoint: the last span starting at or before `last` is the
        # only one that can tell (every earlier one ends before it starts).
        index = bisect.bisect_right(self.ports, (last, 65536)) - 1
        if index < 0 or self.ports[index][1] < first:
            return None
        lo, hi = self.ports[index]
        return (max(lo, first), min(hi, last))

    def what(self, span: Span) -> str:
        proto = self.proto or "any protocol"
        if self.ports is None:
            return f"{proto} on any port"
        return f"{proto} dport {_span(span)}"


class Neighbours(NamedTuple):
    redirects: tuple[NeighbourRedirect, ...] = ()
    incomplete: str = ""  # why reading stopped early (a cap), if it did


def merge_spans(spans: Iterable[Span]) -> tuple[Span, ...]:
    out: list[list[int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi) for lo, hi in out)


def intersect(a: tuple[Span, ...], b: tuple[Span, ...]) -> tuple[Span, ...]:
    """Ports in both sorted, merged span lists (one linear sweep)."""
    out: list[Span] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def priority_text(priority: int) -> str:
    offset = priority - DSTNAT
    return "dstnat" if offset == 0 else f"dstnat{offset:+d}"


class Findings:
    """What the judgement found: lines per kind (capped) and how many of each."""

    def __init__(self) -> None:
        self.shadowed: list[str] = []
        self.undefined: list[str] = []
        self.first: list[str] = []
        self.notes: list[str] = []
        self.counts = {"s": 0, "u": 0, "f": 0}

    def summary(self) -> str:
        """What the outcome's one line (and so the Event) adds; empty when nothing."""
        parts = []
        if self.shadowed:
            parts.append(_more(self.shadowed[0], self.counts["s"]))
        if self.undefined:
            parts.append("WARNING " + _more(self.undefined[0], self.counts["u"]))
        if not parts and self.first:
            parts.append(_more(self.first[0], self.counts["f"]))
        return "; ".join(parts)

    @property
    def warning(self) -> bool:
        return bool(self.shadowed or self.undefined)


def judge(backend: str, resolved: ResolvedPlan, found: Sequence[Neighbours]) -> Findings:
    """Which rule wins, for each podnat redirect that a neighbour's rule also redirects."""
    out = Findings()
    hooks = HOOKS if resolved.local else HOOKS[:1]
    families = set(resolved.families)
    others = [
        n for group in found for n in group.redirects if n.hook in hooks and families & n.families
    ]
    for group in found:
        if group.incomplete:
            out.notes.append(
                f"other tools' nat rules only partly checked ({group.incomplete}): "
                "a rule beyond that may still redirect podnat's ports first"
            )
    for redirect in resolved.redirects if others else ():
        _judge_one(backend, redirect, others, out)
    mixed = sorted(
        {
            n.backend
            for n in others
            if (n.backend == LEGACY) != (backend == LEGACY) and n.priority == DSTNAT
        }
    )
    if mixed and not out.undefined and not out.shadowed:
        out.notes.append(
            f"other tools' nat redirects are in {' and '.join(mixed)} too, whose hooks run at "
            f"podnat's priority in registration order; none redirects podnat's ports"
        )
    return out


def _judge_one(
    backend: str, redirect: Redirect, others: Sequence[NeighbourRedirect], out: Findings
) -> None:
    name = f"podnat's {_arrow(redirect)}"
    hits = [(n, span) for n in others if (span := n.covers(redirect)) is not None]
    if not hits:
        return
    before = [(n, s) for n, s in hits if _order(backend, n) == "before"]
    same = [(n, s) for n, s in hits if _order(backend, n) == "same"]
    if before:
        n, span = min(before, key=lambda hit: hit[0].priority)
        _add(
            out.shadowed,
            out,
            "s",
            f"{name} is shadowed by {n.chain} (priority {priority_text(n.priority)}) "
            f"which redirects {n.what(span)} first",
        )
    elif same:
        n, span = same[0]
        _add(
            out.undefined,
            out,
            "u",
            f"order undefined: {name} ({_own_hook(backend)}) and {n.chain}, which redirects "
            f"{n.what(span)}, hook in at the same priority (dstnat, -100), where the kernel runs "
            f"the chain registered last first: either may win. To fix: "
            f"{_advice(backend, n, span)}",
        )
    else:
        n, span = hits[0]
        where = (
            "its jump is first in the legacy nat chain"
            if backend == LEGACY and n.backend == LEGACY
            else f"priority dstnat runs before {priority_text(n.priority)}"
        )
        _add(
            out.first,
            out,
            "f",
            f"{name} runs first ({where}); {n.chain} also redirects {n.what(span)}",
        )


def _order(backend: str, n: NeighbourRedirect) -> str:
    """Whether the neighbour's chain runs before podnat's, after it, or at its priority."""
    if backend == LEGACY and n.backend == LEGACY:
        return "after"  # podnat inserts its jump first in PREROUTING/OUTPUT
    if n.priority < DSTNAT:
        return "before"
    return "after" if n.priority > DSTNAT else "same"


def _advice(backend: str, n: NeighbourRedirect, span: Span) -> str:
    port = f"{n.proto or 'any protocol'} dport {_span(span)}"
    if n.backend == LEGACY:
        return (
            f"apply with --backend iptables-legacy (podnat's jump then comes first in the "
            f"legacy nat chain), or remove the other rule for {port}"
        )
    fixes = [f"remove or narrow its rule for {port}", "or redirect another port"]
    if not n.chain.endswith(IPTABLES_NFT):  # a native table can move; iptables-nft's cannot
        fixes.insert(1, f"give {n.chain} a priority after dstnat (dstnat+1 lets podnat run first)")
    return ", ".join(fixes)


def _own_hook(backend: str) -> str:
    if backend == LEGACY:
        return "iptables-legacy nat table, priority dstnat"
    return "table inet podnat, priority dstnat"


def _arrow(redirect: Redirect) -> str:
    text = f"{redirect.from_ports}→{redirect.to_ports}"
    return text if redirect.proto.value == "tcp" else f"{text}/{redirect.proto.value}"


def _span(span: Span) -> str:
    return str(span[0]) if span[0] == span[1] else f"{span[0]}-{span[1]}"


def _add(bucket: list[str], out: Findings, key: str, line: str) -> None:
    out.counts[key] += 1
    if len(bucket) < MAX_MESSAGES:
        bucket.append(line)


def _more(line: str, count: int) -> str:
    return line if count <= 1 else f"{line} (and {count - 1} more, see the log)"
