"""The agent's work queue: dedupe, one worker per key, per-key backoff (real threads)."""

from __future__ import annotations

import threading
import time

from helper.agent.workqueue import WorkQueue


def test_a_key_queued_twice_is_handed_out_once() -> None:
    queue = WorkQueue()
    for key in ("a/p", "a/p", "b/q", "a/p"):
        queue.add(key)
    assert [queue.get(), queue.get()] == ["a/p", "b/q"]
    assert queue.idle() is False  # both in flight


def test_a_key_added_while_processed_waits_for_done_and_never_runs_twice_at_once() -> None:
    queue = WorkQueue()
    running: set[str] = set()
    overlaps: list[str] = []
    seen: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        while (key := queue.get()) is not None:
            with lock:
                if key in running:
                    overlaps.append(key)
                running.add(key)
                seen.append(key)
            time.sleep(0.002)
            with lock:
                running.discard(key)
            queue.done(key)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(200):
        queue.add("ns/hot")
        queue.add("ns/other")
        time.sleep(0.0005)
    deadline = time.monotonic() + 5
    while not queue.idle() and time.monotonic() < deadline:
        time.sleep(0.01)
    queue.shutdown()
    for thread in threads:
        thread.join()
    assert overlaps == []
    assert seen.count("ns/hot") < 200  # adds during a reconcile were merged


def test_retries_back_off_per_key_and_forget_resets() -> None:
    queue = WorkQueue(base_delay=0.05, max_delay=0.2)
    delays = [queue.retry("ns/failing") for _ in range(5)]
    assert delays == [0.05, 0.1, 0.2, 0.2, 0.2]
    assert queue.retry("ns/other") == 0.05  # one failing pod does not slow the others
    queue.forget("ns/failing")
    assert queue.retry("ns/failing") == 0.05
    started = time.monotonic()
    assert queue.get() in ("ns/failing", "ns/other")
    assert time.monotonic() - started >= 0.04


def test_shutdown_releases_a_waiting_worker() -> None:
    queue = WorkQueue()
    got: list[str | None] = []
    thread = threading.Thread(target=lambda: got.append(queue.get()))
    thread.start()
    time.sleep(0.05)
    queue.shutdown()
    thread.join(2)
    assert got == [None]
