"""The real API server calls `podnat webhook` (TLS verified) and stores what it decided."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.cases import R
from tests.kit.controlplane import ControlPlane
from tests.kit.pki import Pki
from tests.kit.tools import Tools
from tests.kit.webhook import free_port, running_webhook
from tests.kube.accounts import mount_account, pod_env
from tests.kube.helm import CHART
from tests.netns.podnat import cli

pytestmark = pytest.mark.netns


RELEASE = "podnat"
SYSTEM = "podnat-system"
SHOP = "podnat-shop"  # the namespace the release grants the helper's API access in


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


def host_webhook_args(api: client.ApiClient, tmp: Path) -> tuple[Pki, Path, Path, list[str]]:
    """The chart's TLS material (from its Secret) and its Deployment's webhook arguments."""
    secret = secret_data(api, f"{RELEASE}-tls")
    for name in ("ca.crt", "tls.crt", "tls.key"):
        (tmp / name).write_bytes(base64.b64decode(secret[name]))
    deployment = as_dict(api, client.AppsV1Api(api).read_namespaced_deployment(RELEASE, SYSTEM))
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "webhook"
    kept = [a for a in args[1:] if not a.startswith(("--cert=", "--key=", "--port="))]
    return Pki(tmp), tmp / "tls.crt", tmp / "tls.key", kept


@pytest.fixture(scope="module")
def registered(
    api: client.ApiClient, tools: Tools, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`helm install` of the chart, its webhook served on the host: `podnat webhook` runs with
    the chart's certificate and arguments at the URL the chart registered (TLS verified
    against the chart's CA bundle)."""
    ensure_namespace(api, SYSTEM)
    ensure_namespace(api, SHOP)
    port = free_port()
    tools.helm(
        "install", RELEASE, str(CHART), "--namespace", SYSTEM,
        "--set", f"webhook.url=https://localhost:{port}/mutate",
        "--set", "tls.extraDNSNames={localhost}",
        "--set", "image.tag=test",
        "--set", f"rbac.helperBindings[0].namespace={SHOP}",
    )  # fmt: skip
    pki, cert, key, args = host_webhook_args(api, tmp_path_factory.mktemp("chart-tls"))
    command = [sys.executable, "-m", "helper.cli"]
    try:
        with running_webhook(command, pki, cert, key, *args, port=port):
            yield RELEASE
    finally:
        tools.helm("uninstall", RELEASE, "--namespace", SYSTEM)
    configs = client.AdmissionregistrationV1Api(api).list_mutating_webhook_configuration()
    assert RELEASE not in [c["metadata"]["name"] for c in as_dict(api, configs)["items"]]


@pytest.fixture
def namespace(api: client.ApiClient, registered: str) -> Iterator[str]:
    ns = f"podnat-wh-{uuid.uuid4().hex[:6]}"
    ensure_namespace(api, ns, {"podnat.io/inject": "enabled"})
    # The API server picks new webhook configurations up asynchronously: wait for it.
    for _ in range(100):
        probe = create(api, ns, {R: "1:2"}, dry_run=True)
        if init_names(probe):
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
    ensure_namespace(api, ns)
    try:
        assert init_names(create(api, ns, {R: "4321:1234"})) == []
    finally:
        core.delete_namespace(ns)


def test_system_and_own_namespaces_are_never_injected_even_when_labelled(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    for ns in ("kube-system", SYSTEM):
        ensure_namespace(api, ns)
        core.patch_namespace(ns, {"metadata": {"labels": {"podnat.io/inject": "enabled"}}})
        try:
            assert init_names(create(api, ns, {R: "4321:1234"}, dry_run=True)) == []
        finally:
            core.patch_namespace(ns, {"metadata": {"labels": {"podnat.io/inject": None}}})


def test_the_helm_test_pod_alone_is_injected_in_the_releases_namespace(
    api: client.ApiClient, namespace: str
) -> None:
    labels = {"podnat.io/helm-test": RELEASE}
    assert init_names(create(api, SYSTEM, {R: "4321:1234"}, dry_run=True, labels=labels)) == [
        "podnat-init"
    ]
    assert init_names(create(api, SYSTEM, {R: "4321:1234"}, dry_run=True)) == []


def plan_from_api(
    api: client.ApiClient, control_plane: ControlPlane, ns: str, pod: str, tmp: Path
) -> subprocess.CompletedProcess[str]:
    """`podnat plan --source api` as the namespace's default account would run it."""
    sa_dir = mount_account(api, control_plane, ns, "default", tmp)
    env = pod_env(control_plane, ns, pod)
    return cli("plan", "--source", "api", "--service-account-dir", str(sa_dir), env=env)


def test_the_helper_binding_lets_pods_read_themselves_where_listed_only(
    api: client.ApiClient, control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    for ns, allowed in ((SHOP, True), (namespace, False)):
        pod = create(api, ns, {R: "4321:1234"})["metadata"]["name"]
        result = plan_from_api(api, control_plane, ns, pod, tmp_path / ns)
        if allowed:
            assert result.returncode == 0, result.stderr
            assert "dport 4321" in result.stdout
        else:
            assert result.returncode == 3
            assert "may not get pods" in result.stderr


def test_an_upgrade_keeps_the_certificate_and_the_webhook_keeps_working(
    api: client.ApiClient, tools: Tools, namespace: str
) -> None:
    before = secret_data(api, f"{RELEASE}-tls"), ca_bundles(api, RELEASE)
    tools.helm("upgrade", RELEASE, str(CHART), "--namespace", SYSTEM, "--reuse-values")
    assert (secret_data(api, f"{RELEASE}-tls"), ca_bundles(api, RELEASE)) == before
    assert init_names(create(api, namespace, {R: "4321:1234"})) == ["podnat-init"]


def test_with_the_webhook_down_only_annotated_pods_are_refused(
    api: client.ApiClient, tools: Tools
) -> None:
    """A release whose webhook is unreachable (failurePolicy Fail): matchConditions keep every
    pod without podnat.io/* annotations out of its way."""
    ns = f"podnat-down-{uuid.uuid4().hex[:6]}"
    ensure_namespace(api, ns, {"podnat.io/down-test": "enabled"})
    release = "down"
    common = [
        "--namespace", SYSTEM,
        "--set", f"webhook.url=https://localhost:{free_port()}/mutate",
        "--set", "injection.namespaceLabel=podnat.io/down-test",
        "--set", "tests.enabled=false",
    ]  # fmt: skip
    tools.helm("install", release, str(CHART), *common)
    try:
        deadline = time.monotonic() + 10
        while True:  # the API server picks new configurations up asynchronously
            try:
                create(api, ns, {R: "4321:1234"}, dry_run=True)
            except ApiException as err:
                assert "failed calling webhook" in json.loads(err.body or "{}")["message"]
                break
            assert time.monotonic() < deadline, "the unreachable webhook was never called"
            time.sleep(0.1)
        assert init_names(create(api, ns, {"team": "shop"})) == []
        # New names for the certificate: the upgrade re-issues it (and the CA bundle with it).
        secret = f"{release}-podnat-tls"
        before = secret_data(api, secret)
        tools.helm("upgrade", release, str(CHART), *common, "--set", "tls.extraDNSNames={nat}")
        assert secret_data(api, secret)["tls.crt"] != before["tls.crt"]
    finally:
        tools.helm("uninstall", release, "--namespace", SYSTEM)
        client.CoreV1Api(api).delete_namespace(ns)
