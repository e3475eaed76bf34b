"""`podnat inject` and the mutation it shares with the webhook."""

from __future__ import annotations

import copy
import difflib
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from helper.admission.inject import INIT_NAME, Denied, InjectConfig, mutate, validate
from helper.errors import ManifestError
from tests.cases import R
from tests.netns.podnat import cli

GOLDEN = Path(__file__).parent / "golden" / "inject"
AGENT = InjectConfig(mode="agent")
GATE = {"conditionType": "podnat.io/redirects-applied"}


def pod(annotations: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "annotations": annotations or {}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}], **spec},
    }


def test_every_workload_kind_matches_the_golden_file() -> None:
    done = cli("inject", "-f", str(GOLDEN / "workloads.in.yaml"), "--image", "podnat:test")
    assert done.returncode == 0, done.stderr
    golden = GOLDEN / "workloads.golden.yaml"
    if os.environ.get("REFRESH_GOLDEN"):
        golden.write_text(done.stdout)
    assert done.stdout == golden.read_text(), "if intended: REFRESH_GOLDEN=1 make test-quick"


def test_golden_output_injects_each_annotated_pod_template_once() -> None:
    docs = list(yaml.safe_load_all((GOLDEN / "workloads.golden.yaml").read_text()))
    objects = [o for d in docs for o in (d["items"] if d["kind"] == "List" else [d])]
    injected = {o["metadata"]["name"] for o in objects if INIT_NAME in yaml.safe_dump(o)}
    assert injected == {
        "pod",
        "deployment",
        "statefulset",
        "daemonset",
        "replicaset",
        "job",
        "cronjob",
        "replicationcontroller",
        "podtemplate",
        "list-item",
    }


def test_podnat_init_comes_first_and_existing_init_containers_stay() -> None:
    out = mutate(
        pod({R: "1:2"}, initContainers=[{"name": "migrate", "image": "m"}]), InjectConfig()
    )
    assert [c["name"] for c in out["spec"]["initContainers"]] == [INIT_NAME, "migrate"]


def test_a_pod_without_the_annotation_is_returned_untouched() -> None:
    original = pod({"other": "x"})
    assert mutate(original, InjectConfig()) is original


def test_injecting_twice_changes_nothing_the_second_time() -> None:
    once = mutate(pod({R: "1:2"}), InjectConfig())
    frozen = copy.deepcopy(once)
    assert mutate(once, InjectConfig()) is once
    assert once == frozen


def test_the_input_object_is_not_modified() -> None:
    original = pod({R: "1:2"})
    before = copy.deepcopy(original)
    mutate(original, InjectConfig())
    assert original == before


def test_least_privilege_net_raw_only_for_an_explicit_legacy_backend() -> None:
    def caps(backend: str) -> list[str]:
        out = mutate(pod({R: "1:2"}), InjectConfig(backend=backend))
        security = out["spec"]["initContainers"][0]["securityContext"]
        assert security["capabilities"]["drop"] == ["ALL"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        return list(security["capabilities"]["add"])

    assert caps("auto") == ["NET_ADMIN"]
    assert caps("nft") == ["NET_ADMIN"]
    assert caps("iptables-legacy") == ["NET_ADMIN", "NET_RAW"]


def test_invalid_annotations_are_denied_with_the_parsers_message() -> None:
    with pytest.raises(Denied) as denied:
        mutate(pod({R: "4321:1234, 99999:1"}), InjectConfig())
    assert denied.value.message == (
        'Pod web: invalid annotations: podnat.io/redirect: "99999:1": '
        "port 99999 is out of range 1-65535"
    )


def test_host_network_pods_with_the_annotation_are_denied() -> None:
    with pytest.raises(Denied, match="hostNetwork pod would rewrite the node's own NAT rules"):
        mutate(pod({R: "1:2"}, hostNetwork=True), InjectConfig())


def test_host_network_pods_without_the_annotation_pass() -> None:
    original = pod({}, hostNetwork=True)
    assert mutate(original, InjectConfig()) is original


def test_inject_reads_stdin_and_fails_with_exit_2_on_invalid_annotations() -> None:
    done = cli("inject", "-f", "-", stdin=yaml.safe_dump(pod({R: "80-90:1-2"})))
    assert done.returncode == 2
    assert "ranges of unequal length" in done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr


def test_inject_rejects_malformed_yaml_with_exit_5_and_where() -> None:
    done = cli("inject", "-f", "-", stdin="kind: Pod\n---\nkind: Pod\nmetadata: [unclosed\n")
    assert done.returncode == 5, done.stderr
    assert "stdin: document 2, line 5, column 1: not valid YAML" in done.stderr
    assert done.stdout == ""


def test_objects_podnat_leaves_alone_come_out_unchanged() -> None:
    docs = list(yaml.safe_load_all((GOLDEN / "workloads.in.yaml").read_text()))
    out = list(yaml.safe_load_all((GOLDEN / "workloads.golden.yaml").read_text()))
    for before, after in zip(docs, out, strict=True):
        if before.get("metadata", {}).get("name") in ("not-annotated", "untouched"):
            assert after == before


def test_the_injected_container_passes_pod_security_restricted_seccomp() -> None:
    out = mutate(pod({R: "1:2"}), InjectConfig())
    security = out["spec"]["initContainers"][0]["securityContext"]
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}


