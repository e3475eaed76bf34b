"""Where the API is: in a pod the service account; else a kubeconfig.

A kubeconfig naming files (certificate, key, CA) or a token is read here with
PyYAML; anything else (exec plugins, inline data, auth providers) goes through
the kubernetes package's loader, which costs ~40 MB of RSS in a long-lived agent.
"""

from __future__ import annotations

import base64
import os
import ssl
from pathlib import Path
from typing import Any

import yaml

from helper.sources.base import SERVICE_ACCOUNT_DIR, SourceError
from helper.sources.kube_api import Connection


def connect(
    kubeconfig: str | None, service_account: Path = Path(SERVICE_ACCOUNT_DIR)
) -> tuple[Connection, Path | None]:
    """The connection, and the token file to re-read (in a pod: the kubelet rotates it)."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return Connection.in_cluster(service_account), service_account / "token"
    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None
    simple = _simple(Path(path)) if path else None
    return simple or Connection.from_kubeconfig(path), None


def _named(items: Any, name: Any, what: str) -> dict[str, Any]:
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict) and item.get("name") == name and isinstance(item.get(what), dict):
            return item[what]  # type: ignore[no-any-return]
    raise SourceError(f"kubeconfig: no {what} named {name!r}")


def _simple(path: Path) -> Connection | None:
    """A Connection for the plain cases, or None to use the kubernetes package's loader."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise SourceError(f"kubeconfig {path}: {err}") from err
    if not isinstance(doc, dict):
        raise SourceError(f"kubeconfig {path}: not a mapping")
    context = _named(doc.get("contexts"), doc.get("current-context"), "context")
    cluster = _named(doc.get("clusters"), context.get("cluster"), "cluster")
    user = _named(doc.get("users"), context.get("user"), "user")
    plain = {"client-certificate", "client-key", "token"}
    if set(user) - plain or set(cluster) - {
        "server",
        "certificate-authority",
        "certificate-authority-data",
    }:
        return None
    base = path.parent

    def file(name: str) -> str:
        return str(base / Path(str(user.get(name) or cluster.get(name))).expanduser())

    try:
        if "certificate-authority-data" in cluster:
            ca = base64.b64decode(str(cluster["certificate-authority-data"])).decode()
            tls = ssl.create_default_context(cadata=ca)
        elif "certificate-authority" in cluster:
            tls = ssl.create_default_context(cafile=file("certificate-authority"))
        else:  # a server with a publicly trusted certificate
            tls = ssl.create_default_context()
        if "client-certificate" in user:
            tls.load_cert_chain(file("client-certificate"), file("client-key"))
    except (OSError, ssl.SSLError, ValueError) as err:
        raise SourceError(f"kubeconfig {path}: {err}") from err
    headers = {"Authorization": f"Bearer {user['token']}"} if "token" in user else {}
    return Connection(str(cluster.get("server", "")), tls, headers, "the kubeconfig user")
