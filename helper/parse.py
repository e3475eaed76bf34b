"""Annotations → RedirectPlan, or every problem found, at once.

Grammar of `podnat.io/redirect` (whitespace around items is ignored):

    value  = item *( "," item )
    item   = ports ":" ports [ "/" proto ]
    ports  = port [ "-" port ]            ; inclusive range
    port   = 1*5DIGIT                     ; 1-65535
    proto  = "tcp" / "udp" / "sctp"       ; default tcp, case-insensitive
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from helper import annotations as keys
from helper.errors import PodnatError
from helper.model import (
    PORT_MAX,
    PORT_MIN,
    FamilyMode,
    IPNetwork,
    PortRange,
    Proto,
    Redirect,
    RedirectPlan,
)

_ITEM = re.compile(r"(?P<from>[^:/]*):(?P<to>[^:/]*)(?:/(?P<proto>.*))?", re.DOTALL)
_PORTS = re.compile(r"(?P<first>[0-9]+)(?:-(?P<last>[0-9]+))?")
_BOOLS = {"true": True, "false": False}

T = TypeVar("T")
_Reporter = Callable[[str], None]


@dataclass(frozen=True)
class Problem:
    """One reason the annotations are invalid."""

    annotation: str
    item: str | None
    reason: str

    def __str__(self) -> str:
        if self.item is None:
            return f"{self.annotation}: {self.reason}"
        return f'{self.annotation}: "{self.item}": {self.reason}'


# A message names at most this many problems, then says how many more there were:
# a hostile annotation must not become a megabyte-long Event or admission answer.
MAX_REPORTED_PROBLEMS = 20


class InvalidPlanError(PodnatError):
    """The annotations cannot be planned.

    `problems` holds the first MAX_REPORTED_PROBLEMS reasons; `omitted` counts the rest.
    """

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems[:MAX_REPORTED_PROBLEMS])
        self.omitted = max(0, len(problems) - MAX_REPORTED_PROBLEMS)
        super().__init__("; ".join(self.lines()))

    def lines(self) -> list[str]:
        """One line per reported problem, and "… and K more problems" when some were left out."""
        lines = [str(p) for p in self.problems]
        if self.omitted:
            lines.append(f"... and {self.omitted} more problem{'s' if self.omitted > 1 else ''}")
        return lines


def parse_plan(annotations: dict[str, str]) -> RedirectPlan:
    """Validate the podnat annotations of a pod. Raises InvalidPlanError listing every problem."""
    problems: list[Problem] = []
    for key in keys.podnat_keys(annotations):
        if key not in keys.KNOWN_KEYS:
            # Compare what follows the shared prefix, or every key looks alike.
            names = [k.removeprefix(keys.PREFIX) for k in keys.KNOWN_KEYS]
            hint = difflib.get_close_matches(key.removeprefix(keys.PREFIX), names, n=1)
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
    sources = _parse_sources(annotations.get(keys.SOURCES), problems)
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
        redirects=tuple(sorted(redirects)), sources=sources, local=local, families=families
    )


def _split(raw: str, annotation: str, problems: list[Problem]) -> list[str]:
    if not raw.strip():
        problems.append(Problem(annotation, None, "value is empty"))
        return []
    items = [item.strip() for item in raw.split(",")]
    for position, item in enumerate(items, start=1):
        if not item:
            problems.append(Problem(annotation, None, f"item {position} is empty (stray comma?)"))
    return [item for item in items if item]


def _parse_redirects(raw: str, problems: list[Problem]) -> list[Redirect]:
    redirects: list[tuple[str, Redirect]] = []
    for item in _split(raw, keys.REDIRECT, problems):
        redirect = _parse_redirect(item, problems)
        if redirect is not None:
            redirects.append((item, redirect))
    for i, (item, redirect) in enumerate(redirects):
        for other_item, other in redirects[:i]:
            if other.proto is redirect.proto and other.from_ports.overlaps(redirect.from_ports):
                problems.append(
                    Problem(
                        keys.REDIRECT,
                        item,
                        f"{redirect.proto} port {_overlap(redirect, other)} is already "
                        f'redirected by "{other_item}"',
                    )
                )
    return [redirect for _, redirect in redirects]


def _overlap(a: Redirect, b: Redirect) -> PortRange:
    return PortRange(
        max(a.from_ports.first, b.from_ports.first), min(a.from_ports.last, b.from_ports.last)
    )


def _parse_redirect(item: str, problems: list[Problem]) -> Redirect | None:
    def bad(reason: str) -> None:
        problems.append(Problem(keys.REDIRECT, item, reason))

    match = _ITEM.fullmatch(item)
    if match is None:
        bad("expected FROM:TO[/PROTO], e.g. 4321:1234 or 5353:53/udp")
        return None
    proto_text = (match["proto"] or "tcp").strip().lower()
    try:
        proto = Proto(proto_text)
    except ValueError:
        bad(f"protocol {proto_text!r} is not one of tcp, udp, sctp")
        proto = None
    from_ports = _parse_ports(match["from"].strip(), "FROM", bad)
    to_ports = _parse_ports(match["to"].strip(), "TO", bad)
    if proto is None or from_ports is None or to_ports is None:
        return None
    if not to_ports.is_single and len(to_ports) != len(from_ports):
        if from_ports.is_single:
            bad("a single port cannot be redirected to a range")
        else:
            bad(
                f"ranges of unequal length ({len(from_ports)} and {len(to_ports)} ports): "
                "TO must be one port or a range of the same length"
            )
        return None
    if from_ports == to_ports:
        bad("redirects a port to itself")
        return None
    return Redirect(proto, from_ports, to_ports)


def _parse_ports(text: str, side: str, bad: _Reporter) -> PortRange | None:
    match = _PORTS.fullmatch(text)
    if match is None:
        bad(f"{side} {text!r} is not a port or a range A-B" if text else f"{side} is missing")
        return None
    first = int(match["first"])
    last = int(match["last"]) if match["last"] is not None else first
    for port in (first, last):
        if not PORT_MIN <= port <= PORT_MAX:
            bad(f"port {port} is out of range {PORT_MIN}-{PORT_MAX}")
            return None
    if last < first:
        bad(f"range {first}-{last} is reversed; did you mean {last}-{first}?")
        return None
    return PortRange(first, last)


def _parse_sources(raw: str | None, problems: list[Problem]) -> tuple[IPNetwork, ...] | None:
    if raw is None:
        return None
    networks: list[IPNetwork] = []
    for item in _split(raw, keys.SOURCES, problems):
        try:
            networks.append(ipaddress.ip_network(item, strict=True))
        except ValueError:
            problems.append(Problem(keys.SOURCES, item, _network_reason(item)))
    v4 = ipaddress.collapse_addresses(n for n in networks if n.version == 4)
    v6 = ipaddress.collapse_addresses(n for n in networks if n.version == 6)
    return (*v4, *v6)


def _network_reason(item: str) -> str:
    try:
        loose = ipaddress.ip_network(item, strict=False)
    except ValueError:
        return "is not an IP address or CIDR"
    return f"has host bits set; did you mean {loose}?"


def _parse_choice(
    raw: str | None, annotation: str, choices: dict[str, T], default: T, problems: list[Problem]
) -> T:
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in choices:
        return choices[value]
    if value:
        problems.append(Problem(annotation, raw, f"must be one of {'|'.join(choices)}"))
    else:
        problems.append(Problem(annotation, None, "value is empty"))
    return default
