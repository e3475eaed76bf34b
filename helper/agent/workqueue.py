"""A work queue keyed by pod, as client-go's rate-limited workqueue (../shared/STYLE.md §7).

- a key queued twice is queued once (dedupe);
- a key being processed is never handed to a second worker: added meanwhile, it
  is queued again when the first worker calls `done`;
- `retry` requeues a key after a per-key exponential backoff; `forget` resets it.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque


class WorkQueue:
    def __init__(self, base_delay: float = 0.2, max_delay: float = 60.0) -> None:
        self._base, self._max = base_delay, max_delay
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()  # queued, or to be queued once processing ends
        self._processing: set[str] = set()
        self._delayed: list[tuple[float, int, str]] = []
        self._order = itertools.count()
        self._failures: dict[str, int] = {}
        self._shutdown = False

    def add(self, key: str) -> None:
        with self._cond:
            self._add(key)

    def _add(self, key: str) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._cond.notify()

    def add_after(self, key: str, delay: float) -> None:
        with self._cond:
            if self._shutdown:
                return
            heapq.heappush(self._delayed, (time.monotonic() + delay, next(self._order), key))
            self._cond.notify()

    def retry(self, key: str) -> float:
        """Requeue `key` after its next backoff (base * 2^failures, capped); returns it."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        delay: float = min(self._base * 2.0 ** min(failures, 30), self._max)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def get(self) -> str | None:
        """The next key (the caller must call `done(key)`), or None once shut down."""
        with self._cond:
            while True:
                if self._shutdown:
                    return None
                self._promote()
                if self._queue:
                    key = self._queue.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                wait = self._delayed[0][0] - time.monotonic() if self._delayed else None
                self._cond.wait(wait)

    def _promote(self) -> None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            self._add(key)

    def done(self, key: str) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._delayed) + len(self._processing)

    def idle(self) -> bool:
        """Nothing queued now and nothing in flight (delayed retries do not count)."""
        with self._cond:
            return not self._queue and not self._processing

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()
