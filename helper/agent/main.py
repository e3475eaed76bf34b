"""`podnat agent`: flags, start-up order, signals.

Order matters: capabilities are raised in the main thread before any thread
starts (capabilities are per thread; threads inherit them), then the health
server, then the watches and the workers.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import threading
from types import FrameType

from helper.agent.controller import Controller
from helper.agent.metrics import HealthServer, Metrics
from helper.agent.pods import Store
from helper.agent.reconcile import Policy, Reconciler
from helper.agent.sandboxes import SandboxFinder
from helper.agent.status import StatusWriter
from helper.engine import Engine
from helper.errors import ExitCode, PodnatError
from helper.host.kernel import KernelHost
from helper.kube.client import KubeClient
from helper.kube.config import connect
from helper.system.privileges import raise_permitted

_log = logging.getLogger("podnat.agent")


class AgentArgumentError(PodnatError):
    """A flag the parser cannot check alone (a missing --node-name): a usage error."""

    exit_code = ExitCode.INVALID


class AgentStartError(PodnatError):
    """The agent could not start serving (its port taken)."""


def _wait_for_signal(stopping: threading.Event) -> None:
    """Until a handler has set `stopping`, with no wake-up while idle.

    The kernel may deliver SIGTERM to any thread. Python runs the handler only in the main
    thread, when it next runs Python code, and a main thread asleep in `Event.wait()` is not
    woken by a signal that landed on another thread: the agent slept through a SIGTERM that
    way in CI (2026-12-01). A signal on any thread writes to the wake-up fd, so the select
    below returns and the handler runs.
    """
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    try:
        while not stopping.is_set():
            select.select([wake_read], [], [])
            os.read(wake_read, 64)
    finally:
        signal.set_wakeup_fd(-1)
        os.close(wake_read)
        os.close(wake_write)


def run(args: argparse.Namespace) -> int:
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        _log.info("signal %d: stopping", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not args.node_name:
        raise AgentArgumentError("--node-name (or $NODE_NAME) is required")
    label, also, (host, port) = args.namespace_label, tuple(args.also_manage), args.listen
    if args.log_level != "debug":
        # The engine's notes ("ipv6: skipped ...") would repeat at every verify of every
        # pod and name no pod; the agent's own lines and Events say what happened.
        logging.getLogger("podnat").addFilter(_engine_notes)
    log_to_own_stderr()
    raise_permitted()  # before any thread: threads inherit the effective set
    connection, token_file = connect(args.kubeconfig, args.service_account_dir)
    client = KubeClient(connection, token_file=token_file)
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
        raise AgentStartError(f"--listen {host}:{port}: {err.strerror}") from err
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
    _wait_for_signal(stopping)
    controller.shutdown()
    server.stop()
    _log.info("agent stopped")
    return 0


def log_to_own_stderr() -> None:
    """The log lines go to a copy of fd 2: each nft call points fd 2 at /dev/null for a
    moment (libnftables prints some errors there itself), and the agent's other threads
    log meanwhile."""
    stream = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="backslashreplace")
    for handler in logging.getLogger("podnat").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)


def _engine_notes(record: logging.LogRecord) -> bool:
    """Keep the agent's records and the engine's errors; drop the engine's notes."""
    return record.name != "podnat" or record.levelno >= logging.ERROR
