"""A Kubernetes cluster the e2e tests drive with the pinned kubectl and helm."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import yaml

from tests.kit.paths import HACK
from tests.kit.tools import Tools

RELEASE, RELEASE_NAMESPACE = "podnat", "podnat-system"
NAMESPACE = "podnat-e2e"  # the chart grants this namespace API access (hack/cluster/e2e-cluster.sh)


def docker_host() -> str:
    """$DOCKER_HOST, else the socket of hack/env/docker.sh's daemon."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    exports = subprocess.run(
        [str(HACK / "env" / "docker.sh"), "env"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"DOCKER_HOST=(\S+)", exports)
    return found[1] if found else ""


@dataclass(frozen=True)
class Cluster(Tools):
    def apply(
        self, *objects: dict[str, Any], check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects), check=check)

    def get(self, kind: str, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        got: dict[str, Any] = json.loads(
            self.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout
        )
        return got

    def pods(self, selector: str, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
        out = self.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items

    def wait_ready(self, target: str, namespace: str = NAMESPACE, timeout: int = 120) -> None:
        self.kubectl(
            "wait", "--for=condition=Ready", target, "-n", namespace, f"--timeout={timeout}s",
            timeout=timeout + 10,
        )  # fmt: skip

    def node_names(self) -> list[str]:
        """Every node, the control plane first."""
        listing: list[dict[str, Any]] = json.loads(
            self.kubectl("get", "nodes", "-o", "json").stdout
        )["items"]
        control = "node-role.kubernetes.io/control-plane"
        ordered = sorted(
            listing, key=lambda n: (control not in n["metadata"]["labels"], n["metadata"]["name"])
        )
        return [n["metadata"]["name"] for n in ordered]

    def exec(self, pod: str, *command: str, namespace: str = NAMESPACE) -> str:
        return self.kubectl("exec", pod, "-n", namespace, "--", *command).stdout

    def logs(self, pod: str, container: str, namespace: str = NAMESPACE) -> str:
        return self.kubectl("logs", pod, "-c", container, "-n", namespace).stdout

    def node_exec(self, node: str, *command: str) -> str:
        """COMMAND on a kind node: a docker container named after the node."""
        done = subprocess.run(
            ["docker", "exec", node, *command],
            env={**os.environ, "DOCKER_HOST": docker_host()},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"docker exec {node} {' '.join(command)}:\n{done.stderr}")
        return done.stdout

    def events(self, pod: str, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
        out = self.kubectl(
            "get", "events", "-n", namespace, "--field-selector",
            f"involvedObject.name={pod}", "-o", "json",
        ).stdout  # fmt: skip
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items


def pod_ip(pod: dict[str, Any], family: str) -> str:
    """The pod's address of FAMILY ("ipv4" or "ipv6"); a clear failure if it has none."""
    ips = [entry["ip"] for entry in pod["status"].get("podIPs", [])]
    found = [ip for ip in ips if (":" in ip) == (family == "ipv6")]
    assert found, (
        f"pod {pod['metadata']['name']} has no {family} address (a dual-stack cluster?): {ips}"
    )
    return str(found[0])


def eventually(check: Any, timeout: float = 60, every: float = 1) -> Any:
    """check() until it returns something truthy; its last error or value if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
            problem: object = value
        except AssertionError as err:
            problem = err
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {problem}")
        time.sleep(every)
