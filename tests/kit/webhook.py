"""Free loopback ports, and `podnat webhook` running on one."""

from __future__ import annotations

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
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
