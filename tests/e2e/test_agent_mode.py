"""Agent mode on real nodes: a second release (mode: agent) serving its own opt-in label, pods
in a PodSecurity `restricted` namespace on both nodes, rules put in by the node agent."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.kit.agent_release import NAMESPACE, RELEASE, SYSTEM, VERIFY_INTERVAL, agent_release
from tests.kit.cluster import Cluster, eventually
from tests.kit.workloads import CLIENT, SERVER, pod_spec

CONDITION = "podnat.io/redirects-applied"
CTR = ("ctr", "-n", "k8s.io")

# One connection, many lines: proves an established connection outlives an agent restart.
ECHO_SERVER = """
import socket, threading
def serve(conn):
    with conn:
        for line in conn.makefile("rb"):
            conn.sendall(b"echo " + line)
server = socket.create_server(("", 1234))
while True:
    threading.Thread(target=serve, args=(server.accept()[0],), daemon=True).start()
"""
# Reads lines on stdin, sends each over ONE connection to argv[1]:argv[2], prints the answer.
ECHO_CLIENT = """
import socket, sys
conn = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
replies = conn.makefile("rb")
for line in sys.stdin:
    conn.sendall(line.encode())
    print(replies.readline().decode().strip(), flush=True)
"""


@pytest.fixture(scope="module")
def agent(cluster: Cluster, image: str) -> Iterator[str]:
    with agent_release(cluster, image) as system:
        yield system


def restricted_pod(
    name: str, image: str, annotations: dict[str, str], node: str, script: str = SERVER
) -> dict[str, Any]:
    spec = pod_spec(image, script, {"TCP": "1234"}, node)
    spec["securityContext"] = {"seccompProfile": {"type": "RuntimeDefault"}}
    metadata = {"name": name, "namespace": NAMESPACE, "labels": {"app": name}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**metadata, "annotations": annotations},
        "spec": spec,
    }


def condition(pod: dict[str, Any]) -> dict[str, Any]:
    found = [c for c in pod["status"].get("conditions", []) if c["type"] == CONDITION]
    return found[0] if found else {}


def reach(cluster: Cluster, client: str, host: str, port: int) -> str:
    return cluster.exec(client, "python3", "-c", CLIENT, "tcp", host, str(port)).strip()


def sandbox_pid(cluster: Cluster, pod: dict[str, Any]) -> str:
    """The pid, on its node, of the pod's running sandbox (pause) process (a killed one may
    still be listed)."""
    uid, node = pod["metadata"]["uid"], pod["spec"]["nodeName"]
    sandboxes = cluster.node_exec(
        node, *CTR, "containers", "ls", "-q",
        f'labels."io.kubernetes.pod.uid"=={uid},labels."io.cri-containerd.kind"==sandbox',
    ).split()  # fmt: skip
    tasks = [line.split() for line in cluster.node_exec(node, *CTR, "tasks", "ls").splitlines()]
    (pid,) = [t[1] for t in tasks if len(t) == 3 and t[0] in sandboxes and t[2] == "RUNNING"]
    return pid


def table(cluster: Cluster, pod: dict[str, Any]) -> str:
    """podnat's nft tables in the pod's namespace, with handles, read from the node."""
    pid = sandbox_pid(cluster, pod)
    return cluster.node_exec(pod["spec"]["nodeName"], "nsenter", "-t", pid, "-n", "nft", "-a",
                            "list", "ruleset")  # fmt: skip


@pytest.fixture(scope="module")
def servers(
    cluster: Cluster, image: str, agent: str, clients: dict[str, str], nodes: list[str]
) -> dict[str, dict[str, Any]]:
    """A server on each node in the restricted namespace; name -> its Ready pod."""
    annotations = {"podnat.io/redirect": "4321:1234"}
    names = {"first": nodes[0], "last": nodes[-1]}
    cluster.apply(
        *(restricted_pod(f"web-{n}", image, annotations, node) for n, node in names.items())
    )
    pods = {}
    for n in names:
        cluster.wait_ready(f"pod/web-{n}", NAMESPACE)
        pods[n] = cluster.get("pod", f"web-{n}", NAMESPACE)
    return pods


def test_pods_in_a_restricted_namespace_are_admitted_with_a_readiness_gate_only(
    servers: dict[str, dict[str, Any]],
) -> None:
    for pod in servers.values():
        assert "initContainers" not in pod["spec"]
        assert pod["spec"]["readinessGates"] == [{"conditionType": CONDITION}]
        assert condition(pod)["status"] == "True", condition(pod)
        (app,) = pod["spec"]["containers"]
        assert app["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_pods_on_both_nodes_are_redirected(
    cluster: Cluster, servers: dict[str, dict[str, Any]]
) -> None:
    for name, pod in servers.items():
        ip = pod["status"]["podIP"]
        assert reach(cluster, "client-a", ip, 4321) == f"web-{name}:1234"
        assert reach(cluster, "client-b", ip, 4322) == "refused"


def test_sources_are_respected(
    cluster: Cluster, image: str, agent: str, clients: dict[str, str], nodes: list[str]
) -> None:
    annotations = {
        "podnat.io/redirect": "4321:1234",
        "podnat.io/redirect-sources": f"{clients['client-a']}/32",
    }
    cluster.apply(restricted_pod("guarded", image, annotations, nodes[-1]))
    cluster.wait_ready("pod/guarded", NAMESPACE)
    ip = cluster.get("pod", "guarded", NAMESPACE)["status"]["podIP"]
    assert reach(cluster, "client-a", ip, 4321) == "guarded:1234"
    assert reach(cluster, "client-b", ip, 4321) == "refused"


def test_kubectl_annotate_moves_traffic_to_the_new_port(
    cluster: Cluster, image: str, agent: str, clients: dict[str, str], nodes: list[str]
) -> None:
    cluster.apply(restricted_pod("moving", image, {"podnat.io/redirect": "4321:1234"}, nodes[0]))
    cluster.wait_ready("pod/moving", NAMESPACE)
    ip = cluster.get("pod", "moving", NAMESPACE)["status"]["podIP"]
    assert reach(cluster, "client-b", ip, 4321) == "moving:1234"
    cluster.kubectl(
        "annotate", "--overwrite", "pod/moving", "-n", NAMESPACE, "podnat.io/redirect=4400:1234"
    )
    eventually(lambda: reach(cluster, "client-b", ip, 4400) == "moving:1234", timeout=30, every=0.2)
    assert reach(cluster, "client-b", ip, 4321) == "refused"

    # The Event follows the rules (and the condition): it may come a moment after traffic.
    def applied() -> bool:
        reasons = [e["reason"] for e in cluster.events("moving", NAMESPACE)]
        return reasons.count("RedirectsApplied") >= 2

    eventually(applied, timeout=30, every=0.5)


def test_an_invalid_annotation_change_is_denied_with_the_parsers_message(
    cluster: Cluster, servers: dict[str, dict[str, Any]]
) -> None:
    done = cluster.kubectl(
        "annotate", "--overwrite", "pod/web-first", "-n", NAMESPACE,
        "podnat.io/redirect=4321:99999", check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "podnat.io/redirect" in done.stderr and "99999" in done.stderr, done.stderr


def test_a_table_deleted_from_the_node_is_repaired(
    cluster: Cluster, servers: dict[str, dict[str, Any]]
) -> None:
    pod = servers["last"]
    assert "table inet podnat" in table(cluster, pod)
    pid, node = sandbox_pid(cluster, pod), pod["spec"]["nodeName"]
    cluster.node_exec(node, "nsenter", "-t", pid, "-n", "nft", "delete", "table", "inet", "podnat")
    assert reach(cluster, "client-a", pod["status"]["podIP"], 4321) == "refused"
    ip = pod["status"]["podIP"]
    eventually(
        lambda: reach(cluster, "client-a", ip, 4321) == "web-last:1234",
        timeout=VERIFY_INTERVAL * 2 + 10,
        every=0.5,
    )
    eventually(
        lambda: "RedirectsRepaired" in [e["reason"] for e in cluster.events("web-last", NAMESPACE)],
        timeout=30,
        every=0.5,
    )


def test_a_new_sandbox_gets_its_rules_before_the_condition_is_true_again(
    cluster: Cluster, image: str, agent: str, clients: dict[str, str], nodes: list[str]
) -> None:
    """The init mode's sandbox-kill test, in agent mode: the kubelet makes a new network
    namespace for the pod; the agent notices, puts the rules in, and only then says True."""
    cluster.apply(restricted_pod("reborn", image, {"podnat.io/redirect": "4321:1234"}, nodes[-1]))
    cluster.wait_ready("pod/reborn", NAMESPACE)
    pod = cluster.get("pod", "reborn", NAMESPACE)
    uid, node = pod["metadata"]["uid"], pod["spec"]["nodeName"]
    old_pid, old_transition = sandbox_pid(cluster, pod), condition(pod)["lastTransitionTime"]
    (sandbox,) = cluster.node_exec(
        node, *CTR, "containers", "ls", "-q",
        f'labels."io.kubernetes.pod.uid"=={uid},labels."io.cri-containerd.kind"==sandbox',
    ).split()  # fmt: skip
    cluster.node_exec(node, *CTR, "tasks", "kill", "-s", "SIGKILL", sandbox)

    def ready_again() -> dict[str, Any] | None:
        now = cluster.get("pod", "reborn", NAMESPACE)
        statuses = now["status"].get("containerStatuses") or [{}]
        types = {c["type"]: c["status"] for c in now["status"].get("conditions", [])}
        restarted = statuses[0].get("restartCount", 0) >= 1
        return now if restarted and types.get("Ready") == "True" else None

    pod = eventually(ready_again, timeout=180)
    assert sandbox_pid(cluster, pod) != old_pid
    assert "dnat to :1234" in table(cluster, pod)
    # False (SandboxChanged) while the new namespace had no rules, then True again.
    assert condition(pod)["status"] == "True"
    assert condition(pod)["lastTransitionTime"] != old_transition, condition(pod)
    assert reach(cluster, "client-a", pod["status"]["podIP"], 4321) == "reborn:1234"


def agent_pods(cluster: Cluster) -> list[dict[str, Any]]:
    return cluster.pods("app.kubernetes.io/component=agent", SYSTEM)


def test_a_pod_is_not_ready_before_its_rules_are_in(
    cluster: Cluster, image: str, agent: str, nodes: list[str]
) -> None:
    """With no agent on the node, an annotated pod's containers become ready but the pod
    does not; once the agent is back, its rules go in and the pod becomes Ready."""
    daemonset = f"{RELEASE}-agent"
    away = {"spec": {"template": {"spec": {"nodeSelector": {"podnat.io/nowhere": "true"}}}}}
    cluster.kubectl("patch", "daemonset", daemonset, "-n", SYSTEM, "-p", json.dumps(away))
    eventually(lambda: not agent_pods(cluster), timeout=60)
    try:
        cluster.apply(restricted_pod("gated", image, {"podnat.io/redirect": "4321:1234"}, nodes[0]))

        def containers_ready() -> dict[str, Any] | None:
            pod = cluster.get("pod", "gated", NAMESPACE)
            types = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
            return pod if types.get("ContainersReady") == "True" else None

        pod = eventually(containers_ready, timeout=90)
        time.sleep(3)
        pod = cluster.get("pod", "gated", NAMESPACE)
        types = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert types["Ready"] == "False" and CONDITION not in types, types
    finally:
        back = {"spec": {"template": {"spec": {"nodeSelector": {"podnat.io/nowhere": None}}}}}
        cluster.kubectl(
            "patch", "daemonset", daemonset, "-n", SYSTEM, "--type", "merge", "-p", json.dumps(back)
        )
    cluster.wait_ready("pod/gated", NAMESPACE)
    pod = cluster.get("pod", "gated", NAMESPACE)
    assert condition(pod)["status"] == "True"


def test_deleting_the_agent_changes_no_rule_and_keeps_connections(
    cluster: Cluster, image: str, agent: str, clients: dict[str, str], nodes: list[str]
) -> None:
    cluster.apply(
        restricted_pod("echo", image, {"podnat.io/redirect": "4321:1234"}, nodes[-1], ECHO_SERVER)
    )
    cluster.wait_ready("pod/echo", NAMESPACE)
    pod = cluster.get("pod", "echo", NAMESPACE)
    before = table(cluster, pod)
    command = [
        str(cluster.bin_dir / "kubectl"), "exec", "-i", "client-a", "-n", "podnat-e2e", "--",
        "python3", "-c", ECHO_CLIENT, pod["status"]["podIP"], "4321",
    ]  # fmt: skip
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=cluster.env()
    ) as client:
        assert client.stdin and client.stdout
        client.stdin.write("one\n")
        client.stdin.flush()
        assert client.stdout.readline().strip() == "echo one"
        (old,) = [p for p in agent_pods(cluster) if p["spec"]["nodeName"] == nodes[-1]]
        cluster.kubectl("delete", "pod", old["metadata"]["name"], "-n", SYSTEM)

        def replaced() -> bool:
            on_node = [p for p in agent_pods(cluster) if p["spec"]["nodeName"] == nodes[-1]]
            return bool(on_node) and all(
                p["metadata"]["uid"] != old["metadata"]["uid"]
                and any(c["type"] == "Ready" and c["status"] == "True"
                        for c in p["status"].get("conditions", []))
                for p in on_node
            )  # fmt: skip

        eventually(replaced, timeout=120)
        time.sleep(VERIFY_INTERVAL + 1)  # a full verify round of the new agent
        client.stdin.write("two\n")
        client.stdin.flush()
        assert client.stdout.readline().strip() == "echo two"
        client.stdin.close()
        client.wait(timeout=30)
    assert table(cluster, pod) == before  # same rules, same handles: nothing was re-applied


def test_helm_test_passes_in_agent_mode(cluster: Cluster, agent: str) -> None:
    done = cluster.helm("test", RELEASE, "--namespace", SYSTEM, "--timeout", "120s", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
