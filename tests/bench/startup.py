"""`make bench`, parts 2 and 3: podnat's cold start from a runtime venv laid out as the
image's, and the API path against kubectl + nft -f on a real local API server (see
tests.bench.apply)."""

from __future__ import annotations

import calendar
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.kit.controlplane import ControlPlane
from tests.kit.paths import REPO, cache_dir
from tests.kit.tools import tools_bin


def runtime_podnat() -> Path:
    """This checkout installed into a cached pip-less runtime venv; its `podnat` script.

    Keyed by the checkout's path too: worktrees benchmarked side by side get a venv each.
    Bytecode is compiled as the image's Dockerfile does (never re-validated).
    """
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes() + bytes(REPO)).hexdigest()[:12]
    venv = cache_dir() / f"runtime-{key}"
    pip = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(venv / "bin" / "python"),
        "install",
        "-q",
        "--disable-pip-version-check",
    ]
    if not (venv / ".deps-installed").exists():
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", "--clear", str(venv)], check=True
        )
        subprocess.run([*pip, str(REPO)], check=True, capture_output=True)
        (venv / ".deps-installed").touch()
    subprocess.run(
        [*pip, "--no-deps", "--force-reinstall", "--no-compile", str(REPO)],
        check=True,
        capture_output=True,
    )
    python = venv / "bin" / "python"
    compileall = [str(python), "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash"]
    subprocess.run([*compileall, str(venv / "lib")], check=True, capture_output=True)
    return venv / "bin" / "podnat"


def runtime_env(**extra: str) -> dict[str, str]:
    """The environment for the runtime venv's podnat: without PYTHONPATH, which would
    put a checkout's sources (and their import costs) ahead of the installed package."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, **extra}


def cold_start(ns: str, repeat: int) -> tuple[float, float]:
    podnat = runtime_podnat()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "annotations"
        path.write_text('podnat.io/redirect="4321:1234"\n')
        argv = [
            str(podnat),
            "apply",
            "--annotations-file",
            str(path),
            "--netns",
            f"/run/netns/{ns}",
            "--log-level",
            "warning",
        ]
        return _run_measured(argv, runtime_env(), repeat)


def api_path(ns: str, repeat: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """(podnat ms, MB), (kubectl + nft ms, MB) against a real local API server."""

    bin_dir = tools_bin()
    podnat = runtime_podnat()
    with tempfile.TemporaryDirectory() as tmp:
        plane = ControlPlane(Path(tmp) / "cluster", bin_dir)
        plane.up()
        try:
            kubectl = [str(bin_dir / "kubectl"), "--kubeconfig", str(plane.kubeconfig)]
            manifest = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "web",
                    "namespace": "default",
                    "annotations": {"podnat.io/redirect": "4321:1234"},
                },
                "spec": {
                    "containers": [{"name": "app", "image": "app"}],
                    "automountServiceAccountToken": False,
                    "serviceAccountName": "bench",  # no controller makes "default" here
                },
            }
            subprocess.run(
                [*kubectl, "create", "serviceaccount", "bench"], check=True, capture_output=True
            )
            subprocess.run(
                [*kubectl, "create", "-f", "-"],
                input=json.dumps(manifest),
                text=True,
                check=True,
                capture_output=True,
            )
            # A plain Role: aggregated ClusterRoles such as "view" stay empty without the
            # controller-manager, which this control plane does not run.
            for step in (
                ["role", "podnat", "--verb=get", "--resource=pods"],
                ["rolebinding", "podnat", "--role=podnat", "--serviceaccount=default:bench"],
            ):
                subprocess.run([*kubectl, "create", *step], check=True, capture_output=True)
            token = subprocess.run(
                [*kubectl, "create", "token", "bench"], check=True, capture_output=True, text=True
            ).stdout.strip()
            sa = Path(tmp) / "sa"
            sa.mkdir()
            (sa / "token").write_text(token)
            (sa / "ca.crt").write_bytes(plane.ca.read_bytes())
            host, port = plane.server.removeprefix("https://").rsplit(":", 1)
            env = runtime_env(
                KUBERNETES_SERVICE_HOST=host,
                KUBERNETES_SERVICE_PORT=port,
                POD_NAME="web",
                POD_NAMESPACE="default",
            )
            ours = [
                str(podnat),
                "apply",
                "--source",
                "api",
                "--service-account-dir",
                str(sa),
                "--netns",
                f"/run/netns/{ns}",
                "--log-format",
                "json",
            ]
            script = Path(tmp) / "rules.nft"
            script.write_text(
                "table inet podnat {\n chain prerouting {\n"
                "  type nat hook prerouting priority dstnat; policy accept;\n"
                "  tcp dport 4321 dnat to :1234\n }\n}\n"
            )
            go_job = (
                f"{bin_dir / 'kubectl'} --server {plane.server} --token {token} "
                f"--certificate-authority {plane.ca} get pod web -n default "
                "-o jsonpath='{.metadata.annotations.podnat\\.io/redirect}' >/dev/null && "
                f"ip netns exec {ns} nft -f {script}"
            )
            theirs = ["sh", "-c", go_job]
            return _until_committed(ours, env, repeat), _run_measured(theirs, env, repeat)
        finally:
            plane.down()


def _until_committed(argv: list[str], env: dict[str, str], repeat: int) -> tuple[float, float]:
    """Process start to rules committed (the "installed ruleset" log record), and peak RSS.

    What comes after the commit (the Event, interpreter exit) is not part of the span
    the baseline has an equivalent of; `make bench` prints the whole run too.
    """
    spans, rss, whole = [], [], []
    for _ in range(repeat):
        started = time.time()
        clock = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        stderr = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        whole.append((time.perf_counter() - clock) * 1000)
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {stderr}")
        record = next(
            json.loads(line) for line in stderr.splitlines() if '"installed ruleset' in line
        )
        stamp, micros = record["ts"].rstrip("Z").split(".")
        committed = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S")) + int(micros) / 1e6
        spans.append((committed - started) * 1000)
        rss.append(usage.ru_maxrss / 1024)
    print(f"API path, podnat start to exit (incl. the Event): {statistics.median(whole):.0f} ms")
    return statistics.median(spans), max(rss)


def _run_measured(argv: list[str], env: dict[str, str], repeat: int) -> tuple[float, float]:
    walls, rss = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        walls.append((time.perf_counter() - started) * 1000)
        rss.append(usage.ru_maxrss / 1024)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{argv[0]} failed")
    return statistics.median(walls), max(rss)
