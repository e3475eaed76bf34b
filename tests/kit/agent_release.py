"""A second podnat release in agent mode beside the init-mode one: its own opt-in label, its
own PodSecurity-`restricted` namespace (hack/cluster/e2e-cluster.sh installs only init mode)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml

from tests.kit.cluster import Cluster, eventually
from tests.kit.paths import REPO
from tests.kit.workloads import RESTRICTED

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
    webhook_answers(cluster, image)
    try:
        yield SYSTEM
    finally:
        cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=true", check=False, timeout=180)
        cluster.helm("uninstall", RELEASE, "--namespace", SYSTEM, "--wait", check=False)
        cluster.kubectl("delete", "namespace", SYSTEM, "--wait=true", check=False, timeout=180)


def webhook_answers(cluster: Cluster, image: str) -> None:
    """Until an annotated pod's creation goes through the release's webhook (a server-side
    dry run): `helm --wait` sees the webhook's pod Ready, but the API server reaches it
    through its Service a moment later (a CI run was refused the connection meanwhile)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "podnat-webhook-probe",
            "namespace": NAMESPACE,
            "annotations": {"podnat.io/redirect": "4321:1234"},
        },
        "spec": {
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "app", "image": image, "securityContext": RESTRICTED}],
        },
    }
    probe = ("create", "--dry-run=server", "-o", "jsonpath={.spec.readinessGates}", "-f", "-")

    def mutated() -> str:
        done = cluster.kubectl(*probe, stdin=yaml.safe_dump(pod), check=False)
        assert done.returncode == 0, done.stderr.strip()
        return done.stdout  # the webhook added the readiness gate

    eventually(mutated, timeout=60)
