"""The agent acts on the namespace it found, or on none: a sandbox that ended, or a PID now
naming another process, is refused (real processes, a real network namespace)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from helper.agent.pin import pinned
from helper.agent.sandboxes import Sandbox
from helper.system.process_clock import start_ticks
from tests.kit.lab import Netns, sh
from tests.kube.agent_kit import wait_for


@pytest.fixture
def sandbox() -> Iterator[tuple[Sandbox, subprocess.Popen[bytes]]]:
    netns = Netns(f"pnpin-{uuid.uuid4().hex[:8]}")
    sh("ip", "netns", "add", netns.name)
    process = subprocess.Popen(["ip", "netns", "exec", netns.name, "sleep", "60"])
    try:
        link = Path(f"/proc/{process.pid}/ns/net")
        inode = netns.path.stat().st_ino
        wait_for("sleep in its netns", lambda: link.stat().st_ino == inode, 5)
        ticks = start_ticks(Path(f"/proc/{process.pid}/stat").read_text())
        yield Sandbox(process.pid, ticks, link, inode), process
    finally:
        process.kill()
        process.wait()
        sh("ip", "netns", "del", netns.name, check=False)


def test_the_pinned_path_is_the_namespace_found(
    sandbox: tuple[Sandbox, subprocess.Popen[bytes]],
) -> None:
    found, _ = sandbox
    with pinned(found) as path:
        assert path is not None
        assert path.stat().st_ino == found.inode


def test_another_process_on_the_same_pid_is_refused(
    sandbox: tuple[Sandbox, subprocess.Popen[bytes]],
) -> None:
    found, _ = sandbox
    with pinned(found._replace(start_ticks=found.start_ticks - 1)) as path:
        assert path is None


def test_a_sandbox_that_ended_is_refused(
    sandbox: tuple[Sandbox, subprocess.Popen[bytes]],
) -> None:
    found, process = sandbox
    process.kill()
    process.wait()
    with pinned(found) as path:
        assert path is None
