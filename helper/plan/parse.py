"""Annotations → RedirectPlan, or every problem found, at once.

Grammar of `podnat.io/redirect` (whitespace around items is ignored):

    value  = item *( "," item )
    item   = ports ":" ports [ "/" proto ]
    ports  = port [ "-" port ]            ; inclusive range
    port   = 1*5DIGIT                     ; 1-65535
    proto  = "tcp" / "udp" / "sctp"       ; default tcp, case-insensitive

Bounded (helper.plan.limits): each value at most 64 KiB, 2,000 redirect items,
1,000 source items, 100 characters an item; one sort and sweep finds overlaps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from helper.plan import annotations as keys
from helper.plan.limits import MAX_ITEM_CHARS, MAX_REDIRECT_ITEMS, shown
from helper.plan.model import (
    PORT_MAX,
    PORT_MIN,
    FamilyMode,
    PortRange,
    Proto,
    Redirect,
    RedirectPlan,
)
from helper.plan.parse_lists import parse_sources, split_items, within_size
from helper.plan.problems import MAX_REPORTED_PROBLEMS, InvalidPlanError, Problem

_PORT_DIGITS = len(str(PORT_MAX))
_BOOLS = {"true": True, "false": False}

T = TypeVar("T")
_Reporter = Callable[[str], None]

# Where they were defined first; the CLI, inject and the webhook import them from here.
__all__ = ["MAX_REPORTED_PROBLEMS", "InvalidPlanError", "Problem", "parse_plan"]


def parse_plan(annotations: dict[str, str]) -> RedirectPlan:
    """Validate the podnat annotations of a pod. Raises InvalidPlanError listing every problem."""
    problems: list[Problem] = []
    for key in keys.podnat_keys(annotations):
        if key not in keys.KNOWN_KEYS:
            # Compare what follows the shared prefix, or every key looks alike.
            names = [k.removeprefix(keys.PREFIX) for k in keys.KNOWN_KEYS]
            name = key.removeprefix(keys.PREFIX)[:MAX_ITEM_CHARS]
            import difflib  # noqa: PLC0415 - only for a misspelt name, off the apply path

            hint = difflib.get_close_matches(name, names, n=1)
            reason = "unknown podnat annotation"
            if hint:
                reason += f"; did you mean {keys.PREFIX}{hint[0]}?"
            else:
                reason += f"; known: {', '.join(keys.KNOWN_KEYS)}"
            problems.append(Problem(key, None, reason))

    raw = annotations.get(keys.REDIRECT)
    if raw is None:
        others = [k for k in keys.KNOWN_KEYS if k in annotations]
        problems.extend(Problem(k, None, f"has no effect without {keys.REDIRECT}") for k in others)
        if problems:
            raise InvalidPlanError(problems)
        return RedirectPlan(redirects=())

    redirects = _parse_redirects(raw, problems)
    sources = parse_sources(annotations.get(keys.SOURCES), problems)
    local = _parse_choice(annotations.get(keys.LOCAL), keys.LOCAL, _BOOLS, False, problems)
    families = _parse_choice(
        annotations.get(keys.FAMILIES),
        keys.FAMILIES,
        {m.value: m for m in FamilyMode},
        FamilyMode.AUTO,
        problems,
    )
    if sources is not None:
        for family in families.explicit_families():
            version = 4 if family.value == "ipv4" else 6
            if not any(net.version == version for net in sources):
                problems.append(
                    Problem(
                        keys.SOURCES,
                        None,
                        f"lists no IPv{version} source, but {keys.FAMILIES} asks for "
                        f"{family.value}: nothing of that family would be redirected",
                    )
                )
    if problems:
        raise InvalidPlanError(problems)
    return RedirectPlan(
        redirects=tuple(sorted(redirects, key=_order)),
        sources=sources,
        local=local,
        families=families,
    )


def _order(r: Redirect) -> tuple[str, int, int, int, int]:
    """Redirect's own field order as a plain tuple: sorting 2,000 nested named tuples is slower."""
    return (r.proto, r.from_ports.first, r.from_ports.last, r.to_ports.first, r.to_ports.last)


def _parse_redirects(raw: str, problems: list[Problem]) -> list[Redirect]:
    redirects: list[tuple[str, Redirect]] = []
    for item in split_items(raw, keys.REDIRECT, MAX_REDIRECT_ITEMS, problems):
        redirect = _parse_redirect(item, problems)
        if redirect is not None:
            redirects.append((item, redirect))
    problems.extend(_overlaps(redirects))
    return [redirect for _, redirect in redirects]


