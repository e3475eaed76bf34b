"""A throwaway PKI: a CA that issues certificates for loopback servers and test clients."""

from __future__ import annotations

import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

LOOPBACK_SAN = "subjectAltName=IP:127.0.0.1"


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@dataclass(frozen=True)
class Pki:
    """A CA in `dir` (ca.crt, ca.key) that issues NAME.crt / NAME.key beside it."""

    dir: Path

    @classmethod
    def create(cls, directory: Path, name: str = "podnat-test-ca", days: int = 1) -> Pki:
        # keyUsage as a real cluster CA has it: Python 3.13 (trixie's image) verifies with
        # VERIFY_X509_STRICT by default and refuses a CA without one.
        openssl(
            "req",
            "-x509",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
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
