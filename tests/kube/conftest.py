"""A real kube-apiserver + etcd for the whole session (tests/kit/controlplane.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client, config

from tests.kit.controlplane import ControlPlane, running_control_plane
from tests.kit.tools import Tools


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
