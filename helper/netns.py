"""Entering a network namespace by path (e.g. /run/netns/NAME or /proc/PID/ns/net)."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helper.errors import PodnatError

CLONE_NEWNET = 0x40000000


class NetnsError(PodnatError):
    exit_code = 4


def enter(path: Path) -> None:
    """Move this process's thread into the network namespace at `path`.

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


@contextmanager
def entered(path: Path | None) -> Iterator[None]:
    """Inside the namespace at `path` (None: stay), back in the original one afterwards.

    The way back matters: the annotations source and its Events talk to the API
    server from the namespace podnat started in, not from the pod's.
    """
    if path is None:
        yield
        return
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        enter(path)
        try:
            yield
        finally:
            _setns(original, "the original namespace")
    finally:
        os.close(original)
