"""A real kube-apiserver + etcd for the whole session (tests/kit/controlplane.py)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.kit.controlplane import ControlPlane
from tests.kit.tools import Tools, tools_bin


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    override = os.environ.get("PODNAT_TOOLS_BIN")
    bin_dir = Path(override) if override else tools_bin()
    for name in ("etcd", "kube-apiserver"):
        if not (bin_dir / name).exists():
            pytest.fail(f"{bin_dir / name} is missing: run `make tools` (make test does)")
    with tempfile.TemporaryDirectory(prefix="podnat-cp-") as state:
        plane = ControlPlane(Path(state), bin_dir)
        try:
            plane.up()
            yield plane
        finally:
            plane.down()


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
