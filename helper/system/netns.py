"""Entering a network namespace by path (e.g. /run/netns/NAME or /proc/PID/ns/net)."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from helper.errors import ExitCode, PodnatError
from helper.system import StrPath

T = TypeVar("T")

CLONE_NEWNET = 0x40000000


class NetnsError(PodnatError):
    exit_code = ExitCode.BACKEND


def enter(path: StrPath) -> None:
    """Move the calling thread into the network namespace at `path`.

    Call before opening any netlink socket: sockets keep the namespace they were
    born in. (os.setns arrives only in Python 3.12.)
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise NetnsError(f"--netns {path}: {err.strerror}") from err
    try:
        _setns(fd, f"--netns {path}")
    finally:
        os.close(fd)


def _setns(fd: int, what: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise NetnsError(f"{what}: setns: {os.strerror(errno)} (needs CAP_SYS_ADMIN)")


def run_inside(path: StrPath, work: Callable[[], T]) -> T:
    """Run `work` in a new thread that enters the namespace at `path` and ends with it.

    setns acts on the calling thread only, so the caller's thread, and every other
    thread, stays where it was, whatever `work` does or raises; sockets and worker
    processes `work` opens are born in the namespace. (The annotations source and
    its Events talk to the API server from the caller's namespace, not the pod's.)
    """
    import threading  # noqa: PLC0415 - long-lived processes only; the CLI uses `entered`

    outcome: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            enter(path)
            outcome.append(work())
        except BaseException as err:  # handed to the caller's thread
            failure.append(err)

    thread = threading.Thread(target=body, name=f"podnat in {path}")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


@contextmanager
def entered(path: StrPath) -> Iterator[None]:
    """The calling thread inside the namespace at `path`, back in its own afterwards.

    For a process whose one job this is (the CLI): no thread to start, and its
    system calls stay on the main thread (tools like strace follow it there).
    """
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        enter(path)
        try:
            yield
        finally:
            _setns(original, "the original namespace")
    finally:
        os.close(original)
