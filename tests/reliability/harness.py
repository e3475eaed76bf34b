"""Real `podnat` processes against a lab namespace: started, watched, killed, waited for."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.kit.lab import Netns
from tests.kit.paths import REPO
from tests.netns.podnat import downward_file

TRANSACTION_BEGINS = "podnat: info: backend "  # logged once chosen, right before it
TRANSACTION_ENDS = "installed ruleset"
BEFORE, MID, AFTER = "before the transaction", "mid-transaction", "after the commit"
LEGACY_SAVE = {"ipv4": "iptables-legacy-save", "ipv6": "ip6tables-legacy-save"}


def redirects(count: int, first: int, to: int) -> str:
    """`count` distinct redirects: a plan big enough that a kill can land inside it."""
    return ", ".join(f"{first + i}:{to + (i * 7) % 1000}" for i in range(count))


def family_listings(ns: Netns, backend: str) -> dict[str, str]:
    """podnat's rules per family as the kernel's own tools print them (canonical)."""
    if backend == "nft":  # one inet table for both families
        return {"inet": ns.run("nft", "list", "table", "inet", "podnat", check=False)}
    out = {}
    for family, tool in LEGACY_SAVE.items():
        text = ns.run(tool, "-t", "nat")
        out[family] = "\n".join(line for line in text.splitlines() if "PODNAT" in line)
    return out


def holds_rules(ns: Netns, backend: str) -> bool:
    return any(family_listings(ns, backend).values())


def wait_until_quiet(ns: Netns, timeout: float = 60.0) -> None:
    """Until no podnat process (or orphaned worker) holds the namespace's lock."""
    fd = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{ns.name} still locked after {timeout}s") from None
                time.sleep(0.005)
    finally:
        os.close(fd)


@dataclass
class Watched:
    """A podnat process whose stderr lines are stamped as they arrive."""

    process: subprocess.Popen[bytes]
    started: float
    lines: list[tuple[float, str]] = field(default_factory=list)
    began: threading.Event = field(default_factory=threading.Event)  # the transaction's
    _reader: threading.Thread | None = None

    def read(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        for raw in stream:
            line = raw.decode(errors="replace")
            self.lines.append((time.perf_counter() - self.started, line))
            if TRANSACTION_BEGINS in line:
                self.began.set()
        self.began.set()  # the process is gone: nobody waits for a line that never comes

    def wait(self, timeout: float = 120.0) -> int:
        code = self.process.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        return code

    def where_killed(self, exited: bool) -> str:
        """Where a kill landed, by the log lines the process got out before it."""
        text = self.stderr
        if exited or TRANSACTION_ENDS in text:
            return AFTER
        return MID if TRANSACTION_BEGINS in text else BEFORE

    def stamp(self, needle: str) -> float | None:
        return next((t for t, line in self.lines if needle in line), None)

    @property
    def stderr(self) -> str:
        return "".join(line for _, line in self.lines)


def start(ns: Netns, command: str, annotations: dict[str, str], tmp: Path, *extra: str) -> Watched:
    """`podnat COMMAND --netns NS` as its own process group (a container's processes)."""
    tmp.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "helper.cli",
        command,
        "--netns",
        str(ns.path),
        "--annotations-file",
        str(downward_file(annotations, tmp)),
        "--termination-log",
        os.devnull,
        *extra,
    ]
    process = subprocess.Popen(
        argv,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    watched = Watched(process, time.perf_counter())
    watched._reader = threading.Thread(target=watched.read, daemon=True)
    watched._reader.start()
    return watched


def kill(watched: Watched, *, group: bool) -> None:
    """SIGKILL the podnat process, or its whole group (as a container runtime does)."""
    try:
        if group:
            os.killpg(watched.process.pid, signal.SIGKILL)
        else:
            watched.process.send_signal(signal.SIGKILL)
    except ProcessLookupError:
        pass
