"""Pods as the kubelet leaves them on a node, made for real: cgroups and network namespaces.

A "pod" here is processes (`sleep`) in a network namespace the kit made, placed in cgroups
named as the kubelet names them, in a cgroup hierarchy the kit mounted itself: a named v1
hierarchy (`name=podnat...`, no controller, so nothing else is affected) or the v2 hierarchy
below a directory of its own. Everything is undone at the end: processes killed by PID and
reaped, cgroups removed deepest first, hierarchies unmounted, namespaces deleted.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.kit.lab import sh

CONTAINER = "3f5c" * 16  # a container ID's shape: 64 hex digits


def cgroupfs(uid: str, qos: str = "burstable", prefix: str = "") -> str:
    """The cgroupfs driver's path of a container of pod `uid` ("" qos: Guaranteed)."""
    parts = [prefix, "kubepods", qos, f"pod{uid}", CONTAINER]
    return "/".join(part for part in parts if part)


def systemd(uid: str, qos: str = "burstable", scope: str = "cri-containerd", root: str = "") -> str:
    """The systemd driver's path (`root`: the kubelet's --cgroup-root, e.g. "kubelet")."""
    name = f"{root}-kubepods" if root else "kubepods"
    slices = [f"{root}.slice"] if root else []
    slices.append(f"{name}.slice")
    if qos:
        name += f"-{qos}"
        slices.append(f"{name}.slice")
    slices.append(f"{name}-pod{uid.replace('-', '_')}.slice")
    return "/".join([*slices, f"{scope}-{CONTAINER}.scope"])


@dataclass
class Hierarchy:
    """A mounted cgroup hierarchy; paths given to place() are below `base`."""

    version: int
    mountpoint: Path
    base: Path
    made: list[Path] = field(default_factory=list)

    def directory(self, path: str) -> Path:
        directory = self.base
        for part in path.strip("/").split("/"):
            directory = directory / part
            if not directory.exists():
                directory.mkdir()
                self.made.append(directory)
        return directory

    def place(self, path: str, pid: int) -> None:
        (self.directory(path) / "cgroup.procs").write_text(f"{pid}\n")

    def cleanup(self) -> None:
        # A killed process leaves its cgroup a moment after it is reaped (EBUSY until then).
        deadline = time.monotonic() + 5
        for directory in sorted(self.made, key=lambda p: len(p.parts), reverse=True):
            while directory.exists():
                try:
                    directory.rmdir()
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
        self.made.clear()


# One named v1 hierarchy for all tests, by a fixed name: the kernel drops a named hierarchy
# lazily after its unmount (seconds later, or not before a later mount of that name), so a
# fresh name per test would leave a trail of them; this one is reused by the next run.
V1_NAME = "name=podnatsandboxes"


@contextlib.contextmanager
def mounted(version: int) -> Iterator[Path]:
    """A cgroup hierarchy mounted at a temporary directory: named v1, or v2."""
    mountpoint = Path(tempfile.mkdtemp(prefix=f"podnat-cg{version}-"))
    try:
        if version == 1:
            sh("mount", "-t", "cgroup", "-o", f"none,{V1_NAME}", "cgroup", str(mountpoint))
        else:
            sh("mount", "-t", "cgroup2", "none", str(mountpoint))
        try:
            yield mountpoint
        finally:
            sh("umount", str(mountpoint), check=False)
    finally:
        with contextlib.suppress(OSError):
            mountpoint.rmdir()


@contextlib.contextmanager
def hierarchy(version: int, mountpoint: Path) -> Iterator[Hierarchy]:
    """A test's place in a mounted hierarchy; its cgroups removed at the end.

    v1 (a hierarchy of the kit's own): the kubelet's layouts from the root. v2 is one
    hierarchy for the whole machine: below a directory of the test's own, which stands
    for a node container's cgroup.
    """
    base = mountpoint if version == 1 else mountpoint / f"podnat-{uuid.uuid4().hex[:8]}"
    made = Hierarchy(version, mountpoint, base)
    try:
        if version == 2:
            base.mkdir()
            made.made.append(base)
        yield made
    finally:
        made.cleanup()


@dataclass
class Node:
    """Network namespaces and processes the test made; stopped and deleted at the end."""

    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def netns(self) -> str:
        name = f"pnsb-{uuid.uuid4().hex[:8]}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        return name

    @staticmethod
    def inode(netns: str) -> int:
        return (Path("/run/netns") / netns).stat().st_ino

    def start(self, netns: str | None, *command: str) -> int:
        """`command` (default `sleep`) in `netns` (None: the node's); its PID once there."""
        argv = list(command or ("sleep", "600"))
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]  # ip execs sleep: same PID
        process = subprocess.Popen(argv)
        self.processes.append(process)
        want = Path("/proc/self/ns/net" if netns is None else f"/run/netns/{netns}").stat()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{process.pid}/ns/net").stat().st_ino != want.st_ino:
            if time.monotonic() > deadline:
                raise RuntimeError(f"pid {process.pid} never reached netns {netns}")
            time.sleep(0.005)
        return process.pid

    def stop(self, pid: int) -> None:
        for process in self.processes:
            if process.pid == pid and process.returncode is None:
                process.kill()
                process.wait()

    def cleanup(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.kill()
                process.wait()
        for name in self.namespaces:
            sh("ip", "netns", "del", name, check=False)


@contextlib.contextmanager
def node() -> Iterator[Node]:
    made = Node()
    try:
        yield made
    finally:
        made.cleanup()
