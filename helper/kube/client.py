"""REST calls with bounded retries, and a watch stream split into lines with a cap.

Each thread keeps its own kept-alive connection (http.client is not thread-safe);
a watch gets a connection of its own, closed by `Watch.close` from any thread.

The API server closes a connection idle for 90 s (Go's IdleTimeout there). A kept
connection is checked before each use, as urllib3 and Go's transport do: one the server
closed meanwhile is replaced at once. Before, a quiet node's first condition after such
a pause failed, waited a backoff (up to 0.2 s) and then shook hands: the pod's readiness
waited for all of that.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import select
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from helper.sources.base import SourceError
from helper.sources.kube_api import Connection, _jitter

_RETRYABLE = {429, 500, 502, 503, 504}
MAX_BODY = 64 << 20  # a LIST page: pods are ≤ 1.5 MiB each (etcd), 500 a page
MAX_EVENT = 4 << 20  # one watch event line
_READ_SIZE = 64 << 10  # at most this much per read of a watch stream; lines may span reads
_log = logging.getLogger("podnat.kube")


class ApiError(SourceError):
    """The API answered with an error status, or could not be reached in time."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class GoneError(ApiError):
    """410: the resourceVersion is too old; relist."""


class TooLargeError(ApiError):
    """A body or a watch event bigger than the cap: refused, never buffered whole."""


class KubeClient:
    def __init__(
        self,
        connection: Connection,
        timeout: float = 10.0,
        max_event: int = MAX_EVENT,
        token_file: Path | None = None,
        token_ttl: float = 60.0,
    ) -> None:
        url = urllib.parse.urlsplit(connection.server)
        if url.scheme != "https" or not url.hostname:
            raise SourceError(f"the API server must be an https URL, not {connection.server!r}")
        self.connection = connection
        self.timeout = timeout
        self.max_event = max_event
        # A projected service-account token is rotated by the kubelet (about hourly): a
        # long-lived client re-reads it, as client-go does, at most once a minute.
        self._token_file, self._token_ttl = token_file, token_ttl
        self._token_read = -token_ttl
        self._token_lock = threading.Lock()
        self._host, self._port = url.hostname, url.port or 443
        self._local = threading.local()

    def open(self, timeout: float) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            self._host, self._port, context=self.connection.context, timeout=timeout
        )

    def headers(self, content_type: str | None = None) -> dict[str, str]:
        self._refresh_token()
        headers = {"Accept": "application/json", **self.connection.headers}
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _refresh_token(self) -> None:
        if self._token_file is None or time.monotonic() - self._token_read < self._token_ttl:
            return
        with self._token_lock:
            self._token_read = time.monotonic()
            try:
                token = self._token_file.read_text().strip()
            except OSError as err:  # keep the token we have; it may still be valid
                _log.warning("service-account token %s: %s", self._token_file, err.strerror)
                return
            if token:
                self.connection.headers["Authorization"] = f"Bearer {token}"

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        content_type: str = "application/json",
        attempts: int = 5,
    ) -> dict[str, Any]:
        """One call, retried on connection errors, 429 and 5xx (exponential backoff, jitter)."""
        delay = 0.2
        for attempt in range(1, attempts + 1):
            try:
                return self._once(method, path, body, content_type)
            except ApiError as err:
                if (err.status and err.status not in _RETRYABLE) or attempt == attempts:
                    raise
                problem = str(err)
            except (OSError, http.client.HTTPException) as err:
                self._drop()
                if attempt == attempts:
                    raise ApiError(f"{method} {path}: {err or type(err).__name__}") from err
                problem = str(err) or type(err).__name__
            pause = _jitter(delay)
            _log.info("API %s %s: %s; retry %d in %.2fs", method, path, problem, attempt, pause)
            time.sleep(pause)
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    def _once(
        self, method: str, path: str, body: dict[str, Any] | None, content_type: str
    ) -> dict[str, Any]:
        conn: http.client.HTTPSConnection | None = getattr(self._local, "conn", None)
        if conn is not None and _closed_by_server(conn):
            self._drop()
            conn = None
        kept = conn is not None
        if conn is None:
            conn = self._local.conn = self.open(self.timeout)
        data = None if body is None else json.dumps(body).encode()
        try:
            conn.request(method, path, body=data, headers=self.headers(content_type))
            response = conn.getresponse()
        except _CLOSED:
            if not kept:
                raise
            # Its idle close crossed the request, unanswered: sent again on a new one, now
            # (once: the new connection is not a kept one).
            self._drop()
            return self._once(method, path, body, content_type)
        raw = response.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            self._drop()
            raise TooLargeError(f"{method} {path}: reply larger than {MAX_BODY} bytes")
        parsed = _json(raw)
        if not 200 <= response.status < 300:
            raise _error(response.status, f"{method} {path}", parsed)
        return parsed

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def watch(self, path: str, params: dict[str, str], read_timeout: float) -> Watch:
        return Watch(
            self, f"{path}?{urllib.parse.urlencode({**params, 'watch': '1'})}", read_timeout
        )


class Watch:
    """One watch request; iterate for its events. `close()` (any thread) ends it."""

    def __init__(self, client: KubeClient, path: str, read_timeout: float) -> None:
        self._client, self._path = client, path
        self._conn = client.open(read_timeout)
        self._closed = False

    def events(self) -> Iterator[dict[str, Any]]:
        self._conn.request("GET", self._path, headers=self._client.headers())
        response = self._conn.getresponse()
        if response.status != 200:
            raise _error(response.status, "watch", _json(response.read(MAX_BODY)))
        cap = self._client.max_event
        pending = bytearray()  # the start of an event line not complete yet
        while not self._closed:
            # What has arrived, at most one chunk: readline() peeked through http.client's
            # chunked decoding in small steps: half of the watch thread's samples (py-spy, kind).
            data = response.read1(_READ_SIZE)
            if not data:
                return  # the server ended the watch (timeoutSeconds)
            pending += data
            start = 0
            # Closed meanwhile (another thread): no further event, as before a read.
            while not self._closed and (end := pending.find(b"\n", start)) >= 0:
                if end - start > cap:
                    raise TooLargeError(f"a watch event larger than {cap} bytes: refused")
                event = _json(pending[start:end])
                start = end + 1
                if event:
                    yield event
            del pending[:start]
            if len(pending) > cap:  # never buffered whole
                raise TooLargeError(f"a watch event larger than {cap} bytes: refused")

    def close(self) -> None:
        self._closed = True
        sock = self._conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a reader blocked in readline
        self._conn.close()


# How a closed connection shows when a request goes out on it (RemoteDisconnected is a
# ConnectionResetError; TLS may see the close first).
_CLOSED = (BrokenPipeError, ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError)


def _closed_by_server(conn: http.client.HTTPSConnection) -> bool:
    """Whether a kept connection, idle between two requests, has become readable: the
    server's close (or bytes nobody asked for). Either way it is not reused."""
    sock = conn.sock
    if sock is None:
        return True
    poller = select.poll()  # not select(): an fd above 1023 is fine
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _json(raw: bytes | bytearray) -> dict[str, Any]:
    try:
        parsed = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return {"message": raw[:200].decode(errors="replace")}
    return parsed if isinstance(parsed, dict) else {}


def _error(status: int, what: str, reply: dict[str, Any]) -> ApiError:
    message = f"{what}: HTTP {status}: {str(reply.get('message', 'no message'))[:300]}"
    return GoneError(message, status) if status == 410 else ApiError(message, status)
