"""A local Kubernetes control plane on loopback: etcd + kube-apiserver, for tests and humans.

Real RBAC (`--authorization-mode=Node,RBAC`), real service-account tokens
(TokenRequest), certificates from a throwaway CA. Nothing listens beyond 127.0.0.1.

    python -m tests.kit.controlplane up [DIR]     # prints the admin kubeconfig path
    python -m tests.kit.controlplane down [DIR]

Used by the kube and corpus tiers as a session fixture. Binaries come from hack/env/tools.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.kit.paths import cache_dir
from tests.kit.pki import Pki, openssl
from tests.kit.tools import tools_bin
from tests.kit.webhook import free_ports

DEFAULT_DIR = cache_dir() / "cluster"
ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass
class ControlPlane:
    state: Path
    bin_dir: Path
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _apiserver_argv: list[str] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.state / "admin.kubeconfig"

    @property
    def ca(self) -> Path:
        return self.state / "ca.crt"

    @property
    def server(self) -> str:
        return (self.state / "server").read_text().strip()

    def up(self, timeout: float = 60.0) -> None:
        self.down()
        self.state.mkdir(parents=True, exist_ok=True)
        self._certificates()
        etcd_port, peer_port, api_port = free_ports(3)
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._start(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name",
                "podnat",
                "--data-dir",
                str(self.state / "etcd"),
                "--listen-client-urls",
                etcd_url,
                "--advertise-client-urls",
                etcd_url,
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-cluster",
                f"podnat=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
                "--log-level",
                "warn",
            ],
        )
        s = self.state
        self._apiserver_argv = [
            str(self.bin_dir / "kube-apiserver"),
            "--etcd-servers",
            etcd_url,
            "--bind-address",
            "127.0.0.1",
            "--advertise-address",
            "127.0.0.1",
            "--secure-port",
            str(api_port),
            "--tls-cert-file",
            str(s / "apiserver.crt"),
            "--tls-private-key-file",
            str(s / "apiserver.key"),
            "--client-ca-file",
            str(self.ca),
            "--authorization-mode",
            "Node,RBAC",
            "--service-account-issuer",
            ISSUER,
            "--service-account-key-file",
            str(s / "sa.pub"),
            "--service-account-signing-key-file",
            str(s / "sa.key"),
            "--service-cluster-ip-range",
            "10.96.0.0/24",
            "--enable-priority-and-fairness=false",
            "--endpoint-reconciler-type",
            "none",
            "--v",
            "0",
        ]
        self._start("kube-apiserver", self._apiserver_argv)
        server = f"https://127.0.0.1:{api_port}"
        (self.state / "server").write_text(server + "\n")
        self._write_kubeconfig(server)
        self._wait_ready(timeout)

    def stop_apiserver(self) -> None:
        self._stop("kube-apiserver")

    def start_apiserver(self, timeout: float = 60.0) -> None:
        """Start kube-apiserver again, same flags and port (after stop_apiserver)."""
        self._start("kube-apiserver", self._apiserver_argv)
        self._wait_ready(timeout)

    def _start(self, name: str, argv: list[str]) -> None:
        log = (self.state / f"{name}.log").open("wb")
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._processes[name] = process
        (self.state / f"{name}.pid").write_text(f"{process.pid}\n")

    def down(self) -> None:
        """Stop what up() started (by recorded PID), newest first."""
        for name in ("kube-apiserver", "etcd"):
            self._stop(name)

    def _stop(self, name: str) -> None:
        """Stop one daemon by the PID recorded when it started."""
        pid_file = self.state / f"{name}.pid"
        process = self._processes.pop(name, None)
        if process is not None:  # started by this process: terminate and reap
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        elif pid_file.exists():  # started by an earlier `up`
            pid = int(pid_file.read_text())
            try:
                os.kill(pid, signal.SIGTERM)
                for _ in range(200):
                    os.kill(pid, 0)
                    time.sleep(0.05)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        pid_file.unlink(missing_ok=True)

    def _wait_ready(self, timeout: float) -> None:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(self.state / "admin.crt", self.state / "admin.key")
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(  # noqa: S310 - https, our own server
                    f"{self.server}/readyz", context=context, timeout=2
                ) as reply:
                    if reply.status == 200:
                        return
            except OSError as err:
                last = str(err)
            time.sleep(0.2)
        log = (self.state / "kube-apiserver.log").read_text()[-2000:]
        raise RuntimeError(f"kube-apiserver not ready after {timeout:g}s ({last}):\n{log}")

    def _certificates(self) -> None:
        s = self.state
        pki = Pki.create(s, days=30)
        pki.issue(
            "apiserver",
            "/CN=kube-apiserver",
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc",
            days=30,
        )
        pki.issue(
            "admin", "/O=system:masters/CN=podnat-admin", "extendedKeyUsage=clientAuth", days=30
        )
        openssl("genrsa", "-out", str(s / "sa.key"), "2048")
        openssl("rsa", "-in", str(s / "sa.key"), "-pubout", "-out", str(s / "sa.pub"))

    def _write_kubeconfig(self, server: str) -> None:
        s = self.state
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "podnat",
                    "cluster": {"server": server, "certificate-authority": str(self.ca)},
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate": str(s / "admin.crt"),
                        "client-key": str(s / "admin.key"),
                    },
                }
            ],
            "contexts": [{"name": "podnat", "context": {"cluster": "podnat", "user": "admin"}}],
            "current-context": "podnat",
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))  # JSON is valid YAML


@contextmanager
def running_control_plane(*tools: str) -> Iterator[ControlPlane]:
    """A control plane for a test session, from $PODNAT_TOOLS_BIN or the pinned tools; fails
    (never skips) when a tool it or the caller needs is missing; stopped by PID afterwards."""
    import pytest  # noqa: PLC0415 - the kit's command line runs without pytest

    override = os.environ.get("PODNAT_TOOLS_BIN")
    bin_dir = Path(override) if override else tools_bin()
    for name in ("etcd", "kube-apiserver", *tools):
        if not (bin_dir / name).exists():
            pytest.fail(f"{bin_dir / name} is missing: run `make tools-test` (make test does)")
    with tempfile.TemporaryDirectory(prefix="podnat-cp-") as state:
        plane = ControlPlane(Path(state), bin_dir)
        try:
            plane.up()
            yield plane
        finally:
            plane.down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("dir", nargs="?", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args()
    plane = ControlPlane(args.dir, tools_bin())
    if args.action == "down":
        plane.down()
        return 0
    plane.up()
    print(plane.kubeconfig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
