"""`podnat webhook` over real TLS on loopback: probes, errors, metrics, certificate reload,
and clients that are malformed, heavy or slow."""

from __future__ import annotations

import email.utils
import http.client
import json
import shutil
import socket
import ssl
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.kit.pki import Pki
from tests.kit.webhook import running_webhook

DEADLINE = 1  # seconds for headers, body and idle in these tests
SLACK = 3.0  # seconds a dropped connection may take beyond its deadline on a busy VM


@dataclass
class Server:
    port: int
    context: ssl.SSLContext
    dir: Path

    def request(
        self, method: str, path: str, body: bytes | None = None, timeout: float = 10
    ) -> tuple[int, bytes, str]:
        """Status, body, and the CN of the certificate the server presented."""
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.context, timeout=timeout
        )
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

    def tls_socket(self) -> ssl.SSLSocket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE + SLACK)
        return self.context.wrap_socket(sock, server_hostname="127.0.0.1")


def _serve(directory: Path) -> Iterator[Server]:
    pki = Pki.create(directory)
    for name in ("first", "second"):
        pki.issue(name, f"/CN={name}")
    shutil.copy(directory / "first.crt", directory / "tls.crt")
    shutil.copy(directory / "first.key", directory / "tls.key")
    command = [sys.executable, "-m", "helper.cli"]
    timeouts = ["--header-timeout", str(DEADLINE), "--body-timeout", str(DEADLINE)]
    timeouts += ["--idle-timeout", str(DEADLINE)]
    with running_webhook(
        command, pki, directory / "tls.crt", directory / "tls.key", *timeouts,
        log=directory / "stderr",
    ) as port:  # fmt: skip
        yield Server(port, pki.context(), directory)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that leave it as they found it (a start costs ~2 s)."""
    yield from _serve(tmp_path_factory.mktemp("webhook"))


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own: its certificate files are the test's to change."""
    yield from _serve(tmp_path)


def test_probes_answer_ok(server: Server) -> None:
    assert server.request("GET", "/healthz")[:2] == (200, b"ok\n")
    assert server.request("GET", "/readyz")[:2] == (200, b"ok\n")


def _date(server: Server) -> float:
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.context, timeout=10)
    try:
        conn.request("GET", "/healthz")
        reply = conn.getresponse()
        reply.read()
        return email.utils.parsedate_to_datetime(reply.headers["Date"]).timestamp()
    finally:
        conn.close()


def test_the_date_header_stays_current_while_the_server_idles(server: Server) -> None:
    # The server's loop wakes once a second (helper/admission/quiet_server.py), and each
    # wake-up refreshes the Date header, as uvicorn's own loop did every tenth tick.
    first = _date(server)
    time.sleep(2.2)
    second = _date(server)
    assert second - first >= 1
    assert abs(second - time.time()) <= 2


def test_malformed_unknown_and_oversized_requests_get_4xx(server: Server) -> None:
    assert server.request("POST", "/mutate", b"{not json")[0] == 400
    assert server.request("GET", "/nowhere")[0] == 404
    assert server.request("POST", "/mutate", b"x" * (4 * 1024 * 1024))[0] == 413
    assert server.request("GET", "/healthz")[0] == 200  # and it is still serving


def metric(server: Server, sample: str) -> float:
    status, body, _ = server.request("GET", "/metrics")
    assert status == 200
    lines = [line for line in body.decode().splitlines() if line.startswith(sample + " ")]
    return float(lines[0].split()[-1]) if lines else 0.0


def test_metrics_count_requests(server: Server) -> None:
    bad = 'podnat_webhook_requests_total{code="400",path="/mutate"}'
    injected = "podnat_webhook_injections_total"
    before = metric(server, bad), metric(server, injected)
    server.request("POST", "/mutate", b"{}")
    assert (metric(server, bad), metric(server, injected)) == (before[0] + 1, before[1])
    assert "podnat_webhook_request_seconds_bucket" in server.request("GET", "/metrics")[1].decode()


def test_a_rotated_certificate_is_served_without_a_restart(own_server: Server) -> None:
    assert own_server.request("GET", "/healthz")[2] == "first"
    shutil.copy(own_server.dir / "second.key", own_server.dir / "tls.key")
    shutil.copy(own_server.dir / "second.crt", own_server.dir / "tls.crt")
    for _ in range(100):  # the reloader looks every 2 s
        if own_server.request("GET", "/healthz")[2] == "second":
            break
        time.sleep(0.1)
    assert own_server.request("GET", "/healthz")[2] == "second"


