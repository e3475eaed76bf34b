"""`podnat agent` as a real process against a real kube-apiserver, on the real kernel.

Pods are bound to a Node object the test made; their sandboxes are processes the
test placed in network namespaces and kubelet-style cgroups (agent_kit).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.kit.controlplane import ControlPlane
from tests.kube.agent_kit import Agent, AgentNode, cgroup_hierarchy, table, verified, wait_for

pytestmark = pytest.mark.netns

WEB = {"podnat.io/redirect": "8080:80"}
WEB2 = {"podnat.io/redirect": "9090:90,5353:53/udp"}


@pytest.fixture(scope="module")
def cgroups(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with cgroup_hierarchy(tmp_path_factory.mktemp("cgroup")) as root:
        yield root


@pytest.fixture
def node(api: client.ApiClient, cgroups: Path) -> Iterator[AgentNode]:
    made = AgentNode(client.CoreV1Api(api), cgroups)
    made.create()
    try:
        yield made
    finally:
        made.cleanup()


@pytest.fixture
def agent(control_plane: ControlPlane, node: AgentNode, tmp_path: Path) -> Iterator[Agent]:
    running = Agent(control_plane.kubeconfig, node.name, tmp_path / "agent.log")
    running.start()
    try:
        yield running
    finally:
        if running.process is not None:
            code = running.stop()
            assert code == 0, running.log_text()[-3000:]
        print(running.log_text()[-1500:])


def test_create_change_remove_with_condition_events_and_metrics(
    node: AgentNode, agent: Agent
) -> None:
    ns = node.namespace()
    pod = node.pod(ns, WEB)
    assert pod.sandbox is not None and pod.sandbox.netns is not None
    netns = pod.sandbox.netns
    wait_for("the rules", lambda: verified(netns, WEB))
    wait_for("condition True Applied", lambda: (node.condition(pod) or ("",))[:2] == ("True", "Applied"))
    assert "RedirectsApplied" in node.events(pod)
    agent.wait_ready()

    node.annotate(pod, WEB2)
    wait_for("the changed rules", lambda: verified(netns, WEB2))

    node.annotate(pod, {"podnat.io/redirect": None})
    wait_for("the rules gone", lambda: table(netns) == "")
    wait_for("NoRedirects", lambda: (node.condition(pod) or ("",))[:2] == ("True", "NoRedirects"))
    wait_for("RedirectsRemoved", lambda: "RedirectsRemoved" in node.events(pod))
    assert agent.get("/healthz")[0] == 200
    assert agent.metric('podnat_agent_reconciles_total{result="done"}') >= 3
    assert agent.metric("podnat_agent_pods_managed") == 1
    assert agent.metric("podnat_agent_apply_seconds_count") >= 3