@pytest.mark.parametrize(
    "spec",
    [{"os": {"name": "windows"}}, {"nodeSelector": {"kubernetes.io/os": "windows"}}],
    ids=["os.name", "nodeSelector"],
)
def test_windows_pods_with_the_annotation_are_denied(spec: dict[str, Any]) -> None:
    with pytest.raises(Denied, match=r"Pod web: podnat.io/redirect on a Windows pod"):
        mutate(pod({R: "1:2"}, **spec), InjectConfig())


def test_a_foreign_podnat_podinfo_volume_is_denied() -> None:
    foreign = pod({R: "1:2"}, volumes=[{"name": "podnat-podinfo", "emptyDir": {}}])
    with pytest.raises(Denied, match="volume named podnat-podinfo that is not podnat's"):
        mutate(foreign, InjectConfig())


def test_a_foreign_podnat_init_container_is_denied() -> None:
    init = [{"name": INIT_NAME, "image": "someone-else:1"}]
    with pytest.raises(Denied, match="named podnat-init that podnat did not make"):
        mutate(pod({R: "1:2"}, initContainers=init), InjectConfig())
    app = [{"name": INIT_NAME, "image": "app:1"}]
    with pytest.raises(Denied, match=r"spec\.containers has a container named podnat-init"):
        mutate(pod({R: "1:2"}, containers=app), InjectConfig())


def test_an_injected_pod_as_the_api_server_stores_it_is_still_ours() -> None:
    stored = mutate(pod({R: "1:2"}), InjectConfig())
    # The API server's defaults on the volume, and on the container.
    volume = stored["spec"]["volumes"][0]
    volume["downwardAPI"]["defaultMode"] = 420
    volume["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"] = "v1"
    stored["spec"]["initContainers"][0]["terminationMessagePath"] = "/dev/termination-log"
    assert mutate(stored, InjectConfig(image="podnat:newer")) is stored


@pytest.mark.parametrize(
    ("value", "text", "what"), [(8080, "8080", "a number"), (True, "true", "a boolean")]
)
def test_non_string_annotation_values_are_denied_with_the_fix(
    value: Any, text: str, what: str
) -> None:
    with pytest.raises(Denied) as denied:
        mutate(pod({R: value}), InjectConfig())
    assert denied.value.message == (
        f"Pod web: podnat.io/redirect: {text} is {what} to kubectl, not a string "
        f'(annotation values must be strings): quote it: podnat.io/redirect: "{text}"'
    )


def test_a_null_annotation_says_it_is_null() -> None:
    with pytest.raises(Denied, match=r"podnat.io/redirect is null \(no value\)"):
        mutate(pod({R: None}), InjectConfig())


def test_agent_mode_golden_file_adds_only_the_readiness_gate() -> None:
    args = ("-f", str(GOLDEN / "workloads.in.yaml"), "--image", "podnat:test", "--mode", "agent")
    done = cli("inject", *args)
    assert done.returncode == 0, done.stderr
    golden = GOLDEN / "workloads.agent.golden.yaml"
    if os.environ.get("REFRESH_GOLDEN"):
        golden.write_text(done.stdout)
    assert done.stdout == golden.read_text(), "if intended: REFRESH_GOLDEN=1 make test-quick"
    assert INIT_NAME not in done.stdout
    assert "podnat-podinfo" not in done.stdout
    assert "NET_ADMIN" not in done.stdout


def test_agent_mode_injecting_its_own_output_again_is_byte_identical() -> None:
    golden = (GOLDEN / "workloads.agent.golden.yaml").read_text()
    done = cli("inject", "-f", "-", "--mode", "agent", stdin=golden)
    assert done.returncode == 0, done.stderr
    assert done.stdout == golden
    assert "nothing to inject" in done.stderr


