"""The one mutation behind `podnat inject` and the admission webhook.

A pod (or a workload's pod template) carrying `podnat.io/redirect` gets, in init mode,
the `podnat-init` init container, first, with the Downward API volume it reads its
annotations from; in agent mode only the readiness gate `podnat.io/redirects-applied`
(the node's agent installs the rules and sets that condition). Pure: objects in,
objects out; annotation syntax is the parser's.
"""

from __future__ import annotations

import copy
import json
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
from helper.admission.podnat_init import (
    INIT_NAME,
    PODINFO_DIR,
    VOLUME_NAME,
    InjectConfig,
    init_container,
    is_podinfo_volume,
    is_podnat_init,
    podinfo_volume,
)
from helper.errors import ExitCode, PodnatError
from helper.plan.annotations import PREFIX, REDIRECT, REDIRECTS_APPLIED
from helper.plan.parse import InvalidPlanError, parse_plan

__all__ = [  # InjectConfig and the names of podnat-init come from podnat_init
    "INIT_NAME",
    "VOLUME_NAME",
    "Denied",
    "InjectConfig",
    "NotAString",
    "misplaced_annotations",
    "mutate",
    "podnat_annotations",
    "readiness_gate",
    "validate",
]


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
    checked = _checked(obj)
    if checked is None:
        return obj
    spec, spec_trail = checked
    if config.mode == "agent":
        return _with_readiness_gate(obj, spec, spec_trail)
    inits = list_of_mappings(obj, spec, "initContainers", spec_trail)
    volumes = list_of_mappings(obj, spec, "volumes", spec_trail)
    if _already_injected(obj, spec, inits, volumes, spec_trail):
        return obj
    out = copy.deepcopy(obj)
    out_spec = _spec_of(out)
    # In place, so that a round-trip document keeps its lists' comments and style.
    if out_spec.get("initContainers") is None:
        out_spec["initContainers"] = []
    out_spec["initContainers"].insert(0, init_container(config))
    if not any(v.get("name") == VOLUME_NAME for v in volumes):
        if out_spec.get("volumes") is None:
            out_spec["volumes"] = []
        out_spec["volumes"].append(podinfo_volume())
    return out


def validate(obj: Obj) -> None:
    """What mutate refuses, without mutating: for a change of a running pod's annotations."""
    _checked(obj)


def _checked(obj: Obj) -> tuple[Obj, str] | None:
    """The pod spec (and its trail) when the annotations ask for redirects, else None."""
    template = pod_template(obj)
    if template is None:
        return None
    trail = _trail(obj)
    annotations = _podnat_keys(obj, template, trail)
    _require_strings(obj, annotations)
    try:
        plan = parse_plan(annotations)
    except InvalidPlanError as err:
        raise Denied(f"{name_of(obj)}: invalid annotations: " + "; ".join(err.lines())) from err
    if plan.is_empty:
        return None
    spec = mapping(obj, template, "spec", trail) or {}
    spec_trail = f"{trail}.spec" if trail else "spec"
    _refuse_unfit_pods(obj, spec, spec_trail)
    return spec, spec_trail


def _spec_of(out: Obj) -> Obj:
    """The spec of a copy `_checked` accepted, made if absent."""
    template = pod_template(out)
    assert template is not None  # noqa: S101 - a deep copy has the original's shape
    spec: Obj | None = template.get("spec")
    if spec is None:
        spec = template["spec"] = {}
    return spec


def _with_readiness_gate(obj: Obj, spec: Obj, trail: str) -> Obj:
    """Agent mode: the pod is not Ready before the agent reports its rules in; nothing else."""
    gates = list_of_mappings(obj, spec, "readinessGates", trail)
    if any(gate.get("conditionType") == REDIRECTS_APPLIED for gate in gates):
        return obj
    out = copy.deepcopy(obj)
    out_spec = _spec_of(out)
    # Appended in place: the pod's own gates keep their order (and a document its style).
    if out_spec.get("readinessGates") is None:
        out_spec["readinessGates"] = []
    out_spec["readinessGates"].append(readiness_gate())
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
            "kubernetes.io/os): podnat programs Linux netfilter and runs on Linux only; "
            "remove the annotation"
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
    if volume is not None and not is_podinfo_volume(volume):
        raise Denied(
            f"{name_of(obj)}: {trail}.volumes has a volume named {VOLUME_NAME} that is not "
            "podnat's Downward API volume (podnat's init container would read the wrong "
            "annotations): rename it"
        )
    init = next((c for c in inits if c.get("name") == INIT_NAME), None)
    if init is None:
        return False
    if not is_podnat_init(init):
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


def readiness_gate() -> Obj:
    return {"conditionType": REDIRECTS_APPLIED}
