"""`podnat apply --source api` against a real kube-apiserver, with real RBAC and tokens."""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from tests.cases import R
from tests.kit.controlplane import ControlPlane
from tests.kit.lab import Lab
from tests.kube.accounts import mount_account, pod_env
from tests.netns.podnat import Result, nat_dump, podnat

pytestmark = pytest.mark.netns


@dataclass
class Tenant:
    namespace: str
    pod: str
    sa_dir: Path
    env: dict[str, str]


@pytest.fixture
def tenant_factory(
    api: client.ApiClient, control_plane: ControlPlane, tmp_path: Path
) -> Iterator[object]:
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    made: list[str] = []

    def make(annotations: dict[str, str], verbs: dict[str, list[str]]) -> Tenant:
        ns = f"podnat-{uuid.uuid4().hex[:8]}"
        made.append(ns)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        core.create_namespaced_service_account(
            ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="app"))
        )
        if verbs:
            rules = [
                client.V1PolicyRule(api_groups=[""], resources=[res], verbs=v)
                for res, v in verbs.items()
            ]
            rbac.create_namespaced_role(
                ns, client.V1Role(metadata=client.V1ObjectMeta(name="podnat"), rules=rules)
            )
            rbac.create_namespaced_role_binding(
                ns,
                client.V1RoleBinding(
                    metadata=client.V1ObjectMeta(name="podnat"),
                    role_ref=client.V1RoleRef(
                        api_group="rbac.authorization.k8s.io", kind="Role", name="podnat"
                    ),
                    subjects=[
                        client.RbacV1Subject(kind="ServiceAccount", name="app", namespace=ns)
                    ],
                ),
            )
        core.create_namespaced_pod(
            ns,
            client.V1Pod(
                metadata=client.V1ObjectMeta(name="web", annotations=annotations),
                spec=client.V1PodSpec(
                    service_account_name="app",
                    automount_service_account_token=False,
                    containers=[client.V1Container(name="app", image="app")],
                ),
            ),
        )
        sa_dir = mount_account(api, control_plane, ns, "app", tmp_path / ns)
        env = pod_env(control_plane, ns, "web")
        return Tenant(ns, "web", sa_dir, env)

    yield make
    for ns in made:
        core.delete_namespace(ns)


def apply_via_api(
    lab: Lab, tenant: Tenant, *extra: str, env: dict[str, str] | None = None
) -> Result:
    return podnat(
        lab.pod,
        "apply",
        None,
        "--source",
        "auto",
        "--service-account-dir",
        str(tenant.sa_dir),
        *extra,
        env={**tenant.env, **(env or {})},
    )


def events(api: client.ApiClient, tenant: Tenant) -> list[client.CoreV1Event]:
    return list(client.CoreV1Api(api).list_namespaced_event(tenant.namespace).items)


POD_ROLE = {"pods": ["get"], "events": ["create"]}


def test_rules_from_the_api_carry_real_traffic_and_an_event(
    lab: Lab, api: client.ApiClient, tenant_factory: object
) -> None:
    tenant = tenant_factory({R: "4321:1234"}, POD_ROLE)  # type: ignore[operator]
    lab.serve(lab.pod, 1234)
    result = apply_via_api(lab, tenant)
    assert result.code == 0, result.stderr
    assert "Kubernetes API" in result.stderr and "service-account token at" in result.stderr
    assert f"system:serviceaccount:{tenant.namespace}:app" in result.stderr
    assert lab.ask(lab.client_a, lab.POD_A4, 4321) == "served-by:1234"
    [event] = [e for e in events(api, tenant) if e.reason == "RedirectsApplied"]
    assert event.type == "Normal"
    assert "4321:1234/tcp" in (event.message or "")
    assert event.involved_object.name == "web"


def test_a_neighbour_that_shadows_the_port_makes_the_event_a_warning_saying_so(
    lab: Lab, api: client.ApiClient, tenant_factory: object
) -> None:
    tenant = tenant_factory({R: "4321:1234"}, POD_ROLE)  # type: ignore[operator]
    early = (
        "table inet early {\n\tchain pre {\n"
        "\t\ttype nat hook prerouting priority dstnat - 10; policy accept;\n"
        "\t\ttcp dport 4321 redirect to :4322\n\t}\n}\n"
    )
    lab.pod.run("nft", "-f", "-", stdin=early)
    result = apply_via_api(lab, tenant)
    assert result.code == 0, result.stderr
    [event] = [e for e in events(api, tenant) if e.reason == "RedirectsApplied"]
    assert event.type == "Warning"
    assert (
        "podnat's 4321→1234 is shadowed by table inet early chain pre (priority dstnat-10) "
        "which redirects tcp dport 4321 first"
    ) in (event.message or "")


