"""The pods the e2e tests run: small Python servers and clients in the podnat image."""

from __future__ import annotations

from typing import Any

from tests.kit.cluster import NAMESPACE

# Both families where the pod has IPv6 (one socket, IPv4 as mapped addresses); else IPv4.
SERVER = """
import os, socket, threading
name = os.environ["HOSTNAME"]
dual = socket.has_dualstack_ipv6()
def tcp(port):
    if dual:
        server = socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True)
    else:
        server = socket.create_server(("", port))
    while True:
        conn, _ = server.accept()
        conn.sendall(f"{name}:{port}\\n".encode())
        conn.close()
def udp(port):
    server = socket.socket(socket.AF_INET6 if dual else socket.AF_INET, socket.SOCK_DGRAM)
    if dual:
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.bind(("::" if dual else "", port))
    while True:
        _, peer = server.recvfrom(512)
        server.sendto(f"{name}:{port}\\n".encode(), peer)
for port in os.environ.get("TCP", "").split():
    threading.Thread(target=tcp, args=(int(port),), daemon=True).start()
for port in os.environ.get("UDP", "").split():
    threading.Thread(target=udp, args=(int(port),), daemon=True).start()
threading.Event().wait()
"""

# argv: PROTO HOST PORT. Prints the server's answer, "refused" or "timeout".
CLIENT = """
import socket, sys
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    if proto == "tcp":
        with socket.create_connection((host, port), timeout=3) as conn:
            print(conn.recv(64).decode().strip())
    else:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.settimeout(3)
        sock.sendto(b"hello", (host, port))
        print(sock.recvfrom(64)[0].decode().strip())
except ConnectionRefusedError:
    print("refused")
except TimeoutError:
    print("timeout")
"""

RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


def container(image: str, script: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "name": "app",
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["python3", "-c", script],
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
        "securityContext": RESTRICTED,
        "resources": {"requests": {"cpu": "5m", "memory": "16Mi"}},
    }


def pod_spec(
    image: str, script: str, env: dict[str, str] | None = None, node: str | None = None
) -> dict[str, Any]:
    """NODE pins the pod to a node (the scheduler is bypassed), e.g. a client on the other
    node than its server."""
    spec: dict[str, Any] = {
        "containers": [container(image, script, env)],
        "terminationGracePeriodSeconds": 1,
        "enableServiceLinks": False,
    }
    if node:
        spec["nodeName"] = node
    if env and "TCP" in env:
        first = int(env["TCP"].split()[0])
        spec["containers"][0]["readinessProbe"] = {
            "tcpSocket": {"port": first},
            "periodSeconds": 1,
        }
    return spec


def server_template(
    name: str,
    image: str,
    annotations: dict[str, str],
    tcp: str,
    udp: str,
    *,
    node: str | None = None,
) -> dict[str, Any]:
    """Metadata and spec of a server pod: TCP ports `tcp`, UDP ports `udp` (space-separated)."""
    return {
        "metadata": {"labels": {"app": name}, "annotations": annotations},
        "spec": pod_spec(image, SERVER, {"TCP": tcp, "UDP": udp}, node),
    }


def server_pod(
    name: str,
    image: str,
    annotations: dict[str, str],
    tcp: str = "1234",
    udp: str = "",
    *,
    node: str | None = None,
) -> dict[str, Any]:
    template = server_template(name, image, annotations, tcp, udp, node=node)
    metadata = {"name": name, "namespace": NAMESPACE, **template["metadata"]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}


def server_deployment(
    name: str,
    image: str,
    annotations: dict[str, str],
    tcp: str,
    udp: str,
    *,
    node: str | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": server_template(name, image, annotations, tcp, udp, node=node),
        },
    }


def client_pod(name: str, image: str, node: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
        "spec": pod_spec(image, "import time; time.sleep(1e9)", node=node),
    }
