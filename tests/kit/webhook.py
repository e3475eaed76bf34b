"""Free loopback ports, and `podnat webhook` running on one."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.kit.paths import REPO
from tests.kit.pki import Pki


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Ports free now, all different: bound together, so the kernel cannot hand one out
    twice. (One bound and closed at a time, etcd's and the API server's may be the same:
    the API server then never comes up, TLS to etcd's port failing, as a run here did.)"""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


@contextmanager
def running_webhook(
    command: Sequence[str],
    pki: Pki,
    cert: Path,
    key: Path,
    *extra: str,
    port: int = 0,
    log: Path | None = None,
) -> Iterator[int]:
    """`COMMAND webhook` on loopback (a free port unless given), up (TLS /healthz answered);
    yields the port. Its stderr goes to `log` when given."""
    port = port or free_port()
    process = subprocess.Popen(
        [
            *command,
            "webhook",
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *extra,
        ],
        cwd=REPO,
        stderr=log.open("ab") if log else None,
    )
    context = pki.context()
    try:
        for _ in range(100):
            try:
                url = f"https://127.0.0.1:{port}/healthz"
                with urllib.request.urlopen(url, context=context, timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
