"""Real pods, real kubelet, real traffic: what the webhook injects redirects connections."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.kit.cluster import Cluster, eventually
from tests.kit.workloads import CLIENT, server_deployment, server_pod

WEB_ANNOTATIONS = {
    "podnat.io/redirect": "4321:1234, 8000-8002:9000-9002, 5353:1234/udp",
    "podnat.io/redirect-local": "true",
}


@pytest.fixture(scope="module")
def web(cluster: Cluster, image: str, clients: dict[str, str], nodes: list[str]) -> dict[str, Any]:
    """An annotated Deployment serving TCP 1234 and 9000-9002, UDP 1234; its running pod, on
    the last node: client-a connects from the other node, client-b from the same one."""
    cluster.apply(
        server_deployment(
            "web", image, WEB_ANNOTATIONS, tcp="1234 9000 9001 9002", udp="1234", node=nodes[-1]
        )
    )
    cluster.kubectl("rollout", "status", "deployment/web", "-n", "podnat-e2e", "--timeout=120s")
    (pod,) = cluster.pods("app=web")
    return pod


def reach(cluster: Cluster, client: str, proto: str, host: str, port: int) -> str:
    return cluster.exec(client, "python3", "-c", CLIENT, proto, host, str(port)).strip()


def test_the_deployments_pod_got_podnat_init_first_and_once(web: dict[str, Any]) -> None:
    assert [c["name"] for c in web["spec"]["initContainers"]] == ["podnat-init"]
    (status,) = web["status"]["initContainerStatuses"]
    assert status["state"]["terminated"]["exitCode"] == 0
    assert status["restartCount"] == 0


def test_a_client_reaches_the_app_on_1234_through_4321(
    cluster: Cluster, web: dict[str, Any]
) -> None:
    ip, name = web["status"]["podIP"], web["metadata"]["name"]
    assert reach(cluster, "client-a", "tcp", ip, 4321) == f"{name}:1234"
    assert reach(cluster, "client-a", "tcp", ip, 4322) == "refused"  # nothing else redirected


def test_a_range_is_shifted_port_by_port(cluster: Cluster, web: dict[str, Any]) -> None:
    ip, name = web["status"]["podIP"], web["metadata"]["name"]
    for offset in range(3):
        assert reach(cluster, "client-b", "tcp", ip, 8000 + offset) == f"{name}:{9000 + offset}"


def test_udp_is_redirected(cluster: Cluster, web: dict[str, Any]) -> None:
    ip, name = web["status"]["podIP"], web["metadata"]["name"]
    assert reach(cluster, "client-a", "udp", ip, 5353) == f"{name}:1234"


def test_redirect_local_from_inside_the_pod(cluster: Cluster, web: dict[str, Any]) -> None:
    name = web["metadata"]["name"]
    for host in ("127.0.0.1", web["status"]["podIP"]):
        answer = cluster.exec(name, "python3", "-c", CLIENT, "tcp", host, "4321").strip()
        assert answer == f"{name}:1234"


def test_sources_redirect_one_client_and_refuse_the_other(
    cluster: Cluster, image: str, clients: dict[str, str], nodes: list[str]
) -> None:
    """client-a (listed) on the other node than the server, client-b on the same one."""
    annotations = {
        "podnat.io/redirect": "4321:1234",
        "podnat.io/redirect-sources": f"{clients['client-a']}/32",
    }
    cluster.apply(server_pod("guarded", image, annotations, node=nodes[-1]))
    cluster.wait_ready("pod/guarded")
    ip = cluster.get("pod", "guarded")["status"]["podIP"]
    assert reach(cluster, "client-a", "tcp", ip, 4321) == "guarded:1234"
    assert reach(cluster, "client-b", "tcp", ip, 4321) == "refused"
    assert reach(cluster, "client-b", "tcp", ip, 1234) == "guarded:1234"  # the app itself is open


def init_records(cluster: Cluster, pod: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in cluster.logs(pod, "podnat-init").splitlines()]


def test_the_helper_read_the_api_and_reported_an_event(
    cluster: Cluster, web: dict[str, Any]
) -> None:
    # The chart bound the helper's ClusterRole in this namespace (rbac.helperBindings).
    name = web["metadata"]["name"]
    messages = [r["msg"] for r in init_records(cluster, name)]
    assert any(m.startswith("annotations read from Kubernetes API") for m in messages), messages
    reasons = [e["reason"] for e in cluster.events(name)]
    assert "RedirectsApplied" in reasons


def test_podnat_again_in_the_same_pod_changes_nothing(
    cluster: Cluster, image: str, web: dict[str, Any]
) -> None:
    """What an init container restart in the same sandbox does: `podnat apply` once more in
    the pod's network namespace (an ephemeral container with NET_ADMIN and NET_RAW), then
    `podnat verify`: the same ruleset, no drift."""
    name = web["metadata"]["name"]
    before = next(r["ruleset"] for r in init_records(cluster, name) if "ruleset" in r)
    downward = "".join(f"{k}={json.dumps(v)}\\n" for k, v in WEB_ANNOTATIONS.items())
    script = (
        f"printf '{downward}' > /tmp/annotations && "
        "podnat apply --source file --annotations-file /tmp/annotations --log-format json && "
        "podnat verify --source file --annotations-file /tmp/annotations"
    )
    cluster.kubectl(
        "debug", name, "-n", "podnat-e2e", "--image", image, "--image-pull-policy", "Never",
        "--profile", "netadmin", "-c", "again", "--", "sh", "-c", script,
    )  # fmt: skip

    def finished() -> dict[str, Any] | None:
        statuses = cluster.get("pod", name)["status"].get("ephemeralContainerStatuses") or []
        state: dict[str, Any] = next((s["state"] for s in statuses if s["name"] == "again"), {})
        terminated: dict[str, Any] | None = state.get("terminated")
        return terminated

    terminated = eventually(finished, timeout=60)
    log = cluster.logs(name, "again")
    assert terminated["exitCode"] == 0, log
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert next(r["ruleset"] for r in records if "ruleset" in r) == before


def test_a_new_sandbox_reruns_podnat_init_with_identical_rules(
    cluster: Cluster, web: dict[str, Any]
) -> None:
    """The kubelet re-runs init containers when a pod's sandbox dies: same rules, no crash
    loop, traffic served again. The sandbox is killed through the kind node's containerd."""
    name, uid, node = web["metadata"]["name"], web["metadata"]["uid"], web["spec"]["nodeName"]
    before = next(r["ruleset"] for r in init_records(cluster, name) if "ruleset" in r)
    ctr = ("ctr", "-n", "k8s.io")
    sandboxes = cluster.node_exec(
        node, *ctr, "containers", "ls", "-q",
        # One filter, comma-joined: ctr ORs separate ones.
        f'labels."io.kubernetes.pod.uid"=={uid},labels."io.cri-containerd.kind"==sandbox',
    ).split()  # fmt: skip
    assert len(sandboxes) == 1, sandboxes
    cluster.node_exec(node, *ctr, "tasks", "kill", "-s", "SIGKILL", sandboxes[0])

    def rerun() -> dict[str, Any] | None:
        pod = cluster.get("pod", name)
        (status,) = pod["status"]["initContainerStatuses"]
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"]
        )
        return pod if status["restartCount"] >= 1 and ready else None

    pod = eventually(rerun, timeout=120)
    (status,) = pod["status"]["initContainerStatuses"]
    assert status["state"]["terminated"]["exitCode"] == 0
    assert status["restartCount"] == 1  # once, not a loop
    after = next(r["ruleset"] for r in init_records(cluster, name) if "ruleset" in r)
    assert after == before
    assert reach(cluster, "client-a", "tcp", pod["status"]["podIP"], 4321) == f"{name}:1234"
