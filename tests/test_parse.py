"""The annotation contract: what parses, what it means, and every error's wording."""

from __future__ import annotations

import ipaddress

import pytest

from helper.plan.model import FamilyMode, PortRange, Proto, Redirect, RedirectKind
from helper.plan.parse import InvalidPlanError, parse_plan
from tests.cases import F, L, R, S


def messages(annotations: dict[str, str]) -> list[str]:
    with pytest.raises(InvalidPlanError) as caught:
        parse_plan(annotations)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("4321:1234", [Redirect(Proto.TCP, PortRange(4321, 4321), PortRange(1234, 1234))]),
        ("5353:53/udp", [Redirect(Proto.UDP, PortRange(5353, 5353), PortRange(53, 53))]),
        (
            "8000-8009:9000-9009",
            [Redirect(Proto.TCP, PortRange(8000, 8009), PortRange(9000, 9009))],
        ),
        ("8080-8089:80/tcp", [Redirect(Proto.TCP, PortRange(8080, 8089), PortRange(80, 80))]),
        (
            "4321:1234, 5353:53/udp",
            [
                Redirect(Proto.TCP, PortRange(4321, 4321), PortRange(1234, 1234)),
                Redirect(Proto.UDP, PortRange(5353, 5353), PortRange(53, 53)),
            ],
        ),
        (
            " 3868:3869/SCTP ,  1:65535/udp ",
            [
                Redirect(Proto.SCTP, PortRange(3868, 3868), PortRange(3869, 3869)),
                Redirect(Proto.UDP, PortRange(1, 1), PortRange(65535, 65535)),
            ],
        ),
    ],
)
def test_the_documented_forms_parse(value: str, expected: list[Redirect]) -> None:
    assert list(parse_plan({R: value}).redirects) == expected


def test_kinds_follow_the_shape_of_the_ranges() -> None:
    plan = parse_plan({R: "1:2, 10-19:20-29, 30-39:40"})
    assert [r.kind for r in plan.redirects] == [
        RedirectKind.SINGLE,
        RedirectKind.SHIFT,
        RedirectKind.MANY_TO_ONE,
    ]


def test_the_same_port_may_be_redirected_per_protocol() -> None:
    assert len(parse_plan({R: "53:5353/udp, 53:5353/tcp"}).redirects) == 2


def test_a_pod_without_podnat_annotations_plans_nothing() -> None:
    assert parse_plan({"app": "x", "kubernetes.io/foo": "bar"}).is_empty


def test_sources_are_split_by_family_and_collapsed() -> None:
    plan = parse_plan({R: "1:2", S: "10.0.0.0/25, 10.0.0.128/25, 10.1.1.1, fd00::1, 10.0.0.7"})
    assert plan.sources == (
        ipaddress.ip_network("10.0.0.0/24"),
        ipaddress.ip_network("10.1.1.1/32"),
        ipaddress.ip_network("fd00::1/128"),
    )


def test_options() -> None:
    plan = parse_plan({R: "1:2", L: "TRUE", F: "dual"})
    assert plan.local is True
    assert plan.families is FamilyMode.DUAL


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        (
            {R: "654321:1234"},
            'podnat.io/redirect: "654321:1234": port 654321 is out of range 1-65535',
        ),
        ({R: "0:1234"}, 'podnat.io/redirect: "0:1234": port 0 is out of range 1-65535'),
        ({R: ""}, "podnat.io/redirect: value is empty"),
        ({R: "  "}, "podnat.io/redirect: value is empty"),
        ({R: "1:2,,3:4"}, "podnat.io/redirect: item 2 is empty (stray comma?)"),
        ({R: "1:2,"}, "podnat.io/redirect: item 2 is empty (stray comma?)"),
        (
            {R: "4321"},
            'podnat.io/redirect: "4321": expected FROM:TO[/PROTO], e.g. 4321:1234 or 5353:53/udp',
        ),
        (
            {R: "1:2:3"},
            'podnat.io/redirect: "1:2:3": expected FROM:TO[/PROTO], e.g. 4321:1234 or 5353:53/udp',
        ),
        ({R: "a:2"}, "podnat.io/redirect: \"a:2\": FROM 'a' is not a port or a range A-B"),
        ({R: ":2"}, 'podnat.io/redirect: ":2": FROM is missing'),
        (
            {R: "1:2/icmp"},
            "podnat.io/redirect: \"1:2/icmp\": protocol 'icmp' is not one of tcp, udp, sctp",
        ),
        (
            {R: "10-19:20-22"},
            'podnat.io/redirect: "10-19:20-22": ranges of unequal length (10 and 3 ports): TO must be one port or a range of the same length',
        ),
        (
            {R: "10:20-22"},
            'podnat.io/redirect: "10:20-22": a single port cannot be redirected to a range',
        ),
        (
            {R: "19-10:1"},
            'podnat.io/redirect: "19-10:1": range 19-10 is reversed; did you mean 10-19?',
        ),
        ({R: "80:80"}, 'podnat.io/redirect: "80:80": redirects a port to itself'),
        (
            {R: "100-200:1, 150:3"},
            'podnat.io/redirect: "150:3": tcp port 150 is already redirected by "100-200:1"',
        ),
        (
            {R: "1:2", S: "10.0.0.1/24"},
            'podnat.io/redirect-sources: "10.0.0.1/24": has host bits set; did you mean 10.0.0.0/24?',
        ),
        (
            {R: "1:2", S: "example.com"},
            'podnat.io/redirect-sources: "example.com": is not an IP address or CIDR',
        ),
        ({R: "1:2", S: ""}, "podnat.io/redirect-sources: value is empty"),
        ({R: "1:2", L: "yes"}, 'podnat.io/redirect-local: "yes": must be one of true|false'),
        (
            {R: "1:2", F: "ipv5"},
            'podnat.io/ip-families: "ipv5": must be one of auto|ipv4|ipv6|dual',
        ),
        (
            {R: "1:2", "podnat.io/redirect-source": "1.2.3.4"},
            "podnat.io/redirect-source: unknown podnat annotation; did you mean podnat.io/redirect-sources?",
        ),
        ({S: "10.0.0.0/8"}, "podnat.io/redirect-sources: has no effect without podnat.io/redirect"),
        (
            {R: "1:2", S: "10.0.0.0/8", F: "ipv6"},
            "podnat.io/redirect-sources: lists no IPv6 source, but podnat.io/ip-families asks for ipv6: nothing of that family would be redirected",
        ),
    ],
)
def test_each_error_names_annotation_item_and_reason(
    annotations: dict[str, str], message: str
) -> None:
    assert messages(annotations) == [message]


def test_all_problems_are_reported_at_once() -> None:
    found = messages({R: "654321:1, 1-5:6-7, 8:8", L: "maybe", "podnat.io/zzz": "1"})
    assert len(found) == 5
    assert found[0].startswith("podnat.io/zzz: unknown podnat annotation; known: ")
