"""`podnat webhook` over real TLS on loopback: probes, errors, metrics, certificate reload."""

from __future__ import annotations

import http.client
import shutil
import ssl
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from testbed import Pki, running_webhook


@dataclass
class Server:
    port: int
    context: ssl.SSLContext
    dir: Path

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, str]:
        """Status, body, and the CN of the certificate the server presented."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=5)
        try:
            conn.request(method, path, body=body)
            reply = conn.getresponse()
            data = reply.read()
            cert = conn.sock.getpeercert() if conn.sock else None
            rdns: Any = (cert or {}).get("subject", ())
            subject = {key: value for rdn in rdns for key, value in rdn}
            return reply.status, data, str(subject.get("commonName"))
        finally:
            conn.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    pki = Pki.create(tmp_path)
    for name in ("first", "second"):
        pki.issue(name, f"/CN={name}")
    shutil.copy(tmp_path / "first.crt", tmp_path / "tls.crt")
    shutil.copy(tmp_path / "first.key", tmp_path / "tls.key")
    command = [sys.executable, "-m", "helper.cli"]
    with running_webhook(command, pki, tmp_path / "tls.crt", tmp_path / "tls.key") as port:
        yield Server(port, pki.context(), tmp_path)


def test_probes_answer_ok(server: Server) -> None:
    assert server.request("GET", "/healthz")[:2] == (200, b"ok\n")
    assert server.request("GET", "/readyz")[:2] == (200, b"ok\n")


def test_malformed_unknown_and_oversized_requests_get_4xx(server: Server) -> None:
    assert server.request("POST", "/mutate", b"{not json")[0] == 400
    assert server.request("GET", "/nowhere")[0] == 404
    assert server.request("POST", "/mutate", b"x" * (4 * 1024 * 1024))[0] == 413
    assert server.request("GET", "/healthz")[0] == 200  # and it is still serving


def test_metrics_count_requests(server: Server) -> None:
    server.request("POST", "/mutate", b"{}")
    status, body, _ = server.request("GET", "/metrics")
    assert status == 200
    text = body.decode()
    assert 'podnat_webhook_requests_total{code="400",path="/mutate"} 1.0' in text
    assert "podnat_webhook_request_seconds_bucket" in text
    assert "podnat_webhook_injections_total 0.0" in text


def test_a_rotated_certificate_is_served_without_a_restart(server: Server) -> None:
    assert server.request("GET", "/healthz")[2] == "first"
    shutil.copy(server.dir / "second.key", server.dir / "tls.key")
    shutil.copy(server.dir / "second.crt", server.dir / "tls.crt")
    for _ in range(100):  # the reloader looks every 2 s
        if server.request("GET", "/healthz")[2] == "second":
            break
        time.sleep(0.1)
    assert server.request("GET", "/healthz")[2] == "second"
