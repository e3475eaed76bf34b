"""podnat's log records: the part of `logging`'s API podnat calls, without importing
`logging` in a process that only writes its records to stderr.

Importing `logging` (traceback, string, threading, weakref...) and building its
formatters is ~10 ms of every init container's start (measured on the runtime venv).
A one-shot command (apply, plan, verify, cleanup, inject) writes podnat's records
straight to stderr inside `to_stderr`; everywhere else (the agent, the webhook, the
tests) each record goes to the standard logger of the same name, as it always did.
"""

# Annotations evaluated at import, no __future__ import: see helper/__init__.py.
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
LEVELS = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR}
_LEVEL_NAMES = {number: name for name, number in LEVELS.items()}
ROOT = "podnat"  # `to_stderr` serves this logger and its children ("podnat.kube")


class Record(NamedTuple):
    created: float  # seconds since the epoch
    level: str  # "debug", "info", "warning" or "error"
    message: str
    extra: dict[str, Any]  # fields a JSON log carries beside the message


Format = Callable[[Record], str]

# (the lowest level written, the format) while a one-shot command runs
_direct: tuple[int, Format] | None = None


class Logger:
    """`logging.getLogger(name)`'s debug/info/warning/error, %-style arguments and `extra`."""

    def __init__(self, name: str = ROOT) -> None:
        self.name = name
        self._served = name == ROOT or name.startswith(ROOT + ".")

    def debug(self, msg: str, *args: object, extra: dict[str, Any] | None = None) -> None:
        self._emit(DEBUG, msg, args, extra)

    def info(self, msg: str, *args: object, extra: dict[str, Any] | None = None) -> None:
        self._emit(INFO, msg, args, extra)

    def warning(self, msg: str, *args: object, extra: dict[str, Any] | None = None) -> None:
        self._emit(WARNING, msg, args, extra)

    def error(self, msg: str, *args: object, extra: dict[str, Any] | None = None) -> None:
        self._emit(ERROR, msg, args, extra)

    def _emit(self, level: int, msg: str, args: tuple[object, ...], extra: Any) -> None:
        direct = _direct if self._served else None
        if direct is None:
            import logging  # noqa: PLC0415 - only where someone may listen to the standard logger

            logging.getLogger(self.name).log(level, msg, *args, extra=extra, stacklevel=3)
            return
        lowest, line = direct
        if level < lowest:
            return
        message = msg % args if args else msg
        record = Record(time.time(), _LEVEL_NAMES[level], message, extra or {})
        sys.stderr.write(line(record) + "\n")
        sys.stderr.flush()


@contextmanager
def to_stderr(level: str, line: Format) -> Iterator[None]:
    """Within: podnat's records at `level` and above go to stderr as `line` makes them."""
    global _direct  # noqa: PLW0603 - one sink for the process, restored on the way out
    saved = _direct
    _direct = (LEVELS[level], line)
    try:
        yield
    finally:
        _direct = saved
