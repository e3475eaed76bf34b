"""How podnat tells people what happened: logs (text or JSON) and the termination log."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_TERMINATION_LOG = Path("/dev/termination-log")
LOGGER = "podnat"
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.created % 1 * 1_000_000):06d}Z",
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = f"podnat: {record.levelname.lower()}: {record.getMessage()}"
        ruleset = getattr(record, "ruleset", None)
        if ruleset:
            text += "\n" + str(ruleset).rstrip("\n")
        return text


def since_process_start_ms() -> float | None:
    """Milliseconds since this process was exec'd (the kernel's start time, 10 ms ticks)."""
    try:
        stat = Path("/proc/self/stat").read_bytes()
        # Field 22, counted after the command name (which may hold spaces).
        start_ticks = int(stat.rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None
    started = start_ticks / os.sysconf("SC_CLK_TCK")
    return round((time.clock_gettime(time.CLOCK_BOOTTIME) - started) * 1000, 1)


def setup_logging(fmt: str, level: str) -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger = logging.getLogger(LOGGER)
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


def termination_log_path(explicit: Path | None) -> Path | None:
    """The explicit path, else /dev/termination-log when it exists and is writable."""
    if explicit is not None:
        return explicit
    if DEFAULT_TERMINATION_LOG.exists() and os.access(DEFAULT_TERMINATION_LOG, os.W_OK):
        return DEFAULT_TERMINATION_LOG
    return None


def write_termination_log(path: Path | None, message: str) -> None:
    if path is None:
        return
    try:
        path.write_text(message.rstrip("\n")[:4000] + "\n", encoding="utf-8")
    except OSError as err:
        logging.getLogger(LOGGER).warning("cannot write termination log %s: %s", path, err)
