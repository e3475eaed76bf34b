"""Pods whose sandbox is not on the node yet: one pass over /proc looks for all of them.

A starting pod's sandbox appears seconds after the pod is bound, and the kubelet says so
only in its next status update, when the containers already run. Looking often puts the
rules in before the containers are ready, so the readiness gate costs the pod nothing. One
shared pass keeps the cost at one scan per interval however many pods start together,
where a scan per waiting pod, repeated at each retry, grew with the pods starting at once.
A scan reads only the processes it has not classified yet (sandboxes.py): mostly those of
the starting pods themselves.

The kubelet starts the containers within a second or two of the sandbox, and decides Ready
at its next look (PLEG, every second) from the conditions it has then: a condition that comes
after that look costs the pod a second, until the look after. On a busy node the containers
may run 0.1-0.3 s after the sandbox, and that look may follow at once (kind, 2 cores, 20 pods
starting at once: 8 % of the gated pods lost that race with a pass every 0.1 s, 5-8 % with
30 ms, nearly all on the node whose kubelet was quicker; 2026-12-01). So a pod is looked for
every `min_interval` while it is young, then at most every second until a minute has passed
(a slow start), then rarely, up to `max_interval` (a pod stuck in ContainerCreating).
The pause is never under ten times the last scan's CPU time, so the watch stays under a
tenth of a core on a node of many processes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from helper.agent.sandboxes import SandboxFinder
from helper.errors import PodnatError

_log = logging.getLogger("podnat.agent.sandboxes")
_YOUNG_S = 20.0  # bound this long ago, a pod's sandbox is due any moment
_STARTING_S = 60.0  # a sandbox not there after a minute: the pod is stuck, look rarely
_IDLE_WAIT_S = 60.0  # no pod waits: only a safety net


class SandboxWatch:
    def __init__(
        self,
        finder: SandboxFinder,
        found: Callable[[str], None],
        *,
        min_interval: float = 0.03,
        starting_interval: float = 1.0,
        max_interval: float = 10.0,
        cost_factor: float = 10.0,
    ) -> None:
        self._finder, self._found = finder, found
        self._min, self._starting, self._max = min_interval, starting_interval, max_interval
        self._cost_factor = cost_factor
        self._cond = threading.Condition()
        self._waiting: dict[str, tuple[str, float]] = {}  # pod key -> (uid, waiting since)
        self._soon = False  # one pass at the shortest interval, whatever the waits
        self.scans = 0

    def wait(self, key: str, uid: str) -> None:
        """Look for the pod's sandbox; `found(key)` is called once it is on the node.

        Asked again (a hint from the API, the periodic verify), the pod is looked for once
        soon, but its wait goes on counting: a stuck pod stays one looked for rarely."""
        with self._cond:
            waiting = self._waiting.get(key)
            since = waiting[1] if waiting is not None and waiting[0] == uid else time.monotonic()
            self._waiting[key] = (uid, since)
            self._soon = True
            self._cond.notify()

    def drop(self, key: str) -> None:
        with self._cond:
            self._waiting.pop(key, None)

    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    def run(self, stop: threading.Event) -> None:
        cost = 0.0
        ended = float("-inf")
        while not stop.is_set():
            with self._cond:
                if not self._waiting:
                    # Woken by wait() or wake(); the stop is checked under the lock, so a
                    # wake() cannot slip in before this waits. Idle, a wake-up costs
                    # ~0.8 ms of CPU here: none a second (2026-11-30).
                    if not stop.is_set():
                        self._cond.wait(_IDLE_WAIT_S)
                    continue
                youngest = time.monotonic() - max(since for _, since in self._waiting.values())
                wanted = self._min if self._soon else self._interval(youngest)
                pause = max(self._min, self._cost_factor * cost, wanted)
                delay = ended + pause - time.monotonic()
                if delay > 0:
                    # A pod that starts waiting meanwhile shortens the pause: woken, recomputed.
                    self._cond.wait(min(delay, 1.0))
                    continue
                self._soon = False
            started = time.thread_time()
            try:
                present = self._finder.present()
            except PodnatError as err:  # /proc unreadable: said, and tried again later
                _log.warning("sandbox discovery: %s", err)
                present = set()
            ended = time.monotonic()
            # Its CPU, not its wall time: on a busy node a pass waits for a core, and
            # counting that wait would space the passes out just when pods start.
            cost = time.thread_time() - started
            self.scans += 1
            with self._cond:
                ready = [key for key, (uid, _) in self._waiting.items() if uid in present]
                for key in ready:
                    del self._waiting[key]
            for key in ready:
                self._found(key)

    def _interval(self, waited: float) -> float:
        """How long to wait between passes for a pod that has waited `waited` seconds."""
        if waited < _YOUNG_S:
            return self._min
        return self._starting if waited < _STARTING_S else min(waited / 10, self._max)

    def wake(self) -> None:
        """Let run() see a stop promptly."""
        with self._cond:
            self._cond.notify_all()
