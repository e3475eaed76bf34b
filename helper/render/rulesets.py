"""A ruleset as a value: rendered once, handed to a backend, shown by `--dry-run`.

Each backend takes its own kind: nft one batch for both families, iptables-legacy
one ruleset per family (its workers get their family's rules, already rendered).
`text` is what `--dry-run` prints; `listing` what the backend lists once applied
(what `verify` compares).
"""

# Annotations evaluated at import, no __future__ import: see helper/__init__.py.
from typing import TYPE_CHECKING, NamedTuple

from helper.plan.model import Family, ResolvedPlan
from helper.render import nft

if TYPE_CHECKING:
    from helper.render.iptables import XtRuleset

# render.iptables is imported on first use: most pods never take iptables-legacy,
# and every import is paid in the init container's start.

NFT = "nft"
IPTABLES_LEGACY = "iptables-legacy"


# Named tuples, not frozen dataclasses: each of those costs ~0.5 ms to define, paid
# in every init container's start.
class NftRuleset(NamedTuple):
    listing: str  # the table as `nft list table inet podnat` prints it

    @property
    def text(self) -> str:
        """One batch that replaces the table wholly: create-if-missing, delete, define."""
        return nft.TRANSACTION_HEADER + self.listing


class XtRulesets(NamedTuple):
    rulesets: tuple["XtRuleset", ...]  # one per family that gets rules (a lazy import)

    @property
    def families(self) -> tuple[Family, ...]:
        return tuple(r.family for r in self.rulesets)

    def for_family(self, family: Family) -> "XtRuleset | None":
        return next((r for r in self.rulesets if r.family is family), None)

    @property
    def text(self) -> str:
        from helper.render.iptables import rulesets_text  # noqa: PLC0415 - lazy

        return rulesets_text(self.rulesets)

    @property
    def listing(self) -> str:
        from helper.render.iptables import join_listings  # noqa: PLC0415 - lazy

        return join_listings((r.family, r.listing()) for r in self.rulesets)


Ruleset = NftRuleset | XtRulesets


def render(backend: str, resolved: ResolvedPlan) -> Ruleset:
    """The ruleset for the backend named `backend` (nft, or iptables-legacy)."""
    if backend == NFT:
        return NftRuleset(nft.render_listing(resolved))
    from helper.render.iptables import render_rulesets  # noqa: PLC0415 - lazy

    return XtRulesets(render_rulesets(resolved))


def family_drift(backend: str, expected: str, live: str) -> str | None:
    """A sentence naming a split between families in `live`, if there is one."""
    if backend == NFT:
        return None  # one inet table, replaced in one transaction: never split
    from helper.render.iptables import family_drift as split  # noqa: PLC0415 - lazy

    return split(expected, live)
