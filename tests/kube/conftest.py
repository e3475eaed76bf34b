"""A real kube-apiserver + etcd for the whole session (tests/kit/controlplane.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client, config

from tests.kit.controlplane import ControlPlane, running_control_plane
from tests.kit.tools import Tools
from tests.kube.webhook_kit import (
    RELEASE,
    SHOP,
    SYSTEM,
    ensure_namespace,
    init_names,
    served_namespace,
    serving_release,
)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    with running_control_plane() as plane:
        yield plane


@pytest.fixture(scope="session")
def api(control_plane: ControlPlane) -> client.ApiClient:
    made: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(control_plane.kubeconfig)
    )
    return made


@pytest.fixture(scope="session")
def tools(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Tools:
    bin_dir = control_plane.bin_dir
    if not (bin_dir / "helm").exists():
        pytest.fail(f"{bin_dir / 'helm'} is missing: run `make tools-test` (make test does)")
    return Tools(bin_dir, control_plane.kubeconfig, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def registered(
    api: client.ApiClient, tools: Tools, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The chart installed in init mode (the default), its webhook served on the host."""
    ensure_namespace(api, SYSTEM)
    ensure_namespace(api, SHOP)
    tmp = tmp_path_factory.mktemp("chart-tls")
    binding = f"rbac.helperBindings[0].namespace={SHOP}"
    with serving_release(api, tools, tmp, RELEASE, "--set", binding):
        yield RELEASE


@pytest.fixture
def namespace(api: client.ApiClient, registered: str) -> Iterator[str]:
    """A namespace opted in to the init-mode release."""
    labels = {"podnat.io/inject": "enabled"}
    with served_namespace(api, "podnat-wh", labels, lambda pod: bool(init_names(pod))) as ns:
        yield ns
