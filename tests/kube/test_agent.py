"""`podnat agent` as a real process against a real kube-apiserver, on the real kernel.

Pods are bound to a Node object the test made; their sandboxes are processes the
test placed in network namespaces and kubelet-style cgroups (agent_kit).
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.kit.controlplane import ControlPlane
from tests.kube.accounts import mount_account, pod_env
from tests.kube.agent_kit import Agent, AgentNode, cgroup_hierarchy, table, verified, wait_for
from tests.netns.podnat import podnat

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
    wait_for(
        "condition True Applied", lambda: (node.condition(pod) or ("",))[:2] == ("True", "Applied")
    )
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


def _is(node: AgentNode, pod: object, status: str, reason: str) -> bool:
    found = node.condition(pod)  # type: ignore[arg-type]
    return found is not None and found[:2] == (status, reason)


def test_invalid_change_is_refused_and_leaves_the_rules(node: AgentNode, agent: Agent) -> None:
    pod = node.pod(node.namespace(), WEB)
    assert pod.sandbox is not None and pod.sandbox.netns is not None
    netns = pod.sandbox.netns
    wait_for("the rules", lambda: verified(netns, WEB))
    before = table(netns)
    # An admin bypassing the webhook: the API stores whatever it is given.
    node.annotate(pod, {"podnat.io/redirect": "99999:80"})
    wait_for("InvalidAnnotations", lambda: _is(node, pod, "False", "InvalidAnnotations"))
    message = (node.condition(pod) or ("", "", ""))[2]
    assert "podnat.io/redirect" in message and "99999" in message, message
    wait_for("RedirectsInvalid", lambda: "RedirectsInvalid" in node.events(pod))
    time.sleep(2 * agent.interval)  # two verify rounds: still nothing touched
    assert table(netns) == before
    node.annotate(pod, WEB2)  # fixed: applied, condition back to True
    wait_for("the fixed rules", lambda: verified(netns, WEB2))
    wait_for("condition True", lambda: _is(node, pod, "True", "Applied"))


def test_drift_is_repaired_within_the_verify_interval(node: AgentNode, agent: Agent) -> None:
    pod = node.pod(node.namespace(), WEB)
    assert pod.sandbox is not None and pod.sandbox.netns is not None
    netns = pod.sandbox.netns
    wait_for("the rules", lambda: verified(netns, WEB))
    before = table(netns)
    netns.run("nft", "delete", "table", "inet", "podnat")
    started = time.monotonic()
    # A new table: new handles (the agent may repair before the first look).
    wait_for("the repair", lambda: table(netns) not in ("", before), timeout=3 * agent.interval)
    assert verified(netns, WEB)
    print(f"drift repaired after {time.monotonic() - started:.2f}s (interval {agent.interval}s)")
    wait_for("RedirectsRepaired", lambda: "RedirectsRepaired" in node.events(pod))
    assert agent.metric("podnat_agent_repairs_total") >= 1


def test_a_new_sandbox_gets_the_rules(node: AgentNode, agent: Agent) -> None:
    pod = node.pod(node.namespace(), WEB)
    assert pod.sandbox is not None and pod.sandbox.netns is not None
    first = pod.sandbox.netns
    wait_for("the rules", lambda: verified(first, WEB))
    pod.sandbox.stop()  # the kubelet's sandbox died; it makes a new one, same pod cgroup
    fresh = node.start_sandbox(pod.uid)
    assert fresh.netns is not None
    netns = fresh.netns
    wait_for("the rules in the new netns", lambda: verified(netns, WEB))
    wait_for("condition True again", lambda: _is(node, pod, "True", "Applied"))
    assert "new sandbox" in agent.log_text()


def test_pods_podnat_may_not_touch_are_left_alone(node: AgentNode, agent: Agent) -> None:
    unlabelled = node.pod(node.namespace(labelled=False), WEB)
    labelled = node.namespace()
    in_node_netns = node.pod(labelled, WEB, sandbox="host")  # hostNetwork, as the node sees it
    host_network = node.pod(labelled, WEB, host_network=True)
    wait_for("the bypass reported", lambda: _is(node, host_network, "False", "HostNetwork"))
    wait_for("the node netns refused", lambda: _is(node, in_node_netns, "False", "HostNetwork"))
    assert "podnat never touches the node's namespace" in node.condition(in_node_netns)[2]  # type: ignore[index]
    agent.wait_ready()
    time.sleep(2 * agent.interval)
    for pod in (unlabelled, host_network):
        assert pod.sandbox is not None and pod.sandbox.netns is not None
        assert table(pod.sandbox.netns) == ""
    assert node.condition(unlabelled) is None
    assert node.events(unlabelled) == []
    assert node.events(host_network).count("RedirectsFailed") == 1  # once, not per verify


def test_a_namespace_that_loses_its_label_is_no_longer_managed(
    node: AgentNode, agent: Agent
) -> None:
    ns = node.namespace()
    pod = node.pod(ns, WEB)
    assert pod.sandbox is not None and pod.sandbox.netns is not None
    netns = pod.sandbox.netns
    wait_for("the rules", lambda: verified(netns, WEB))
    node.core.patch_namespace(ns, {"metadata": {"labels": {"podnat.io/inject": None}}})
    wait_for("RedirectsUnmanaged", lambda: "RedirectsUnmanaged" in node.events(pod))
    assert verified(netns, WEB)  # the rules stay
    netns.run("nft", "delete", "table", "inet", "podnat")
    time.sleep(2.5 * agent.interval)
    assert table(netns) == ""  # and are no longer repaired
    node.annotate(pod, WEB2)
    time.sleep(agent.interval)
    assert table(netns) == ""
    assert node.events(pod).count("RedirectsUnmanaged") == 1


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
    time.sleep(2 * agent.interval)
    assert [table(n) for n in netnses] == before
    assert agent.metric('podnat_agent_reconciles_total{result="done"}') >= len(pods)
    node.annotate(pods[0], WEB2)  # and it keeps converging
    wait_for("the change", lambda: verified(netnses[0], WEB2))


def test_the_agent_rides_out_an_api_server_restart_and_relists(
    node: AgentNode, agent: Agent, control_plane: ControlPlane
) -> None:
    pod = node.pod(node.namespace(), WEB)
    assert pod.sandbox is not None and pod.sandbox.netns is not None
    netns = pod.sandbox.netns
    wait_for("the rules", lambda: verified(netns, WEB))
    agent.wait_ready()
    lists = agent.metric('podnat_agent_lists_total{resource="pods"}')
    control_plane.stop_apiserver()
    time.sleep(1)
    control_plane.start_apiserver()
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


def test_figures_latency_rss_idle_cpu_and_resync(
    node: AgentNode, control_plane: ControlPlane, tmp_path: Path
) -> None:
    """The issue's budget, measured (printed for the README): 100 annotated pods on the node."""
    count = int(os.environ.get("PODNAT_AGENT_PODS", "100"))
    ns = node.namespace()
    pods = [node.pod(ns, WEB) for _ in range(count)]
    # The default verify interval: the idle CPU budget is stated for it.
    agent = Agent(control_plane.kubeconfig, node.name, tmp_path / "agent.log", interval=30.0)
    agent.start()
    try:
        started = time.monotonic()
        agent.wait_ready(timeout=120)
        first = time.monotonic() - started
        wait_for(
            "every pod managed",
            lambda: agent.metric("podnat_agent_pods_managed") == count,
            timeout=60,
        )
        for pod in pods[:: max(1, count // 10)]:
            assert pod.sandbox is not None and pod.sandbox.netns is not None
            assert verified(pod.sandbox.netns, WEB)
        rss = agent.rss_kib() / 1024

        # Two verify rounds (30 s +- 10 % jitter each) fall in 60 s: the average is honest.
        done = 'podnat_agent_reconciles_total{result="done"}'
        ticks, t0, reconciles = agent.cpu_ticks(), time.monotonic(), agent.metric(done)
        time.sleep(60)
        idle = (agent.cpu_ticks() - ticks) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0)
        verified_pods = agent.metric(done) - reconciles

        target = pods[0]
        assert target.sandbox is not None and target.sandbox.netns is not None
        netns = target.sandbox.netns
        latencies = []
        for round_ in range(20):
            wanted = {"podnat.io/redirect": f"{10000 + round_}:80"}
            sent = time.monotonic()
            node.annotate(target, wanted)
            wait_for("the change", lambda w=wanted: verified(netns, w))  # type: ignore[misc]
            latencies.append(time.monotonic() - sent)
        latencies.sort()

        assert agent.stop() == 0
        agent.start()
        started = time.monotonic()
        agent.wait_ready(timeout=120)
        resync = time.monotonic() - started
        rss_after = agent.rss_kib() / 1024
    finally:
        if agent.process is not None:
            assert agent.stop() == 0
    print(
        f"\nagent figures, {count} pods: first /readyz {first:.2f}s; RSS {rss:.1f} MiB "
        f"(after restart {rss_after:.1f}); idle CPU {100 * idle:.2f}% of a core over 60 s "
        f"(verify every 30 s: {verified_pods:.0f} pod verifies); "
        f"annotate -> rules p50 {1000 * latencies[9]:.0f} ms, "
        f"p99 {1000 * latencies[-1]:.0f} ms (20 changes); resync after restart "
        f"(process start -> /readyz) {resync:.2f}s"
    )
    assert rss < 60, f"RSS {rss:.1f} MiB over the 60 MiB budget"


def test_also_manage_selects_a_labelled_pod_and_an_excluded_namespace_is_never_managed(
    node: AgentNode, control_plane: ControlPlane, tmp_path: Path
) -> None:
    outside, excluded = node.namespace(labelled=False), node.namespace()
    helm_test = node.pod(outside, WEB, labels={"podnat.io/helm-test": "r1"})
    other = node.pod(outside, WEB, labels={"podnat.io/helm-test": "r2"})
    in_excluded = node.pod(excluded, WEB)
    windows = node.pod(node.namespace(), WEB, windows=True)
    agent = Agent(
        control_plane.kubeconfig,
        node.name,
        tmp_path / "agent.log",
        extra=(
            "--also-manage",
            f"{outside}/podnat.io/helm-test=r1",
            "--exclude-namespace",
            excluded,
        ),
    )
    agent.start()
    try:
        assert helm_test.sandbox is not None and helm_test.sandbox.netns is not None
        helm_netns = helm_test.sandbox.netns
        wait_for("the helm test pod's rules", lambda: verified(helm_netns, WEB))
        wait_for("the Windows pod refused", lambda: _is(node, windows, "False", "WindowsPod"))
        agent.wait_ready()
        time.sleep(2 * agent.interval)
        for pod in (other, in_excluded, windows):
            assert pod.sandbox is not None and pod.sandbox.netns is not None
            assert table(pod.sandbox.netns) == ""
        assert node.condition(other) is None and node.condition(in_excluded) is None
    finally:
        assert agent.stop() == 0


def test_the_agent_adopts_init_mode_rules_without_a_flush(
    node: AgentNode, control_plane: ControlPlane, tmp_path: Path
) -> None:
    pod = node.pod(node.namespace(), WEB)
    assert pod.sandbox is not None and pod.sandbox.netns is not None
    netns = pod.sandbox.netns
    done = podnat(netns, "apply", WEB, "--backend", "nft")  # what podnat-init did
    assert done.code == 0, done.stderr
    before = table(netns)
    agent = Agent(control_plane.kubeconfig, node.name, tmp_path / "agent.log")
    agent.start()
    try:
        wait_for("condition True", lambda: _is(node, pod, "True", "Applied"))
        agent.wait_ready()
        time.sleep(2 * agent.interval)
        assert table(netns) == before  # same handles: verified, not re-applied
        assert "RedirectsApplied" not in node.events(pod)
    finally:
        assert agent.stop() == 0


def test_a_deleted_pod_is_forgotten(node: AgentNode, agent: Agent) -> None:
    ns = node.namespace()
    pod = node.pod(ns, WEB)
    assert pod.sandbox is not None and pod.sandbox.netns is not None
    netns = pod.sandbox.netns
    wait_for("the rules", lambda: verified(netns, WEB))
    node.core.delete_namespaced_pod(pod.name, ns, grace_period_seconds=0)
    wait_for("the pod forgotten", lambda: agent.metric("podnat_agent_pods_managed") == 0)
    assert agent.process is not None and agent.process.poll() is None


def test_a_failed_apply_is_reported_and_retried_until_it_succeeds(
    node: AgentNode, control_plane: ControlPlane, tmp_path: Path
) -> None:
    pod = node.pod(node.namespace(), WEB)
    assert pod.sandbox is not None and pod.sandbox.netns is not None
    netns = pod.sandbox.netns
    agent = Agent(
        control_plane.kubeconfig, node.name, tmp_path / "agent.log", extra=("--lock-timeout", "0.3")
    )
    # Another podnat holds the namespace's lock (flock on its nsfs inode) past the timeout.
    holder = os.open(netns.path, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    agent.start()
    try:
        wait_for("ApplyFailed", lambda: _is(node, pod, "False", "ApplyFailed"))
        assert "another podnat" in (node.condition(pod) or ("", "", ""))[2]
        wait_for("RedirectsFailed", lambda: "RedirectsFailed" in node.events(pod))
        assert agent.metric("podnat_agent_errors_total") >= 1
        assert table(netns) == ""
        os.close(holder)  # released: the retry (per-pod backoff) gets through
        holder = -1
        wait_for("the rules", lambda: verified(netns, WEB), timeout=30)
        wait_for("condition True", lambda: _is(node, pod, "True", "Applied"))
    finally:
        if holder >= 0:
            os.close(holder)
        assert agent.stop() == 0


# What the chart's ClusterRole grants the agent, and nothing more.
AGENT_RULES = [
    client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["list", "watch"]),
    client.V1PolicyRule(api_groups=[""], resources=["pods/status"], verbs=["patch"]),
    client.V1PolicyRule(api_groups=[""], resources=["events"], verbs=["create"]),
    client.V1PolicyRule(api_groups=[""], resources=["namespaces"], verbs=["list", "watch"]),
]


def test_the_agent_works_as_its_service_account_with_only_the_charts_rights(
    node: AgentNode, api: client.ApiClient, control_plane: ControlPlane, tmp_path: Path
) -> None:
    home = node.namespace(labelled=False)
    node.core.create_namespaced_service_account(
        home, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="podnat-agent"))
    )
    rbac = client.RbacAuthorizationV1Api(api)
    name = f"podnat-agent-{node.name}"
    rbac.create_cluster_role(
        client.V1ClusterRole(metadata=client.V1ObjectMeta(name=name), rules=AGENT_RULES)
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
    env = pod_env(control_plane, home, "podnat-agent-x")
    pod = node.pod(node.namespace(), WEB)
    assert pod.sandbox is not None and pod.sandbox.netns is not None
    netns = pod.sandbox.netns
    agent = Agent(
        None,
        node.name,
        tmp_path / "agent.log",
        extra=("--service-account-dir", str(account)),
        env=env,
    )
    agent.start()
    try:
        wait_for("the rules", lambda: verified(netns, WEB))
        wait_for("condition True", lambda: _is(node, pod, "True", "Applied"))
        wait_for("RedirectsApplied", lambda: "RedirectsApplied" in node.events(pod))
        agent.wait_ready()
        node.annotate(pod, WEB2)  # the watch works too
        wait_for("the change", lambda: verified(netns, WEB2))
        assert "HTTP 403" not in agent.log_text()
    finally:
        assert agent.stop() == 0
        rbac.delete_cluster_role_binding(name)
        rbac.delete_cluster_role(name)
