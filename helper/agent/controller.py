"""The agent's loops: two watches feed a store and a work queue; workers reconcile;
a periodic verify enqueues every pod (the drift-repair deadline)."""

from __future__ import annotations

import logging
import os
import threading
import time

from helper.agent.pods import PodView, UnreadableError, object_key, pod_view
from helper.agent.reconcile import SOON_S, Reconciler, Result
from helper.agent.sandbox_watch import SandboxWatch
from helper.agent.workqueue import WorkQueue
from helper.errors import PodnatError
from helper.kube.client import KubeClient
from helper.kube.reflector import Obj, Reflector

_log = logging.getLogger("podnat.agent")
_HEALTHY_WITHIN_S = 900.0  # a watch loop silent this long (watches end every ≤ 10 min) is stuck


class Controller:
    def __init__(
        self,
        client: KubeClient,
        reconciler: Reconciler,
        *,
        namespace_label: str,
        excluded: frozenset[str],
        label_keys: frozenset[str],
        workers: int,
        verify_interval: float,
    ) -> None:
        self.reconciler, self.store, self.queue = reconciler, reconciler.store, WorkQueue()
        self.stop = threading.Event()
        self.sandboxes = SandboxWatch(reconciler.finder, self.queue.add)
        self._excluded, self._label_keys = excluded, label_keys
        self._workers, self._interval = workers, verify_interval
        self._namespaces_listed = threading.Event()
        self._first: set[str] | None = None  # keys of the first pod list not yet reconciled
        self._first_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        node = reconciler.policy.node
        self.namespaces = Reflector(
            client,
            "/api/v1/namespaces",
            {"labelSelector": namespace_label},
            self._namespace_list,
            self._namespace_event,
            self.stop,
        )
        self.pods = Reflector(
            client,
            "/api/v1/pods",
            {"fieldSelector": f"spec.nodeName={node}"},
            self._pod_list,
            self._pod_event,
            self.stop,
        )

    # -- health ----------------------------------------------------------------------------

    def healthy(self) -> bool:
        now = time.monotonic()
        return not self.stop.is_set() and all(
            now - r.last_alive < _HEALTHY_WITHIN_S for r in (self.namespaces, self.pods)
        )

    def ready(self) -> bool:
        with self._first_lock:
            return self._first is not None and not self._first

    # -- namespaces --------------------------------------------------------------------------

    def _namespace_name(self, obj: Obj) -> str | None:
        meta = obj.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        return name if isinstance(name, str) and name else None

    def _namespace_list(self, items: list[Obj]) -> None:
        self.reconciler.metrics.lists.labels(resource="namespaces").inc()
        names = {n for n in map(self._namespace_name, items) if n and n not in self._excluded}
        for name in self.store.replace_namespaces(names):
            self._enqueue_namespace(name)
        self._namespaces_listed.set()

    def _namespace_event(self, kind: str, obj: Obj) -> None:
        name = self._namespace_name(obj)
        if name is None or name in self._excluded:
            return
        # With a labelSelector the API sends DELETED when a namespace stops matching.
        if self.store.set_namespace(name, kind != "DELETED"):
            self._enqueue_namespace(name)

    def _enqueue_namespace(self, name: str) -> None:
        for key in self.store.keys(name):
            self.queue.add(key)

    # -- pods --------------------------------------------------------------------------------

    def _view(self, obj: Obj) -> PodView | None:
        try:
            return pod_view(obj, self._label_keys)
        except UnreadableError as err:
            _log.warning("pod %s: unreadable, skipped: %s", object_key(obj) or "?", err)
            return None

    def _pod_list(self, items: list[Obj]) -> None:
        self.reconciler.metrics.lists.labels(resource="pods").inc()
        views = {v.key: v for v in map(self._view, items) if v is not None}
        # One pass over /proc before the listed pods are reconciled: each then finds its
        # sandbox known, and "no sandbox" means none (readiness counts on it after a restart).
        try:
            self.reconciler.finder.present()
        except PodnatError as err:  # the reconciles retry; the sandbox watch says it again
            _log.warning("sandbox discovery: %s", err)
        for key in self.store.replace_pods(views):
            self.queue.add(key)
        with self._first_lock:
            if self._first is None:
                self._first = set(views)
                for key in views:
                    self.queue.add(key)

    def _pod_event(self, kind: str, obj: Obj) -> None:
        view = self._view(obj)
        key = view.key if view is not None else object_key(obj)
        if key is None:
            return
        if kind == "DELETED" or view is None:
            self.store.remove(key)
            self.sandboxes.drop(key)
        elif not self.store.put(view):
            return  # e.g. the kubelet's status updates: nothing podnat reads changed
        self.queue.add(key)

    # -- workers and the periodic verify -----------------------------------------------------

    def _work(self) -> None:
        self._namespaces_listed.wait()
        while (key := self.queue.get()) is not None:
            try:
                result = self.reconciler.reconcile(key)
            except PodnatError as err:  # the API refused the status or is away: retried
                _log.warning("pod %s: %s", key, err)
                self.reconciler.metrics.errors.inc()
                result = Result.RETRY
            except Exception:  # a bug: one pod's surprise must not stop the others
                _log.exception("pod %s: reconcile failed", key)
                self.reconciler.metrics.errors.inc()
                result = Result.RETRY
            self.reconciler.metrics.reconciles.labels(result=result.value).inc()
            pod = self.store.pod(key)
            if result is Result.WAIT and pod is not None:
                # A starting pod: the sandbox watch looks for it (one pass over /proc for all).
                self.sandboxes.wait(key, pod.uid)
                self.queue.forget(key)
            elif result is Result.SOON and not self.stop.is_set():
                self.queue.add_after(key, SOON_S)
            elif result is Result.RETRY and not self.stop.is_set():
                self.sandboxes.drop(key)
                self.queue.retry(key)
            else:
                self.sandboxes.drop(key)
                self.queue.forget(key)
            with self._first_lock:
                if self._first is not None:
                    self._first.discard(key)
            self.queue.done(key)
            self.reconciler.metrics.pods_managed.set(self.reconciler.managed_count())

    def _resync(self) -> None:
        while not self.stop.wait(self._interval * (0.9 + 0.2 * _fraction())):
            self.reconciler.verify_all()
            for key in self.store.keys(None):
                self.queue.add(key)

    def start(self) -> None:
        for name, target in (
            ("watch-namespaces", self.namespaces.run),
            ("watch-pods", self._pods_after_namespaces),
            ("resync", self._resync),
            ("sandboxes", lambda: self.sandboxes.run(self.stop)),
            *((f"worker-{i}", self._work) for i in range(self._workers)),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _pods_after_namespaces(self) -> None:
        while not self._namespaces_listed.wait(1.0):
            if self.stop.is_set():
                return
        self.pods.run()

    def shutdown(self, grace: float = 20.0) -> None:
        """Stop the watches, let in-flight reconciles finish (up to `grace` seconds)."""
        self.stop.set()
        self._namespaces_listed.set()  # release workers still waiting for it
        self.namespaces.close()
        self.pods.close()
        self.queue.shutdown()
        self.sandboxes.wake()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.reconciler.status.close(max(1.0, deadline - time.monotonic()))


def _fraction() -> float:
    return int.from_bytes(os.urandom(2), "big") / 65536
