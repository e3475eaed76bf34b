"""The few fields of a pod the agent keeps, read defensively from any object shape.

A pod is whatever an API client wrote; a field of the wrong type, or missing,
makes the pod unreadable (logged, skipped), never a traceback.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

from helper.plan.annotations import PREFIX

CONDITION = "podnat.io/redirects-applied"
MAX_CONDITION_MESSAGE = 4000


class Condition(NamedTuple):
    status: str
    reason: str
    message: str


class PodView(NamedTuple):
    namespace: str
    name: str
    uid: str
    node: str
    annotations: dict[str, str]  # only podnat.io/*
    labels: dict[str, str]  # only the keys --also-manage looks at
    host_network: bool
    windows: bool
    phase: str
    deleting: bool
    condition: Condition | None  # ours, as the API holds it
    # What changes when the kubelet makes a new sandbox (its PodReadyToStartContainers
    # condition flips; containers restart): a reconcile then finds the new network namespace
    # at once, not at the next periodic verify, which may come after the pod is Ready.
    sandbox_hint: tuple[str, int] = ("", 0)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")


class UnreadableError(ValueError):
    pass


def _field(obj: Any, name: str, kind: type, default: Any) -> Any:
    value = obj.get(name, default) if isinstance(obj, dict) else default
    if value is None:
        return default
    if not isinstance(value, kind):
        raise UnreadableError(f"{name} is a {type(value).__name__}, not a {kind.__name__}")
    return value


def _strings(value: dict[str, Any], what: str, keep: Any) -> dict[str, str]:
    kept = {k: v for k, v in value.items() if keep(k)}
    for k, v in kept.items():
        if not isinstance(v, str):
            raise UnreadableError(f"{what} {k[:100]!r} is not a string")
    return kept


def pod_view(obj: dict[str, Any], label_keys: frozenset[str] = frozenset()) -> PodView:
    """The agent's view of a pod object; raises UnreadableError naming the odd field."""
    meta = _field(obj, "metadata", dict, {})
    spec = _field(obj, "spec", dict, {})
    status = _field(obj, "status", dict, {})
    namespace, name, uid = (_field(meta, k, str, "") for k in ("namespace", "name", "uid"))
    if not (namespace and name and uid):
        raise UnreadableError("metadata.namespace, name and uid are required")
    annotations = _field(meta, "annotations", dict, {})
    labels = _field(meta, "labels", dict, {})
    os_name = _field(_field(spec, "os", dict, {}), "name", str, "")
    return PodView(
        namespace=namespace,
        name=name,
        uid=uid,
        node=_field(spec, "nodeName", str, ""),
        annotations=_strings(annotations, "annotation", lambda k: k.startswith(PREFIX)),
        labels=_strings(labels, "label", lambda k: k in label_keys),
        host_network=_field(spec, "hostNetwork", bool, False),
        windows=os_name.lower() == "windows",
        phase=_field(status, "phase", str, ""),
        deleting=bool(_field(meta, "deletionTimestamp", str, "")),
        condition=_our_condition(_field(status, "conditions", list, [])),
        sandbox_hint=_sandbox_hint(status),
    )


def _sandbox_hint(status: dict[str, Any]) -> tuple[str, int]:
    ready = ""
    for item in _field(status, "conditions", list, []):
        if isinstance(item, dict) and item.get("type") == "PodReadyToStartContainers":
            ready = f"{item.get('status')}@{item.get('lastTransitionTime')}"[:100]
    restarts = 0
    for item in _field(status, "containerStatuses", list, []):
        count = item.get("restartCount") if isinstance(item, dict) else None
        restarts += count if isinstance(count, int) and not isinstance(count, bool) else 0
    return ready, restarts


def _our_condition(conditions: list[Any]) -> Condition | None:
    for item in conditions:
        if isinstance(item, dict) and item.get("type") == CONDITION:
            values = [item.get(k) for k in ("status", "reason", "message")]
            return Condition(*(v if isinstance(v, str) else "" for v in values))
    return None


def object_key(obj: dict[str, Any]) -> str | None:
    """namespace/name of any object, when readable (to forget a pod we cannot read)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return None
    ns, name = meta.get("namespace"), meta.get("name")
    return f"{ns}/{name}" if isinstance(ns, str) and isinstance(name, str) else None


class Store:
    """The node's pods and the opted-in namespaces, as the watches last told."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pods: dict[str, PodView] = {}
        self._namespaces: set[str] = set()

    def replace_pods(self, views: dict[str, PodView]) -> set[str]:
        """A full list: returns every key that changed, appeared or went away."""
        with self._lock:
            old, self._pods = self._pods, views
        return {k for k in old.keys() | views.keys() if old.get(k) != views.get(k)}

    def put(self, view: PodView) -> bool:
        """True if anything the agent reads changed (not so for most status updates)."""
        with self._lock:
            before = self._pods.get(view.key)
            self._pods[view.key] = view
        return before != view

    def remove(self, key: str) -> None:
        with self._lock:
            self._pods.pop(key, None)

    def pod(self, key: str) -> PodView | None:
        with self._lock:
            return self._pods.get(key)

    def keys(self, namespace: str | None = None) -> list[str]:
        with self._lock:
            return [k for k, v in self._pods.items() if namespace in (None, v.namespace)]

    def replace_namespaces(self, names: set[str]) -> set[str]:
        """A full list of opted-in namespaces: returns those that came or went."""
        with self._lock:
            old, self._namespaces = self._namespaces, set(names)
        return old ^ names

    def set_namespace(self, name: str, opted_in: bool) -> bool:
        """True if that changed anything."""
        with self._lock:
            before = name in self._namespaces
            if opted_in:
                self._namespaces.add(name)
            else:
                self._namespaces.discard(name)
            return before != opted_in

    def opted_in(self, namespace: str) -> bool:
        with self._lock:
            return namespace in self._namespaces
