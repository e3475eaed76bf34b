"""The chart's own-node policy, enforced by the real API server: the agent's service account,
holding a token bound to a pod on node A, may write the status of pods on A only."""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.kit.controlplane import ControlPlane
from tests.kit.tools import Tools
from tests.kube.helm import documents, template

RELEASE = "nodepol"
SYSTEM = "podnat-nodepol"  # the release's namespace: the agent's pod
APPS = "podnat-nodepol-apps"  # the managed pods
AGENT = f"{RELEASE}-podnat-agent"
CONDITION = "podnat.io/redirects-applied"
DENIAL = "the podnat agent may write the status of pods on its own node only"
AGENT_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy",
               "ValidatingAdmissionPolicyBinding")  # fmt: skip


def manifest(kind: str, name: str, **spec: Any) -> str:
    return json.dumps({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}, **spec})


def pod(name: str, node: str, namespace: str, account: str) -> str:
    container = {"name": "app", "image": "podnat:test"}
    spec = {"nodeName": node, "serviceAccountName": account, "containers": [container]}
    return json.dumps(
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    )  # fmt: skip


@pytest.fixture(scope="module")
def installed(tools: Tools, control_plane: ControlPlane) -> Iterator[Tools]:
    """The agent's RBAC and policy from the chart; nodes A and B; a pod on each, and the
    agent's own pod on A (nothing runs: there is no kubelet, the objects are enough)."""
    rendered = documents(template(tools, RELEASE, SYSTEM, "--set", "mode=agent"))
    ours = "---\n".join(yaml.safe_dump(d) for d in rendered if d["kind"] in AGENT_KINDS)
    objects = [
        manifest("Namespace", SYSTEM),
        manifest("Namespace", APPS),
        manifest("Node", "node-a"),
        manifest("Node", "node-b"),
    ]
    tools.kubectl("apply", "-f", "-", stdin="\n".join(objects))
    tools.kubectl("apply", "-f", "-", stdin=ours)
    tools.kubectl("create", "serviceaccount", "default", "-n", APPS, check=False)
    pods = [
        pod("agent-a", "node-a", SYSTEM, AGENT),
        pod("app-a", "node-a", APPS, "default"),
        pod("app-b", "node-b", APPS, "default"),
    ]
    tools.kubectl("apply", "-f", "-", stdin="\n".join(pods))
    try:
        enforced(tools, control_plane)
        yield tools
    finally:
        tools.kubectl("delete", "-f", "-", "--wait=false", "--ignore-not-found", stdin=ours)
        for ns in (SYSTEM, APPS):
            tools.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found")
        tools.kubectl("delete", "node", "node-a", "node-b", "--ignore-not-found")


def enforced(tools: Tools, plane: ControlPlane) -> None:
    """Wait until the API server enforces the new policy: it loads policies through an
    informer, seconds after they are created (seen in CI: writes allowed at first)."""
    token = agent_token(tools, None)
    deadline = time.monotonic() + 60
    while set_condition(plane, token, "app-a", "Probe")[0] != 403:
        if time.monotonic() > deadline:
            raise AssertionError("the own-node policy was not enforced within 60 s")
        time.sleep(0.5)
    # The probe writes that got through are undone, so every test starts from no condition.
    tools.kubectl(
        "patch", "pod", "app-a", "-n", APPS, "--subresource=status", "--type=json",
        "-p", '[{"op": "replace", "path": "/status/conditions", "value": []}]', check=False,
    )  # fmt: skip


def agent_token(tools: Tools, bound_to: str | None) -> str:
    """A TokenRequest token of the agent's account, bound to one of its pods (as the kubelet
    mounts it), or unbound."""
    bound: list[str] = []
    if bound_to is not None:
        uid = jsonpath(tools, "pod", bound_to, "{.metadata.uid}", "-n", SYSTEM)
        bound = ["--bound-object-kind=Pod", f"--bound-object-name={bound_to}",
                 f"--bound-object-uid={uid}"]  # fmt: skip
    made = tools.kubectl("create", "token", AGENT, "-n", SYSTEM, "--duration=1h", *bound)
    return made.stdout.strip()


