"""AdmissionReview in, AdmissionReview out: the webhook's decision, as a pure function.

The HTTP server around it comes with the webhook; this is the part that decides.
Pydantic validates the request at this edge (a malformed review is a 400, never
a crash); the pod itself goes through the same mutation as `podnat inject`.
Spec: https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/
"""

from __future__ import annotations

import base64
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from helper.inject import Denied, InjectConfig, mutate

API_VERSION = "admission.k8s.io/v1"


class BadReview(Exception):  # noqa: N818 - maps to HTTP 400, not to a podnat failure
    """The body is not an AdmissionReview podnat can answer."""


class _Kind(BaseModel):
    group: str = ""
    version: str
    kind: str


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    uid: str
    kind: _Kind
    operation: str
    namespace: str | None = None
    object: dict[str, Any] | None = None


class _Review(BaseModel):
    model_config = ConfigDict(extra="ignore")

    api_version: Literal["admission.k8s.io/v1"] = Field(alias="apiVersion")
    kind: Literal["AdmissionReview"]
    request: _Request


def review(body: bytes, config: InjectConfig) -> dict[str, Any]:
    """The AdmissionReview response for a request body. Raises BadReview for garbage."""
    try:
        parsed = _Review.model_validate_json(body)
    except ValidationError as err:
        raise BadReview(f"not an {API_VERSION} AdmissionReview: {err}") from err
    request = parsed.request
    response: dict[str, Any] = {"uid": request.uid, "allowed": True}
    pod = request.object
    if request.kind.kind == "Pod" and request.operation == "CREATE" and isinstance(pod, dict):
        pod = {"kind": "Pod", **pod}
        try:
            mutated = mutate(pod, config)
        except Denied as denied:
            response["allowed"] = False
            response["status"] = {"code": 400, "reason": "Invalid", "message": denied.message}
        else:
            if mutated is not pod:
                patch = json_patch(pod, mutated)
                response["patchType"] = "JSONPatch"
                response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}


def json_patch(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """RFC 6902 operations turning `before`'s pod spec into `after`'s.

    The mutation only ever sets spec.initContainers and spec.volumes, so the patch
    sets those two lists whole: exact, and independent of list diffing.
    """
    old, new = before.get("spec") or {}, after.get("spec") or {}
    ops = []
    for field in ("initContainers", "volumes"):
        if new.get(field) == old.get(field):
            continue
        op = "replace" if field in old else "add"
        ops.append({"op": op, "path": f"/spec/{field}", "value": new[field]})
    return ops