def test_an_account_without_rbac_fails_fast_with_the_fix(lab: Lab, tenant_factory: object) -> None:
    tenant = tenant_factory({R: "4321:1234"}, {})  # type: ignore[operator]
    result = apply_via_api(lab, tenant)
    assert result.code == 3
    message = result.stderr
    assert "retrying" not in message  # a 403 is an answer, not an outage
    assert f"system:serviceaccount:{tenant.namespace}:app may not get pods" in message
    assert f"--serviceaccount={tenant.namespace}:app" in message
    assert "Traceback" not in message
    assert nat_dump(lab.pod, "nft") == ""


def test_invalid_annotations_exit_2_with_a_warning_event(
    lab: Lab, api: client.ApiClient, tenant_factory: object
) -> None:
    tenant = tenant_factory({R: "4321:1234, 99999:1"}, POD_ROLE)  # type: ignore[operator]
    result = apply_via_api(lab, tenant)
    assert result.code == 2
    [event] = [e for e in events(api, tenant) if e.reason == "RedirectsInvalid"]
    assert event.type == "Warning"
    assert 'podnat.io/redirect: "99999:1": port 99999 is out of range 1-65535' in (
        event.message or ""
    )
    assert nat_dump(lab.pod, "nft") == ""


def test_no_permission_for_events_is_only_a_warning(lab: Lab, tenant_factory: object) -> None:
    tenant = tenant_factory({R: "4321:1234"}, {"pods": ["get"]})  # type: ignore[operator]
    result = apply_via_api(lab, tenant)
    assert result.code == 0, result.stderr
    assert "could not record a RedirectsApplied Event" in result.stderr
    assert "table inet podnat" in nat_dump(lab.pod, "nft")


def test_an_api_server_that_never_answers_fails_at_the_deadline(
    lab: Lab, tenant_factory: object
) -> None:
    tenant = tenant_factory({R: "4321:1234"}, POD_ROLE)  # type: ignore[operator]
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = str(closed.getsockname()[1])
    result = apply_via_api(lab, tenant, "--timeout", "3", env={"KUBERNETES_SERVICE_PORT": port})
    assert result.code == 3
    attempts = re.search(r"failed for 3s \((\d+) attempts\)", result.stderr)
    assert attempts, result.stderr
    assert int(attempts[1]) >= 3  # backed off and retried until the deadline, then gave up
    assert result.stderr.count("retrying in") == int(attempts[1]) - 1
    assert "Connection refused" in result.stderr


def test_an_api_server_that_comes_up_late_is_waited_for(
    lab: Lab, control_plane: ControlPlane, tenant_factory: object
) -> None:
    tenant = tenant_factory({R: "4321:1234"}, POD_ROLE)  # type: ignore[operator]
    control_plane.stop_apiserver()
    restarted = threading.Event()

    def restart_later() -> None:
        time.sleep(2)
        control_plane.start_apiserver()
        restarted.set()

    thread = threading.Thread(target=restart_later)
    thread.start()
    try:
        result = apply_via_api(lab, tenant, "--timeout", "90")
    finally:
        thread.join()
    assert restarted.is_set()
    assert result.code == 0, result.stderr
    assert "retrying in" in result.stderr
    assert "table inet podnat" in nat_dump(lab.pod, "nft")


def test_auto_falls_back_to_the_downward_file_without_rbac(
    lab: Lab, tenant_factory: object
) -> None:
    tenant = tenant_factory({R: "4321:1234"}, {})  # type: ignore[operator]
    result = podnat(
        lab.pod,
        "apply",
        {R: "4321:1234"},
        "--source",
        "auto",
        "--service-account-dir",
        str(tenant.sa_dir),
        env=tenant.env,
    )
    assert result.code == 0, result.stderr
    assert "may not get pods" in result.stderr
    assert "using Downward API file" in result.stderr
    assert "table inet podnat" in nat_dump(lab.pod, "nft")


def test_source_api_outside_a_pod_uses_the_kubeconfig(
    lab: Lab, control_plane: ControlPlane, tenant_factory: object
) -> None:
    tenant = tenant_factory({R: "4321:1234"}, POD_ROLE)  # type: ignore[operator]
    env = {
        "KUBECONFIG": str(control_plane.kubeconfig),
        "KUBERNETES_SERVICE_HOST": "",
        "POD_NAME": "web",
        "POD_NAMESPACE": tenant.namespace,
    }
    result = podnat(
        lab.pod, "apply", None, "--source", "api", "--service-account-dir", "/nonexistent", env=env
    )
    assert result.code == 0, result.stderr
    assert "with the kubeconfig" in result.stderr
    assert "table inet podnat" in nat_dump(lab.pod, "nft")
