"""The one mutation behind `podnat inject` and the admission webhook.

A pod (or a workload's pod template) carrying `podnat.io/redirect` gets the
`podnat-init` init container, first, with the Downward API volume it reads its
annotations from. Pure: objects in, objects out; validation is the parser's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from helper.annotations import REDIRECT
from helper.errors import PodnatError
from helper.parse import InvalidPlanError, parse_plan

INIT_NAME = "podnat-init"
VOLUME_NAME = "podnat-podinfo"
PODINFO_DIR = "/etc/podinfo"

Obj = dict[str, Any]


@dataclass(frozen=True)
class InjectConfig:
    """What the injected container looks like; the chart's values map onto these."""

    image: str = "podnat:0.1.0"
    pull_policy: str = "IfNotPresent"
    backend: str = "auto"
    run_as_user: int | None = None  # None: the image's own (non-root) user


class Denied(PodnatError):  # noqa: N818 - a verdict, not a failure of podnat's
    """The object must not be admitted as it is; `message` says why."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def pod_template(obj: Obj) -> Obj | None:
    """The object holding the pod's metadata and spec (the pod itself, or a template)."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return obj
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        template = spec.get("template")
    elif kind == "CronJob":
        template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")
    else:
        return None
    return template if isinstance(template, dict) else None


def mutate(obj: Obj, config: InjectConfig) -> Obj:
    """A copy of `obj` with podnat injected where its annotations ask; `obj` itself if not.

    Raises Denied for invalid annotations and for hostNetwork pods that carry them.
    """
    template = pod_template(obj)
    if template is None:
        return obj
    spec = template.get("spec") or {}
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    try:
        plan = parse_plan(annotations)
    except InvalidPlanError as err:
        raise Denied(_describe(obj, err.lines())) from err
    if plan.is_empty:
        return obj
    if spec.get("hostNetwork"):
        raise Denied(
            f"{_name(obj)}: {REDIRECT} on a hostNetwork pod would rewrite the node's own "
            "NAT rules; remove the annotation or hostNetwork"
        )
    if any(c.get("name") == INIT_NAME for c in spec.get("initContainers") or []):
        return obj  # already injected: leave it exactly as it is
    out = copy.deepcopy(obj)
    out_template = pod_template(out)
    assert out_template is not None  # noqa: S101 - a deep copy has the original's shape
    out_spec = out_template.setdefault("spec", {})
    out_spec["initContainers"] = [init_container(config), *(out_spec.get("initContainers") or [])]
    volumes = out_spec.get("volumes") or []
    if not any(v.get("name") == VOLUME_NAME for v in volumes):
        out_spec["volumes"] = [*volumes, podinfo_volume()]
    return out


def init_container(config: InjectConfig) -> Obj:
    # NET_ADMIN is all nft needs. NET_RAW only for an explicit iptables-legacy:
    # with `auto`, legacy's probe fails without it and nft is chosen.
    capabilities = ["NET_ADMIN"] + (["NET_RAW"] if config.backend == "iptables-legacy" else [])
    security: Obj = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"], "add": capabilities},
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


def _name(obj: Obj) -> str:
    metadata = obj.get("metadata") or {}
    return f"{obj.get('kind')} {metadata.get('name') or metadata.get('generateName') or '?'}"


def _describe(obj: Obj, problems: list[str]) -> str:
    return f"{_name(obj)}: invalid annotations: " + "; ".join(problems)
