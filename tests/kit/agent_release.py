"""A second podnat release in agent mode beside the init-mode one: its own opt-in label, its
own PodSecurity-`restricted` namespace (hack/cluster/e2e-cluster.sh installs only init mode)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.kit.cluster import Cluster
from tests.kit.paths import REPO

RELEASE, SYSTEM, NAMESPACE = "podnat-agent", "podnat-agent-system", "podnat-agent-e2e"
LABEL = "podnat.io/agent"
VERIFY_INTERVAL = 5


def namespace(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


@contextmanager
def agent_release(
    cluster: Cluster, image: str, verify_interval: int | None = VERIFY_INTERVAL
) -> Iterator[str]:
    """Installs the release (its agent needs `privileged` PodSecurity in SYSTEM) and the
    restricted namespace it serves; removes both after. Yields SYSTEM.

    The tests verify every VERIFY_INTERVAL seconds (a repair within their patience);
    `verify_interval=None` keeps the chart's default, as the benchmarks do."""
    repository, tag = image.rsplit(":", 1)
    enforce = "pod-security.kubernetes.io/enforce"
    cluster.apply(
        namespace(SYSTEM, {enforce: "privileged"}),
        namespace(NAMESPACE, {LABEL: "enabled", enforce: "restricted"}),
    )
    cluster.helm(
        "upgrade", "--install", RELEASE, str(REPO / "charts" / "podnat"), "--namespace", SYSTEM,
        "--set", "mode=agent", "--set", f"injection.namespaceLabel={LABEL}",
        "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
        "--set", "image.pullPolicy=Never",
        *(("--set", f"agent.verifyInterval={verify_interval}") if verify_interval else ()),
        "--wait", "--timeout", "180s", timeout=200,
    )  # fmt: skip
    try:
        yield SYSTEM
    finally:
        cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=true", check=False, timeout=180)
        cluster.helm("uninstall", RELEASE, "--namespace", SYSTEM, "--wait", check=False)
        cluster.kubectl("delete", "namespace", SYSTEM, "--wait=true", check=False, timeout=180)
