"""`make bench`, cluster part: the podnat image and its init container in a real pod.

- Init container, process start -> rules committed, for ROUNDS fresh pods of each kind,
  interleaved: podnat-init reading its annotations through the API as injected pods
  do, against what a user writes without podnat: an init container whose command is the
  seed's one-liner itself (`iptables -t nat -A PREROUTING -p tcp --dport 4321 -j DNAT
  --to-destination :1234`, and the same rule through `nft`), run from the image's test
  layer (the shipped image has neither command: podnat loads their libraries only), and
  the image's bare interpreter (`python3 -c pass`), and, no target, the floor of any
  Python init container doing podnat-init's job (PYTHON_FLOOR). Every span starts at containerd's
  /tasks/start event for the container (nanoseconds, from `ctr events` on the nodes:
  tests.bench.task_events) and ends at podnat's "installed ruleset" log record or, for
  the baselines, at their /tasks/exit event: no interpreter or other process is added
  to a baseline. Targets: podnat-init <= 2.0x each seed baseline and <= 2.0x the bare
  interpreter (medians), and <= 300 ms.
- Image size, compressed (`docker save | gzip -6`). Target: <= 40 MB.
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
from typing import Any

from tests.bench import pod_start
from tests.bench.peers import LIBNFTABLES_APPLY
from tests.bench.targets import Targets
from tests.bench.task_events import TaskEvents, iso_seconds
from tests.kit.cluster import NAMESPACE, Cluster, docker_host, eventually
from tests.kit.paths import REPO
from tests.kit.tools import tools_bin
from tests.kit.workloads import RESTRICTED

ROUNDS = 8
INIT_TARGET_MS, SIZE_TARGET_MB = 300.0, 40.0
SEED_RATIO_TARGET = BARE_RATIO_TARGET = 2.0
# The shipped image has no iptables or nft command (podnat loads their libraries only). The
# seed's one-liners run from the test layer built FROM it (hack/image/test-layer.Dockerfile),
# whose tools carry their own libraries and loader: the loader is exec'd directly, so each
# baseline is one process, the command itself, with no shell or wrapper before it.
TOOLS = "/opt/test-tools"
LOADER = (f"{TOOLS}/lib/ld-linux-x86-64.so.2", "--library-path", f"{TOOLS}/lib")
SEED_IPTABLES = (
    *LOADER, "--argv0", "iptables", f"{TOOLS}/bin/xtables-legacy-multi",
    *("-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "4321"),
    *("-j", "DNAT", "--to-destination", ":1234"),
)  # fmt: skip
# The same rule through nft, one process: what `iptables -A` makes in an empty namespace.
SEED_NFT = (
    *LOADER, "--argv0", "nft", f"{TOOLS}/bin/nft",
    "add table ip nat; "
    "add chain ip nat PREROUTING { type nat hook prerouting priority dstnat; policy accept; }; "
    "add rule ip nat PREROUTING tcp dport 4321 dnat to :1234",
)  # fmt: skip
# The seed's one-liner as a user writes it: root, with the capabilities iptables needs.
SEED_SECURITY = {
    "allowPrivilegeEscalation": False,
    "runAsUser": 0,
    "runAsNonRoot": False,
    "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]},
}
# The least any Python init container does for podnat-init's job, in the shipped image:
# the interpreter without site, one GET of its pod over TLS with its service account's
# token, the seed's rule handed to libnftables; no plan, no check, no log, no Event. Root
# with the seed's capabilities, so not even a capability is raised. If this floor is more
# than 2x a seed baseline, no Python podnat-init can meet that target.
PYTHON_FLOOR = (
    """
import http.client, json, os, ssl, sys
account = "/var/run/secrets/kubernetes.io/serviceaccount/"
with open(account + "token") as token:
    bearer = "Bearer " + token.read()
env = os.environ
api = http.client.HTTPSConnection(
    env["KUBERNETES_SERVICE_HOST"], int(env["KUBERNETES_SERVICE_PORT"]),
    context=ssl.create_default_context(cafile=account + "ca.crt"))
api.request("GET", f"/api/v1/namespaces/{env['POD_NAMESPACE']}/pods/{env['POD_NAME']}",
            headers={"Authorization": bearer})
