"""A pod's view of the local control plane: its service account's mounted files and the
environment the kubelet gives it."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client

from tests.kit.controlplane import ControlPlane


def mount_account(
    api: client.ApiClient, plane: ControlPlane, namespace: str, account: str, directory: Path
) -> Path:
    """`token` (a TokenRequest token) and `ca.crt` in `directory`, as the kubelet mounts them."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    )
    made = client.CoreV1Api(api).create_namespaced_service_account_token(
        account, namespace, request
    )
    token: str = api.sanitize_for_serialization(made)["status"]["token"]  # type: ignore[no-untyped-call]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "token").write_text(token)
    (directory / "ca.crt").write_bytes(plane.ca.read_bytes())
    return directory


def pod_env(plane: ControlPlane, namespace: str, pod: str) -> dict[str, str]:
    """KUBERNETES_SERVICE_* for the API server on loopback, and the Downward API names."""
    return {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": plane.server.rsplit(":", 1)[1],
        "POD_NAME": pod,
        "POD_NAMESPACE": namespace,
    }
