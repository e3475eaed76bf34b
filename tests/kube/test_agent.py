"""`podnat agent` as a real process against a real kube-apiserver, on the real kernel.

Pods are bound to a Node object the test made; their sandboxes are processes the
test placed in network namespaces and kubelet-style cgroups (agent_kit).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import pytest

from tests.kit.controlplane import ControlPlane
from tests.kit.lab import Netns
from tests.kube.agent_fixtures import agent, cgroups, node
from tests.kube.agent_kit import (
    CONDITION,
    AgentNode,
    condition_history,
    has_condition,
    table,
    verified,
    wait_for,
    wire,
)
from tests.kube.agent_process import Agent

pytestmark = pytest.mark.netns
__all__ = ["agent", "cgroups", "node"]  # fixtures

WEB = {"podnat.io/redirect": "8080:80"}
WEB2 = {"podnat.io/redirect": "9090:90,5353:53/udp"}


def test_create_change_remove_with_condition_events_and_metrics(
    node: AgentNode, agent: Agent
) -> None:
    ns = node.namespace()
    pod = node.pod(ns, WEB)
    netns = pod.netns
    wait_for("the rules", lambda: verified(netns, WEB))
    wait_for(
        "condition True Applied", lambda: (node.condition(pod) or ("",))[:2] == ("True", "Applied")
    )
    # The condition is written first (it gates readiness), the Event right after.
    wait_for("RedirectsApplied", lambda: "RedirectsApplied" in node.events(pod))
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


def test_invalid_change_is_refused_and_leaves_the_rules(node: AgentNode, agent: Agent) -> None:
    pod = node.pod(node.namespace(), WEB)
    netns = pod.netns
    wait_for("the rules", lambda: verified(netns, WEB))
    before = table(netns)
    # An admin bypassing the webhook: the API stores whatever it is given.
    node.annotate(pod, {"podnat.io/redirect": "99999:80"})
    wait_for("InvalidAnnotations", lambda: has_condition(node, pod, "False", "InvalidAnnotations"))
    message = (node.condition(pod) or ("", "", ""))[2]
    assert "podnat.io/redirect" in message and "99999" in message, message
    wait_for("RedirectsInvalid", lambda: "RedirectsInvalid" in node.events(pod))
    time.sleep(2 * agent.interval)  # two verify rounds: still nothing touched
    assert table(netns) == before
    node.annotate(pod, WEB2)  # fixed: applied, condition back to True
    wait_for("the fixed rules", lambda: verified(netns, WEB2))
    wait_for("condition True", lambda: has_condition(node, pod, "True", "Applied"))


def test_drift_is_repaired_within_the_verify_interval(node: AgentNode, agent: Agent) -> None:
    pod = node.pod(node.namespace(), WEB)
    netns = pod.netns
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


def test_a_pods_events_are_answered_from_memory_until_the_periodic_verify(
    control_plane: ControlPlane, node: AgentNode, tmp_path: Path
) -> None:
    # A starting pod sends the agent several events (its phase, the kubelet's conditions,
    # the agent's own condition coming back): between periodic verifies, one that changes
    # neither plan nor sandbox is answered from what the agent last made right.
    slow = Agent(control_plane.kubeconfig, node.name, tmp_path / "agent.log", interval=15.0)
    started = time.monotonic()
    slow.start()
    try:
        pod = node.pod(node.namespace(), WEB)
        netns = pod.netns
        wait_for("the rules", lambda: verified(netns, WEB))
        wait_for("condition True", lambda: has_condition(node, pod, "True", "Applied"))
        netns.run("nft", "delete", "table", "inet", "podnat")  # drift, then an event
        poke = {"type": CONDITION, "status": "False", "reason": "Poked", "message": "test"}
        node.core.patch_namespaced_pod_status(
            pod.name, pod.namespace, {"status": {"conditions": [poke]}}
        )
        wait_for("condition True again", lambda: has_condition(node, pod, "True", "Applied"))
        # The first periodic verify comes 13.5-16.5 s after the start: none has run yet.
        assert time.monotonic() - started < 13.0, "too slow to tell the event from the verify"
        assert table(netns) == ""  # the event did not look in the kernel; the verify does:
        wait_for("the repair", lambda: verified(netns, WEB), timeout=2 * slow.interval)
        wait_for("RedirectsRepaired", lambda: "RedirectsRepaired" in node.events(pod))
    finally:
        assert slow.stop() == 0, slow.log_text()[-3000:]


def test_a_new_sandbox_gets_the_rules(node: AgentNode, agent: Agent) -> None:
    pod = node.pod(node.namespace(), WEB)
    first = pod.netns
    wait_for("the rules", lambda: verified(first, WEB))
    new: list[Netns] = []

    def rules_in(_: tuple[str, str]) -> bool | None:
        return verified(new[0], WEB) if new else None

    with condition_history(node.core, pod, rules_in) as history:
        wait_for("the condition seen", lambda: history)
        assert pod.sandbox is not None
        pod.sandbox.stop()  # the kubelet's sandbox died; it makes a new one, same pod cgroup
        fresh = node.start_sandbox(pod.uid)
        assert fresh.netns is not None
        new.append(fresh.netns)
        wait_for("the rules in the new netns", lambda: verified(fresh.netns, WEB))  # type: ignore[arg-type]
        wait_for("condition True again", lambda: history[-1:] == [("True", "Applied", True)])
    assert "new sandbox" in agent.log_text()
    # False once the new sandbox was seen (its rules may be in by the time this watch sees
    # it: one namespace visit); True again only once they were in.
    changed = [entry[:2] for entry in history].index(("False", "SandboxChanged"))
    assert all(rules for status, _, rules in history[changed:] if status == "True"), history


def test_pods_podnat_may_not_touch_are_left_alone(node: AgentNode, agent: Agent) -> None:
    unlabelled = node.pod(node.namespace(labelled=False), WEB)
    labelled = node.namespace()
    in_node_netns = node.pod(labelled, WEB, sandbox="host")  # hostNetwork, as the node sees it
    host_network = node.pod(labelled, WEB, host_network=True)
    wait_for(
        "the bypass reported", lambda: has_condition(node, host_network, "False", "HostNetwork")
    )
    wait_for(
        "the node netns refused", lambda: has_condition(node, in_node_netns, "False", "HostNetwork")
    )
    assert "podnat never touches the node's namespace" in node.condition(in_node_netns)[2]  # type: ignore[index]
    agent.wait_ready()
    time.sleep(2 * agent.interval)
    for pod in (unlabelled, host_network):
        assert table(pod.netns) == ""
    assert node.condition(unlabelled) is None
    assert node.events(unlabelled) == []
    assert node.events(host_network).count("RedirectsFailed") == 1  # once, not per verify


def test_a_namespace_that_loses_its_label_is_no_longer_managed(
    node: AgentNode, agent: Agent
) -> None:
    ns = node.namespace()
    pod = node.pod(ns, WEB)
    netns = pod.netns
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
        helm_netns = helm_test.netns
        wait_for("the helm test pod's rules", lambda: verified(helm_netns, WEB))
        wait_for(
            "the Windows pod refused", lambda: has_condition(node, windows, "False", "WindowsPod")
        )
        agent.wait_ready()
        time.sleep(2 * agent.interval)
        for pod in (other, in_excluded, windows):
            assert table(pod.netns) == ""
        assert node.condition(other) is None and node.condition(in_excluded) is None
    finally:
        assert agent.stop() == 0


def test_a_deleted_pod_is_forgotten(node: AgentNode, agent: Agent) -> None:
    ns = node.namespace()
    pod = node.pod(ns, WEB)
    netns = pod.netns
    wait_for("the rules", lambda: verified(netns, WEB))
    node.core.delete_namespaced_pod(pod.name, ns, grace_period_seconds=0)
    wait_for("the pod forgotten", lambda: agent.metric("podnat_agent_pods_managed") == 0)
    assert agent.process is not None and agent.process.poll() is None


def test_a_failed_apply_is_reported_and_retried_until_it_succeeds(
    node: AgentNode, control_plane: ControlPlane, tmp_path: Path
) -> None:
    pod = node.pod(node.namespace(), WEB)
    netns = pod.netns
    agent = Agent(
        control_plane.kubeconfig, node.name, tmp_path / "agent.log", extra=("--lock-timeout", "0.3")
    )
    # Another podnat holds the namespace's lock (flock on its nsfs inode) past the timeout.
    holder = os.open(netns.path, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    agent.start()
    try:
        wait_for("ApplyFailed", lambda: has_condition(node, pod, "False", "ApplyFailed"))
        assert "another podnat" in (node.condition(pod) or ("", "", ""))[2]
        wait_for("RedirectsFailed", lambda: "RedirectsFailed" in node.events(pod))
        assert agent.metric("podnat_agent_errors_total") >= 1
        assert table(netns) == ""
        os.close(holder)  # released: the retry (per-pod backoff) gets through
        holder = -1
        wait_for("the rules", lambda: verified(netns, WEB), timeout=30)
        wait_for("condition True", lambda: has_condition(node, pod, "True", "Applied"))
    finally:
        if holder >= 0:
            os.close(holder)
        assert agent.stop() == 0


def test_a_pod_whose_sandbox_comes_later_gets_its_rules_within_a_second(
    node: AgentNode, control_plane: ControlPlane, tmp_path: Path
) -> None:
    pod = node.pod(node.namespace(), WEB, sandbox="none")  # bound, not started yet
    # The default interval: the periodic verify is no shortcut here.
    agent = Agent(control_plane.kubeconfig, node.name, tmp_path / "agent.log", interval=30)
    agent.start()
    try:
        agent.wait_ready()
        time.sleep(8)  # many looks find nothing; an uncapped backoff would be at 6.4 s
        assert node.condition(pod) is None  # no condition before the rules
        sandbox = node.start_sandbox(pod.uid)
        assert sandbox.netns is not None
        netns = sandbox.netns
        started = time.monotonic()
        wait_for("the rules", lambda: verified(netns, WEB), timeout=10)
        waited = time.monotonic() - started
        print(f"sandbox started -> rules: {waited:.2f}s (no kubelet status hint)")
        assert waited < 1.5
        wait_for("condition True", lambda: has_condition(node, pod, "True", "Applied"))
        # The gate's cost, as the agent reports it: from the sandbox's start by the kernel.
        assert agent.metric("podnat_agent_sandbox_to_rules_seconds_count") == 1
        assert 0 < agent.metric("podnat_agent_sandbox_to_rules_seconds_sum") < waited + 1
        assert f"pod {pod.namespace}/{pod.name}: rules in " in agent.log_text()
    finally:
        assert agent.stop() == 0


def test_a_sandbox_still_being_wired_gets_its_rules_once_it_has_an_address(
    node: AgentNode, agent: Agent
) -> None:
    # containerd 1.7 starts a user-namespaced pod's sandbox before the CNI plugin gives it
    # its addresses: rules made then would be for no family, and the gate would open.
    pod = node.pod(node.namespace(), WEB, sandbox="bare")
    netns = pod.netns
    time.sleep(1.5)  # the agent has looked many times
    assert (table(netns), node.condition(pod)) == ("", None)
    wire(netns)  # the CNI plugin's turn: an address of each family
    started = time.monotonic()
    wait_for("the rules", lambda: verified(netns, WEB))
    assert time.monotonic() - started < 1.0
    assert "tcp dport 8080 dnat to :80" in table(netns)  # both families: one inet rule
    wait_for("condition True", lambda: has_condition(node, pod, "True", "Applied"))


def test_a_sandbox_with_no_address_after_the_wait_gets_rules_for_no_family(
    node: AgentNode, agent: Agent
) -> None:
    pod = node.pod(node.namespace(), WEB, sandbox="bare")
    netns = pod.netns
    # Bounded: ADDRESS_WAIT_S after the sandbox started, `auto` finds no family to redirect.
    wait_for("condition True", lambda: has_condition(node, pod, "True", "Applied"), timeout=20)
    assert verified(netns, WEB)
    assert "dnat to" not in table(netns)
    # The Event follows once the agent's conditions are quiet (status.EVENTS_QUIET_S).
    said = "RedirectsApplied: applied with nft (no family): 8080:80/tcp"
    wait_for("the Event", lambda: said in agent.log_text(), timeout=10)


def test_iptables_legacy_create_change_remove(
    node: AgentNode, control_plane: ControlPlane, tmp_path: Path
) -> None:
    pod = node.pod(node.namespace(), WEB)
    netns = pod.netns
    legacy = "iptables-legacy"
    agent = Agent(
        control_plane.kubeconfig, node.name, tmp_path / "agent.log", extra=("--backend", legacy)
    )
    agent.start()
    try:
        wait_for("the rules", lambda: verified(netns, WEB, legacy))
        saved = netns.run("iptables-legacy-save", "-t", "nat")
        assert "--dport 8080 -j DNAT --to-destination :80" in saved, saved
        node.annotate(pod, WEB2)
        wait_for("the changed rules", lambda: verified(netns, WEB2, legacy))
        wait_for("condition True", lambda: has_condition(node, pod, "True", "Applied"))
        # Three verify rounds, each with a worker per family: none outlives its round
        # (leaked or unreaped ones would add up).
        most = 0
        for _ in range(60):
            most = max(most, len(agent.children()))
            time.sleep(0.1)
        print(f"iptables-legacy workers seen at once: at most {most}")
        assert most <= 2
        node.annotate(pod, {"podnat.io/redirect": None})
        wait_for("NoRedirects", lambda: has_condition(node, pod, "True", "NoRedirects"))
        assert "PODNAT" not in netns.run("iptables-legacy-save", "-t", "nat")
        assert table(netns) == ""
    finally:
        assert agent.stop() == 0


def test_finished_and_terminating_pods_are_left_as_they_are(node: AgentNode, agent: Agent) -> None:
    ns = node.namespace()
    finished, terminating = node.pod(ns, WEB), node.pod(ns, WEB)
    netnses = [p.sandbox.netns for p in (finished, terminating) if p.sandbox and p.sandbox.netns]
    for netns in netnses:
        wait_for("the rules", lambda n=netns: verified(n, WEB))  # type: ignore[misc]
    before = [table(n) for n in netnses]
    node.core.patch_namespaced_pod_status(finished.name, ns, {"status": {"phase": "Succeeded"}})
    node.core.patch_namespaced_pod(
        terminating.name, ns, {"metadata": {"finalizers": ["podnat.io/test-hold"]}}
    )
    node.core.delete_namespaced_pod(terminating.name, ns)
    for pod in (finished, terminating):
        node.annotate(pod, WEB2)
    time.sleep(2 * agent.interval)
    assert [table(n) for n in netnses] == before  # not changed, not removed
    node.core.patch_namespaced_pod(terminating.name, ns, {"metadata": {"finalizers": None}})
