"""The webhook's decision on complete AdmissionReview requests."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from helper.admission import BadReview, json_patch, review
from helper.inject import INIT_NAME, InjectConfig, mutate
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
