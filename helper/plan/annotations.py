"""The annotation contract: keys, and the canonical text form of a plan."""

from __future__ import annotations

from helper.plan.model import FamilyMode, RedirectPlan

PREFIX = "podnat.io/"
REDIRECT = PREFIX + "redirect"
SOURCES = PREFIX + "redirect-sources"
LOCAL = PREFIX + "redirect-local"
FAMILIES = PREFIX + "ip-families"

KNOWN_KEYS = (REDIRECT, SOURCES, LOCAL, FAMILIES)

# The pod condition agent mode reports, and the readiness gate its pods wait on.
REDIRECTS_APPLIED = PREFIX + "redirects-applied"


def podnat_keys(annotations: dict[str, str]) -> list[str]:
    return sorted(key for key in annotations if key.startswith(PREFIX))


def to_annotations(plan: RedirectPlan) -> dict[str, str]:
    """The canonical annotations for a plan; parsing them gives the plan back."""
    out = {REDIRECT: ", ".join(str(r) for r in plan.redirects)}
    if plan.sources is not None:
        out[SOURCES] = ", ".join(str(net) for net in plan.sources)
    if plan.local:
        out[LOCAL] = "true"
    if plan.families is not FamilyMode.AUTO:
        out[FAMILIES] = plan.families.value
    return out
