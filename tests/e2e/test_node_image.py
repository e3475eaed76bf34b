"""The offline harness's node image is cached by its inputs alone: however
hack/cluster/node-image.sh is invoked (relative or absolute path, any working directory), the
same inputs give the same name — the one the cluster's nodes run — so a rerun reuses it instead
of rebuilding (~100 s) and evicting the other name. Only for the offline harness
(hack/cluster/e2e-cluster.sh)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.kit.cluster import Cluster, docker_host
from tests.kit.paths import REPO

pytestmark = pytest.mark.offline_harness


def name_via(*command: str, cwd: str) -> str:
    done = subprocess.run(
        [*command, "name"],
        cwd=cwd,
        env={**os.environ, "DOCKER_HOST": docker_host()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_every_invocation_names_the_image_the_nodes_run(cluster: Cluster, nodes: list[str]) -> None:
    script = str(REPO / "hack" / "cluster" / "node-image.sh")
    names = {
        name_via("hack/cluster/node-image.sh", cwd=str(REPO)),
        name_via("./node-image.sh", cwd=str(REPO / "hack" / "cluster")),
        name_via(script, cwd="/"),
        name_via("bash", script, cwd=str(REPO / "tests")),
    }
    running = {
        subprocess.run(
            ["docker", "inspect", "-f", "{{.Config.Image}}", node],
            env={**os.environ, "DOCKER_HOST": docker_host()},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for node in nodes
    }
    assert names == running, f"names {names}, nodes run {running}"
