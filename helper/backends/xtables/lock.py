"""The xtables lock, taken the way iptables takes it (flock on a file).

libiptc itself takes no lock, so two writers could each replace the nat table
with their own copy. Inside a pod the default path is pod-local anyway (the
container's own /run), and XTABLES_LOCKFILE moves it, as it does for iptables.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from helper.backends.base import BackendError
from helper.log import Logger
from helper.system import StrPath
from helper.system.flock import flock_within

DEFAULT_PATH = "/run/xtables.lock"
_log = Logger(__name__)


def lock_path(explicit: StrPath | None = None) -> StrPath:
    if explicit is not None:
        return explicit
    env = os.environ.get("XTABLES_LOCKFILE")
    return env or DEFAULT_PATH


@contextmanager
def xtables_lock(path: StrPath | None = None, timeout: float = 10.0) -> Iterator[None]:
    where = lock_path(path)
    try:
        fd = _open(where)
    except OSError as err:
        # A read-only root filesystem without a writable /run: nobody else in this
        # mount namespace can take the lock either, so going on is safe.
        _log.debug("xtables lock %s unavailable (%s); continuing without it", where, err)
        yield
        return
    try:
        if not flock_within(fd, fcntl.LOCK_EX, timeout):
            raise BackendError(
                f"iptables-legacy: the xtables lock {where} is held by another "
                f"process for more than {timeout:g}s"
            )
        yield
    finally:
        os.close(fd)


def _open(where: StrPath) -> int:
    try:
        return os.open(where, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError as err:
        # Not ours to write (the image's file, a read-only root): flock needs no more.
        if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        return os.open(where, os.O_RDONLY | os.O_CLOEXEC)
