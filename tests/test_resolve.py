from __future__ import annotations

import pytest

from helper.plan.model import Family
from helper.plan.parse import parse_plan
from helper.plan.resolve import FamilyUnavailableError, resolve
from tests.cases import F, R, S

BOTH = (Family.IPV4, Family.IPV6)


def families(
    annotations: dict[str, str], present: tuple[Family, ...] = BOTH, nat: tuple[Family, ...] = BOTH
) -> tuple[Family, ...]:
    plan = parse_plan(annotations)
    return resolve(plan, global_families=present, nat_families=nat, backend="x").resolved.families


def test_auto_takes_each_family_the_pod_has_an_address_for() -> None:
    assert families({R: "1:2"}) == BOTH
    assert families({R: "1:2"}, present=(Family.IPV4,)) == (Family.IPV4,)


def test_auto_skips_a_family_with_no_listed_source() -> None:
    assert families({R: "1:2", S: "fd00::/8"}) == (Family.IPV6,)


def test_auto_skips_a_family_without_nat_with_a_warning() -> None:
    plan = parse_plan({R: "1:2"})
    res = resolve(plan, global_families=BOTH, nat_families=(Family.IPV4,), backend="x")
    assert res.resolved.families == (Family.IPV4,)
    assert res.warnings == ("ipv6: skipped, the x backend has no ipv6 nat here",)


def test_a_named_family_is_installed_even_without_an_address() -> None:
    assert families({R: "1:2", F: "ipv6"}, present=(Family.IPV4,)) == (Family.IPV6,)


def test_a_named_family_without_nat_is_an_error() -> None:
    with pytest.raises(FamilyUnavailableError, match="dual asks for ipv6, but the x backend"):
        families({R: "1:2", F: "dual"}, nat=(Family.IPV4,))