def review_of(pod: dict[str, Any]) -> bytes:
    request = {
        "uid": "u",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "operation": "CREATE",
        "object": pod,
    }
    return json.dumps(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    ).encode()


def annotated(**spec: Any) -> dict[str, Any]:
    metadata = {"generateName": "web-", "annotations": {"podnat.io/redirect": "4321:1234"}}
    return {"metadata": metadata, "spec": {"containers": [{"name": "app"}], **spec}}


def test_malformed_pods_are_400_and_never_a_traceback(server: Server) -> None:
    for pod in (
        {"metadata": "web"},
        {"metadata": {"annotations": ["podnat.io/redirect"]}},
        {"metadata": {"annotations": {"podnat.io/redirect": 4321}}},
        {"metadata": {"annotations": {"podnat.io/redirect": False}}},
        annotated(initContainers=["x"]),
        annotated(volumes=["x"]),
        {**annotated(), "spec": "x"},
    ):
        status, body, _ = server.request("POST", "/mutate", review_of(pod))
        assert status == 400, body
        assert body.startswith(b"not a pod podnat can read: ")
    assert server.request("GET", "/healthz")[0] == 200
    log = (server.dir / "stderr").read_text()
    assert "webhook listening" in log  # the server's own stderr, read where it goes
    assert "Traceback" not in log


def read_response(sock: ssl.SSLSocket) -> tuple[int, bytes]:
    sock.setblocking(True)
    reply = http.client.HTTPResponse(sock)
    reply.begin()
    return reply.status, reply.read()


def test_probes_answer_while_a_heavy_review_runs(server: Server) -> None:
    # A valid pod with 150,000 volumes: 2.9 MiB, a second or so of work. Before, the
    # decision ran on the event loop and the probe waited until it was done.
    heavy = review_of(annotated(volumes=[{"name": f"v{i}"} for i in range(150_000)]))
    with server.tls_socket() as sock:
        head = f"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: {len(heavy)}\r\n\r\n"
        sock.sendall(head.encode() + heavy)
        time.sleep(0.2)  # the body is in: the decision is under way
        assert server.request("GET", "/healthz")[0] == 200
        sock.setblocking(False)
        with pytest.raises(ssl.SSLWantReadError):  # no answer yet: still deciding
            sock.recv(1)
        status, body = read_response(sock)
    assert status == 200
    assert json.loads(body)["response"]["patchType"] == "JSONPatch"


def test_slowloris_connections_are_dropped_while_others_are_served(server: Server) -> None:
    loris = [server.tls_socket() for _ in range(50)]
    started = time.monotonic()
    for sock in loris:
        sock.sendall(b"POST /mutate HTTP/1.1\r\nHost: x\r\n")
    served = False
    open_ones = list(loris)
    while open_ones and time.monotonic() - started < DEADLINE + SLACK:
        if not served:
            served = server.request("GET", "/healthz")[0] == 200
        time.sleep(0.3)
        for sock in list(open_ones):
            try:
                sock.sendall(b"X-Slow: 1\r\n")  # a header line now and then: never done
            except OSError:
                open_ones.remove(sock)
    for sock in loris:
        sock.close()
    assert served
    assert not open_ones, f"{len(open_ones)} of 50 slow connections still open"


def test_a_connection_that_never_starts_tls_is_dropped(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE + SLACK) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""  # closed by the server (a timeout would raise)
        assert time.monotonic() - started < DEADLINE + SLACK


def test_a_slow_body_gets_408_and_the_connection_is_closed(server: Server) -> None:
    with server.tls_socket() as sock:
        sock.sendall(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        answer = b""
        while chunk := sock.recv(4096):  # until the server closes it
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_an_idle_kept_alive_connection_is_closed(server: Server) -> None:
    with server.tls_socket() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while not answer.endswith(b"ok\n"):
            answer += sock.recv(4096)
        started = time.monotonic()
        assert sock.recv(1) == b""  # then nothing more from us: closed
        assert DEADLINE - 0.5 < time.monotonic() - started < DEADLINE + SLACK
