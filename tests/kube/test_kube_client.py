"""The agent's stdlib client against the real kube-apiserver: list, watch, caps, relists."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from helper.kube.client import ApiError, KubeClient
from helper.kube.config import connect
from helper.kube.reflector import Obj, Reflector
from tests.kit.controlplane import ControlPlane
from tests.kube.agent_kit import wait_for


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(api)
    name = f"kc-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_service_account(
        name, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="default"))
    )
    yield name
    core.delete_namespace(name)


def _pod(core: client.CoreV1Api, namespace: str, name: str, filler: int = 0) -> None:
    core.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name=name, annotations={"filler": "x" * filler}),
            spec=client.V1PodSpec(
                automount_service_account_token=False,
                containers=[client.V1Container(name="app", image="app")],
            ),
        ),
    )


def test_an_oversized_watch_event_is_refused_and_the_reflector_relists(
    control_plane: ControlPlane, api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    _pod(core, namespace, "small")
    kube = KubeClient(connect(str(control_plane.kubeconfig))[0], max_event=16 * 1024)
    lists: list[list[str]] = []
    events: list[str] = []
    stop = threading.Event()

    def names(items: list[Obj]) -> list[str]:
        return sorted(str(i["metadata"]["name"]) for i in items)

    reflector = Reflector(
        kube,
        f"/api/v1/namespaces/{namespace}/pods",
        {},
        lambda items: lists.append(names(items)),
        lambda kind, obj: events.append(f"{kind} {obj['metadata']['name']}"),
        stop,
    )
    thread = threading.Thread(target=reflector.run)
    thread.start()
    try:
        wait_for("the first list", lambda: lists == [["small"]])
        _pod(core, namespace, "big", filler=64 * 1024)  # its event: 4x the cap
        # Refused, never buffered whole; the relist (whole bodies are capped higher) has it.
        wait_for("a relist", lambda: len(lists) == 2, timeout=30)
        assert lists[1] == ["big", "small"]
        assert not any("big" in e for e in events)
        _pod(core, namespace, "after")  # and the watch goes on from the relist
        wait_for("the next event", lambda: "ADDED after" in events)
    finally:
        stop.set()
        reflector.close()
        thread.join(10)
    assert not thread.is_alive()


def test_an_event_longer_than_one_read_arrives_whole(
    control_plane: ControlPlane, api: client.ApiClient, namespace: str
) -> None:
    # The stream is read in blocks of at most a chunk: an event spans many of them.
    core = client.CoreV1Api(api)
    kube = KubeClient(connect(str(control_plane.kubeconfig))[0])
    lists: list[int] = []
    fillers: dict[str, int] = {}
    stop = threading.Event()

    def seen(kind: str, obj: Obj) -> None:
        fillers[f"{kind} {obj['metadata']['name']}"] = len(obj["metadata"]["annotations"]["filler"])

    reflector = Reflector(
        kube, f"/api/v1/namespaces/{namespace}/pods", {}, lambda i: lists.append(len(i)), seen, stop
    )
    thread = threading.Thread(target=reflector.run)
    thread.start()
    try:
        wait_for("the first list", lambda: lists == [0])
        for name, size in (("big", 100 * 1024), ("small", 10), ("bigger", 250 * 1024)):
            _pod(core, namespace, name, filler=size)
        wait_for("three events", lambda: len(fillers) == 3, timeout=30)
        assert fillers == {"ADDED big": 100 * 1024, "ADDED small": 10, "ADDED bigger": 250 * 1024}
        assert lists == [0]  # never a relist
    finally:
        stop.set()
        reflector.close()
        thread.join(10)
    assert not thread.is_alive()


def test_errors_name_the_call_and_stop_retrying_on_4xx(control_plane: ControlPlane) -> None:
    kube = KubeClient(connect(str(control_plane.kubeconfig))[0])
    started = time.monotonic()
    with pytest.raises(ApiError) as caught:
        kube.request("GET", "/api/v1/namespaces/no-such-namespace-here")
    assert caught.value.status == 404
    assert "GET /api/v1/namespaces/no-such-namespace-here: HTTP 404" in str(caught.value)
    assert time.monotonic() - started < 2  # not retried


def _bound_token(api: client.ApiClient, namespace: str, account: str, secret: str) -> str:
    """A token that dies with the Secret it is bound to (TokenRequest boundObjectRef)."""
    core = client.CoreV1Api(api)
    made = core.create_namespaced_secret(
        namespace, client.V1Secret(metadata=client.V1ObjectMeta(name=secret))
    )
    assert made.metadata is not None
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(
            audiences=[],
            expiration_seconds=3600,
            bound_object_ref=client.V1BoundObjectReference(
                api_version="v1", kind="Secret", name=secret, uid=made.metadata.uid
            ),
        )
    )
    reply = core.create_namespaced_service_account_token(account, namespace, request)
    token: str = api.sanitize_for_serialization(reply)["status"]["token"]  # type: ignore[no-untyped-call]
    return token


def test_a_rotated_service_account_token_is_read_again(
    control_plane: ControlPlane, api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="read"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="read"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="read"
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name="default", namespace=namespace)
            ],
        ),
    )
    (tmp_path / "ca.crt").write_bytes(control_plane.ca.read_bytes())
    token_file = tmp_path / "token"
    token_file.write_text(_bound_token(api, namespace, "default", "first"))
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1"}
    env["KUBERNETES_SERVICE_PORT"] = control_plane.server.rsplit(":", 1)[1]
    path = f"/api/v1/namespaces/{namespace}/pods"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        connection, found = connect(None, tmp_path)
        stale_connection, _ = connect(None, tmp_path)
    assert found == token_file
    rotating = KubeClient(connection, token_file=found, token_ttl=0)
    stale = KubeClient(stale_connection)  # reads the token once, as before this fix
    assert rotating.request("GET", path)["items"] == []
    assert stale.request("GET", path)["items"] == []
    # The kubelet writes a new token; the old one's bound object goes away.
    token_file.write_text(_bound_token(api, namespace, "default", "second"))
    client.CoreV1Api(api).delete_namespaced_secret("first", namespace)

    def refused() -> bool:
        try:
            stale.request("GET", path, attempts=1)
        except ApiError as err:
            return err.status == 401
        return False

    wait_for("the old token refused", refused, timeout=30)
    assert rotating.request("GET", path)["items"] == []


def test_a_token_kubeconfig_with_inline_ca_is_read_without_the_kubernetes_package(
    control_plane: ControlPlane, api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    token = _bound_token(api, namespace, "default", "kubeconfig")
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [
            {
                "name": "k",
                "cluster": {
                    "server": control_plane.server,
                    "certificate-authority-data": base64.b64encode(
                        control_plane.ca.read_bytes()
                    ).decode(),
                },
            }
        ],
        "users": [{"name": "u", "user": {"token": token}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    connection, token_file = connect(str(path))
    assert token_file is None
    assert connection.headers == {"Authorization": f"Bearer {token}"}
    # Authenticated as the service account (which may not list namespaces): a 403 naming it.
    with pytest.raises(ApiError) as caught:
        KubeClient(connection).request("GET", "/api/v1/namespaces", attempts=1)
    assert caught.value.status == 403
    assert f"system:serviceaccount:{namespace}:default" in str(caught.value)
