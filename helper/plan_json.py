"""The plan as JSON, through pydantic (kept off the apply path: its import costs ~90 ms).

The plan's types are named tuples, which pydantic would write as arrays: these typed
dicts give each field its name, as `podnat plan --format json` has always printed it.
"""

from __future__ import annotations

import ipaddress

from pydantic import TypeAdapter
from typing_extensions import TypedDict  # pydantic's TypedDict on Python 3.11

from helper.plan.model import FamilyMode, PortRange, Proto, Redirect, RedirectPlan


class _PortsJson(TypedDict):
    first: int
    last: int


class _RedirectJson(TypedDict):
    proto: Proto
    from_ports: _PortsJson
    to_ports: _PortsJson


class _PlanJson(TypedDict):
    redirects: list[_RedirectJson]
    sources: list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None
    local: bool
    families: FamilyMode


_ADAPTER: TypeAdapter[_PlanJson] = TypeAdapter(_PlanJson)


def dump_plan(plan: RedirectPlan) -> str:
    data: _PlanJson = {
        "redirects": [
            {
                "proto": r.proto,
                "from_ports": {"first": r.from_ports.first, "last": r.from_ports.last},
                "to_ports": {"first": r.to_ports.first, "last": r.to_ports.last},
            }
            for r in plan.redirects
        ],
        "sources": None if plan.sources is None else list(plan.sources),
        "local": plan.local,
        "families": plan.families,
    }
    return _ADAPTER.dump_json(data, indent=2).decode()


def load_plan(text: str) -> RedirectPlan:
    """Validate a JSON plan (e.g. one `podnat plan --format json` printed)."""
    data = _ADAPTER.validate_json(text)
    return RedirectPlan(
        redirects=tuple(
            Redirect(
                r["proto"],
                PortRange(r["from_ports"]["first"], r["from_ports"]["last"]),
                PortRange(r["to_ports"]["first"], r["to_ports"]["last"]),
            )
            for r in data["redirects"]
        ),
        sources=None if data["sources"] is None else tuple(data["sources"]),
        local=data["local"],
        families=data["families"],
    )
