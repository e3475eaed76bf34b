"""Requests to one HTTPS server on one kept-alive connection: the API source's HTTP.

http.client imports the email package: ~18 ms of every start that reads the pod from
the API (measured on the runtime venv), for the two requests podnat makes (GET the
pod, POST an Event). This speaks the part of HTTP/1.1 those need, bounded: a reply's
head is at most MAX_HEAD bytes, its body at most MAX_BODY (Content-Length, chunked,
or until the server closes). Anything else is a `ProtocolError`, an OSError like
every other failure of the connection, so the caller retries them alike.
"""

from __future__ import annotations

import re
import socket
import ssl

MAX_HEAD = 64 * 1024  # status line and headers
MAX_BODY = 16 * 1024 * 1024  # a pod is at most ~1.5 MB in etcd; an Event's reply is small
_CHUNK_LINE = 1024  # "size[;extensions]" of one chunk
_DIGITS = re.compile(rb"[0-9]{1,9}")
_HEX_DIGITS = re.compile(rb"[0-9A-Fa-f]{1,8}")


class ProtocolError(OSError):
    """The server's reply is not HTTP/1.1 podnat can read, or it is too large."""


class HttpsConnection:
    """Opened on the first request, reused while the server keeps it alive."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, timeout: float) -> None:
        self.host, self.port = host, port
        self._context = context
        self._timeout = timeout
        self._sock: ssl.SSLSocket | None = None
        self._file: _Reader | None = None
        literal = f"[{host}]" if ":" in host else host
        self._host_header = literal if port == 443 else f"{literal}:{port}"

    def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int, bytes]:
        """One request; its status and body. Raises OSError (ProtocolError among them)."""
        reader = self._open()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self._host_header}"]
        lines += ["Accept-Encoding: identity", *(f"{k}: {v}" for k, v in headers.items())]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        if any("\r" in line or "\n" in line for line in lines):  # e.g. a token file's
            raise ProtocolError(f"{method} {path}: a line break inside the request's head")
        try:
            head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        except UnicodeEncodeError as err:
            raise ProtocolError(f"{method} {path}: a request header is not Latin-1") from err
        reader.sock.sendall(head + (body or b""))
        status, fields = _read_head(reader)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            data = b""
        elif "chunked" in fields.get("transfer-encoding", "").lower():
            data = _read_chunked(reader)
        elif "content-length" in fields:
            data = reader.exactly(_length(fields["content-length"]))
        else:  # the body ends where the connection does
            data = reader.until_eof()
            fields["connection"] = "close"
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, data

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = self._file = None

    def _open(self) -> _Reader:
        if self._file is None:
            raw = socket.create_connection((self.host, self.port), timeout=self._timeout)
            try:
                self._sock = self._context.wrap_socket(raw, server_hostname=self.host)
            except BaseException:
                raw.close()
                raise
            self._file = _Reader(self._sock)
        return self._file


class _Reader:
    """Buffered reads from the socket, each bounded."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        self._buffer = bytearray()

    def line(self, limit: int, too_long: str) -> bytes:
        """Up to and without the next CRLF (or LF); more than `limit` bytes: `too_long`."""
        limit = max(limit, 0)
        while (end := self._buffer.find(b"\n", 0, limit + 2)) < 0:
            if len(self._buffer) > limit + 1:
                raise ProtocolError(too_long)
            self._fill()
        line = bytes(self._buffer[:end]).removesuffix(b"\r")
        del self._buffer[: end + 1]
        if len(line) > limit:
            raise ProtocolError(too_long)
        return line

    def exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def until_eof(self) -> bytes:
        while chunk := self.sock.recv(65536):
            self._buffer += chunk
            if len(self._buffer) > MAX_BODY:
                raise ProtocolError(f"a reply body larger than {MAX_BODY} bytes")
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ProtocolError("the server closed the connection mid-reply")
        self._buffer += chunk


def _read_head(reader: _Reader) -> tuple[int, dict[str, str]]:
    """The status and the header fields (names lowercased; repeated ones joined)."""
    too_long = f"a reply head larger than {MAX_HEAD} bytes"
    budget = MAX_HEAD
    status_line = reader.line(budget, too_long)
    budget -= len(status_line) + 2
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    fields: dict[str, str] = {}
    while line := reader.line(budget, too_long):
        budget -= len(line) + 2
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            raise ProtocolError(f"a malformed header line: {line[:80]!r}")
        key = name.strip().lower()
        fields[key] = f"{fields[key]}, {value.strip()}" if key in fields else value.strip()
    return int(parts[1]), fields


def _length(text: str) -> int:
    digits = text.strip().encode("latin-1")
    if not _DIGITS.fullmatch(digits) or int(digits) > MAX_BODY:
        raise ProtocolError(f"Content-Length {text[:40]!r} is not a size up to {MAX_BODY}")
    return int(digits)


def _read_chunked(reader: _Reader) -> bytes:
    data = bytearray()
    while True:
        size_line = reader.line(_CHUNK_LINE, f"a chunk-size line longer than {_CHUNK_LINE} bytes")
        size_text = size_line.split(b";", 1)[0].strip()
        if not _HEX_DIGITS.fullmatch(size_text):
            raise ProtocolError(f"a malformed chunk size: {size_text[:40]!r}")
        size = int(size_text, 16)
        if len(data) + size > MAX_BODY:
            raise ProtocolError(f"a reply body larger than {MAX_BODY} bytes")
        if size == 0:
            budget, too_long = MAX_HEAD, f"reply trailers larger than {MAX_HEAD} bytes"
            while trailer := reader.line(budget, too_long):  # trailer fields, unused
                budget -= len(trailer) + 2
            return bytes(data)
        data += reader.exactly(size)
        reader.line(0, "a chunk longer than its size")  # the CRLF after its data
