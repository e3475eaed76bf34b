"""When processes started, on the clock the kernel counts it with: /proc/PID/stat's field 22,
clock ticks since boot (CLOCK_BOOTTIME, suspend included). One reading for the init
container's "how long did the pod wait for podnat" and the agent's sandbox ages."""

# Annotations evaluated at import, no __future__ import: see helper/__init__.py.
import os
import time

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def start_ticks(stat_text: str) -> int:
    """Field 22 of /proc/PID/stat, counted after the command name (which may hold ')')."""
    fields = stat_text[stat_text.rindex(")") + 1 :].split()
    return int(fields[19])


def now() -> float:
    """Seconds since boot."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def started(ticks: int) -> float:
    """A process's start (its start_ticks), in seconds since boot."""
    return ticks / _TICKS_PER_S


def age(ticks: int) -> float:
    """Seconds since a process (its start_ticks) started."""
    return now() - started(ticks)
