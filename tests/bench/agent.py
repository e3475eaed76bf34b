"""`make bench`, the node agent on a real kube-apiserver: PODS annotated pods bound to one
node, each with a "sandbox" (a process in a network namespace of its own, in a kubelet-style
cgroup; tests/kube/agent_kit.py), nft (what `auto` picks where the kernel has nf_tables).

- Agent RSS with PODS pods. Target: <= 60 MB.
- Idle CPU over 120 s at the default 30 s verify interval. Target: <= 2 % of a core.
- Full resync after a restart, process start -> /readyz. Target: <= 2 s.
- Annotation PATCH -> the new rules verified in the pod's namespace (20 changes, polled
  from here). Target: p99 <= 1 s.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from kubernetes import client, config

from tests.bench.targets import Targets
from tests.kit.controlplane import ControlPlane, running_control_plane
from tests.kube.agent_kit import AgentNode, cgroup_hierarchy, verified, wait_for
from tests.kube.agent_process import Agent

PODS = int(os.environ.get("PODNAT_AGENT_PODS", "100"))
RSS_MB, RESYNC_S, ANNOTATE_P99_S = 60.0, 2.0, 1.0
# Verify passes come every 27-33 s (jittered), each costing far more than the time between
# them: 60 s held 2 or 3 of them (1.3-2.6 % measured, 2026-11-29/30); 120 s holds 4 +- 1.
IDLE_S = 120.0
WEB = {"podnat.io/redirect": "8080:80"}


def measure(node: AgentNode, plane: ControlPlane, scratch: Path, targets: Targets) -> None:
    ns = node.namespace()
    pods = [node.pod(ns, WEB) for _ in range(PODS)]
    agent = Agent(plane.kubeconfig, node.name, scratch / "agent.log", interval=30.0)
    agent.start()
    try:
        started = time.monotonic()
        agent.wait_ready(timeout=120)
        first = time.monotonic() - started
        wait_for(
            "every pod managed",
            lambda: agent.metric("podnat_agent_pods_managed") == PODS,
            timeout=60,
        )
        rss = agent.rss_kib() * 1024 / 1e6
        ticks, t0 = agent.cpu_ticks(), time.monotonic()
        time.sleep(IDLE_S)
        idle = (agent.cpu_ticks() - ticks) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0)
        target = pods[0]
        netns = target.netns
        latencies = []
        for round_ in range(20):
            wanted = {"podnat.io/redirect": f"{10000 + round_}:80"}
            sent = time.monotonic()
            node.annotate(target, wanted)
            wait_for("the change", lambda w=wanted: verified(netns, w))  # type: ignore[misc]
            latencies.append(time.monotonic() - sent)
        latencies.sort()
        agent.stop()
        agent.start()
        started = time.monotonic()
        agent.wait_ready(timeout=120)
        resync = time.monotonic() - started
    finally:
        if agent.process is not None:
            agent.stop()
    print(f"agent, {PODS} annotated pods on one node (real kube-apiserver, nft):")
    print(f"  first /readyz {first:.2f} s; RSS {rss:.1f} MB; target <= {RSS_MB:.0f} MB")
    print(
        f"  idle CPU {100 * idle:.2f} % of a core over {IDLE_S:.0f} s (verify every 30 s); "
        "target <= 2 %"
    )
    print(
        f"  annotate -> rules: p50 {1000 * latencies[9]:.0f} ms, p99 {1000 * latencies[-1]:.0f} "
        f"ms (20 changes); target p99 <= {1000 * ANNOTATE_P99_S:.0f} ms"
    )
    print(f"  resync after a restart (start -> /readyz) {resync:.2f} s; target <= {RESYNC_S:.0f} s")
    targets.limit(f"agent RSS, {PODS} pods", rss, target=RSS_MB, unit="MB")
    targets.limit("agent idle CPU (% of a core, verify 30 s)", 100 * idle, target=2.0, unit="%")
    targets.limit(
        "agent: annotate -> rules, p99",
        1000 * latencies[-1],
        target=1000 * ANNOTATE_P99_S,
        unit="ms",
    )
    targets.limit("agent: resync after restart", 1000 * resync, target=1000 * RESYNC_S, unit="ms")


def main() -> int:
    targets = Targets(part="agent")
    with running_control_plane() as plane, tempfile.TemporaryDirectory() as scratch:
        api = config.new_client_from_config(config_file=str(plane.kubeconfig))  # type: ignore[no-untyped-call]
        with cgroup_hierarchy(Path(scratch) / "cgroup") as root:
            node = AgentNode(client.CoreV1Api(api), root)
            node.create()
            try:
                measure(node, plane, Path(scratch), targets)
            finally:
                node.cleanup()
    return targets.verdict("agent")


if __name__ == "__main__":
    sys.exit(main())
