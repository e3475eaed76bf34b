"""The agent's health server on a real loopback socket: answers, then stops at once.

It blocks until a connection or stop() (no timed wake-up while idle), so these check
that a connection still wakes it and that stop() ends its thread and frees the port.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

from helper.agent.metrics import HealthServer, Metrics


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_answers_each_connection_then_stops_and_frees_its_port() -> None:
    ready = {"now": False}
    metrics = Metrics()
    metrics.repairs.inc()
    server = HealthServer("127.0.0.1", 0, metrics, lambda: True, lambda: ready["now"])
    server.start()
    try:
        assert _get(server.port, "/healthz") == (200, "ok\n")
        assert _get(server.port, "/readyz") == (503, "not yet\n")
        ready["now"] = True
        assert _get(server.port, "/readyz") == (200, "ok\n")
        status, text = _get(server.port, "/metrics")
        assert status == 200 and "podnat_agent_repairs_total 1.0" in text
        assert _get(server.port, "/nothing")[0] == 404
    finally:
        server.stop()
    assert not server._thread.is_alive()
    with socket.socket() as probe:  # the port is closed: nothing listens there
        assert probe.connect_ex(("127.0.0.1", server.port)) != 0


def test_stop_ends_an_idle_server_that_never_served() -> None:
    server = HealthServer("127.0.0.1", 0, Metrics(), lambda: True, lambda: True)
    server.start()
    server.stop()
    assert not server._thread.is_alive()
