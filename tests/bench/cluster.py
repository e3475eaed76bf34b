"""`make bench`, cluster part: the podnat image and its init container in a real pod.

- Init container, process start -> rules committed (`since_start_ms` of podnat-init's
  last JSON log line), reading its annotations through the API as injected pods do, for
  ROUNDS fresh pods; baseline in the same run: the same image's interpreter starting and
  exiting (`python3 -c pass`) as an init container, measured the same way.
  Target: median <= 300 ms.
- Image size, compressed (`docker save | gzip -6`). Target: <= 60 MB.
- Agent mode: pod start beside no podnat and init mode, `kubectl annotate` -> serving
  (tests/bench/pod_start.py).

Runs on PODNAT_E2E_KUBECONFIG (chart installed, namespace podnat-e2e bound), else brings
the offline kind cluster up and down (hack/cluster/e2e-cluster.sh).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tests.bench import pod_start
from tests.bench.targets import Targets
from tests.kit.cluster import NAMESPACE, Cluster, docker_host, eventually
from tests.kit.paths import REPO
from tests.kit.tools import tools_bin
from tests.kit.workloads import RESTRICTED

ROUNDS = 8
INIT_TARGET_MS, SIZE_TARGET_MB = 300.0, 60.0
# helper.report.since_process_start_ms, inlined: the baseline must import nothing of podnat.
SINCE_START = (
    "import pathlib, os, time; t = int(pathlib.Path('/proc/self/stat').read_bytes()"
    ".rsplit(b')', 1)[1].split()[19]) / os.sysconf('SC_CLK_TCK'); "
    "print('{\"since_start_ms\": %.1f}' % ((time.clock_gettime(time.CLOCK_BOOTTIME) - t) * 1000))"
)


def pod(name: str, image: str, baseline: bool) -> dict[str, object]:
    app = {
        "name": "app",
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["python3", "-c", "import time; time.sleep(1e9)"],
        "securityContext": RESTRICTED,
    }
    spec: dict[str, object] = {"containers": [app], "terminationGracePeriodSeconds": 1}
    annotations = {}
    if baseline:
        spec["initContainers"] = [
            {**app, "name": "baseline", "command": ["python3", "-c", SINCE_START]}
        ]
    else:
        annotations = {"podnat.io/redirect": "4321:1234"}  # the webhook injects podnat-init
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "annotations": annotations},
        "spec": spec,
    }


def measure(cluster: Cluster, image: str, name: str, baseline: bool) -> float:
    container = "baseline" if baseline else "podnat-init"
    cluster.apply(pod(name, image, baseline))

    def finished() -> bool:
        statuses = cluster.get("pod", name)["status"].get("initContainerStatuses") or []
        return bool(statuses) and "terminated" in statuses[0]["state"]

    eventually(finished, timeout=120, every=0.5)
    last = cluster.logs(name, container).strip().splitlines()[-1]
    cluster.kubectl("delete", "pod", name, "-n", NAMESPACE, "--wait=false")
    return float(json.loads(last)["since_start_ms"])


def image_megabytes(image: str) -> float:
    env = {**os.environ, "DOCKER_HOST": docker_host()}
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE, env=env)
    gzip = subprocess.run(["gzip", "-6", "-c"], stdin=save.stdout, capture_output=True, check=True)
    save.wait()
    return len(gzip.stdout) / 1e6


def run(cluster: Cluster) -> int:
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": {"podnat.io/inject": "enabled"}},
        }
    )
    deployment = cluster.get("deployment", "podnat", "podnat-system")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    podnat, base = [], []
    for i in range(ROUNDS):  # interleaved, so drift hits both alike
        base.append(measure(cluster, image, f"bench-base-{i}", baseline=True))
        podnat.append(measure(cluster, image, f"bench-podnat-{i}", baseline=False))
    size = image_megabytes(image)
    median, baseline = statistics.median(podnat), statistics.median(base)
    print(f"init container, process start -> rules committed ({ROUNDS} pods, API source):")
    print(
        f"  podnat-init median {median:.0f} ms (max {max(podnat):.0f}), "
        f"bare interpreter median {baseline:.0f} ms: ratio {median / baseline:.2f}; "
        f"target <= {INIT_TARGET_MS:.0f} ms"
    )
    print(f"image {image}: {size:.1f} MB compressed; target <= {SIZE_TARGET_MB:.0f} MB")
    targets = Targets()
    targets.check(median <= INIT_TARGET_MS, f"podnat-init median {median:.0f} ms")
    targets.check(size <= SIZE_TARGET_MB, f"image {size:.1f} MB")
    pod_start.run(cluster, image, targets)
    return targets.verdict("cluster")


def main() -> int:
    given = os.environ.get("PODNAT_E2E_KUBECONFIG")
    if given:
        return run(Cluster(tools_bin(), Path(given)))
    script = str(REPO / "hack" / "cluster" / "e2e-cluster.sh")
    started = time.monotonic()
    up = subprocess.run([script, "up"], capture_output=True, text=True, check=False)
    try:
        if up.returncode != 0:
            print(up.stderr, file=sys.stderr)
            return 1
        print(f"(cluster up in {time.monotonic() - started:.0f} s)")
        kubeconfig = Path(up.stdout.strip().splitlines()[-1])
        return run(Cluster(tools_bin(), kubeconfig))
    finally:
        subprocess.run([script, "down"], capture_output=True, check=False)


if __name__ == "__main__":
    sys.exit(main())
