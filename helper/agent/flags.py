"""`podnat agent`'s flags (the chart passes them; keep the names). A malformed value is an
argparse usage error (exit 2, as for every command), named with the expected form."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from helper.engine import BACKEND_CHOICES
from helper.sources.base import SERVICE_ACCOUNT_DIR

DEFAULT_LABEL = "podnat.io/inject=enabled"
_NAME_CHARS = 253  # a DNS subdomain: node and namespace names, label keys with a prefix


def label(text: str) -> str:
    """One KEY=VALUE: the namespaces' labelSelector."""
    key, sep, _ = text.partition("=")
    if not sep or not key or "," in text or len(text) > 2 * _NAME_CHARS:
        raise argparse.ArgumentTypeError(f"{text!r}: expected one KEY=VALUE")
    return text


def also_manage(text: str) -> tuple[str, str, str]:
    """NAMESPACE/KEY=VALUE → (namespace, key, value). The key may hold a '/' (a prefix)."""
    namespace, _, selector = text.partition("/")
    key, sep, value = selector.partition("=")
    if not (namespace and key and sep) or len(text) > 3 * _NAME_CHARS:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAMESPACE/KEY=VALUE")
    return namespace, key, value


def listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT (port 0-65535)")
    return host.strip("[]"), int(port)


def workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number from 1 to 64")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser, seconds: Callable[[str], float]) -> None:
    def interval(text: str) -> float:
        value = seconds(text)
        if value < 1:
            raise argparse.ArgumentTypeError(f"{text!r}: at least 1 second")
        return value

    a = parser.add_argument
    a("--node-name", default=os.environ.get("NODE_NAME"), help="this node (default: $NODE_NAME)")
    a(
        "--namespace-label",
        type=label,
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
        type=also_manage,
        action="append",
        default=[],
        metavar="NAMESPACE/KEY=VALUE",
        help="also manage pods of NAMESPACE labelled KEY=VALUE (repeatable)",
    )
    a(
        "--verify-interval",
        type=interval,
        default=30.0,
        metavar="SECONDS",
        help="verify every pod's rules this often: the drift-repair deadline (default 30)",
    )
    a(
        "--listen",
        type=listen,
        default=listen("0.0.0.0:9102"),
        metavar="HOST:PORT",
        help="plain HTTP /metrics, /healthz, /readyz (default 0.0.0.0:9102)",
    )
    a("--backend", choices=BACKEND_CHOICES, default="auto")
    a("--proc", type=Path, default=Path("/proc"), help="the host's /proc (hostPID)")
    a(
        "--node-netns",
        type=Path,
        default=Path("/proc/1/ns/net"),
        help="the node's own network namespace, never touched (default %(default)s)",
    )
    a("--kubeconfig", default=None, help="default: the service account in a pod, else $KUBECONFIG")
    a(
        "--service-account-dir",
        type=Path,
        default=SERVICE_ACCOUNT_DIR,
        help="in a pod: token (re-read as the kubelet rotates it) and ca.crt (default %(default)s)",
    )
    a("--workers", type=workers, default=4, help="reconciles in parallel (default 4)")
