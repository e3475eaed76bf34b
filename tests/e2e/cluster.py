"""A Kubernetes cluster the e2e tests drive with the pinned kubectl and helm."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
RELEASE, RELEASE_NAMESPACE = "podnat", "podnat-system"
NAMESPACE = "podnat-e2e"  # the chart grants this namespace API access (hack/e2e-cluster.sh)


def tools_bin() -> Path:
    out = subprocess.run(
        [str(REPO / "hack" / "tools.sh"), "bin-dir"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip())


def docker_host() -> str:
    """$DOCKER_HOST, else hack/docker.sh's daemon when it runs, else docker's default."""
    ours = Path("/run/podnat-docker/docker.sock")
    return os.environ.get("DOCKER_HOST") or (f"unix://{ours}" if ours.exists() else "")


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    bin_dir: Path

    def run(
        self,
        tool: str,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: int = 120,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.bin_dir / tool), *args],
            input=stdin,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)}:\n{done.stdout}{done.stderr}")
        return done

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: int = 120
    ) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, stdin=stdin, check=check, timeout=timeout)

    def apply(
        self, *objects: dict[str, Any], check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects), check=check)

    def get(self, kind: str, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        out = self.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout
        got: dict[str, Any] = json.loads(out)
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
