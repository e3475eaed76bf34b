"""`podnat webhook` over real TLS on loopback: probes, errors, metrics, certificate reload."""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.netns.podnat import REPO


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def issue(d: Path, name: str, ca: Path, ca_key: Path) -> None:
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        f"/CN={name}",
        "-keyout",
        str(d / f"{name}.key"),
        "-out",
        str(d / f"{name}.csr"),
    )
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        str(d / f"{name}.csr"),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        str(d / "ext"),
        "-out",
        str(d / f"{name}.crt"),
    )


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
    d = tmp_path
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=ca",
        "-keyout",
        str(d / "ca.key"),
        "-out",
        str(d / "ca.crt"),
    )
    for name in ("first", "second"):
        issue(d, name, d / "ca.crt", d / "ca.key")
    shutil.copy(d / "first.crt", d / "tls.crt")
    shutil.copy(d / "first.key", d / "tls.key")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "helper.cli",
            "webhook",
            "--cert",
            str(d / "tls.crt"),
            "--key",
            str(d / "tls.key"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=REPO,
    )
    running = Server(port, ssl.create_default_context(cafile=str(d / "ca.crt")), d)
    try:
        for _ in range(100):
            try:
                running.request("GET", "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        yield running
    finally:
        process.terminate()
        process.wait(timeout=10)


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