def jsonpath(tools: Tools, kind: str, name: str, path: str, *extra: str) -> str:
    return tools.kubectl("get", kind, name, *extra, "-o", f"jsonpath={path}").stdout


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def call(plane: ControlPlane, token: str, method: str, path: str, body: object) -> tuple[int, Any]:
    """One request as the token's user; (HTTP status, decoded JSON body)."""
    content = "application/strategic-merge-patch+json" if method == "PATCH" else "application/json"
    request = urllib.request.Request(  # noqa: S310 - https, our own API server
        plane.server + path, data=json.dumps(body).encode(), method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": content},
    )  # fmt: skip
    context = ssl.create_default_context(cafile=str(plane.ca))
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as reply:  # noqa: S310
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def set_condition(plane: ControlPlane, token: str, name: str, reason: str) -> tuple[int, Any]:
    condition = {"type": CONDITION, "status": "True", "reason": reason, "message": "test"}
    body = {"status": {"conditions": [condition]}}
    return call(plane, token, "PATCH", f"/api/v1/namespaces/{APPS}/pods/{name}/status", body)


def condition_reason(tools: Tools, name: str) -> str:
    path = f'{{.status.conditions[?(@.type=="{CONDITION}")].reason}}'
    return jsonpath(tools, "pod", name, path, "-n", APPS)


def test_a_token_bound_to_the_agents_pod_names_its_node(
    installed: Tools, control_plane: ControlPlane
) -> None:
    token = agent_token(installed, "agent-a")
    node = claims(token)["kubernetes.io"]["node"]
    assert node["name"] == "node-a"
    assert node["uid"] == jsonpath(installed, "node", "node-a", "{.metadata.uid}")
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    status, body = call(
        control_plane, token, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", review
    )
    assert status == 201, body
    user = body["status"]["userInfo"]
    assert user["username"] == f"system:serviceaccount:{SYSTEM}:{AGENT}"
    assert user["extra"]["authentication.kubernetes.io/node-name"] == ["node-a"]


def test_the_agent_writes_the_status_of_its_own_nodes_pods_only(
    installed: Tools, control_plane: ControlPlane
) -> None:
    token = agent_token(installed, "agent-a")
    status, body = set_condition(control_plane, token, "app-b", "Applied")
    assert status == 403, body
    assert DENIAL in body["message"]
    assert AGENT in body["message"]  # names the policy
    assert condition_reason(installed, "app-b") == ""
    status, body = set_condition(control_plane, token, "app-a", "Applied")
    assert status == 200, body
    assert condition_reason(installed, "app-a") == "Applied"


def test_a_token_bound_to_no_pod_may_write_no_status(
    installed: Tools, control_plane: ControlPlane
) -> None:
    token = agent_token(installed, None)
    assert "node" not in claims(token).get("kubernetes.io", {})
    status, body = set_condition(control_plane, token, "app-a", "NoRedirects")
    assert status == 403, body
    assert DENIAL in body["message"]


def test_other_users_are_not_matched(installed: Tools) -> None:
    condition = {"type": CONDITION, "status": "False", "reason": "ApplyFailed", "message": "x"}
    patch = json.dumps({"status": {"conditions": [condition]}})
    installed.kubectl(
        "patch", "pod", "app-b", "-n", APPS, "--subresource=status", "--type=strategic", "-p", patch
    )
    assert condition_reason(installed, "app-b") == "ApplyFailed"


def test_rbac_still_bounds_the_agent(installed: Tools, control_plane: ControlPlane) -> None:
    # Its own node's pod, but the pod itself (not its status): RBAC refuses before the policy.
    token = agent_token(installed, "agent-a")
    body = {"metadata": {"labels": {"x": "y"}}}
    status, reply = call(
        control_plane, token, "PATCH", f"/api/v1/namespaces/{APPS}/pods/app-a", body
    )
    assert status == 403, reply
    assert DENIAL not in reply["message"]
    assert 'cannot patch resource "pods"' in reply["message"]
