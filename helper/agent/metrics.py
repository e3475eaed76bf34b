"""The agent's Prometheus metrics (their own registry) and its health endpoints."""

from __future__ import annotations

import logging
import os
import selectors
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

_log = logging.getLogger("podnat.agent")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.reconciles = Counter(
            "podnat_agent_reconciles", "Reconciles of a pod, by result", ["result"], registry=r
        )
        self.errors = Counter("podnat_agent_errors", "Failed reconciles and API calls", registry=r)
        self.apply_seconds = Histogram(
            "podnat_agent_apply_seconds",
            "Time to verify and, when needed, apply one pod's rules",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.sandbox_to_rules = Histogram(
            "podnat_agent_sandbox_to_rules_seconds",
            "From a new sandbox's start (its process, as the kernel records it) to its rules "
            "in and its condition written: what the readiness gate waits for podnat",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=r,
        )
        self.pods_managed = Gauge(
            "podnat_agent_pods_managed", "Pods whose redirects this agent keeps", registry=r
        )
        self.lists = Counter(
            "podnat_agent_lists",
            "Full lists (the first, then each relist: 410 Gone, oversized event)",
            ["resource"],
            registry=r,
        )
        self.repairs = Counter(
            "podnat_agent_repairs", "Drifted rulesets found and re-applied", registry=r
        )


class HealthServer:
    """/metrics, /healthz (the watch loops are alive), /readyz (first lists reconciled)."""

    def __init__(
        self,
        host: str,
        port: int,
        metrics: Metrics,
        healthy: Callable[[], bool],
        ready: Callable[[], bool],
    ) -> None:
        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # a slow client holds one thread this long at most

            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._answer(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
                elif self.path in ("/healthz", "/readyz"):
                    ok = healthy() if self.path == "/healthz" else ready()
                    self._answer(200 if ok else 503, b"ok\n" if ok else b"not yet\n")
                else:
                    self._answer(404, b"not found\n")

            def _answer(self, code: int, body: bytes, kind: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                _log.debug("http: " + format, *args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._server.timeout = 0  # handle_request() is called once the socket is readable
        self.port = self._server.server_address[1]
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name="health", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        # Blocks until a connection or stop(): serve_forever() woke twice a second to look
        # for shutdown(), ~0.8 ms of CPU each time, the idle agent's only timed wake-up.
        with selectors.DefaultSelector() as selector:
            selector.register(self._server, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping:
                for key, _ in selector.select():
                    if key.fileobj is self._server and not self._stopping:
                        self._server.handle_request()

    def stop(self) -> None:
        self._stopping = True
        os.write(self._wake_w, b"x")
        self._thread.join(5.0)
        self._server.server_close()
        os.close(self._wake_r)
        os.close(self._wake_w)
