"""One podnat lock per network namespace: flock on the namespace's nsfs inode."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.cases import R
from tests.kit.lab import Lab, Netns
from tests.netns.podnat import nat_dump, podnat


@contextmanager
def locked(path: Path | str) -> Iterator[None]:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


def can_lock(path: Path | str) -> bool:
    try:
        with locked(path):
            return True
    except BlockingIOError:
        return False


@contextmanager
def process_in(ns: Netns) -> Iterator[int]:
    sleeper = subprocess.Popen(["ip", "netns", "exec", ns.name, "sleep", "30"])
    try:
        # `ip netns exec` becomes sleep (exec): wait until it has entered the namespace.
        target = ns.path.stat().st_ino
        for _ in range(500):
            if Path(f"/proc/{sleeper.pid}/ns/net").stat().st_ino == target:
                break
            time.sleep(0.01)
        yield sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()


def test_every_path_to_one_namespace_shares_its_lock_and_other_namespaces_do_not(
    lab: Lab,
) -> None:
    with process_in(lab.pod) as pid, locked(lab.pod.path):
        assert not can_lock(f"/proc/{pid}/ns/net")  # the path a node agent may use
        inside = lab.pod.run(
            sys.executable,
            "-c",
            "import fcntl, os\n"
            "fd = os.open('/proc/thread-self/ns/net', os.O_RDONLY)\n"
            "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); print('free')\n"
            "except BlockingIOError:\n    print('held')\n",
        )
        assert inside.strip() == "held"  # the path podnat uses inside the pod
        assert can_lock(lab.client_a.path)


def test_apply_waits_a_bounded_time_then_names_the_holder_and_changes_nothing(
    lab: Lab,
) -> None:
    with locked(lab.pod.path):
        result = podnat(lab.pod, "apply", {R: "4321:1234"}, "--lock-timeout", "0.3")
        other = podnat(lab.client_a, "apply", {R: "4321:1234"}, "--lock-timeout", "0.3")
    assert result.code == 4, result.stderr
    assert f"held by pid {os.getpid()} (" in result.stderr
    assert "for more than 0.3s" in result.stderr
    assert "Traceback" not in result.stderr
    assert "4321" not in nat_dump(lab.pod, "nft")
    assert other.code == 0, other.stderr  # another namespace: another lock
    assert podnat(lab.pod, "apply", {R: "4321:1234"}).code == 0


def test_verify_and_cleanup_take_the_lock_too(lab: Lab) -> None:
    assert podnat(lab.pod, "apply", {R: "4321:1234"}).code == 0
    with locked(lab.pod.path):
        verdict = podnat(lab.pod, "verify", {R: "4321:1234"}, "--lock-timeout", "0.2")
        removed = podnat(lab.pod, "cleanup", None, "--lock-timeout", "0.2")
    assert (verdict.code, removed.code) == (4, 4)
    assert "4321" in nat_dump(lab.pod, "nft")


def test_a_lock_timeout_that_is_not_a_number_of_seconds_is_refused(lab: Lab) -> None:
    for bad in ("nan", "-1", "inf", "1e9", "soon"):
        result = podnat(lab.pod, "apply", {R: "4321:1234"}, "--lock-timeout", bad)
        assert result.code == 2, result.stderr
        assert "is not a number of seconds" in result.stderr
