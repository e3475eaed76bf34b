"""The `podnat-init` init container and its Downward API volume (init mode's injection)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from helper.admission.pod_templates import Obj

INIT_NAME = "podnat-init"
VOLUME_NAME = "podnat-podinfo"
PODINFO_DIR = "/etc/podinfo"
MODES = ("init", "agent")
Mode = Literal["init", "agent"]


@dataclass(frozen=True)
class InjectConfig:
    """What the injection adds; the chart's values map onto these."""

    image: str = "podnat:0.1.0"
    pull_policy: str = "IfNotPresent"
    backend: str = "auto"
    run_as_user: int | None = None  # None: the image's own (non-root) user
    mode: Mode = "init"  # agent: a readiness gate instead of the init container


def is_podinfo_volume(volume: Obj) -> bool:
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


def is_podnat_init(container: Obj) -> bool:
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
