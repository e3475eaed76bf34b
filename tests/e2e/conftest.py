"""The e2e suite runs against PODNAT_E2E_KUBECONFIG (a cluster with the chart installed, e.g.
by hack/cluster/e2e-kind.sh), or brings up the offline kind cluster itself
(hack/cluster/e2e-cluster.sh)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kit.cluster import NAMESPACE, RELEASE, RELEASE_NAMESPACE, Cluster
from tests.kit.paths import REPO
from tests.kit.tools import tools_bin
from tests.kit.workloads import client_pod


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    given = os.environ.get("PODNAT_E2E_KUBECONFIG")
    if given:
        yield Cluster(tools_bin(), Path(given))
        return
    if os.geteuid() != 0:
        pytest.fail("the offline kind cluster needs root (dockerd, routes): run `sudo make test`")
    script = str(REPO / "hack" / "cluster" / "e2e-cluster.sh")
    up = subprocess.run([script, "up"], capture_output=True, text=True, check=False)
    try:
        if up.returncode != 0:
            pytest.fail(f"hack/cluster/e2e-cluster.sh up failed:\n{up.stderr}")
        yield Cluster(tools_bin(), Path(up.stdout.strip().splitlines()[-1]))
    finally:
        subprocess.run([script, "down"], capture_output=True, check=False)


@pytest.fixture(scope="session")
def image(cluster: Cluster) -> str:
    """The podnat image the chart runs (the servers and clients use it too: it has python3)."""
    deployment = cluster.get("deployment", RELEASE, RELEASE_NAMESPACE)
    name: str = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    return name


@pytest.fixture(scope="session")
def namespace(cluster: Cluster) -> Iterator[str]:
    """The injection-enabled namespace, made with the cluster (the chart binds the helper's
    role in it); the suite removes only what it created there."""
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": {"podnat.io/inject": "enabled"}},
        }
    )
    cluster.kubectl("delete", "deployments,pods", "--all", "-n", NAMESPACE, "--wait=true")
    try:
        yield NAMESPACE
    finally:
        cluster.kubectl("delete", "deployments,pods", "--all", "-n", NAMESPACE, "--wait=false")


@pytest.fixture(scope="session")
def nodes(cluster: Cluster) -> list[str]:
    """The cluster's two nodes, control plane first (hack/cluster/e2e-cluster.sh and
    hack/cluster/e2e-kind.sh make a control plane and a worker)."""
    found = cluster.node_names()
    assert len(found) >= 2, f"the suite needs two nodes (a client on the other node): {found}"
    return found


@pytest.fixture(scope="session")
def clients(cluster: Cluster, image: str, namespace: str, nodes: list[str]) -> dict[str, str]:
    """Two client pods, client-a on the first node and client-b on the last; name -> pod IP
    (the IPv4 one: the cluster's first family)."""
    cluster.apply(client_pod("client-a", image, nodes[0]), client_pod("client-b", image, nodes[-1]))
    ips = {}
    for name in ("client-a", "client-b"):
        cluster.wait_ready(f"pod/{name}")
        ips[name] = cluster.get("pod", name)["status"]["podIP"]
    return ips
