"""What the agent tells the cluster: the pod condition (PATCH pods/status) and Events.

The condition gates the pod's readiness: a reconcile writes it before it ends. Events only
tell: one thread posts them in order, so that a worker goes on to the next starting pod
instead of waiting for the API server's answer to an Event. While pods start, the Events
also wait until no condition has been written for EVENTS_QUIET_S (at most EVENTS_HOLD_S
after they happened): each is an API write, and in a burst of starting pods the API server
is the bottleneck for the next pod's condition, which the kubelet reads to say Ready.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import urllib.parse
from typing import Any

from helper.agent.pods import CONDITION, MAX_CONDITION_MESSAGE, Condition, PodView
from helper.kube.client import ApiError, KubeClient

COMPONENT = "podnat-agent"
EVENTS_WAITING = 1000  # Events not posted yet; beyond that, one is dropped (and logged)
EVENTS_QUIET_S = 1.0  # an Event waits until no condition was written for this long,
EVENTS_HOLD_S = 5.0  # or until it is this old: under steady churn each is this late
_log = logging.getLogger("podnat.agent")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _path(namespace: str, rest: str) -> str:
    return f"/api/v1/namespaces/{urllib.parse.quote(namespace, safe='')}/{rest}"


def condition_patch(uid: str, wanted: Condition) -> dict[str, Any]:
    """The strategic-merge patch of pods/status that sets our condition (the benchmark's
    gate-alone floor sends this same body)."""
    return {
        "metadata": {"uid": uid},  # a precondition: never a namesake's status
        "status": {
            "conditions": [
                {
                    "type": CONDITION,
                    "status": wanted.status,
                    "reason": wanted.reason,
                    "message": wanted.message,
                    "lastTransitionTime": _now(),
                }
            ]
        },
    }


class StatusWriter:
    def __init__(self, client: KubeClient, node: str) -> None:
        self._client, self._node = client, node
        self._events: queue.Queue[tuple[float, PodView, str, str, bool, str] | None] = queue.Queue(
            EVENTS_WAITING
        )
        self._poster: threading.Thread | None = None
        self._lock = threading.Lock()
        self._last_condition = float("-inf")  # time.monotonic() when the last one was written
        self._hurry = threading.Event()  # closing: no more holding

    def condition(self, pod: PodView, wanted: Condition) -> bool:
        """Write our condition when status, reason or message differ; True if written.
        A failure raises ApiError (the reconcile is retried); a gone pod is no failure."""
        wanted = wanted._replace(message=wanted.message[:MAX_CONDITION_MESSAGE])
        if pod.condition == wanted:
            return False
        body = condition_patch(pod.uid, wanted)
        try:
            self._last_condition = time.monotonic()  # an Event now would compete with it
            self._client.request(
                "PATCH",
                _path(pod.namespace, f"pods/{urllib.parse.quote(pod.name, safe='')}/status"),
                body,
                content_type="application/strategic-merge-patch+json",
                attempts=3,
            )
        except ApiError as err:
            if err.status in (404, 409):  # deleted, or a new pod of that name
                _log.info("pod %s: condition not written: %s", pod.key, err)
                return False
            raise
        finally:
            self._last_condition = time.monotonic()
        _log.info("pod %s: condition %s=%s (%s)", pod.key, CONDITION, wanted.status, wanted.reason)
        return True

    def event(self, pod: PodView, reason: str, message: str, *, warning: bool = False) -> None:
        """Queued for the posting thread; best effort: never retried past a few attempts."""
        with self._lock:
            if self._poster is None:
                self._poster = threading.Thread(target=self._post_all, name="events", daemon=True)
                self._poster.start()
        try:
            # When it happened: its timestamps say so however long it is held.
            self._events.put_nowait((time.monotonic(), pod, reason, message, warning, _now()))
        except queue.Full:
            _log.warning(
                "pod %s: %s Event dropped: %d Events wait to be posted", pod.key, reason,
                EVENTS_WAITING,
            )  # fmt: skip

    def close(self, timeout: float) -> None:
        """Post the Events still waiting, for up to `timeout` seconds."""
        with self._lock:
            poster = self._poster
        if poster is None:
            return
        deadline = time.monotonic() + timeout
        self._hurry.set()
        try:
            self._events.put(None, timeout=timeout)
        except queue.Full:
            return
        poster.join(max(0.0, deadline - time.monotonic()))

    def _post_all(self) -> None:
        while (item := self._events.get()) is not None:
            queued, pod, reason, message, warning, now = item
            self._hold(queued)
            try:
                self._post(pod, reason, message, warning, now)
            except Exception:  # a bug: the Events after it are still posted
                _log.exception("pod %s: posting a %s Event failed", pod.key, reason)

    def _hold(self, queued: float) -> None:
        """Until conditions have been quiet for EVENTS_QUIET_S, the Event EVENTS_HOLD_S old,
        or the writer closing."""
        while not self._hurry.is_set():
            now = time.monotonic()
            due = min(queued + EVENTS_HOLD_S, self._last_condition + EVENTS_QUIET_S)
            if now >= due:
                return
            self._hurry.wait(due - now)

    def _post(self, pod: PodView, reason: str, message: str, warning: bool, now: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{pod.name[:200]}.podnat-", "namespace": pod.namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": pod.name,
                "namespace": pod.namespace,
                "uid": pod.uid,
            },
            "reason": reason,
            "message": message[:1000],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT, "host": self._node},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._node,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self._client.request("POST", _path(pod.namespace, "events"), body, attempts=3)
        except ApiError as err:
            _log.warning("pod %s: could not post a %s Event: %s", pod.key, reason, err)
            return
        level = logging.WARNING if warning else logging.INFO
        _log.log(level, "pod %s: %s: %s", pod.key, reason, message.splitlines()[0][:300])
