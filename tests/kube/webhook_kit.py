"""A chart release whose webhook `podnat webhook` serves from the host, and the pods the tests
create through the real API server."""

from __future__ import annotations

import base64
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.cases import R
from tests.kit.pki import Pki
from tests.kit.tools import Tools
from tests.kit.webhook import free_port, running_webhook
from tests.kube.helm import CHART

RELEASE = "podnat"
SYSTEM = "podnat-system"
SHOP = "podnat-shop"  # the namespace the release grants the helper's API access in
GATE = {"conditionType": "podnat.io/redirects-applied"}


def ensure_namespace(
    api: client.ApiClient, name: str, labels: dict[str, str] | None = None
) -> None:
    core = client.CoreV1Api(api)
    try:
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels))
        )
    except ApiException as err:
        if err.status != 409:
            raise
    try:
        core.create_namespaced_service_account(
            name, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="default"))
        )  # no controller-manager here to make it
    except ApiException as err:
        if err.status != 409:
            raise


def fullname(release: str) -> str:
    return release if "podnat" in release else f"{release}-podnat"


def host_webhook_args(
    api: client.ApiClient, release: str, tmp: Path
) -> tuple[Pki, Path, Path, list[str]]:
    """The chart's TLS material (from its Secret) and its Deployment's webhook arguments."""
    name = fullname(release)
    secret = secret_data(api, f"{name}-tls")
    for item in ("ca.crt", "tls.crt", "tls.key"):
        (tmp / item).write_bytes(base64.b64decode(secret[item]))
    deployment = as_dict(api, client.AppsV1Api(api).read_namespaced_deployment(name, SYSTEM))
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "webhook"
    kept = [a for a in args[1:] if not a.startswith(("--cert=", "--key=", "--port="))]
    return Pki(tmp), tmp / "tls.crt", tmp / "tls.key", kept


@contextmanager
def serving_release(
    api: client.ApiClient, tools: Tools, tmp: Path, release: str, *sets: str
) -> Iterator[list[str]]:
    """`helm install` of the chart, its webhook served on the host: `podnat webhook` runs with
    the chart's certificate and arguments at the URL the chart registered (TLS verified
    against the chart's CA bundle). Yields the webhook's arguments."""
    port = free_port()
    tools.helm(
        "install", release, str(CHART), "--namespace", SYSTEM,
        "--set", f"webhook.url=https://localhost:{port}/mutate",
        "--set", "tls.extraDNSNames={localhost}",
        "--set", "image.tag=test",
        *sets,
    )  # fmt: skip
    try:
        pki, cert, key, args = host_webhook_args(api, release, tmp)
        command = [sys.executable, "-m", "helper.cli"]
        with running_webhook(command, pki, cert, key, *args, port=port):
            yield args
    finally:
        tools.helm("uninstall", release, "--namespace", SYSTEM)
    configs = client.AdmissionregistrationV1Api(api).list_mutating_webhook_configuration()
    assert fullname(release) not in [c["metadata"]["name"] for c in as_dict(api, configs)["items"]]


@contextmanager
def served_namespace(
    api: client.ApiClient, prefix: str, labels: dict[str, str], ready: Callable[[Any], bool]
) -> Iterator[str]:
    """A fresh namespace with `labels`, once the webhook serving it answers (`ready` on a
    dry-run pod): the API server picks new webhook configurations up asynchronously."""
    ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
    ensure_namespace(api, ns, labels)
    for _ in range(100):
        if ready(create(api, ns, {R: "1:2"}, dry_run=True)):
            break
        time.sleep(0.1)
    try:
        yield ns
    finally:
        client.CoreV1Api(api).delete_namespace(ns)


def create(
    api: client.ApiClient,
    ns: str,
    annotations: dict[str, str],
    *,
    dry_run: bool = False,
    host_network: bool = False,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    body = client.V1Pod(
        metadata=client.V1ObjectMeta(generate_name="web-", annotations=annotations, labels=labels),
        spec=client.V1PodSpec(
            host_network=host_network,
            containers=[client.V1Container(name="app", image="app:1")],
        ),
    )
    pod = client.CoreV1Api(api).create_namespaced_pod(ns, body, dry_run="All" if dry_run else None)
    return as_dict(api, pod)


def as_dict(api: client.ApiClient, obj: object) -> dict[str, Any]:
    serialized: dict[str, Any] = api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
    return serialized


def secret_data(api: client.ApiClient, name: str) -> dict[str, str]:
    secret = client.CoreV1Api(api).read_namespaced_secret(name, SYSTEM)
    data: dict[str, str] = as_dict(api, secret)["data"]
    return data


def ca_bundles(api: client.ApiClient, name: str) -> list[str]:
    admission = client.AdmissionregistrationV1Api(api)
    config = as_dict(api, admission.read_mutating_webhook_configuration(name))
    return [w["clientConfig"]["caBundle"] for w in config["webhooks"]]


def init_names(pod: dict[str, Any]) -> list[str]:
    return [c["name"] for c in pod["spec"].get("initContainers") or []]


def gates(pod: dict[str, Any]) -> list[dict[str, str]]:
    return list(pod["spec"].get("readinessGates") or [])


def wait_until_the_unreachable_webhook_is_called(api: client.ApiClient, namespace: str) -> None:
    """A dry-run annotated pod until the API server reports the (down) webhook's failure:
    it picks new configurations up asynchronously."""
    deadline = time.monotonic() + 10
    while True:
        try:
            create(api, namespace, {R: "4321:1234"}, dry_run=True)
        except ApiException as err:
            assert "failed calling webhook" in json.loads(err.body or "{}")["message"]
            return
        assert time.monotonic() < deadline, "the unreachable webhook was never called"
        time.sleep(0.1)
