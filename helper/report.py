"""How podnat tells people what happened: logs (text or JSON) and the termination log."""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from helper.log import Logger, Record, to_stderr
from helper.system import StrPath, process_clock

if TYPE_CHECKING:
    import logging

DEFAULT_TERMINATION_LOG = "/dev/termination-log"
LOGGER = "podnat"
_log = Logger(LOGGER)


def json_line(record: Record) -> str:
    entry: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        + f".{int(record.created % 1 * 1_000_000):06d}Z",
        "level": record.level,
        "msg": record.message,
    }
    entry.update(record.extra)
    return json.dumps(entry, default=str)


def text_line(record: Record) -> str:
    text = f"podnat: {record.level}: {record.message}"
    ruleset = record.extra.get("ruleset")
    if ruleset:
        text += "\n" + str(ruleset).rstrip("\n")
    return text


def log_to_stderr(fmt: str, level: str) -> AbstractContextManager[None]:
    """A one-shot command's logging: podnat's records straight to stderr (see helper.log)."""
    return to_stderr(level, json_line if fmt == "json" else text_line)


def setup_logging(fmt: str, level: str) -> logging.Logger:
    """A long-lived command's logging (agent, webhook): the standard logger "podnat"."""
    import logging  # noqa: PLC0415 - one-shot commands never import it (see helper.log)

    standard = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))
    line = json_line if fmt == "json" else text_line

    class Formatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            extra = {k: v for k, v in vars(record).items() if k not in standard}
            level = record.levelname.lower()
            return line(Record(record.created, level, record.getMessage(), extra))

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Formatter())
    logger = logging.getLogger(LOGGER)
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


def since_process_start_ms() -> float | None:
    """Milliseconds since this process was exec'd (the kernel's start time, 10 ms ticks)."""
    try:
        with open("/proc/self/stat", encoding="utf-8", errors="surrogateescape") as file:
            ticks = process_clock.start_ticks(file.read())
    except (OSError, IndexError, ValueError):
        return None
    return round(process_clock.age(ticks) * 1000, 1)


def termination_log_path(explicit: StrPath | None) -> StrPath | None:
    """The explicit path, else /dev/termination-log when it exists and is writable."""
    if explicit is not None:
        return explicit
    if os.path.exists(DEFAULT_TERMINATION_LOG) and os.access(DEFAULT_TERMINATION_LOG, os.W_OK):
        return DEFAULT_TERMINATION_LOG
    return None


def write_termination_log(path: StrPath | None, message: str) -> None:
    if path is None:
        return
    try:
        with open(path, "w", encoding="utf-8") as file:
            file.write(message.rstrip("\n")[:4000] + "\n")
    except OSError as err:
        _log.warning("cannot write termination log %s: %s", path, err)
