"""Fixtures of the agent test modules (they import them): a cgroup hierarchy for the module,
a Node with its namespaces and sandboxes, and a running agent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.kit.controlplane import ControlPlane
from tests.kube.agent_kit import AgentNode, cgroup_hierarchy
from tests.kube.agent_process import Agent


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
