"""The one mutation behind `podnat inject` and the admission webhook.

A pod (or a workload's pod template) carrying `podnat.io/redirect` gets the
`podnat-init` init container, first, with the Downward API volume it reads its
annotations from. Pure: objects in, objects out; annotation syntax is the parser's.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from helper.admission.pod_templates import (
    Obj,
    kind_of,
    list_of_mappings,
    mapping,
    name_of,
    pod_template,
    template_path,
)
from helper.errors import ExitCode, PodnatError
from helper.plan.annotations import PREFIX, REDIRECT
from helper.plan.parse import InvalidPlanError, parse_plan

INIT_NAME = "podnat-init"
VOLUME_NAME = "podnat-podinfo"
PODINFO_DIR = "/etc/podinfo"


@dataclass(frozen=True)
class InjectConfig:
    """What the injected container looks like; the chart's values map onto these."""

    image: str = "podnat:0.1.0"
    pull_policy: str = "IfNotPresent"
    backend: str = "auto"
    run_as_user: int | None = None  # None: the image's own (non-root) user


class Denied(PodnatError):  # noqa: N818 - a verdict, not a failure of podnat's
    """The object must not be admitted as it is; `message` says why."""

    exit_code = ExitCode.INVALID

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class NotAString(str):
    """An unquoted annotation value kubectl reads as another type (`yes`, `on`, `~`)."""

    reads_as: str

    def __new__(cls, text: str, reads_as: str) -> NotAString:
        made = super().__new__(cls, text)
        made.reads_as = reads_as
        return made


def podnat_annotations(obj: Obj) -> dict[str, Any]:
    """The `podnat.io/*` annotations of `obj`'s pod template ({} without one)."""
    template = pod_template(obj)
    if template is None:
        return {}
    return _podnat_keys(obj, template, _trail(obj))


def mutate(obj: Obj, config: InjectConfig) -> Obj:
    """A copy of `obj` with podnat injected where its annotations ask; `obj` itself if not.

    Raises Denied for invalid annotations and for pods podnat must not touch (hostNetwork,
    Windows, a foreign `podnat-init` or `podnat-podinfo`); ManifestError for malformed
    shapes.
    """
    template = pod_template(obj)
    if template is None:
        return obj
    trail = _trail(obj)
    annotations = _podnat_keys(obj, template, trail)
    _require_strings(obj, annotations)
    try:
        plan = parse_plan(annotations)
    except InvalidPlanError as err:
        raise Denied(f"{name_of(obj)}: invalid annotations: " + "; ".join(err.lines())) from err
    if plan.is_empty:
        return obj
    spec = mapping(obj, template, "spec", trail) or {}
    spec_trail = f"{trail}.spec" if trail else "spec"
    _refuse_unfit_pods(obj, spec, spec_trail)
    inits = list_of_mappings(obj, spec, "initContainers", spec_trail)
    volumes = list_of_mappings(obj, spec, "volumes", spec_trail)
    if _already_injected(obj, spec, inits, volumes, spec_trail):
        return obj
    out = copy.deepcopy(obj)
    out_template = pod_template(out)
    assert out_template is not None  # noqa: S101 - a deep copy has the original's shape
    out_spec = out_template.get("spec")
    if out_spec is None:
        out_spec = out_template["spec"] = {}
    # In place, so that a round-trip document keeps its lists' comments and style.
    if out_spec.get("initContainers") is None:
        out_spec["initContainers"] = []
    out_spec["initContainers"].insert(0, init_container(config))
    if not any(v.get("name") == VOLUME_NAME for v in volumes):
        if out_spec.get("volumes") is None:
            out_spec["volumes"] = []
        out_spec["volumes"].append(podinfo_volume())
    return out


def misplaced_annotations(obj: Obj) -> str | None:
    """A warning when `podnat.io/*` sits where podnat never reads it, else None."""
    metadata = mapping(obj, obj, "metadata", "")
    annotations = mapping(obj, metadata, "annotations", "metadata") if metadata else None
    keys = sorted(k for k in annotations or {} if isinstance(k, str) and k.startswith(PREFIX))
    if not keys or obj.get("kind") == "Pod":
        return None
    path = template_path(obj)
    if path is None:
        return f"{name_of(obj)}: {', '.join(keys)} has no effect here: only pods are injected"
    where = ".".join([*path, "metadata", "annotations"])
    return (
        f"{name_of(obj)}: {', '.join(keys)} on the {obj.get('kind')}'s own metadata has no "
        f"effect: it belongs in {where}"
    )


def _trail(obj: Obj) -> str:
    return ".".join(template_path(obj) or ())


def _podnat_keys(obj: Obj, template: Obj, trail: str) -> dict[str, Any]:
    metadata_trail = f"{trail}.metadata" if trail else "metadata"
    metadata = mapping(obj, template, "metadata", trail) or {}
    annotations = mapping(obj, metadata, "annotations", metadata_trail) or {}
    return {k: v for k, v in annotations.items() if isinstance(k, str) and k.startswith(PREFIX)}


