"""A non-root user gets exactly the capabilities the pod grants from permitted-only file
capabilities on the interpreter, as in the image (no root, no effective bit)."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cases import R
from tests.kit.lab import Lab
from tests.kit.paths import REPO
from tests.netns.podnat import nat_dump

NOBODY = "65534"


@pytest.fixture
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory the unprivileged user can read: annotations and interpreters."""
    directory = tmp_path_factory.mktemp("caps")
    for path in (directory, *directory.parents):
        if path == Path("/"):
            break
        path.chmod(path.stat().st_mode | 0o711)
    (directory / "annotations").write_text(f"{R}={json.dumps('4321:1234')}\n")
    (directory / "annotations").chmod(0o644)
    # The venv lives under root's home; nobody gets a readable copy of python-iptables.
    spec = importlib.util.find_spec("iptc")
    assert spec is not None
    assert spec.submodule_search_locations
    package = Path(spec.submodule_search_locations[0])
    shutil.copytree(package, directory / "site" / "iptc")
    for wrapper in package.parent.glob("libxtwrapper*"):  # its C helper, beside the package
        shutil.copy2(wrapper, directory / "site")
    return directory


def interpreter(directory: Path, caps: str | None) -> Path:
    copy = directory / f"python-{caps or 'plain'}".replace(",", "-").replace("+", "")
    shutil.copy2(os.path.realpath(sys.executable), copy)
    if caps:
        subprocess.run(["setcap", caps, str(copy)], check=True)
    return copy


def apply_as_nobody(
    lab: Lab, python: Path, shared: Path, bounding: str, backend: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "ip", "netns", "exec", lab.pod.name,
            "setpriv", "--reuid", NOBODY, "--regid", NOBODY, "--clear-groups",
            "--inh-caps=-all", f"--bounding-set=-all,{bounding}",
            str(python), "-m", "helper.cli", "apply", "--backend", backend,
            "--annotations-file", str(shared / "annotations"),
            "--termination-log", "/dev/null", *extra,
        ],
        env={**os.environ, "PYTHONPATH": f"{REPO}:{shared / 'site'}"},
        cwd="/",
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )  # fmt: skip


def test_nft_needs_only_the_net_admin_the_pod_adds(lab: Lab, shared: Path) -> None:
    # The file permits NET_RAW too; the bounding set (what the pod adds) cuts it, and the
    # exec still succeeds because the effective bit is not set.
    python = interpreter(shared, "cap_net_admin,cap_net_raw+p")
    result = apply_as_nobody(lab, python, shared, "+net_admin", "nft")
    assert result.returncode == 0, result.stderr
    assert "dport 4321" in nat_dump(lab.pod, "nft")


def test_iptables_legacy_both_families_with_net_admin_and_net_raw(lab: Lab, shared: Path) -> None:
    # The second family runs in a worker process: it raises its capabilities itself.
    python = interpreter(shared, "cap_net_admin,cap_net_raw+p")
    result = apply_as_nobody(lab, python, shared, "+net_admin,+net_raw", "iptables-legacy")
    assert result.returncode == 0, result.stderr
    dump = nat_dump(lab.pod, "iptables-legacy")
    assert dump.count("--dport 4321") == 2  # IPv4 and IPv6


def test_without_file_capabilities_a_non_root_user_changes_nothing(lab: Lab, shared: Path) -> None:
    python = interpreter(shared, None)
    result = apply_as_nobody(lab, python, shared, "+net_admin", "nft")
    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr
    assert "podnat" not in nat_dump(lab.pod, "nft")


def test_a_non_root_user_takes_the_namespace_lock(lab: Lab, shared: Path) -> None:
    # The lock is its own nsfs file, opened from inside: no root, no extra capability.
    python = interpreter(shared, "cap_net_admin,cap_net_raw+p")
    fd = os.open(lab.pod.path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        waited = apply_as_nobody(lab, python, shared, "+net_admin", "nft", "--lock-timeout", "0.3")
    finally:
        os.close(fd)
    assert waited.returncode == 4, waited.stderr
    assert f"held by pid {os.getpid()}" in waited.stderr
    result = apply_as_nobody(lab, python, shared, "+net_admin", "nft")
    assert result.returncode == 0, result.stderr
