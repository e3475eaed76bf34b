"""`podnat agent` as a real process (python -m helper.cli agent) and what tests read of it:
its HTTP endpoints, metrics, RSS, CPU time, children and log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.kit.paths import REPO
from tests.kit.webhook import free_port
from tests.kube.agent_kit import wait_for


@dataclass
class Agent:
    """`podnat agent` as a real process (python -m helper.cli agent)."""

    kubeconfig: Path | None  # None: as a pod, from `env` and --service-account-dir in `extra`
    node: str
    log: Path
    interval: float = 2.0
    port: int = field(default_factory=free_port)
    extra: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [
            sys.executable, "-m", "helper.cli", "agent",
            *(("--kubeconfig", str(self.kubeconfig)) if self.kubeconfig else ()),
            "--node-name", self.node,
            "--verify-interval", str(self.interval),
            "--listen", f"127.0.0.1:{self.port}",
            "--node-netns", "/proc/self/ns/net",  # this sandbox may not open /proc/1's
            *self.extra,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                argv, cwd=REPO, stdout=log, stderr=log, env={**os.environ, **self.env}
            )

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, ""
        except OSError:
            return 0, ""

    def wait_ready(self, timeout: float = 30.0) -> float:
        started = time.monotonic()
        wait_for("the agent's /readyz", lambda: self.get("/readyz")[0] == 200, timeout)
        return time.monotonic() - started

    def metric(self, name: str) -> float:
        text = self.get("/metrics")[1]
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and not line.startswith("#")
        )

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        self.process = None
        return code

    def rss_kib(self) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def cpu_ticks(self) -> int:
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def children(self) -> list[int]:
        """The agent's child processes now (iptables-legacy workers live one operation)."""
        assert self.process is not None
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self.process.pid:
                found.append(int(stat.parent.name))
        return found

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")
