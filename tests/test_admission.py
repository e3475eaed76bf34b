"""The webhook's decision on complete AdmissionReview requests."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from helper.admission.inject import INIT_NAME, InjectConfig, mutate
from helper.admission.review import MAX_MESSAGE, BadReview, json_patch, review
from helper.errors import ManifestError
from tests.cases import R

CONFIG = InjectConfig(image="podnat:test")


def admission_review(
    pod: dict[str, Any] | None,
    *,
    kind: str = "Pod",
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
) -> bytes:
    """A full review as the API server sends it for a pod CREATE (or an UPDATE: `old`)."""
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": "", "version": "v1", "kind": kind},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": kind},
                "namespace": "shop",
                "operation": operation,
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                "object": pod,
                "oldObject": old,
                "dryRun": False,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
            },
        }
    ).encode()


def pod(annotations: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "metadata": {"generateName": "web-7d4b9-", "namespace": "shop", "annotations": annotations},
        "spec": {"containers": [{"name": "app", "image": "app:1"}], **spec},
    }


def apply_patch(obj: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    for op in patch:
        assert op["op"] in ("add", "replace")
        _, spec, field = op["path"].split("/")
        out[spec][field] = op["value"]
    return out


def test_an_annotated_pod_gets_a_json_patch_that_injects_podnat_once() -> None:
    original = pod({R: "4321:1234"})
    response = json.loads(json.dumps(review(admission_review(original), CONFIG)))["response"]
    assert response["allowed"] is True
    assert response["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert response["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(response["patch"]))
    patched = apply_patch(original, patch)
    assert [c["name"] for c in patched["spec"]["initContainers"]] == [INIT_NAME]
    assert patched == {
        k: v for k, v in mutate({"kind": "Pod", **original}, CONFIG).items() if k != "kind"
    }


def test_a_pod_without_the_annotation_is_allowed_without_a_patch() -> None:
    response = review(admission_review(pod({})), CONFIG)["response"]
    assert response == {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True}


def test_invalid_annotations_are_denied_with_the_parsers_message() -> None:
    response = review(admission_review(pod({R: "4321:1234/icmp"})), CONFIG)["response"]
    assert response["allowed"] is False
    assert response["status"]["message"] == (
        'Pod web-7d4b9-: invalid annotations: podnat.io/redirect: "4321:1234/icmp": '
        "protocol 'icmp' is not one of tcp, udp, sctp"
    )


def test_a_host_network_pod_with_the_annotation_is_denied() -> None:
    response = review(admission_review(pod({R: "1:2"}, hostNetwork=True)), CONFIG)["response"]
    assert response["allowed"] is False
    assert "hostNetwork" in response["status"]["message"]


def test_a_windows_pod_with_the_annotation_is_denied() -> None:
    windows = pod({R: "1:2"}, os={"name": "windows"})
    response = review(admission_review(windows), CONFIG)["response"]
    assert response["allowed"] is False
    assert "patch" not in response
    assert "Windows pod" in response["status"]["message"]


def test_an_already_injected_pod_gets_no_patch() -> None:
    injected = mutate({"kind": "Pod", **pod({R: "1:2"})}, CONFIG)
    response = review(admission_review(injected), CONFIG)["response"]
    assert "patch" not in response
    assert response["allowed"] is True


def test_existing_init_containers_and_volumes_are_replaced_as_whole_lists() -> None:
    original = pod(
        {R: "1:2"},
        initContainers=[{"name": "migrate", "image": "m"}],
        volumes=[{"name": "data", "emptyDir": {}}],
    )
    patch = json_patch(original, mutate({"kind": "Pod", **original}, CONFIG))
    assert [(op["op"], op["path"]) for op in patch] == [
        ("replace", "/spec/initContainers"),
        ("replace", "/spec/volumes"),
    ]
    assert [c["name"] for c in patch[0]["value"]] == [INIT_NAME, "migrate"]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"kind": "AdmissionReview"}',
        json.dumps(
            {"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}}
        ).encode(),
    ],
)
def test_malformed_reviews_are_bad_requests_not_crashes(body: bytes) -> None:
    with pytest.raises(BadReview):
        review(body, CONFIG)


def test_other_kinds_and_operations_are_allowed_untouched() -> None:
    for body in (
        admission_review(None, operation="DELETE", old=pod({R: "1:2"})),
        admission_review(pod({R: "1:2"}), operation="CONNECT"),
        admission_review({"metadata": {}}, kind="Service", operation="UPDATE"),
        admission_review({"metadata": {}}, kind="Service"),
    ):
        response = review(body, CONFIG)["response"]
        assert response == {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True}


ANNOTATED = {"annotations": {R: "4321:1234"}}


@pytest.mark.parametrize(
    ("obj", "where"),
    [
        ({"metadata": "web"}, "metadata: must be an object"),
        ({"metadata": {"annotations": [R]}}, "metadata.annotations: must be an object"),
        (
            {"metadata": {"annotations": {R: 4321}}},
            f'metadata.annotations["{R}"]: must be a string',
        ),
        (
            {"metadata": {"annotations": {R: True}}},
            f'metadata.annotations["{R}"]: must be a string',
        ),
        ({"metadata": {"name": 7}}, "metadata.name: must be a string"),
        ({"metadata": ANNOTATED, "spec": "x"}, "spec: must be an object"),
        ({"metadata": ANNOTATED, "spec": {"initContainers": ["x"]}}, "initContainers[0]: must be"),
        (
            {"metadata": ANNOTATED, "spec": {"initContainers": {"a": 1}}},
            "initContainers: must be a",
        ),
        ({"metadata": ANNOTATED, "spec": {"volumes": ["x"]}}, "spec.volumes[0]: must be an object"),
        ({"metadata": ANNOTATED, "spec": {"volumes": [{}]}}, "spec.volumes[0].name: is required"),
        ({"metadata": ANNOTATED, "spec": {"hostNetwork": "true"}}, "hostNetwork: must be true or"),
        ({"metadata": ANNOTATED, "spec": {"os": {"name": 1}}}, "spec.os.name: must be a string"),
        ({"metadata": ANNOTATED, "spec": {"os": "windows"}}, "spec.os: must be an object"),
        ({"metadata": ANNOTATED, "spec": {"containers": {"a": 1}}}, "containers: must be a"),
        ({"metadata": ANNOTATED, "spec": {"nodeSelector": []}}, "nodeSelector: must be an"),
    ],
)
def test_a_pod_podnat_cannot_read_is_a_bad_request_naming_the_field(
    obj: dict[str, Any], where: str
) -> None:
    with pytest.raises(BadReview, match="not a pod podnat can read") as caught:
        review(admission_review(obj), CONFIG)
    assert where in str(caught.value)


def test_a_huge_array_of_junk_is_one_short_message() -> None:
    obj = {"metadata": ANNOTATED, "spec": {"volumes": ["x"] * 300_000}}
    with pytest.raises(BadReview) as caught:
        review(admission_review(obj), CONFIG)
    assert str(caught.value) == "not a pod podnat can read: spec.volumes[0]: must be an object"


def test_a_huge_annotation_key_is_named_not_copied() -> None:
    obj = {"metadata": {"annotations": {"k" * 1_000_000: 1}}}
    with pytest.raises(BadReview) as caught:
        review(admission_review(obj), CONFIG)
    assert len(str(caught.value)) < 200


def test_deeply_nested_junk_is_a_bad_request() -> None:
    body = admission_review({"metadata": ANNOTATED, "spec": {"x": "X"}})
    with pytest.raises(BadReview, match="recursion limit"):
        review(body.replace(b'"X"', b"[" * 100_000 + b"]" * 100_000), CONFIG)


def test_fields_podnat_does_not_read_are_kept_whatever_their_shape() -> None:
    # Not podnat's to judge (the API server validates pods after the webhooks):
    # no crash, and the patch leaves them alone.
    original = pod({R: "1:2"})
    original["metadata"]["labels"] = {"tier": 3, "deep": [[{"x": None}]]}
    original["spec"]["dnsConfig"] = "not an object"
    response = review(admission_review(original), CONFIG)["response"]
    patch = json.loads(base64.b64decode(response["patch"]))
    assert [op["path"] for op in patch] == ["/spec/initContainers", "/spec/volumes"]


def test_a_windows_pod_is_read_and_left_to_the_mutation() -> None:
    # spec.os.name is part of the shape podnat reads; refusing Windows is inject's call.
    response = review(admission_review(pod({}, os={"name": "windows"})), CONFIG)["response"]
    assert response["allowed"] is True


def test_a_manifest_error_from_the_mutation_is_a_bad_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The mutation raises ManifestError for shapes it cannot read (its own tests
    # find those); here only the mapping to a 400 is checked.
    def unreadable(obj: dict[str, Any], config: InjectConfig) -> dict[str, Any]:
        raise ManifestError("Pod web: spec.template is not an object")

    monkeypatch.setattr("helper.admission.review.mutate", unreadable)
    with pytest.raises(BadReview, match=r"spec\.template is not an object"):
        review(admission_review(pod({R: "1:2"})), CONFIG)


def test_a_hostile_review_gets_a_small_answer() -> None:
    duplicates = ", ".join(["4321:1234"] * 1000)
    long_name = pod({R: "4321:1234/icmp"})
    long_name["metadata"]["generateName"] = "w" * 1_000_000
    for obj in (pod({R: duplicates}), long_name):
        answer = json.dumps(review(admission_review(obj), CONFIG))
        assert json.loads(answer)["response"]["allowed"] is False
        assert len(answer) <= MAX_MESSAGE + 500


AGENT = InjectConfig(image="podnat:test", mode="agent")
GATE = {"conditionType": "podnat.io/redirects-applied"}
UID = "705ab4f5-6393-11e8-b7cc-42010a800002"


def test_agent_mode_patches_only_the_readiness_gate_in() -> None:
    original = pod({R: "4321:1234"})
    response = review(admission_review(original), AGENT)["response"]
    patch = json.loads(base64.b64decode(response["patch"]))
    assert patch == [{"op": "add", "path": "/spec/readinessGates", "value": [GATE]}]


def test_agent_mode_appends_the_gate_to_the_pods_own_gates() -> None:
    original = pod({R: "4321:1234"}, readinessGates=[{"conditionType": "example.com/lb"}])
    response = review(admission_review(original), AGENT)["response"]
    patch = json.loads(base64.b64decode(response["patch"]))
    assert patch == [
        {
            "op": "replace",
            "path": "/spec/readinessGates",
            "value": [{"conditionType": "example.com/lb"}, GATE],
        }
    ]


def test_agent_mode_a_gated_pod_gets_no_patch_on_reinvocation() -> None:
    gated = pod({R: "4321:1234"}, readinessGates=[GATE])
    assert review(admission_review(gated), AGENT)["response"] == {"uid": UID, "allowed": True}


@pytest.mark.parametrize("config", [CONFIG, AGENT], ids=["init", "agent"])
def test_both_modes_deny_invalid_host_network_and_windows_pods_alike(config: InjectConfig) -> None:
    for bad, says in (
        (pod({R: "4321:1234/icmp"}), "protocol 'icmp' is not one of tcp, udp, sctp"),
        (pod({R: "1:2"}, hostNetwork=True), "hostNetwork pod"),
        (pod({R: "1:2"}, os={"name": "windows"}), "Windows pod"),
    ):
        response = review(admission_review(bad), config)["response"]
        assert response["allowed"] is False
        assert "patch" not in response
        assert says in response["status"]["message"]


@pytest.mark.parametrize(
    ("gates", "where"),
    [
        ("x", "spec.readinessGates: must be a list"),
        (["x"], "spec.readinessGates[0]: must be an object"),
        ([{}], "spec.readinessGates[0].conditionType: is required"),
        ([{"conditionType": 1}], "spec.readinessGates[0].conditionType: must be a string"),
    ],
)
def test_readiness_gates_podnat_cannot_read_are_bad_requests(gates: Any, where: str) -> None:
    with pytest.raises(BadReview, match="not a pod podnat can read") as caught:
        review(admission_review(pod({R: "1:2"}, readinessGates=gates)), AGENT)
    assert where in str(caught.value)


def running(annotations: dict[str, str], **spec: Any) -> dict[str, Any]:
    """A pod as it is stored: named, and (for an UPDATE) already injected or not."""
    made = pod(annotations, **spec)
    made["metadata"]["name"] = "web-7d4b9-x2x4q"
    return made


def update(old: dict[str, Any], new: dict[str, Any], config: InjectConfig) -> dict[str, Any]:
    response: dict[str, Any] = review(admission_review(new, operation="UPDATE", old=old), config)[
        "response"
    ]
    return response


@pytest.mark.parametrize("config", [CONFIG, AGENT], ids=["init", "agent"])
def test_an_invalid_annotation_change_is_denied_with_the_parsers_message(
    config: InjectConfig,
) -> None:
    response = update(running({R: "4321:1234"}), running({R: "4321:1234, 99999:1"}), config)
    assert response == {
        "uid": UID,
        "allowed": False,
        "status": {
            "code": 400,
            "reason": "Invalid",
            "message": 'Pod web-7d4b9-x2x4q: invalid annotations: podnat.io/redirect: "99999:1": '
            "port 99999 is out of range 1-65535",
        },
    }


@pytest.mark.parametrize("config", [CONFIG, AGENT], ids=["init", "agent"])
def test_adding_the_annotation_to_a_host_network_pod_is_denied(config: InjectConfig) -> None:
    response = update(running({}, hostNetwork=True), running({R: "1:2"}, hostNetwork=True), config)
    assert response["allowed"] is False
    assert "hostNetwork pod would rewrite the node's own NAT rules" in response["status"]["message"]


def test_a_hostile_invalid_change_gets_the_capped_lines_of_a_create() -> None:
    hostile = running({R: ", ".join(f"{p}:1/icmp" for p in range(1, 500))})
    created = review(admission_review(hostile), CONFIG)["response"]["status"]["message"]
    response = update(running({R: "1:2"}), hostile, CONFIG)
    assert response["status"]["message"] == created
    assert "... and " in created
    assert len(created) <= MAX_MESSAGE


def test_a_valid_change_in_init_mode_is_admitted_with_a_warning_and_no_patch() -> None:
    old = running({R: "4321:1234", "podnat.io/redirect-local": "true"})
    new = running({R: "4321:8080"})
    assert update(old, new, CONFIG) == {
        "uid": UID,
        "allowed": True,
        "warnings": [
            "podnat: podnat.io/redirect, podnat.io/redirect-local changed: takes effect at the "
            "next pod start (podnat-init applies rules only when the pod starts)"
        ],
    }


def test_removing_the_redirect_in_init_mode_also_warns() -> None:
    response = update(running({R: "4321:1234"}), running({}), CONFIG)
    assert response["allowed"] is True
    assert "patch" not in response
    assert response["warnings"][0].startswith("podnat: podnat.io/redirect changed: takes effect")


def test_a_valid_change_in_agent_mode_is_admitted_silently() -> None:
    old, new = running({R: "4321:1234"}), running({R: "4321:8080"})
    assert update(old, new, AGENT) == {"uid": UID, "allowed": True}
    assert update(running({}), new, AGENT) == {"uid": UID, "allowed": True}


@pytest.mark.parametrize("config", [CONFIG, AGENT], ids=["init", "agent"])
def test_an_update_leaving_podnat_values_alone_is_admitted_untouched(
    config: InjectConfig,
) -> None:
    # Even a pod whose (unchanged) annotations are invalid today: not this update's fault.
    for podnat in ({R: "4321:1234"}, {R: "99999:1"}, {}):
        old = running(podnat)
        new = running({**podnat, "team": "shop"})
        new["metadata"]["labels"] = {"tier": "web"}
        new["metadata"]["finalizers"] = ["example.com/keep"]
        assert update(old, new, config) == {"uid": UID, "allowed": True}


def test_an_update_of_a_pod_podnat_injected_gets_no_patch() -> None:
    injected = mutate({"kind": "Pod", **running({R: "1:2"})}, CONFIG)
    del injected["kind"]
    changed = copy.deepcopy(injected)
    changed["metadata"]["annotations"][R] = "1:3"
    for old, new in ((running({R: "1:2"}), running({R: "1:3"})), (injected, changed)):
        response = update(old, new, CONFIG)
        assert response["allowed"] is True
        assert "patch" not in response


def test_the_warning_names_a_few_changed_annotations_and_counts_the_rest() -> None:
    stale = {f"podnat.io/old-{i:03}-" + "x" * 200: "1" for i in range(40)}
    response = update(running({R: "1:2", **stale}), running({R: "1:2"}), CONFIG)
    (warning,) = response["warnings"]
    assert "podnat.io/old-000-" in warning
    assert "37 more changed: takes effect" in warning
    assert len(warning) <= 400


@pytest.mark.parametrize(
    ("old", "where"),
    [
        ({"metadata": "web"}, "oldObject: not a pod podnat can read: metadata: must be an object"),
        (
            {"metadata": {"annotations": {R: 4321}}},
            f'oldObject: not a pod podnat can read: metadata.annotations["{R}"]: must be a string',
        ),
        (
            {"metadata": {}, "spec": {"hostNetwork": "yes"}},
            "oldObject: not a pod podnat can read: spec.hostNetwork: must be true or false",
        ),
    ],
)
def test_an_old_object_podnat_cannot_read_is_a_bad_request(old: dict[str, Any], where: str) -> None:
    with pytest.raises(BadReview) as caught:
        update(old, running({R: "1:2"}), CONFIG)
    assert str(caught.value) == where


def test_an_update_object_podnat_cannot_read_is_a_bad_request() -> None:
    with pytest.raises(BadReview, match=r"^not a pod podnat can read: spec: must be an object"):
        update(running({R: "1:2"}), {"metadata": ANNOTATED, "spec": "x"}, AGENT)


def test_an_update_without_its_old_object_is_a_bad_request() -> None:
    with pytest.raises(BadReview, match="UPDATE review of a pod without its oldObject"):
        update(None, running({R: "1:2"}), CONFIG)  # type: ignore[arg-type]
