"""How long finding pods' network namespaces takes on a node of ~300 processes (root).

    python -m tests.bench.sandboxes [--pods 50] [--processes 300]

Each pod is a pause-like `sleep` and an app `sleep` in a network namespace of its own, in
the kubelet's systemd layout of a cgroup hierarchy the kit mounts; other `sleep`s fill the
node up to --processes. Prints the medians (wall and CPU time) of: scan() (one pass over
/proc), find() of a pod asked before (re-reads one process), find() of an unknown UID (a
full scan).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from helper.agent.sandboxes import SandboxFinder
from tests.kit.cgroups import CONTAINER, hierarchy, mounted, node, systemd


def median_ms(work: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Medians of wall time and of this process's CPU time (steadier on a busy machine)."""
    wall, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        work()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def process_count() -> int:
    return sum(1 for entry in Path("/proc").iterdir() if entry.name.isdigit())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--processes", type=int, default=300)
    args = parser.parse_args()
    with mounted(1) as mountpoint, hierarchy(1, mountpoint) as cgroups, node() as lab:
        uids = [str(uuid.uuid4()) for _ in range(args.pods)]
        for uid in uids:
            netns = lab.netns()
            cgroups.place(systemd(uid), lab.start(netns))
            cgroups.place(systemd(uid).replace(CONTAINER, "a" * 64), lab.start(netns))
        while process_count() < args.processes:
            lab.start(None)
        finder = SandboxFinder(node_netns=Path("/proc/self/ns/net"))
        assert set(uids) <= set(finder.scan())
        scan = median_ms(finder.scan, 50)
        cached = median_ms(lambda: finder.find(uids[0]), 1000)
        unknown = median_ms(lambda: finder.find(str(uuid.uuid4())), 50)
        print(
            f"{process_count()} processes, {args.pods} pods (medians, wall / CPU): "
            f"scan() {scan[0]:.1f} / {scan[1]:.1f} ms, find() again {cached[0] * 1000:.0f} / "
            f"{cached[1] * 1000:.0f} µs, find() of an unknown pod {unknown[0]:.1f} / "
            f"{unknown[1]:.1f} ms"
        )


if __name__ == "__main__":
    main()
