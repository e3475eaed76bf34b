"""The plan as JSON, through pydantic (kept off the apply path: its import costs ~90 ms)."""

from __future__ import annotations

from pydantic import TypeAdapter

from helper.plan.model import RedirectPlan

_ADAPTER: TypeAdapter[RedirectPlan] = TypeAdapter(RedirectPlan)


def dump_plan(plan: RedirectPlan) -> str:
    return _ADAPTER.dump_json(plan, indent=2).decode()


def load_plan(text: str) -> RedirectPlan:
    """Validate a JSON plan (e.g. one `podnat plan --format json` printed)."""
    return _ADAPTER.validate_json(text)
