"""Taking a `flock` within a deadline: the podnat namespace lock and the xtables lock."""

from __future__ import annotations

import fcntl
import time


def flock_within(fd: int, mode: int, timeout: float) -> bool:
    """Take `mode` (LOCK_EX or LOCK_SH) on fd, polling with a growing pause (2 to 50 ms)
    until `timeout` seconds have passed; False if it never came free. Polled, not a
    blocking call with an alarm: signals are the process's, and this may run in a thread."""
    deadline = time.monotonic() + timeout
    pause = 0.002
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
