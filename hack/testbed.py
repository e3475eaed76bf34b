"""What tests and benchmarks share: a throwaway PKI, free loopback ports, a running webhook."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOOPBACK_SAN = "subjectAltName=IP:127.0.0.1"


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Targets:
    """A benchmark's targets, checked as it prints its numbers; `verdict` is the exit code."""

    missed: list[str] = field(default_factory=list)

    def check(self, met: bool, what: str) -> None:
        if not met:
            self.missed.append(what)

    def verdict(self, scope: str) -> int:
        if self.missed:
            print(f"{scope}: MISSED: " + "; ".join(self.missed))
            return 1
        print(f"{scope}: all targets met")
        return 0


@dataclass(frozen=True)
class Pki:
    """A CA in `dir` (ca.crt, ca.key) that issues NAME.crt / NAME.key beside it."""

    dir: Path

    @classmethod
    def create(cls, directory: Path, name: str = "podnat-test-ca", days: int = 1) -> Pki:
        openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            str(days),
            "-subj",
            f"/CN={name}",
            "-keyout",
            str(directory / "ca.key"),
            "-out",
            str(directory / "ca.crt"),
        )
        return cls(directory)

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"

    def issue(
        self, name: str, subject: str, extension: str = LOOPBACK_SAN, days: int = 1
    ) -> tuple[Path, Path]:
        """(certificate, key) for `subject`, e.g. "/CN=webhook"."""
        d = self.dir
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            str(d / f"{name}.key"),
            "-out",
            str(d / f"{name}.csr"),
        )
        (d / f"{name}.ext").write_text(extension + "\n")
        openssl(
            "x509",
            "-req",
            "-in",
            str(d / f"{name}.csr"),
            "-CA",
            str(self.ca),
            "-CAkey",
            str(d / "ca.key"),
            "-CAcreateserial",
            "-days",
            str(days),
            "-extfile",
            str(d / f"{name}.ext"),
            "-out",
            str(d / f"{name}.crt"),
        )
        return d / f"{name}.crt", d / f"{name}.key"

    def context(self) -> ssl.SSLContext:
        """A client context that trusts this CA only."""
        return ssl.create_default_context(cafile=str(self.ca))


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
