"""A non-root user gets exactly the capabilities the pod grants from permitted-only file
capabilities on the interpreter, as in the image (no root, no effective bit): NET_ADMIN for
the rules, and for `podnat agent` SYS_PTRACE and SYS_ADMIN to reach a pod's netns."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cases import R
from tests.kit.lab import Lab
from tests.kit.paths import REPO
from tests.netns.podnat import nat_dump

NOBODY = "65534"
CAP_NAMES = {12: "cap_net_admin", 13: "cap_net_raw", 19: "cap_sys_ptrace", 21: "cap_sys_admin"}
AGENT_BOUNDING = "+net_admin,+net_raw,+sys_admin,+sys_ptrace"
AGENT_CAP_NUMBERS = "12,13,19,21"
POD_USER = 4242  # the app pod's processes run as another user than the agent


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


def image_caps() -> str:
    """The permitted-only file capabilities the Dockerfile sets on the image's interpreter."""
    (line,) = [x for x in (REPO / "Dockerfile").read_text().splitlines() if "capability" in x
               and "setxattr" in x]  # fmt: skip
    bits = [int(bit) for bit in re.findall(r"1 << (\d+)", line)]
    assert set(bits) <= set(CAP_NAMES), bits
    return ",".join(CAP_NAMES[bit] for bit in bits) + "+p"


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


@pytest.fixture
def pod_process(lab: Lab) -> Iterator[int]:
    """A process of another user in the lab's pod namespace, as a pod's container is."""
    process = subprocess.Popen(
        ["ip", "netns", "exec", lab.pod.name, "setpriv", "--reuid", str(POD_USER),
         "--regid", str(POD_USER), "--clear-groups", "sleep", "120"],
    )  # fmt: skip
    pod_inode = lab.pod.path.stat().st_ino
    proc = Path(f"/proc/{process.pid}")
    deadline = time.monotonic() + 10
    try:
        # ip and setpriv exec in turn: wait until the PID is the pod user's, in the pod netns.
        while proc.stat().st_uid != POD_USER or (proc / "ns" / "net").stat().st_ino != pod_inode:
            assert time.monotonic() < deadline, "the pod process did not start"
            time.sleep(0.01)
        yield process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def probe(
    launcher: list[str], pid: int, lab: Lab, shared: Path, *extra: str, python: Path | None = None
) -> dict[str, object]:
    done = subprocess.run(
        [*launcher, "-m", "tests.netns.netns_probe", str(pid), str(lab.pod.path), *extra],
        env={**os.environ, "PYTHONPATH": str(REPO), "PROBE_PYTHON": str(python or "")},
        cwd="/", capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    assert result["uid"] == int(NOBODY)
    return result


def as_nobody(python: Path, bounding: str) -> list[str]:
    return ["setpriv", "--reuid", NOBODY, "--regid", NOBODY, "--clear-groups",
            "--inh-caps=-all", f"--bounding-set=-all,{bounding}", str(python)]  # fmt: skip


@pytest.mark.parametrize(
    ("bounding", "expected"),
    [
        # The agent's container: both, and only once raise_permitted made them effective.
        (AGENT_BOUNDING, ("ok", "ok")),
        # podnat-init and every other pod: the bounding set cuts them, the exec still works.
        ("+net_admin", ("EACCES", "EPERM")),
        ("+net_admin,+net_raw,+sys_admin", ("EACCES", "ok")),  # no ptrace access to /proc/PID
        ("+net_admin,+net_raw,+sys_ptrace", ("ok", "EPERM")),  # no setns
    ],
)
def test_the_agent_reaches_another_users_pod_netns_only_with_sys_ptrace_and_sys_admin(
    lab: Lab, shared: Path, pod_process: int, bounding: str, expected: tuple[str, str]
) -> None:
    opened, entered = expected
    python = interpreter(shared, image_caps())
    result = probe(as_nobody(python, bounding), pod_process, lab, shared)
    assert result["open_before_raise"] == "EACCES"  # permitted is not effective
    assert result["open_after_raise"] == opened
    assert result["setns"] == entered
    netns = lab.pod.path if entered == "ok" else Path("/proc/self/ns/net")
    assert result["inode"] == netns.stat().st_ino


@pytest.mark.parametrize(
    ("held", "works"),
    [
        # containerd/runc: the added capabilities are already permitted before the exec, so
        # no_new_privs (allowPrivilegeEscalation: false) keeps the file's permitted ones.
        (AGENT_CAP_NUMBERS, True),
        # A runtime that starts non-root with an empty permitted set (Docker): no_new_privs
        # then refuses what the file would grant.
        ("", False),
    ],
)
def test_no_new_privs_keeps_the_capabilities_the_runtime_already_granted(
    lab: Lab, shared: Path, pod_process: int, held: str, works: bool
) -> None:
    python = interpreter(shared, image_caps())
    launcher = [sys.executable]
    container = ("--no-new-privs-as", NOBODY, AGENT_CAP_NUMBERS, held)
    result = probe(launcher, pod_process, lab, shared, *container, python=python)
    assert result["open_before_raise"] == "EACCES"
    assert result["open_after_raise"] == ("ok" if works else "EACCES")
    assert result["setns"] == ("ok" if works else "EPERM")
