"""podnat's HTTPS clients against a real TLS server on loopback that answers with scripted
bytes: the replies the API server gives, and the ones no server should (helper.sources.https);
kept connections the server closes between requests (helper.kube.client)."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helper.kube.client import ApiError, KubeClient
from helper.sources.https import MAX_BODY, MAX_HEAD, HttpsConnection, ProtocolError
from helper.sources.kube_api import Connection
from tests.kit.pki import Pki


class ScriptedServer:
    """Answers the Nth request with replies[N] (raw bytes), then closes that connection
    if the reply says so or when `close_after` has it; records requests and connections."""

    def __init__(
        self, pki: tuple[Pki, Path, Path], replies: list[bytes], close_after: set[int]
    ) -> None:
        authority, cert, key = pki
        self.client_context = authority.context()
        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_context.load_cert_chain(cert, key)
        self._listener = server_context.wrap_socket(
            socket.create_server(("127.0.0.1", 0)), server_side=True
        )
        self.port = self._listener.getsockname()[1]
        self.replies, self.close_after = replies, close_after
        self.requests: list[bytes] = []
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while len(self.requests) < len(self.replies):
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                while len(self.requests) < len(self.replies):
                    request = _read_request(conn)
                    if request is None:
                        break
                    index = len(self.requests)
                    self.requests.append(request)
                    conn.sendall(self.replies[index])
                    if index in self.close_after:
                        break

    def close(self) -> None:
        self._listener.close()


def _read_request(conn: ssl.SSLSocket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        body += conn.recv(65536)
    return data


Serve = Callable[..., "ScriptedServer"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pki, Path, Path]:
    authority = Pki.create(tmp_path_factory.mktemp("pki"))
    return (authority, *authority.issue("server", "/CN=server"))


@pytest.fixture
def serve(pki: tuple[Pki, Path, Path]) -> Iterator[Serve]:
    servers: list[ScriptedServer] = []

    def start(*replies: bytes, close_after: set[int] | None = None) -> ScriptedServer:
        server = ScriptedServer(pki, list(replies), close_after or set())
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def connect(server: ScriptedServer) -> HttpsConnection:
    return HttpsConnection("127.0.0.1", server.port, server.client_context, timeout=5)


def ok(body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 200 OK\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def test_two_requests_share_one_connection(serve: Serve) -> None:
    server = serve(ok(b'{"kind": "Pod"}'), ok(b"{}"))
    http = connect(server)
    assert http.request("GET", "/api/v1/pod", {"Authorization": "Bearer t"}) == (
        200,
        b'{"kind": "Pod"}',
    )
    assert http.request("POST", "/api/v1/events", {}, b'{"reason": "x"}') == (200, b"{}")
    assert server.connections == 1
    first, second = server.requests
    assert first.startswith(b"GET /api/v1/pod HTTP/1.1\r\n")
    assert b"\r\nHost: 127.0.0.1:" in first and b"\r\nAuthorization: Bearer t\r\n" in first
    assert second.startswith(b"POST /api/v1/events HTTP/1.1\r\n")
    assert b"\r\nContent-Length: 15\r\n" in second and second.endswith(b'{"reason": "x"}')
    http.close()


def test_a_chunked_body_is_joined(serve: Serve) -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    server = serve(reply, ok(b"again"))
    http = connect(server)
    assert http.request("GET", "/", {}) == (200, b"hello, world")
    assert http.request("GET", "/", {}) == (200, b"again")  # the chunked reply ended cleanly
    assert server.connections == 1


def test_a_body_without_length_ends_with_the_connection_and_the_next_request_reconnects(
    serve: Serve,
) -> None:
    server = serve(b"HTTP/1.1 404 Not Found\r\n\r\nno such pod", ok(b"{}"), close_after={0})
    http = connect(server)
    assert http.request("GET", "/", {}) == (404, b"no such pod")
    assert http.request("GET", "/", {}) == (200, b"{}")
    assert server.connections == 2


def test_connection_close_is_honoured(serve: Serve) -> None:
    server = serve(ok(b"1", "Connection: close"), ok(b"2"), close_after={0})
    http = connect(server)
    assert http.request("GET", "/", {}) == (200, b"1")
    assert http.request("GET", "/", {}) == (200, b"2")
    assert server.connections == 2


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "a malformed header line"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_HEAD + b"\r\n\r\n", "head larger than"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: a\r\n" * (MAX_HEAD // 4) + b"\r\n", "head larger than"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "is not a size"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n", "is not a size"),
        (f"HTTP/1.1 200 OK\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode(), "not a size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", "longer than its"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFF\r\n", "larger than"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed the connection"),
    ],
)
def test_a_reply_podnat_cannot_read_is_a_protocol_error(
    serve: Serve,
    reply: bytes,
    message: str,
) -> None:
    server = serve(reply, close_after={0})
    http = connect(server)
    with pytest.raises(ProtocolError, match=message):
        http.request("GET", "/", {})
    http.close()


def test_a_line_break_in_a_header_is_refused_before_anything_is_sent(
    serve: Serve,
) -> None:
    server = serve(ok(b"{}"))
    http = connect(server)
    with pytest.raises(ProtocolError, match="a line break inside the request's head"):
        http.request("GET", "/", {"Authorization": "Bearer a\r\nX-Injected: 1"})
    assert server.requests == []
    http.close()


def test_protocol_errors_are_os_errors_like_every_other_connection_failure() -> None:
    assert issubclass(ProtocolError, OSError)


def _kube(server: ScriptedServer) -> KubeClient:
    return KubeClient(Connection(f"https://127.0.0.1:{server.port}", server.client_context))


def test_a_kept_connection_the_server_closed_while_idle_is_replaced_before_use(
    serve: Serve,
) -> None:
    # The API server closes a connection idle for 90 s: the next call must not fail first.
    server = serve(ok(b'{"n": 1}'), ok(b'{"n": 2}'), close_after={0})
    kube = _kube(server)
    assert kube.request("GET", "/", attempts=1) == {"n": 1}
    assert kube.request("PATCH", "/", {"a": 1}, attempts=1) == {"n": 2}  # no retry needed
    assert server.connections == 2


def test_a_kept_connection_closed_as_the_request_goes_out_is_retried_at_once(
    serve: Serve,
) -> None:
    # The server read the second request and closed without an answer (its idle close
    # racing the request): sent again on a new connection, within the same attempt.
    server = serve(ok(b'{"n": 1}'), b"", ok(b'{"n": 3}'), close_after={1})
    kube = _kube(server)
    assert kube.request("GET", "/", attempts=1) == {"n": 1}
    assert kube.request("GET", "/again", attempts=1) == {"n": 3}
    assert server.connections == 2
    assert [r.split(b" ")[1] for r in server.requests] == [b"/", b"/again", b"/again"]


def test_a_new_connection_closed_without_an_answer_is_a_failure_not_a_loop(
    serve: Serve,
) -> None:
    server = serve(b"", close_after={0})
    with pytest.raises(ApiError, match="GET /: Remote end closed"):
        _kube(server).request("GET", "/", attempts=1)
    assert server.connections == 1