def _overlaps(redirects: list[tuple[str, Redirect]]) -> list[Problem]:
    """Each item whose FROM ports an earlier item (by protocol, then first port) covers.

    One sort and one sweep, not every pair: 2,000 duplicates cost 2,000 steps and
    give 1,999 problems, not 2 million. An item overlaps some earlier one exactly
    when it starts at or before the furthest port the earlier ones reach.
    """
    order = sorted(
        range(len(redirects)),
        key=lambda i: (redirects[i][1].proto, redirects[i][1].from_ports.first, i),
    )
    found: list[tuple[int, Problem]] = []
    cover: tuple[str, Redirect] | None = None
    for index in order:
        item, redirect = redirects[index]
        same_proto = cover is not None and cover[1].proto is redirect.proto
        if cover is not None and same_proto and redirect.from_ports.overlaps(cover[1].from_ports):
            reason = (
                f"{redirect.proto} port {_overlap(redirect, cover[1])} is already "
                f'redirected by "{shown(cover[0])}"'
            )
            found.append((index, Problem(keys.REDIRECT, item, reason)))
        if cover is None or not same_proto or redirect.from_ports.last > cover[1].from_ports.last:
            cover = (item, redirect)
    return [problem for _, problem in sorted(found, key=lambda pair: pair[0])]


def _overlap(a: Redirect, b: Redirect) -> PortRange:
    return PortRange(
        max(a.from_ports.first, b.from_ports.first), min(a.from_ports.last, b.from_ports.last)
    )


def _parse_redirect(item: str, problems: list[Problem]) -> Redirect | None:
    def bad(reason: str) -> None:
        problems.append(Problem(keys.REDIRECT, item, reason))

    parts = split_item(item)
    if parts is None:
        bad("expected FROM:TO[/PROTO], e.g. 4321:1234 or 5353:53/udp")
        return None
    from_text, to_text, proto_given = parts
    proto_text = (proto_given or "tcp").strip().lower()
    try:
        proto = Proto(proto_text)
    except ValueError:
        bad(f"protocol '{shown(proto_text)}' is not one of tcp, udp, sctp")
        proto = None
    from_ports = _parse_ports(from_text.strip(), "FROM", bad)
    to_ports = _parse_ports(to_text.strip(), "TO", bad)
    if proto is None or from_ports is None or to_ports is None:
        return None
    if not to_ports.is_single and to_ports.size != from_ports.size:
        if from_ports.is_single:
            bad("a single port cannot be redirected to a range")
        else:
            bad(
                f"ranges of unequal length ({from_ports.size} and {to_ports.size} ports): "
                "TO must be one port or a range of the same length"
            )
        return None
    if from_ports == to_ports:
        bad("redirects a port to itself")
        return None
    return Redirect(proto, from_ports, to_ports)


def _parse_ports(text: str, side: str, bad: _Reporter) -> PortRange | None:
    parts = split_range(text)
    if parts is None:
        bad(
            f"{side} '{shown(text)}' is not a port or a range A-B" if text else f"{side} is missing"
        )
        return None
    first_digits, last_digits = parts
    for digits in (first_digits, last_digits):
        # More than 5 digits is out of range whatever they say: no int() of a huge string.
        if digits is not None and len(digits) > _PORT_DIGITS:
            bad(f"port {shown(digits)} is out of range {PORT_MIN}-{PORT_MAX}")
            return None
    first = int(first_digits)
    last = int(last_digits) if last_digits is not None else first
    for port in (first, last):
        if not PORT_MIN <= port <= PORT_MAX:
            bad(f"port {port} is out of range {PORT_MIN}-{PORT_MAX}")
            return None
    if last < first:
        bad(f"range {first}-{last} is reversed; did you mean {last}-{first}?")
        return None
    return PortRange(first, last)


# The two shapes below are split with str methods, not regular expressions: compiling
# those was ~1 ms each of every init container's start (measured on the runtime venv).


def split_item(item: str) -> tuple[str, str, str | None] | None:
    """FROM, TO and PROTO (None: no "/") of `FROM:TO[/PROTO]`; None for any other shape.

    FROM and TO hold no ":" or "/"; PROTO is everything after the first "/".
    """
    head, slash, proto = item.partition("/")
    from_text, colon, to_text = head.partition(":")
    if not colon or ":" in to_text:
        return None
    return from_text, to_text, proto if slash else None


def split_range(text: str) -> tuple[str, str | None] | None:
    """The ASCII digits of `A` or `A-B` (B None for a single port); None for anything else."""
    first, dash, last = text.partition("-")
    if not _ascii_digits(first) or (dash and not _ascii_digits(last)):
        return None
    return first, last if dash else None


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()  # "" is not; nor are "²" or "٣"


def _parse_choice(
    raw: str | None, annotation: str, choices: dict[str, T], default: T, problems: list[Problem]
) -> T:
    if raw is None or not within_size(raw, annotation, problems):
        return default
    value = raw.strip().lower()
    if value in choices:
        return choices[value]
    if value:
        problems.append(Problem(annotation, raw, f"must be one of {'|'.join(choices)}"))
    else:
        problems.append(Problem(annotation, None, "value is empty"))
    return default