def _require_strings(obj: Obj, annotations: dict[str, Any]) -> None:
    for key, value in annotations.items():
        if value is None:
            raise Denied(
                f"{name_of(obj)}: {key} is null (no value): give it a quoted value, "
                f'e.g. {key}: "…", or remove it'
            )
        if isinstance(value, NotAString) or not isinstance(value, str):
            what = value.reads_as if isinstance(value, NotAString) else kind_of(value)
            text = value if isinstance(value, str) else json.dumps(value)
            raise Denied(
                f"{name_of(obj)}: {key}: {text} is {what} to kubectl, not a string (annotation "
                f'values must be strings): quote it: {key}: "{text}"'
            )


def _refuse_unfit_pods(obj: Obj, spec: Obj, trail: str) -> None:
    if spec.get("hostNetwork"):
        raise Denied(
            f"{name_of(obj)}: {REDIRECT} on a hostNetwork pod would rewrite the node's own "
            "NAT rules; remove the annotation or hostNetwork"
        )
    pod_os = mapping(obj, spec, "os", trail) or {}
    node_selector = mapping(obj, spec, "nodeSelector", trail) or {}
    if "windows" in (pod_os.get("name"), node_selector.get("kubernetes.io/os")):
        raise Denied(
            f"{name_of(obj)}: {REDIRECT} on a Windows pod (spec.os.name or nodeSelector "
            "kubernetes.io/os): podnat programs Linux netfilter and its init container runs "
            "on Linux only; remove the annotation"
        )
    for field in ("containers", "ephemeralContainers"):
        for container in list_of_mappings(obj, spec, field, trail):
            if container.get("name") == INIT_NAME:
                raise Denied(
                    f"{name_of(obj)}: {trail}.{field} has a container named {INIT_NAME}, a name "
                    "podnat reserves for its init container: rename it"
                )


def _already_injected(
    obj: Obj, spec: Obj, inits: list[Obj], volumes: list[Obj], trail: str
) -> bool:
    """True if podnat's own container is there; Denied if a foreign one holds its names."""
    volume = next((v for v in volumes if v.get("name") == VOLUME_NAME), None)
    if volume is not None and not _is_podinfo_volume(volume):
        raise Denied(
            f"{name_of(obj)}: {trail}.volumes has a volume named {VOLUME_NAME} that is not "
            "podnat's Downward API volume (podnat's init container would read the wrong "
            "annotations): rename it"
        )
    init = next((c for c in inits if c.get("name") == INIT_NAME), None)
    if init is None:
        return False
    if not _is_podnat_init(init):
        raise Denied(
            f"{name_of(obj)}: {trail}.initContainers has a container named {INIT_NAME} that "
            f"podnat did not make (not `apply` with {VOLUME_NAME} at {PODINFO_DIR}): rename it"
        )
    if volume is None:
        raise Denied(
            f"{name_of(obj)}: {INIT_NAME} is there but its volume {VOLUME_NAME} is not: remove "
            f"{INIT_NAME} and inject again"
        )
    return True


def _is_podinfo_volume(volume: Obj) -> bool:
    # The API server adds defaults (defaultMode, fieldRef.apiVersion): allow those.
    downward = volume.get("downwardAPI")
    if set(volume) != {"name", "downwardAPI"} or not isinstance(downward, dict):
        return False
    items = downward.get("items")
    if not set(downward) <= {"items", "defaultMode"} or not isinstance(items, list):
        return False
    if len(items) != 1 or not isinstance(items[0], dict):
        return False
    item, field_ref = items[0], items[0].get("fieldRef")
    return (
        set(item) == {"path", "fieldRef"}
        and item.get("path") == "annotations"
        and isinstance(field_ref, dict)
        and field_ref.get("fieldPath") == "metadata.annotations"
        and field_ref.get("apiVersion", "v1") == "v1"
    )


def _is_podnat_init(container: Obj) -> bool:
    args, mounts = container.get("args"), container.get("volumeMounts")
    ours = {"name": VOLUME_NAME, "mountPath": PODINFO_DIR}
    return (
        isinstance(args, list)
        and args[:1] == ["apply"]
        and isinstance(mounts, list)
        and any(isinstance(m, dict) and ours.items() <= m.items() for m in mounts)
    )


def init_container(config: InjectConfig) -> Obj:
    # NET_ADMIN is all nft needs. NET_RAW only for an explicit iptables-legacy:
    # with `auto`, legacy's probe fails without it and nft is chosen.
    capabilities = ["NET_ADMIN"] + (["NET_RAW"] if config.backend == "iptables-legacy" else [])
    security: Obj = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"], "add": capabilities},
        # PodSecurity `restricted` requires a seccomp profile.
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if config.run_as_user is not None:
        security["runAsUser"] = config.run_as_user
    return {
        "name": INIT_NAME,
        "image": config.image,
        "imagePullPolicy": config.pull_policy,
        "args": ["apply", "--backend", config.backend, "--log-format", "json"],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {
                "name": "POD_NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
        ],
        "volumeMounts": [{"name": VOLUME_NAME, "mountPath": PODINFO_DIR, "readOnly": True}],
        "securityContext": security,
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def podinfo_volume() -> Obj:
    return {
        "name": VOLUME_NAME,
        "downwardAPI": {
            "items": [{"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}]
        },
    }
