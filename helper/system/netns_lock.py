"""One podnat lock per network namespace: `flock` on the namespace's own nsfs file.

Every path to a namespace (/run/netns/NAME, /proc/PID/ns/net, the
/proc/thread-self/ns/net of a process inside it) opens the same nsfs inode, and
flock locks an inode. So an init container and a node agent, which share no
filesystem, still exclude each other; a file under /run would not. Taken after
entering the namespace; the xtables lock (for iptables' sake) is taken inside it.

Worker processes inherit the descriptor (`namespace_lock` yields it), so a worker
still committing after its parent was killed keeps the namespace locked.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from helper.errors import ExitCode, PodnatError
from helper.system.flock import flock_within

OWN_NAMESPACE = "/proc/thread-self/ns/net"  # this thread's: setns acts per thread
DEFAULT_TIMEOUT = 10.0


class NamespaceLockError(PodnatError):
    exit_code = ExitCode.BACKEND


@contextmanager
def namespace_lock(*, shared: bool = False, timeout: float = DEFAULT_TIMEOUT) -> Iterator[int]:
    """Hold the calling thread's network namespace's podnat lock (shared: readers like
    verify); yields the lock's descriptor, for worker processes to inherit."""
    try:
        fd = os.open(OWN_NAMESPACE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise NamespaceLockError(f"cannot open {OWN_NAMESPACE}: {err.strerror}") from err
    try:
        _wait(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX, timeout)
        yield fd
    finally:
        os.close(fd)


def _wait(fd: int, mode: int, timeout: float) -> None:
    try:
        taken = flock_within(fd, mode, timeout)
    except OSError as err:
        raise NamespaceLockError(f"cannot lock this network namespace: {err}") from err
    if not taken:
        raise NamespaceLockError(
            f"another podnat is changing this network namespace's rules for more than "
            f"{timeout:g}s (held by {holder(fd)}); nothing changed"
        )


def holder(fd: int) -> str:
    """Who holds the flock on fd's inode, from /proc/locks: a pid and its command line."""
    stat = os.fstat(fd)
    key = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    try:
        with open("/proc/locks") as locks:  # noqa: PTH123 - one streamed read
            lines = locks.read(1 << 20).splitlines()
    except OSError:
        return "an unknown process"
    pids = [
        fields[4]
        for line in lines
        if (fields := line.split()) and len(fields) > 5 and fields[1] == "FLOCK"
        if fields[5] == key
    ]
    if not pids or pids[0] in ("0", "-1"):
        return "a process in another PID namespace"
    return f"pid {pids[0]} ({_command(pids[0])})"


def _command(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:  # noqa: PTH123
            raw = cmdline.read(300)
    except OSError:
        return "command line unreadable"
    text = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return text[:200] or "no command line"
