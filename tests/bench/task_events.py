"""When a container's process started and exited, as the node's containerd saw it.

The pod status's timestamps are whole seconds and /proc's start time counts 10 ms
ticks; containerd's task events carry nanoseconds. A watcher per node streams
`ctr events` (started before the pods it times); a container's span is from its
/tasks/start event to its /tasks/exit event, or to a moment the container logged
(podnat's "installed ruleset" record). Nothing is added to the timed container:
the baseline's command is the iptables or nft binary itself.

`ctr events` prints one event a line:
    2026-11-29 22:40:01.123456789 +0000 UTC k8s.io /tasks/start {"container_id":"…","pid":7}
"""

from __future__ import annotations

import calendar
import json
import re
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import NamedTuple

_LINE = re.compile(
    r"^(?P<date>\d{4}-\d\d-\d\d) (?P<clock>\d\d:\d\d:\d\d)(?:\.(?P<frac>\d{1,9}))? "
    r"(?P<sign>[+-])(?P<hh>\d\d)(?P<mm>\d\d) \S+(?: m=[+-]\S+)? (?P<ns>\S+) "
    r"(?P<topic>/tasks/(?:start|exit)) "
    r"(?P<body>\{.*\})$"
)


class TaskEvent(NamedTuple):
    at: float  # seconds since the epoch
    topic: str  # /tasks/start or /tasks/exit
    container: str


def parse_line(line: str) -> TaskEvent | None:
    """A task start or exit event of `ctr events`; None for any other line."""
    match = _LINE.match(line.strip())
    if match is None:
        return None
    body = json.loads(match["body"])
    container = body.get("container_id")
    if not isinstance(container, str):
        return None
    # A task's exec'd processes have an id of their own: only the container's main task.
    if match["topic"] == "/tasks/exit" and body.get("id", container) != container:
        return None
    whole = calendar.timegm(time.strptime(f"{match['date']} {match['clock']}", "%Y-%m-%d %H:%M:%S"))
    offset = (int(match["hh"]) * 3600 + int(match["mm"]) * 60) * (-1 if match["sign"] == "-" else 1)
    fraction = int((match["frac"] or "0").ljust(9, "0")) / 1e9
    return TaskEvent(whole - offset + fraction, match["topic"], container)


def iso_seconds(stamp: str) -> float:
    """podnat's JSON log "ts" (2026-11-29T22:40:01.123456Z) in seconds since the epoch."""
    whole, micros = stamp.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + int(micros) / 1e6


class TaskEvents:
    """`ctr events` on every node (argv prefixes such as `docker exec NODE`), read in
    threads; `span` waits for a container's events."""

    def __init__(self, node_commands: Sequence[Sequence[str]]) -> None:
        self._events: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        # `docker exec` leaves its command running when the client goes: each `ctr` says
        # its PID first, and close() stops it by that PID (it went on through the pod-start
        # rounds before, in every node).
        self._prefixes = [list(prefix) for prefix in node_commands]
        self._procs = [
            subprocess.Popen(
                [*prefix, "sh", "-c", "echo $$; exec ctr events"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for prefix in self._prefixes
        ]
        self._pids: list[str] = []
        for proc in self._procs:
            assert proc.stdout is not None
            self._pids.append(proc.stdout.readline().strip())
            threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = parse_line(line)
            if event is not None:
                with self._lock:
                    self._events.setdefault((event.container, event.topic), event.at)

    def when(self, container: str, topic: str, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = self._events.get((container, topic))
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {topic} event for container {container}")
            time.sleep(0.05)

    def close(self) -> None:
        for prefix, pid in zip(self._prefixes, self._pids, strict=True):
            if pid.isdigit():
                subprocess.run([*prefix, "kill", pid], capture_output=True, check=False)
        for proc in self._procs:
            proc.terminate()
            proc.wait(timeout=10)

    def __enter__(self) -> TaskEvents:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
