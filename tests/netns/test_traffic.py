"""Real TCP/UDP traffic through the rules podnat installs, for both backends."""

from __future__ import annotations

import pytest

from tests.cases import F, L, R, S
from tests.kit.lab import Lab
from tests.netns.podnat import podnat

BACKENDS = ["nft", "iptables-legacy"]


def apply(lab: Lab, backend: str, annotations: dict[str, str]) -> None:
    result = podnat(lab.pod, "apply", annotations, "--backend", backend)
    assert result.code == 0, result.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_connection_to_from_port_is_served_on_to_port(lab: Lab, backend: str) -> None:
    lab.serve(lab.pod, 1234)
    assert lab.ask(lab.client_a, lab.POD_A4, 4321) == "refused"
    apply(lab, backend, {R: "4321:1234"})
    assert lab.ask(lab.client_a, lab.POD_A4, 4321) == "served-by:1234"
    assert lab.ask(lab.client_a, lab.POD_A6, 4321) == "served-by:1234"
    assert lab.ask(lab.client_b, lab.POD_B4, 4321) == "served-by:1234"


@pytest.mark.parametrize("backend", BACKENDS)
def test_sources_redirect_the_listed_client_and_refuse_the_other(lab: Lab, backend: str) -> None:
    lab.serve(lab.pod, 1234)
    apply(lab, backend, {R: "4321:1234", S: f"{lab.CLIENT_A4}, {lab.CLIENT_A6}"})
    assert lab.ask(lab.client_a, lab.POD_A4, 4321) == "served-by:1234"
    assert lab.ask(lab.client_a, lab.POD_A6, 4321) == "served-by:1234"
    assert lab.ask(lab.client_b, lab.POD_B4, 4321) == "refused"
    assert lab.ask(lab.client_b, lab.POD_B6, 4321) == "refused"


@pytest.mark.parametrize("backend", BACKENDS)
def test_family_without_a_listed_source_is_not_redirected(lab: Lab, backend: str) -> None:
    lab.serve(lab.pod, 1234)
    apply(lab, backend, {R: "4321:1234", S: "10.77.0.0/16"})
    assert lab.ask(lab.client_b, lab.POD_B4, 4321) == "served-by:1234"
    assert lab.ask(lab.client_b, lab.POD_B6, 4321) == "refused"


@pytest.mark.parametrize("backend", BACKENDS)
def test_udp_datagrams_are_redirected(lab: Lab, backend: str) -> None:
    lab.serve(lab.pod, 53, proto="udp")
    apply(lab, backend, {R: "5353:53/udp"})
    assert lab.ask(lab.client_a, lab.POD_A4, 5353, proto="udp") == "served-by:53"
    assert lab.ask(lab.client_a, lab.POD_A6, 5353, proto="udp") == "served-by:53"


@pytest.mark.parametrize("backend", BACKENDS)
def test_range_shifts_one_to_one(lab: Lab, backend: str) -> None:
    for port in range(9000, 9010):
        lab.serve(lab.pod, port)
    apply(lab, backend, {R: "8000-8009:9000-9009"})
    assert lab.ask(lab.client_a, lab.POD_A4, 8003) == "served-by:9003"
    assert lab.ask(lab.client_a, lab.POD_A4, 8000) == "served-by:9000"
    assert lab.ask(lab.client_a, lab.POD_A4, 8009) == "served-by:9009"
    assert lab.ask(lab.client_a, lab.POD_A6, 8007) == "served-by:9007"
    assert lab.ask(lab.client_a, lab.POD_A4, 8010) == "refused"


@pytest.mark.parametrize("backend", BACKENDS)
def test_range_many_to_one(lab: Lab, backend: str) -> None:
    lab.serve(lab.pod, 80)
    apply(lab, backend, {R: "8080-8089:80/tcp"})
    for port in (8080, 8085, 8089):
        assert lab.ask(lab.client_a, lab.POD_A4, port) == "served-by:80"
    assert lab.ask(lab.client_a, lab.POD_A6, 8083) == "served-by:80"


@pytest.mark.parametrize("backend", BACKENDS)
def test_redirect_local_covers_the_pods_own_connections_only(lab: Lab, backend: str) -> None:
    lab.serve(lab.pod, 1234)
    lab.serve(lab.client_a, 4321)  # a remote host on the FROM port must stay reachable
    apply(lab, backend, {R: "4321:1234"})
    assert lab.ask(lab.pod, "127.0.0.1", 4321) == "refused"  # PREROUTING alone misses these

    apply(lab, backend, {R: "4321:1234", L: "true"})
    for host in ("127.0.0.1", "::1", lab.POD_A4, lab.POD_B6):
        assert lab.ask(lab.pod, host, 4321) == "served-by:1234", host
    assert lab.ask(lab.pod, lab.CLIENT_A4, 4321) == "served-by:4321"
    assert lab.ask(lab.pod, lab.CLIENT_A6, 4321) == "served-by:4321"


@pytest.mark.parametrize("backend", BACKENDS)
def test_named_family_limits_the_redirect(lab: Lab, backend: str) -> None:
    lab.serve(lab.pod, 1234)
    apply(lab, backend, {R: "4321:1234", F: "ipv6"})
    assert lab.ask(lab.client_a, lab.POD_A6, 4321) == "served-by:1234"
    assert lab.ask(lab.client_a, lab.POD_A4, 4321) == "refused"
