"""Run the real `podnat` command against a lab namespace, as the init container would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.kit.lab import Netns
from tests.kit.paths import REPO


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def cli(
    *argv: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`podnat ARGV` as a process, from this checkout, without any namespace."""
    return subprocess.run(
        [sys.executable, "-m", "helper.cli", *argv],
        cwd=REPO,
        input=stdin,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )


def downward_file(annotations: dict[str, str], directory: Path) -> Path:
    """Write annotations the way the kubelet does (Go-quoted; JSON quoting agrees for these)."""
    path = directory / "annotations"
    lines = [f"{key}={json.dumps(value)}" for key, value in sorted(annotations.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def podnat(
    ns: Netns,
    command: str,
    annotations: dict[str, str] | None = None,
    *extra: str,
    prefix: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        argv = [*prefix, sys.executable, "-m", "helper.cli", command, "--netns", str(ns.path)]
        if annotations is not None:
            argv += ["--annotations-file", str(downward_file(annotations, Path(tmp)))]
        argv += ["--termination-log", str(Path(tmp) / "termination-log"), *extra]
        done = subprocess.run(
            argv,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, **(env or {})},
        )
        return Result(done.returncode, done.stdout, done.stderr)


def nat_dump(ns: Netns, backend: str) -> str:
    """Everything NAT in the namespace for that backend, stable across runs."""
    if backend == "nft":
        return ns.run("nft", "list", "ruleset")
    out = []
    for command in ("iptables-legacy-save", "ip6tables-legacy-save"):
        text = ns.run(command, "-t", "nat")
        out += [line for line in text.splitlines() if not line.startswith("#")]
    return "\n".join(out)
