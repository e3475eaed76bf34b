"""Freeing libnftables contexts off the caller's path.

Freeing a context whose netlink socket made a commit waits for an RCU grace period as
the socket closes: 7-15 ms on the idle dev VM, more on a busy node. In a long-lived
process that wait would come between a pod's rules going in and its condition saying so
(the pod's readiness), and would hold the namespace lock; a thread of its own takes it.
"""

from __future__ import annotations

import queue
import threading

from helper.backends.nft.libnftables import Nft

WAITING = 64  # contexts (one netlink socket each) waiting; beyond that, freed in place


class Closer:
    def __init__(self, waiting: int = WAITING) -> None:
        self._queue: queue.Queue[Nft] = queue.Queue(waiting)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def close(self, context: Nft) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="nft-closer", daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait(context)
        except queue.Full:  # the thread is behind: bounded, the caller waits instead
            context.close()

    def wait_idle(self) -> None:
        """Return once every context handed over so far is freed."""
        self._queue.join()

    def _run(self) -> None:
        while True:
            context = self._queue.get()
            try:
                context.close()
            finally:
                self._queue.task_done()
