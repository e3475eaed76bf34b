"""`podnat agent` across restarts (its own, the API server's), adopting init-mode rules,
and as its service account with the chart's rights (its figures: `make bench`,
tests/bench/agent.py).

Real processes against a real kube-apiserver on the real kernel (agent_kit).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from helper.kube.client import KubeClient
from helper.kube.config import connect
from tests.kit.controlplane import ControlPlane
from tests.kube.accounts import mount_account, pod_env
from tests.kube.agent_fixtures import agent, cgroups, node
from tests.kube.agent_kit import AgentNode, has_condition, table, verified, wait_for
from tests.kube.agent_process import Agent
from tests.netns.podnat import podnat

pytestmark = pytest.mark.netns
__all__ = ["agent", "cgroups", "node"]  # fixtures

WEB = {"podnat.io/redirect": "8080:80"}
WEB2 = {"podnat.io/redirect": "9090:90,5353:53/udp"}


def test_an_agent_killed_and_restarted_flushes_nothing(node: AgentNode, agent: Agent) -> None:
    ns = node.namespace()
    pods = [node.pod(ns, WEB) for _ in range(3)]
    netnses = [p.sandbox.netns for p in pods if p.sandbox is not None and p.sandbox.netns]
    for netns in netnses:
        wait_for("the rules", lambda n=netns: verified(n, WEB))  # type: ignore[misc]
    # nft -a shows each rule's handle: a re-applied table gets new ones.
    before = [table(n) for n in netnses]
    assert agent.stop(signal.SIGKILL) == -signal.SIGKILL
    agent.start()
    resync = agent.wait_ready()
    print(f"resync after restart: /readyz 200 {resync:.2f}s after start ({len(pods)} pods)")
    # Ready means every listed pod was verified in its sandbox, none merely "not found yet".
    assert agent.metric('podnat_agent_reconciles_total{result="done"}') >= len(pods)
    # Sandboxes older than the agent are adopted: no "sandbox start -> rules" figure for them.
    assert agent.metric("podnat_agent_sandbox_to_rules_seconds_count") == 0
    time.sleep(2 * agent.interval)
    assert [table(n) for n in netnses] == before
    node.annotate(pods[0], WEB2)  # and it keeps converging
    wait_for("the change", lambda: verified(netnses[0], WEB2))


def test_a_sigterm_delivered_to_another_thread_stops_the_agent(agent: Agent) -> None:
    """The kernel may hand a process's SIGTERM to any of its threads: in CI one landed on a
    thread other than the main one, whose wait it never woke, and the agent ran on."""
    agent.wait_ready()
    assert agent.process is not None
    pid = agent.process.pid
    threads = [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()]
    other = next(tid for tid in sorted(threads) if tid != pid)
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.tgkill(pid, other, signal.SIGTERM) == 0, os.strerror(ctypes.get_errno())
    assert agent.process.wait(timeout=30) == 0
    agent.process = None
    log = agent.log_text()
    assert "signal 15: stopping" in log and "agent stopped" in log


def test_the_agent_rides_out_an_api_server_restart_and_relists(
    node: AgentNode, agent: Agent, control_plane: ControlPlane
) -> None:
    pod = node.pod(node.namespace(), WEB)
    netns = pod.netns
    wait_for("the rules", lambda: verified(netns, WEB))
    agent.wait_ready()
    lists = agent.metric('podnat_agent_lists_total{resource="pods"}')
    kept = KubeClient(connect(str(control_plane.kubeconfig))[0])  # the agent's client
    kept.request("GET", "/api/v1/namespaces/default")
    control_plane.stop_apiserver()
    time.sleep(1)
    control_plane.start_apiserver()
    # Its kept connection died with the old server: replaced before use, so one attempt
    # is enough (as after the API server's 90 s idle close).
    assert kept.request("GET", "/api/v1/namespaces/default", attempts=1)["kind"] == "Namespace"
    node.annotate(pod, WEB2)
    wait_for("the change after the restart", lambda: verified(netns, WEB2), timeout=60)
    # The new server's watch cache starts at its own list: the agent's resourceVersion
    # is older than that, the watch answers 410 Gone, and the agent relists.
    wait_for(
        "a relist",
        lambda: agent.metric('podnat_agent_lists_total{resource="pods"}') > lists,
        timeout=60,
    )
    assert "relisting" in agent.log_text()


def test_the_agent_adopts_init_mode_rules_without_a_flush(
    node: AgentNode, control_plane: ControlPlane, tmp_path: Path
) -> None:
    pod = node.pod(node.namespace(), WEB)
    netns = pod.netns
    done = podnat(netns, "apply", WEB, "--backend", "nft")  # what podnat-init did
    assert done.code == 0, done.stderr
    before = table(netns)
    agent = Agent(control_plane.kubeconfig, node.name, tmp_path / "agent.log")
    agent.start()
    try:
        wait_for("condition True", lambda: has_condition(node, pod, "True", "Applied"))
        agent.wait_ready()
        time.sleep(2 * agent.interval)
        assert table(netns) == before  # same handles: verified, not re-applied
        assert "RedirectsApplied" not in node.events(pod)
    finally:
        assert agent.stop() == 0


# What the chart's ClusterRole grants the agent, and nothing more.
AGENT_RULES = [
    client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["list", "watch"]),
    client.V1PolicyRule(api_groups=[""], resources=["pods/status"], verbs=["patch"]),
    client.V1PolicyRule(api_groups=[""], resources=["events"], verbs=["create"]),
    client.V1PolicyRule(api_groups=[""], resources=["namespaces"], verbs=["list", "watch"]),
]


@contextlib.contextmanager
def agent_as_account(
    node: AgentNode,
    api: client.ApiClient,
    control_plane: ControlPlane,
    tmp_path: Path,
    rules: list[client.V1PolicyRule],
) -> Iterator[Agent]:
    """The agent as a pod runs it: its own service account, bound to `rules` only."""
    home = node.namespace(labelled=False)
    node.core.create_namespaced_service_account(
        home, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="podnat-agent"))
    )
    rbac = client.RbacAuthorizationV1Api(api)
    name = f"podnat-agent-{node.name}"
    rbac.create_cluster_role(
        client.V1ClusterRole(metadata=client.V1ObjectMeta(name=name), rules=rules)
    )
    rbac.create_cluster_role_binding(
        client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=name),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=name
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name="podnat-agent", namespace=home)
            ],
        )
    )
    account = mount_account(api, control_plane, home, "podnat-agent", tmp_path / "sa")
    agent = Agent(
        None,
        node.name,
        tmp_path / "agent.log",
        extra=("--service-account-dir", str(account)),
        env=pod_env(control_plane, home, "podnat-agent-x"),
    )
    agent.start()
    try:
        yield agent
    finally:
        try:
            assert agent.stop() == 0
        finally:
            rbac.delete_cluster_role_binding(name)
            rbac.delete_cluster_role(name)


def test_the_agent_works_as_its_service_account_with_only_the_charts_rights(
    node: AgentNode, api: client.ApiClient, control_plane: ControlPlane, tmp_path: Path
) -> None:
    pod = node.pod(node.namespace(), WEB)
    netns = pod.netns
    with agent_as_account(node, api, control_plane, tmp_path, AGENT_RULES) as agent:
        wait_for("the rules", lambda: verified(netns, WEB))
        wait_for("condition True", lambda: has_condition(node, pod, "True", "Applied"))
        wait_for("RedirectsApplied", lambda: "RedirectsApplied" in node.events(pod))
        agent.wait_ready()
        node.annotate(pod, WEB2)  # the watch works too
        wait_for("the change", lambda: verified(netns, WEB2))
        assert "HTTP 403" not in agent.log_text()


def test_refused_status_and_events_are_logged_counted_and_retried_never_a_traceback(
    node: AgentNode, api: client.ApiClient, control_plane: ControlPlane, tmp_path: Path
) -> None:
    pod = node.pod(node.namespace(), WEB)
    netns = pod.netns
    watch_only = [AGENT_RULES[0], AGENT_RULES[3]]  # no pods/status, no events
    with agent_as_account(node, api, control_plane, tmp_path, watch_only) as agent:
        wait_for("the rules", lambda: verified(netns, WEB))  # the kernel part still works
        wait_for("errors counted", lambda: agent.metric("podnat_agent_errors_total") >= 2)
        log = agent.log_text()
        assert "HTTP 403" in log and "pods/status" in log
        assert "Traceback" not in log
        assert node.condition(pod) is None
