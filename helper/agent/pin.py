"""Hold a sandbox's network namespace open while podnat works in it.

`Sandbox.netns` is `/proc/PID/ns/net`: if the process ended and its PID were reused
between finding and entering, the path would name another namespace. Opened once,
checked (the namespace's inode, and the process's start time *after* the open, so
that process held the PID all along), and entered through `/proc/self/fd/N`, the
engine acts on exactly the namespace that was found.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helper.agent.sandboxes import STAT_FILE_CAP, Sandbox
from helper.system.process_clock import start_ticks


@contextmanager
def pinned(sandbox: Sandbox) -> Iterator[Path | None]:
    """A path to the very namespace found, or None when the sandbox has gone meanwhile."""
    try:
        fd = os.open(sandbox.netns, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        yield None
        return
    try:
        same = os.fstat(fd).st_ino == sandbox.inode and _started(sandbox) == sandbox.start_ticks
        yield Path(f"/proc/self/fd/{fd}") if same else None
    finally:
        os.close(fd)


def _started(sandbox: Sandbox) -> int | None:
    stat = sandbox.netns.parent.parent / "stat"  # <proc>/<pid>/ns/net -> <proc>/<pid>/stat
    try:
        with stat.open("rb") as file:
            return start_ticks(file.read(STAT_FILE_CAP).decode("utf-8", "surrogateescape"))
    except (OSError, ValueError, IndexError):
        return None
