"""`podnat agent`: flags, start-up order, signals.

Order matters: capabilities are raised in the main thread before any thread
starts (capabilities are per thread; threads inherit them), then the health
server, then the watches and the workers.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from helper.agent.controller import Controller
from helper.agent.metrics import HealthServer, Metrics
from helper.agent.pods import Store
from helper.agent.reconcile import Policy, Reconciler
from helper.agent.sandboxes import SandboxFinder
from helper.agent.status import StatusWriter
from helper.engine import BACKEND_CHOICES, Engine
from helper.errors import PodnatError
from helper.host.kernel import KernelHost
from helper.kube.client import KubeClient
from helper.kube.config import connect
from helper.system.privileges import raise_permitted

_log = logging.getLogger("podnat.agent")
DEFAULT_LABEL = "podnat.io/inject=enabled"


class AgentArgumentError(PodnatError):
    pass


def add_arguments(parser: argparse.ArgumentParser, seconds: Callable[[str], float]) -> None:
    a = parser.add_argument
    a("--node-name", default=os.environ.get("NODE_NAME"), help="this node (default: $NODE_NAME)")
    a(
        "--namespace-label",
        default=DEFAULT_LABEL,
        metavar="KEY=VALUE",
        help="manage pods in namespaces with this label (default %(default)s)",
    )
    a(
        "--exclude-namespace",
        action="append",
        default=[],
        metavar="NS",
        help="never manage this namespace, labelled or not (repeatable)",
    )
    a(
        "--also-manage",
        action="append",
        default=[],
        metavar="NAMESPACE/KEY=VALUE",
        help="also manage pods of NAMESPACE labelled KEY=VALUE (repeatable)",
    )
    a(
        "--verify-interval",
        type=seconds,
        default=30.0,
        metavar="SECONDS",
        help="verify every pod's rules this often; the drift-repair deadline (default 30)",
    )
    a(
        "--listen",
        default="0.0.0.0:9102",
        metavar="HOST:PORT",
        help="/metrics, /healthz, /readyz (default %(default)s)",
    )
    a("--backend", choices=BACKEND_CHOICES, default="auto")
    a("--proc", type=Path, default=Path("/proc"), help="the host's /proc (hostPID)")
    a(
        "--node-netns",
        type=Path,
        default=Path("/proc/1/ns/net"),
        help="the node's own network namespace: never touched",
    )
    a("--kubeconfig", default=None, help="default: the service account in a pod, or $KUBECONFIG")
    a("--workers", type=int, default=2, help="reconciles in parallel (default 2)")


def _label(text: str) -> str:
    key, sep, value = text.partition("=")
    if not sep or not key or "," in text:
        raise AgentArgumentError(f"--namespace-label {text!r}: expected one KEY=VALUE")
    return f"{key}={value}"


def _also(items: list[str]) -> tuple[tuple[str, str, str], ...]:
    parsed = []
    for item in items:
        namespace, _, label = item.partition("/")
        key, sep, value = label.partition("=")
        if not (namespace and key and sep):
            raise AgentArgumentError(f"--also-manage {item!r}: expected NAMESPACE/KEY=VALUE")
        parsed.append((namespace, key, value))
    return tuple(parsed)


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise AgentArgumentError(f"--listen {text!r}: expected HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104


def run(args: argparse.Namespace) -> int:
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        _log.info("signal %d: stopping", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not args.node_name:
        raise AgentArgumentError("--node-name (or $NODE_NAME) is required")
    if not 1 <= args.workers <= 64:
        raise AgentArgumentError("--workers: from 1 to 64")
    if args.verify_interval < 1:
        raise AgentArgumentError("--verify-interval: at least 1 second")
    label, also, (host, port) = (
        _label(args.namespace_label),
        _also(args.also_manage),
        _listen(args.listen),
    )
    if args.log_level != "debug":
        # The engine's notes ("ipv6: skipped ...") would repeat at every verify of every
        # pod and name no pod; the agent's own lines and Events say what happened.
        logging.getLogger("podnat").addFilter(_engine_notes)
    raise_permitted()  # before any thread: threads inherit the effective set
    client = KubeClient(connect(args.kubeconfig))
    metrics = Metrics()
    policy = Policy(args.node_name, args.backend, args.lock_timeout, also)
    reconciler = Reconciler(
        policy,
        store=Store(),
        finder=SandboxFinder(args.proc, args.node_netns),
        engine=Engine(KernelHost()),
        status=StatusWriter(client, args.node_name),
        metrics=metrics,
    )
    controller = Controller(
        client,
        reconciler,
        namespace_label=label,
        excluded=frozenset(args.exclude_namespace),
        label_keys=frozenset(key for _, key, _ in also),
        workers=args.workers,
        verify_interval=args.verify_interval,
    )
    try:
        server = HealthServer(host, port, metrics, controller.healthy, controller.ready)
    except OSError as err:
        raise AgentArgumentError(f"--listen {args.listen}: {err.strerror}") from err
    server.start()
    controller.start()
    _log.info(
        "agent on node %s: namespaces labelled %s, verify every %gs, listening on %s:%d",
        args.node_name,
        label,
        args.verify_interval,
        host,
        server.port,
    )
    while not stopping.wait(1.0):
        pass
    controller.shutdown()
    server.stop()
    _log.info("agent stopped")
    return 0


def _engine_notes(record: logging.LogRecord) -> bool:
    """Keep the agent's records and the engine's errors; drop the engine's notes."""
    return record.name != "podnat" or record.levelno >= logging.ERROR
