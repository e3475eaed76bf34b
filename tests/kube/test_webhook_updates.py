"""Agent mode's webhook, and pod UPDATEs that change podnat values, through the real API
server: `kubectl annotate --overwrite` as people run it, warnings as kubectl prints them."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.cases import R
from tests.kit.tools import Tools
from tests.kit.webhook import free_port
from tests.kube.helm import CHART
from tests.kube.webhook_kit import (
    GATE,
    SYSTEM,
    as_dict,
    create,
    ensure_namespace,
    gates,
    init_names,
    served_namespace,
    serving_release,
    wait_until_the_unreachable_webhook_is_called,
)

AGENT_LABEL = "podnat.io/agent-test"
INVALID = f"{R}=4321:1234,99999:1"
PARSER = 'invalid annotations: podnat.io/redirect: "99999:1": port 99999 is out of range 1-65535'
WARNING = (
    "Warning: podnat: podnat.io/redirect changed: takes effect at the next pod start "
    "(podnat-init applies rules only when the pod starts)"
)


@pytest.fixture(scope="module")
def agent_release(
    api: client.ApiClient, tools: Tools, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    """The chart in agent mode, serving the namespaces labelled AGENT_LABEL."""
    ensure_namespace(api, SYSTEM)
    tmp = tmp_path_factory.mktemp("agent-tls")
    sets = ["--set", "mode=agent", "--set", f"injection.namespaceLabel={AGENT_LABEL}"]
    with serving_release(api, tools, tmp, "agent", *sets, "--set", "tests.enabled=false") as args:
        yield args


@pytest.fixture
def agent_namespace(api: client.ApiClient, agent_release: list[str]) -> Iterator[str]:
    with served_namespace(
        api, "podnat-ag", {AGENT_LABEL: "enabled"}, lambda p: bool(gates(p))
    ) as ns:
        yield ns


def stored(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    return as_dict(api, client.CoreV1Api(api).read_namespaced_pod(name, ns))


def annotate(tools: Tools, ns: str, name: str, *changes: str) -> subprocess.CompletedProcess[str]:
    return tools.kubectl("annotate", "--overwrite", "-n", ns, f"pod/{name}", *changes, check=False)


def test_agent_mode_stores_the_readiness_gate_and_no_container_capability_or_volume(
    api: client.ApiClient, agent_release: list[str], agent_namespace: str
) -> None:
    assert "--mode=agent" in agent_release
    made = create(api, agent_namespace, {R: "4321:1234"})
    pod = stored(api, agent_namespace, made["metadata"]["name"])
    assert gates(pod) == [GATE]
    assert init_names(pod) == []
    assert [c["name"] for c in pod["spec"]["containers"]] == ["app"]
    assert "securityContext" not in pod["spec"]["containers"][0]
    assert not [v for v in pod["spec"].get("volumes") or [] if "downwardAPI" in v]
    assert gates(create(api, agent_namespace, {"team": "shop"})) == []


@pytest.mark.parametrize("mode", ["init", "agent"])
def test_an_invalid_annotate_overwrite_is_denied_with_the_parsers_message(
    request: pytest.FixtureRequest, api: client.ApiClient, tools: Tools, mode: str
) -> None:
    ns = request.getfixturevalue("namespace" if mode == "init" else "agent_namespace")
    name = create(api, ns, {R: "4321:1234"})["metadata"]["name"]
    done = annotate(tools, ns, name, INVALID)
    assert done.returncode == 1
    assert (
        f'admission webhook "inject.podnat.io" denied the request: Pod {name}: {PARSER}'
        in done.stderr
    )
    assert stored(api, ns, name)["metadata"]["annotations"][R] == "4321:1234"
    # Adding podnat's annotation to a running pod is checked the same way.
    bare = create(api, ns, {"team": "shop"})["metadata"]["name"]
    assert PARSER in annotate(tools, ns, bare, INVALID).stderr


def test_a_valid_annotate_in_init_mode_is_admitted_with_a_warning(
    api: client.ApiClient, tools: Tools, namespace: str
) -> None:
    name = create(api, namespace, {R: "4321:1234"})["metadata"]["name"]
    before = stored(api, namespace, name)
    done = annotate(tools, namespace, name, f"{R}=4321:8080")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == WARNING
    after = stored(api, namespace, name)
    assert after["metadata"]["annotations"][R] == "4321:8080"
    assert after["spec"] == before["spec"]  # an UPDATE is never patched
    removed = annotate(tools, namespace, name, f"{R}-")
    assert removed.returncode == 0, removed.stderr
    assert removed.stderr.strip() == WARNING
    label = tools.kubectl("label", "-n", namespace, f"pod/{name}", "tier=web")
    assert label.stderr == ""  # no podnat change: the webhook is not even called


def test_a_valid_annotate_in_agent_mode_is_admitted_silently(
    api: client.ApiClient, tools: Tools, agent_namespace: str
) -> None:
    name = create(api, agent_namespace, {R: "4321:1234"})["metadata"]["name"]
    done = annotate(tools, agent_namespace, name, f"{R}=4321:8080")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert stored(api, agent_namespace, name)["metadata"]["annotations"][R] == "4321:8080"


def test_with_the_webhook_down_only_podnat_changes_of_running_pods_are_refused(
    api: client.ApiClient, tools: Tools
) -> None:
    """failurePolicy Fail and nothing listening: an annotated pod's labels, finalizers and
    other annotations still change; a podnat value does not."""
    label = "podnat.io/down-update-test"
    ns = f"podnat-downup-{uuid.uuid4().hex[:6]}"
    ensure_namespace(api, ns)
    # Made before the namespace opts in (with the webhook down it could not be created after).
    name = create(api, ns, {R: "4321:1234"})["metadata"]["name"]
    client.CoreV1Api(api).patch_namespace(ns, {"metadata": {"labels": {label: "enabled"}}})
    release = "downup"
    tools.helm(
        "install", release, str(CHART), "--namespace", SYSTEM,
        "--set", f"webhook.url=https://localhost:{free_port()}/mutate",
        "--set", f"injection.namespaceLabel={label}",
        "--set", "tests.enabled=false",
    )  # fmt: skip
    try:
        wait_until_the_unreachable_webhook_is_called(api, ns)
        pod = f"pod/{name}"
        tools.kubectl("label", "-n", ns, pod, "tier=web")
        tools.kubectl("annotate", "-n", ns, pod, "team=shop")
        keep = '{"metadata":{"finalizers":["example.com/keep"]}}'
        tools.kubectl("patch", "-n", ns, pod, "--type=merge", "-p", keep)
        tools.kubectl(
            "patch", "-n", ns, pod, "--type=merge", "-p", '{"metadata":{"finalizers":null}}'
        )
        changed = annotate(tools, ns, name, f"{R}=4321:8080")
        assert changed.returncode == 1
        assert 'failed calling webhook "inject.podnat.io"' in changed.stderr
        after = stored(api, ns, name)["metadata"]
        assert after["labels"] == {"tier": "web"}
        assert after["annotations"] == {R: "4321:1234", "team": "shop"}
        assert not after.get("finalizers")
    finally:
        tools.helm("uninstall", release, "--namespace", SYSTEM)
        client.CoreV1Api(api).delete_namespace(ns)
