"""The real API server calls `podnat webhook` (TLS verified) and stores what it decided."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.cases import R
from tests.kit.controlplane import ControlPlane
from tests.kit.tools import Tools
from tests.kit.webhook import free_port
from tests.kube.accounts import mount_account, pod_env
from tests.kube.helm import CHART
from tests.kube.webhook_kit import (
    RELEASE,
    SHOP,
    SYSTEM,
    as_dict,
    ca_bundles,
    create,
    ensure_namespace,
    init_names,
    secret_data,
    wait_until_the_unreachable_webhook_is_called,
)
from tests.netns.podnat import cli

pytestmark = pytest.mark.netns


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
        wait_until_the_unreachable_webhook_is_called(api, ns)
        assert init_names(create(api, ns, {"team": "shop"})) == []
        # New names for the certificate: the upgrade re-issues it (and the CA bundle with it).
        secret = f"{release}-podnat-tls"
        before = secret_data(api, secret)
        tools.helm("upgrade", release, str(CHART), *common, "--set", "tls.extraDNSNames={nat}")
        assert secret_data(api, secret)["tls.crt"] != before["tls.crt"]
    finally:
        tools.helm("uninstall", release, "--namespace", SYSTEM)
        client.CoreV1Api(api).delete_namespace(ns)
