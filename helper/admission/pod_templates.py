"""Where a Kubernetes object keeps its pod, read defensively (any shape may come in).

A field of the wrong type is a ManifestError naming the object and the field: the
API server would refuse it too, and podnat must not guess (never a traceback).
"""

from __future__ import annotations

from typing import Any

from helper.errors import ManifestError

Obj = dict[str, Any]

# Kind → the path from the object to its pod template, for the pod-making kinds of the
# core, apps and batch groups (a CRD may reuse a name: the group is checked too).
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "PodTemplate": ("template",),
    "ReplicationController": ("spec", "template"),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
_GROUPS = ("", "apps", "batch", "extensions")


def name_of(obj: Obj) -> str:
    """`Kind name` for messages (generateName, or ? when the object has none)."""
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    name = metadata.get("name") or metadata.get("generateName") or "?"
    return f"{obj.get('kind') or '(no kind)'} {name}"


def template_path(obj: Obj) -> tuple[str, ...] | None:
    """The path to the pod template of a pod-making kind, None for anything else."""
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if not isinstance(kind, str) or kind not in TEMPLATE_PATHS:
        return None
    group = api_version.rpartition("/")[0] if isinstance(api_version, str) else ""
    return TEMPLATE_PATHS[kind] if group in _GROUPS else None


def pod_template(obj: Obj) -> Obj | None:
    """The mapping holding the pod's metadata and spec: the pod itself, or its template.

    None for kinds without one, and when the template is absent; ManifestError when a
    field on the way is not a mapping.
    """
    path = template_path(obj)
    if path is None:
        return None
    node: Obj | None = obj
    trail = ""
    for key in path:
        assert node is not None  # noqa: S101 - the loop stops at the first absent field
        node = mapping(obj, node, key, trail)
        trail = f"{trail}.{key}" if trail else key
        if node is None:
            return None
    return node


def mapping(obj: Obj, parent: Obj, key: str, trail: str) -> Obj | None:
    """`parent[key]` if it is a mapping, None if absent or null; else ManifestError."""
    value = parent.get(key)
    if value is None or isinstance(value, dict):
        return value
    field = f"{trail}.{key}" if trail else key
    raise ManifestError(f"{name_of(obj)}: {field} is {kind_of(value)}, not a mapping")


def list_of_mappings(obj: Obj, parent: Obj, key: str, trail: str) -> list[Obj]:
    """`parent[key]` as a list of mappings ([] if absent); else ManifestError."""
    value = parent.get(key)
    if value is None:
        return []
    field = f"{trail}.{key}" if trail else key
    if not isinstance(value, list):
        raise ManifestError(f"{name_of(obj)}: {field} is {kind_of(value)}, not a list")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise ManifestError(
                f"{name_of(obj)}: {field}[{index}] is {kind_of(item)}, not a mapping"
            )
    return value


def kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "null" if value is None else f"a {type(value).__name__}"