json.loads(api.getresponse().read())["metadata"]
ruleset = sys.argv[1].encode()
"""
    + LIBNFTABLES_APPLY
)
FLOOR = ["python3", "-I", "-S", "-c", PYTHON_FLOOR, SEED_NFT[-1]]
DOWNWARD_POD = [
    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
]
KINDS = {  # kind -> the init container's command, security context, env (None: injected)
    "podnat": None,
    "seed-iptables": (list(SEED_IPTABLES), SEED_SECURITY, []),
    "seed-nft": (list(SEED_NFT), SEED_SECURITY, []),
    "bare": (["python3", "-c", "pass"], RESTRICTED, []),
    "floor": (FLOOR, SEED_SECURITY, DOWNWARD_POD),
}


def pod(name: str, image: str, kind: str) -> dict[str, object]:
    """The seed kinds run in the test layer of `image` (seed_image), the others in `image`."""
    app = {
        "name": "app",
        "image": seed_image_name(image) if kind.startswith("seed-") else image,
        "imagePullPolicy": "Never",
        "command": ["python3", "-c", "import time; time.sleep(1e9)"],
        "securityContext": RESTRICTED,
    }
    spec: dict[str, object] = {"containers": [app], "terminationGracePeriodSeconds": 1}
    annotations = {}
    baseline = KINDS[kind]
    if baseline is None:
        annotations = {"podnat.io/redirect": "4321:1234"}  # the webhook injects podnat-init
    else:
        command, security, env = baseline
        init = {**app, "name": "baseline", "command": command, "securityContext": security}
        spec["initContainers"] = [{**init, "env": env} if env else init]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "annotations": annotations},
        "spec": spec,
    }


def measure(cluster: Cluster, events: TaskEvents, image: str, name: str, kind: str) -> float:
    """ms from the init container's /tasks/start to its rules committed (or its exit)."""
    cluster.apply(pod(name, image, kind))

    def terminated() -> dict[str, Any] | None:
        statuses = cluster.get("pod", name)["status"].get("initContainerStatuses") or []
        return statuses[0] if statuses and "terminated" in statuses[0]["state"] else None

    eventually(lambda: terminated() is not None, timeout=120, every=0.5)
    status = terminated()
    assert status is not None
    if status["state"]["terminated"]["exitCode"] != 0:
        raise RuntimeError(f"{name}: the init container failed: {status['state']}")
    container = status["containerID"].removeprefix("containerd://")
    started = events.when(container, "/tasks/start")
    if KINDS[kind] is None:
        log = cluster.logs(name, status["name"]).splitlines()
        record = next(json.loads(line) for line in log if '"installed ruleset' in line)
        ended = iso_seconds(record["ts"])
    else:
        ended = events.when(container, "/tasks/exit")
    cluster.kubectl("delete", "pod", name, "-n", NAMESPACE, "--wait=false")
    return (ended - started) * 1000


def node_events(cluster: Cluster) -> TaskEvents:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    env_host = ["env", f"DOCKER_HOST={docker_host()}"]
    # ctr inside each kind node (a docker container named after the node).
    return TaskEvents([[*env_host, "docker", "exec", n["metadata"]["name"]] for n in nodes])


def seed_image_name(image: str) -> str:
    repository, tag = image.rsplit(":", 1)
    return f"{repository}-kernel-tests:{tag}"  # as hack/env/images.sh names the test layer


def load_seed_image(cluster: Cluster, image: str) -> None:
    """Builds the test layer FROM `image` (hack/env/images.sh, cached) and loads it on every
    node, as the e2e harness loads the shipped image."""
    env = {**os.environ, "DOCKER_HOST": docker_host()}
    subprocess.run([str(REPO / "hack" / "env" / "images.sh"), "test-layer"], env=env, check=True)
    name = seed_image_name(image)
    importer = ["ctr", "-n", "k8s.io", "images", "import", "--digests", "-"]
    for node in cluster.node_names():
        save = subprocess.Popen(["docker", "save", name], stdout=subprocess.PIPE, env=env)
        load = ["docker", "exec", "-i", node, *importer]
        subprocess.run(load, stdin=save.stdout, env=env, check=True, capture_output=True)
        if save.wait() != 0:
            raise RuntimeError(f"docker save {name} failed")


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
    load_seed_image(cluster, image)
    kinds = list(KINDS)
    spans: dict[str, list[float]] = {kind: [] for kind in kinds}
    with node_events(cluster) as events:
        time.sleep(1)  # the watchers subscribed before the first pod
        for i in range(ROUNDS):  # interleaved, so drift hits every kind alike
            for kind in kinds:
                spans[kind].append(measure(cluster, events, image, f"bench-{kind}-{i}", kind))
    medians = {kind: statistics.median(values) for kind, values in spans.items()}
    print(f"init container, /tasks/start -> rules committed or exit ({ROUNDS} pods each):")
    for kind, values in spans.items():
        print(f"  {kind:<14} median {medians[kind]:.0f} ms (max {max(values):.0f})")
    targets = Targets(part="cluster")
    ours = medians["podnat"]
    for kind, what in (
        ("seed-iptables", "podnat-init (API) vs the seed's iptables one-liner"),
        ("seed-nft", "podnat-init (API) vs the seed's rule through nft"),
    ):
        if kind in medians:
            targets.ratio(what, ours, medians[kind], target=SEED_RATIO_TARGET)
    targets.ratio(
        "podnat-init (API) vs the image's bare interpreter",
        ours,
        medians["bare"],
        target=BARE_RATIO_TARGET,
    )
    for kind, what in (
        ("seed-iptables", "the Python floor (API + nft) vs the seed's iptables one-liner"),
        ("seed-nft", "the Python floor (API + nft) vs the seed's rule through nft"),
    ):
        targets.ratio(what, medians["floor"], medians[kind], target=None)
    targets.ratio("podnat-init (API) vs the Python floor", ours, medians["floor"], target=None)
    targets.limit("podnat-init (API), start -> committed", ours, target=INIT_TARGET_MS, unit="ms")
    size = image_megabytes(image)
    targets.limit(f"image {image}, compressed", size, target=SIZE_TARGET_MB, unit="MB")
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
