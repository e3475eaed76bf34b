"""Deadlines uvicorn does not keep by itself: the TLS handshake and each request's headers.

uvicorn closes a connection idle between requests (`timeout_keep_alive`) but lets a
client take forever over its TLS handshake or its headers: 50 connections sending a
header line now and then (slowloris) stayed open for good. The API server sends each
request at once, so a request's headers get `timeout` seconds, counted from the accept
(handshake included) or from the first byte of a keep-alive connection's next request.
A small subclass of uvicorn's h11 protocol keeps this deadline: h11 says when the
headers are in (its view of the client leaves IDLE). `h11_max_incomplete_event_size`
only bounds their size, not their time. The body's deadline is the app's (it reads it).
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class _HeaderDeadline(H11Protocol):
    header_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Made at the accept, before the TLS handshake: the first deadline counts from here.
        self._accepted = self.loop.time()
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self._accepted + self.header_timeout)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self.conn.their_state is h11.IDLE:
            self._arm(self.loop.time() + self.header_timeout)  # a next request begins
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # its headers are in

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, when: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_at(when, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        # abort, not close: no TLS goodbye that a slow client could drag out too
        self.transport.abort()


def header_deadline_protocol(timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing connections whose headers take over `timeout` s."""
    return type("HeaderDeadlineProtocol", (_HeaderDeadline,), {"header_timeout": timeout})


class HandshakeDeadlineLoop(asyncio.SelectorEventLoop):
    """An event loop whose TLS servers give up on a handshake after `timeout` s.

    uvicorn creates its server without `ssl_handshake_timeout` (asyncio's default is
    60 s); the loop is ours, so its create_server supplies the value.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.handshake_timeout = timeout

    async def create_server(self, *args: Any, **kwargs: Any) -> asyncio.Server:
        kwargs.setdefault("ssl_handshake_timeout", self.handshake_timeout)
        return await super().create_server(*args, **kwargs)
