"""Any pod object the API may hand the agent: read, or refused by name; never a traceback."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helper.agent import flags
from helper.agent.pods import CONDITION, Condition, Store, UnreadableError, pod_view

UID = "0b6e2a1c-3f4d-4e5f-8a9b-0c1d2e3f4a5b"


def pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "shop",
            "name": "web",
            "uid": UID,
            "annotations": {"podnat.io/redirect": "8080:80", "other.io/x": "kept out"},
            "labels": {"app": "web", "podnat.io/helm-test": "r1"},
        },
        "spec": {"nodeName": "n1", **spec},
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": CONDITION, "status": "True", "reason": "Applied", "message": "m"},
            ],
        },
    }


def test_the_view_keeps_only_what_the_agent_needs() -> None:
    view = pod_view(pod(), frozenset({"podnat.io/helm-test"}))
    assert view.key == "shop/web"
    assert view.annotations == {"podnat.io/redirect": "8080:80"}
    assert view.labels == {"podnat.io/helm-test": "r1"}
    assert view.condition == Condition("True", "Applied", "m")
    assert (view.host_network, view.windows, view.deleting, view.finished) == (
        False,
        False,
        False,
        False,
    )


def test_a_new_sandbox_is_news_though_nothing_else_the_agent_reads_changed() -> None:
    """The kubelet's signs of a new sandbox (PodReadyToStartContainers flips, containers
    restart) wake the agent at once; other status updates (a probe's Ready) do not."""
    store = Store()
    first = pod()
    assert store.put(pod_view(first))
    ready_only = pod()
    ready_only["status"]["conditions"][0]["status"] = "False"
    assert not store.put(pod_view(ready_only))
    reborn = pod()
    reborn["status"]["conditions"].append(
        {"type": "PodReadyToStartContainers", "status": "False", "lastTransitionTime": "t1"}
    )
    assert store.put(pod_view(reborn))
    restarted = pod()
    restarted["status"]["conditions"] = reborn["status"]["conditions"]
    restarted["status"]["containerStatuses"] = [{"name": "app", "restartCount": 1}]
    assert store.put(pod_view(restarted))


def test_host_network_windows_and_terminal_pods_are_recognised() -> None:
    assert pod_view(pod(hostNetwork=True)).host_network
    assert pod_view(pod(os={"name": "windows"})).windows
    finished = pod()
    finished["status"]["phase"] = "Succeeded"
    assert pod_view(finished).finished


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (("spec", "hostNetwork"), "yes", "hostNetwork"),
        (("metadata", "annotations"), ["a"], "annotations"),
        (("metadata", "uid"), 7, "uid"),
        (("spec",), "x", "spec"),
    ],
)
def test_an_odd_field_is_named(path: tuple[str, ...], value: object, named: str) -> None:
    obj = pod()
    target = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(UnreadableError, match=named):
        pod_view(obj)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=20,
)
fields = st.sampled_from(
    ["metadata", "spec", "status", "namespace", "name", "uid", "annotations", "labels",
     "hostNetwork", "os", "phase", "conditions", "nodeName", "deletionTimestamp", "type"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(fields, st.dictionaries(fields, json_values, max_size=6), max_size=3))
def test_any_json_shape_is_read_or_refused_never_a_traceback(obj: dict[str, Any]) -> None:
    try:
        view = pod_view(obj, frozenset({"app"}))
    except UnreadableError as err:
        assert str(err)  # names what is wrong
    else:
        assert view.namespace and view.name and view.uid
        assert set(view.labels) <= {"app"}


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (flags.label, "a=b,c=d"),
        (flags.label, "novalue"),
        (flags.also_manage, "ns-only"),
        (flags.also_manage, "ns/key"),
        (flags.listen, "9102"),
        (flags.listen, "h:99999"),
        (flags.workers, "0"),
        (flags.workers, "1e9"),
    ],
)
def test_malformed_flags_are_usage_errors(parse: Any, text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected"):
        parse(text)


def test_also_manage_takes_a_prefixed_label_key() -> None:
    assert flags.also_manage("podnat/podnat.io/helm-test=r1") == (
        "podnat",
        "podnat.io/helm-test",
        "r1",
    )
