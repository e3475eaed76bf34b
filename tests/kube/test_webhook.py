"""The real API server calls `podnat webhook` (TLS verified) and stores what it decided."""

from __future__ import annotations

import base64
import json
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from testbed import Pki, running_webhook

from tests.cases import R

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module")
def webhook_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, bytes]]:
    """`podnat webhook` on loopback with its own CA; yields its URL and the CA bundle."""
    pki = Pki.create(tmp_path_factory.mktemp("webhook"), "podnat-webhook-ca")
    cert, key = pki.issue("tls", "/CN=podnat-webhook")
    command = [sys.executable, "-m", "helper.cli"]
    with running_webhook(command, pki, cert, key, "--image", "podnat:test") as port:
        yield f"https://127.0.0.1:{port}/mutate", pki.ca.read_bytes()


@pytest.fixture(scope="module")
def registered(api: client.ApiClient, webhook_url: tuple[str, bytes]) -> Iterator[str]:
    """A MutatingWebhookConfiguration like the chart's, pointing at the host's webhook."""
    url, ca = webhook_url
    name = f"podnat-test-{uuid.uuid4().hex[:6]}"
    admission = client.AdmissionregistrationV1Api(api)
    admission.create_mutating_webhook_configuration(
        client.V1MutatingWebhookConfiguration(
            metadata=client.V1ObjectMeta(name=name),
            webhooks=[
                client.V1MutatingWebhook(
                    name="inject.podnat.io",
                    admission_review_versions=["v1"],
                    side_effects="None",
                    failure_policy="Fail",
                    timeout_seconds=5,
                    reinvocation_policy="IfNeeded",
                    client_config=client.AdmissionregistrationV1WebhookClientConfig(
                        url=url, ca_bundle=base64.b64encode(ca).decode()
                    ),
                    namespace_selector=client.V1LabelSelector(
                        match_labels={"podnat.io/inject": "enabled"}
                    ),
                    rules=[
                        client.V1RuleWithOperations(
                            api_groups=[""],
                            api_versions=["v1"],
                            operations=["CREATE"],
                            resources=["pods"],
                            scope="Namespaced",
                        )
                    ],
                )
            ],
        )
    )
    try:
        yield name
    finally:
        admission.delete_mutating_webhook_configuration(name)


@pytest.fixture
def namespace(api: client.ApiClient, registered: str) -> Iterator[str]:
    core = client.CoreV1Api(api)
    ns = f"podnat-wh-{uuid.uuid4().hex[:6]}"
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=ns, labels={"podnat.io/inject": "enabled"})
        )
    )
    core.create_namespaced_service_account(
        ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="default"))
    )  # no controller-manager here
    # The API server picks new webhook configurations up asynchronously: wait for it.
    for _ in range(100):
        probe = create(api, ns, {R: "1:2"}, dry_run=True)
        if init_names(probe):
            break
        time.sleep(0.1)
    try:
        yield ns
    finally:
        core.delete_namespace(ns)


def create(
    api: client.ApiClient,
    ns: str,
    annotations: dict[str, str],
    *,
    dry_run: bool = False,
    host_network: bool = False,
) -> dict[str, Any]:
    body = client.V1Pod(
        metadata=client.V1ObjectMeta(generate_name="web-", annotations=annotations),
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


def init_names(pod: dict[str, Any]) -> list[str]:
    return [c["name"] for c in pod["spec"].get("initContainers") or []]


def test_the_api_server_stores_an_annotated_pod_with_podnat_init_once(
    api: client.ApiClient, namespace: str
) -> None:
    pod = create(api, namespace, {R: "4321:1234"})
    read = client.CoreV1Api(api).read_namespaced_pod(pod["metadata"]["name"], namespace)
    stored = as_dict(api, read)
    assert init_names(stored) == ["podnat-init"]
    init = stored["spec"]["initContainers"][0]
    assert init["image"] == "podnat:test"
    assert init["securityContext"]["capabilities"] == {"add": ["NET_ADMIN"], "drop": ["ALL"]}
    volumes = [v["name"] for v in stored["spec"]["volumes"] if "downwardAPI" in v]
    assert volumes == ["podnat-podinfo"]


def test_a_pod_without_the_annotation_is_stored_untouched(
    api: client.ApiClient, namespace: str
) -> None:
    assert init_names(create(api, namespace, {"team": "shop"})) == []


def test_invalid_annotations_are_denied_with_the_parsers_message(
    api: client.ApiClient, namespace: str
) -> None:
    with pytest.raises(ApiException) as denied:
        create(api, namespace, {R: "4321:1234, 99999:1"})
    message = json.loads(denied.value.body or "{}")["message"]
    assert message == (
        'admission webhook "inject.podnat.io" denied the request: Pod web-: invalid '
        'annotations: podnat.io/redirect: "99999:1": port 99999 is out of range 1-65535'
    )


def test_a_host_network_pod_with_the_annotation_is_denied(
    api: client.ApiClient, namespace: str
) -> None:
    with pytest.raises(ApiException) as denied:
        create(api, namespace, {R: "4321:1234"}, host_network=True)
    assert (
        "hostNetwork pod would rewrite the node's own NAT rules"
        in json.loads(denied.value.body or "{}")["message"]
    )


def test_namespaces_without_the_opt_in_label_are_not_injected(
    api: client.ApiClient, registered: str
) -> None:
    core = client.CoreV1Api(api)
    ns = f"podnat-off-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    core.create_namespaced_service_account(
        ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="default"))
    )
    try:
        assert init_names(create(api, ns, {R: "4321:1234"})) == []
    finally:
        core.delete_namespace(ns)
