"""`podnat webhook`: the mutating admission webhook's HTTPS server.

A plain ASGI app served by uvicorn. POST /mutate takes AdmissionReview v1 (the
decision is helper.admission.review's); /healthz, /readyz and /metrics (Prometheus) are
for probes and scraping. The TLS certificate and key are reloaded into the live
SSL context when their files change (cert-manager and the chart rotate them), so
new connections get the new certificate without a restart.

Every client gets a bounded answer: its handshake and headers a deadline
(helper.admission.deadlines), its body another, an idle connection a third. The decision runs
in a small pool of worker threads, so a heavy review never stalls the probes; a
client's input never puts a traceback in the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from helper.admission.inject import InjectConfig
from helper.admission.review import BadReview, review

MAX_BODY = 3 * 1024 * 1024  # the API server sends at most ~3 MiB objects
# Reviews up to this size are decided on the event loop: the parser's limits bound their
# work to a few tens of ms, and a thread hop costs ~0.35 ms of every usual review's
# median. Larger ones (a pod can reach ~1 s of work) go to the worker threads.
INLINE_BODY = 64 * 1024
_log = logging.getLogger("podnat")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class Limits:
    """How long a client may take, and how much review work may be under way at once."""

    header_timeout: int = 10  # handshake and headers; the API server sends them at once
    body_timeout: int = 10  # the API server's own webhook timeout is 10 s at most by default
    idle_timeout: int = 30  # between requests on a kept-alive connection
    workers: int = 2  # decisions in parallel (threads: the event loop keeps the probes)
    waiting: int = 32  # decisions queued beyond those; more get 503 at once


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "podnat_webhook_requests_total",
            "HTTP requests",
            ["path", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "podnat_webhook_request_seconds",
            "Time to answer /mutate",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5),
            registry=self.registry,
        )
        self.injections = Counter(
            "podnat_webhook_injections_total", "Pods injected", registry=self.registry
        )
        self.denials = Counter(
            "podnat_webhook_denials_total", "Pods denied", registry=self.registry
        )


@dataclass
class App:
    """The ASGI application."""

    config: InjectConfig
    metrics: Metrics
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(self.limits.workers, thread_name_prefix="review")
        self._pending = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path in ("/healthz", "/readyz") and method == "GET":
            await self._reply(send, path, 200, b"ok\n", b"text/plain")
        elif path == "/metrics" and method == "GET":
            await self._reply(
                send,
                path,
                200,
                generate_latest(self.metrics.registry),
                CONTENT_TYPE_LATEST.encode(),
            )
        elif path == "/mutate" and method == "POST":
            await self._mutate(receive, send)
        else:
            await self._reply(send, path, 404, b"not found\n", b"text/plain")

    async def _mutate(self, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                body = await _read_body(receive, MAX_BODY)
        except TimeoutError:
            late = f"request body not received within {self.limits.body_timeout} s\n".encode()
            await self._reply(send, "/mutate", 408, late, b"text/plain", close=True)
            return
        if body is None:
            large = b"request body too large\n"
            await self._reply(send, "/mutate", 413, large, b"text/plain", close=True)
            return
        if len(body) <= INLINE_BODY:
            code, payload, kind = self._decide(body)
        elif self._pending >= self.limits.workers + self.limits.waiting:
            await self._reply(send, "/mutate", 503, b"busy, try again\n", b"text/plain")
            return
        else:
            code, payload, kind = await self._decide_in_worker(body)
        if code == 200:
            self.metrics.latency.observe(time.perf_counter() - started)
        await self._reply(send, "/mutate", code, payload, kind)

    async def _decide_in_worker(self, body: bytes) -> tuple[int, bytes, bytes]:
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, self._decide, body)
        finally:
            self._pending -= 1

    def _decide(self, body: bytes) -> tuple[int, bytes, bytes]:
        """Status, body and content type for a review."""
        try:
            answer = review(body, self.config)
        except BadReview as err:
            return 400, f"{err}\n".encode(), b"text/plain"
        except Exception as err:  # a bug of podnat's: one line, not a traceback
            _log.error("internal error answering /mutate: %s: %.200s", type(err).__name__, err)
            return 500, b"internal error\n", b"text/plain"
        response = answer["response"]
        if "patch" in response:
            self.metrics.injections.inc()
        if not response["allowed"]:
            self.metrics.denials.inc()
            _log.info("denied: %s", response["status"]["message"])
        return 200, _json(answer), b"application/json"

    async def _reply(
        self, send: Send, path: str, code: int, body: bytes, kind: bytes, *, close: bool = False
    ) -> None:
        self.metrics.requests.labels(path=path, code=str(code)).inc()
        headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
        if close:  # the rest of the body is not read: h11 then closes the connection
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class CertReloader:
    """Reload cert and key into the server's SSL context when the files change."""

    def __init__(self, context: Any, cert: Path, key: Path, interval: float = 2.0) -> None:
        self.context, self.cert, self.key, self.interval = context, cert, key, interval
        self._stamp = self._current()

    def _current(self) -> tuple[float, float]:
        return (self.cert.stat().st_mtime, self.key.stat().st_mtime)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                stamp = self._current()
                if stamp != self._stamp:
                    self.context.load_cert_chain(self.cert, self.key)
                    self._stamp = stamp
                    _log.info("reloaded the TLS certificate from %s", self.cert)
            except (OSError, ValueError) as err:  # mid-rotation: keep serving the old one
                _log.warning("TLS certificate reload failed, keeping the old one: %s", err)


def serve(
    config: InjectConfig, host: str, port: int, cert: Path, key: Path, *, limits: Limits
) -> None:
    import uvicorn  # noqa: PLC0415 - only the webhook needs a server

    from helper.admission.deadlines import (  # noqa: PLC0415 - imports uvicorn
        HandshakeDeadlineLoop,
        header_deadline_protocol,
    )
    from helper.admission.quiet_server import QuietServer  # noqa: PLC0415 - imports uvicorn

    app = App(config, Metrics(), limits)
    server_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_level="warning",
        access_log=False,
        lifespan="on",
        http=header_deadline_protocol(limits.header_timeout),
        timeout_keep_alive=limits.idle_timeout,
    )
    server = QuietServer(server_config)

    async def main() -> None:
        server_config.load()
        reloader = CertReloader(server_config.ssl, cert, key)
        task = asyncio.create_task(reloader.run())
        try:
            await server.serve()
        finally:
            task.cancel()

    _log.info(
        "webhook listening on https://%s:%d (%s mode, image %s)",
        host,
        port,
        config.mode,
        config.image,
    )
    with asyncio.Runner(loop_factory=lambda: HandshakeDeadlineLoop(limits.header_timeout)) as run:
        run.run(main())