def test_agent_mode_golden_gates_each_annotated_template_once_and_nothing_else() -> None:
    before = list(yaml.safe_load_all((GOLDEN / "workloads.in.yaml").read_text()))
    after = list(yaml.safe_load_all((GOLDEN / "workloads.agent.golden.yaml").read_text()))
    gated = set()
    for old, new in zip(before, after, strict=True):
        for old_obj, new_obj in zip(old.get("items", [old]), new.get("items", [new]), strict=True):
            text = yaml.safe_dump(new_obj)
            assert text.count("podnat.io/redirects-applied") <= 1
            if "podnat.io/redirects-applied" in text:
                gated.add(new_obj["metadata"]["name"])
            else:
                assert new_obj == old_obj
    assert gated == {
        "pod",
        "deployment",
        "statefulset",
        "daemonset",
        "replicaset",
        "job",
        "cronjob",
        "replicationcontroller",
        "podtemplate",
        "list-item",
    }


def test_agent_mode_adds_the_readiness_gate_and_no_container_capability_or_volume() -> None:
    original = pod({R: "1:2"})
    out = mutate(original, AGENT)
    assert out["spec"] == {**original["spec"], "readinessGates": [GATE]}
    assert out["metadata"] == original["metadata"]


def test_agent_mode_keeps_the_pods_own_readiness_gates_in_order() -> None:
    own = [{"conditionType": "example.com/b"}, {"conditionType": "example.com/a"}]
    out = mutate(pod({R: "1:2"}, readinessGates=copy.deepcopy(own)), AGENT)
    assert out["spec"]["readinessGates"] == [*own, GATE]


def test_agent_mode_never_duplicates_the_gate() -> None:
    once = mutate(pod({R: "1:2"}), AGENT)
    frozen = copy.deepcopy(once)
    assert mutate(once, AGENT) is once
    assert once == frozen
    first = pod({R: "1:2"}, readinessGates=[GATE, {"conditionType": "example.com/x"}])
    assert mutate(first, AGENT) is first


def test_agent_mode_leaves_pods_without_redirects_alone() -> None:
    for original in (pod({}), pod({"other": "x"}), pod({}, hostNetwork=True)):
        assert mutate(original, AGENT) is original


def test_agent_mode_refuses_what_init_mode_refuses_with_the_same_messages() -> None:
    for bad in (
        pod({R: "4321:1234, 99999:1"}),
        pod({R: "1:2"}, hostNetwork=True),
        pod({R: "1:2"}, os={"name": "windows"}),
        pod({R: 8080}),
        pod({R: "1:2"}, containers=[{"name": INIT_NAME, "image": "app:1"}]),
    ):
        with pytest.raises(Denied) as in_init:
            mutate(bad, InjectConfig())
        with pytest.raises(Denied) as in_agent:
            mutate(bad, AGENT)
        assert in_agent.value.message == in_init.value.message


def test_agent_mode_readiness_gates_of_the_wrong_shape_are_manifest_errors() -> None:
    for gates, problem in (("x", " is a string, not a list"), (["x"], "[0] is a string, not a")):
        with pytest.raises(
            ManifestError, match=re.escape(f"Pod web: spec.readinessGates{problem}")
        ):
            mutate(pod({R: "1:2"}, readinessGates=gates), AGENT)


def test_a_pod_injected_in_init_mode_gets_only_the_gate_in_agent_mode() -> None:
    init = mutate(pod({R: "1:2"}), InjectConfig())
    out = mutate(init, AGENT)
    assert out["spec"] == {**init["spec"], "readinessGates": [GATE]}


def test_validate_refuses_what_mutate_refuses_and_changes_nothing() -> None:
    good = pod({R: "1:2"})
    frozen = copy.deepcopy(good)
    validate(good)
    assert good == frozen
    with pytest.raises(Denied, match="port 99999 is out of range"):
        validate(pod({R: "99999:1"}))
    with pytest.raises(Denied, match="hostNetwork pod"):
        validate(pod({R: "1:2"}, hostNetwork=True))


def test_agent_mode_output_is_the_input_plus_the_gate_lines_only() -> None:
    # Comments, quoting, key order and indentation of every document survive byte for byte.
    before = (GOLDEN / "workloads.in.yaml").read_text().splitlines()
    after = (GOLDEN / "workloads.agent.golden.yaml").read_text().splitlines()
    diff = list(difflib.ndiff(before, after))
    assert not [line for line in diff if line.startswith("- ")]
    added = {line[2:].strip() for line in diff if line.startswith("+ ")}
    assert added == {"readinessGates:", "- conditionType: podnat.io/redirects-applied"}
