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
    pod: dict[str, Any] | None, *, kind: str = "Pod", operation: str = "CREATE"
) -> bytes:
    """A full review as the API server sends it for a pod CREATE."""
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
                "oldObject": None,
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
        admission_review(pod({R: "1:2"}), operation="UPDATE"),
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
