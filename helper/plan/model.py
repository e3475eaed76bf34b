"""The redirect plan: what the annotations ask for, validated and normalised.

Pure data. Nothing here touches the kernel, the filesystem or the network.
Named tuples rather than pydantic models or dataclasses: importing pydantic and
building its schemas costs ~110 ms here, and dataclasses (their import and the code
each class generates) ~20 ms of an init container's start (see README, "No pydantic
on the apply path"). `helper.plan_json` gives the plan its JSON form.
"""

# Annotations evaluated at import, no __future__ import: see helper/__init__.py.
import enum
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # ipaddress is imported only where sources are parsed or rendered
    import ipaddress

    IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PORT_MIN = 1
PORT_MAX = 65535


class Proto(enum.StrEnum):
    TCP = "tcp"
    UDP = "udp"
    SCTP = "sctp"


class Family(enum.StrEnum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"


class FamilyMode(enum.StrEnum):
    """`podnat.io/ip-families`: which families get rules."""

    AUTO = "auto"  # each family the pod has a global address for
    IPV4 = "ipv4"
    IPV6 = "ipv6"
    DUAL = "dual"

    def explicit_families(self) -> tuple[Family, ...]:
        """The families asked for by name; empty for `auto`."""
        return {
            FamilyMode.AUTO: (),
            FamilyMode.IPV4: (Family.IPV4,),
            FamilyMode.IPV6: (Family.IPV6,),
            FamilyMode.DUAL: (Family.IPV4, Family.IPV6),
        }[self]


class _Ports(NamedTuple):
    first: int
    last: int


class PortRange(_Ports):
    """An inclusive range of ports; a single port has first == last."""

    __slots__ = ()

    def __new__(cls, first: int, last: int) -> "PortRange":
        if not PORT_MIN <= first <= last <= PORT_MAX:
            raise ValueError(f"invalid port range {first}-{last}")
        return super().__new__(cls, first, last)

    @classmethod
    def single(cls, port: int) -> "PortRange":
        return cls(port, port)

    @property
    def size(self) -> int:
        """How many ports (not `len`: a tuple's length is its two fields)."""
        return self.last - self.first + 1

    @property
    def is_single(self) -> bool:
        return self.first == self.last

    def overlaps(self, other: "PortRange") -> bool:
        return self.first <= other.last and other.first <= self.last

    def __str__(self) -> str:
        return str(self.first) if self.is_single else f"{self.first}-{self.last}"


class RedirectKind(enum.StrEnum):
    SINGLE = "single"  # one port to one port
    SHIFT = "shift"  # a range onto a range of the same length, 1:1
    MANY_TO_ONE = "many-to-one"  # a range onto one port


class _Redirect(NamedTuple):
    proto: Proto
    from_ports: PortRange
    to_ports: PortRange


class Redirect(_Redirect):
    """Connections to `from_ports` are served on `to_ports`."""

    __slots__ = ()

    def __new__(cls, proto: Proto, from_ports: PortRange, to_ports: PortRange) -> "Redirect":
        if not to_ports.is_single and to_ports.size != from_ports.size:
            raise ValueError("a target range must have the length of the source range")
        return super().__new__(cls, proto, from_ports, to_ports)

    @property
    def kind(self) -> RedirectKind:
        if self.from_ports.is_single:
            return RedirectKind.SINGLE
        if self.to_ports.is_single:
            return RedirectKind.MANY_TO_ONE
        return RedirectKind.SHIFT

    def __str__(self) -> str:
        return f"{self.from_ports}:{self.to_ports}/{self.proto}"


class RedirectPlan(NamedTuple):
    """Everything the annotations ask for, validated. Sorted, so equal asks give equal plans.

    `sources` is None when every source is redirected; otherwise the collapsed
    networks allowed, and a family with no network there is not redirected.
    """

    redirects: tuple[Redirect, ...]
    sources: tuple["IPNetwork", ...] | None = None  # quoted inside: no compile()
    local: bool = False
    families: FamilyMode = FamilyMode.AUTO

    @property
    def is_empty(self) -> bool:
        return not self.redirects

    def sources_for(self, family: Family) -> "tuple[IPNetwork, ...] | None":
        if self.sources is None:
            return None
        version = 4 if family is Family.IPV4 else 6
        return tuple(net for net in self.sources if net.version == version)

    def summary(self) -> str:
        """A short human line, e.g. for logs and Kubernetes Events."""
        text = ", ".join(str(r) for r in self.redirects) or "no redirects"
        if self.sources is not None:
            text += " from " + ", ".join(str(n) for n in self.sources)
        if self.local:
            text += " (+local)"
        return text


class ResolvedPlan(NamedTuple):
    """A plan bound to the families that will really get rules in this namespace."""

    plan: RedirectPlan
    families: tuple[Family, ...]

    @property
    def redirects(self) -> tuple[Redirect, ...]:
        return self.plan.redirects

    @property
    def local(self) -> bool:
        return self.plan.local

    def sources_for(self, family: Family) -> "tuple[IPNetwork, ...] | None":
        return self.plan.sources_for(family)
