"""The agent's sandbox watch: one pass over /proc for every starting pod.

A /proc laid out by hand (as in test_sandboxes_parse), so the pass count is exact; the real
processes and a real API server are in tests/kube/test_agent.py (a sandbox that comes later).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helper.agent.sandbox_watch import SandboxWatch
from helper.agent.sandboxes import SandboxFinder
from tests.test_sandboxes_parse import fake_process


class Lab:
    def __init__(self, tmp_path: Path) -> None:
        self.proc, node = tmp_path / "proc", tmp_path / "node-netns"
        self.proc.mkdir()
        node.write_text("")
        self.finder = SandboxFinder(self.proc, node)
        self.found: list[str] = []
        self.lock = threading.Lock()
        self.watch = SandboxWatch(self.finder, self._found, min_interval=0.01)
        self.pids = iter(range(100, 10_000))

    def _found(self, key: str) -> None:
        with self.lock:
            self.found.append(key)

    def start_sandbox(self, uid: str) -> None:
        fake_process(self.proc, next(self.pids), f"0::/kubepods/pod{uid}/pause\n")

    def reported(self) -> list[str]:
        with self.lock:
            return list(self.found)

    @contextmanager
    def running(self) -> Iterator[None]:
        stop = threading.Event()
        thread = threading.Thread(target=self.watch.run, args=(stop,), daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            self.watch.wake()
            thread.join(5)
            assert not thread.is_alive()


def until(what: str, check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not callable(check) or not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_one_pass_finds_every_starting_pod(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    uids = {f"ns/pod-{i}": str(uuid.uuid4()) for i in range(20)}
    with lab.running():
        for key, uid in uids.items():
            lab.watch.wait(key, uid)
        until("a first pass", lambda: lab.watch.scans >= 1)
        assert lab.reported() == []
        for uid in uids.values():
            lab.start_sandbox(uid)
        before = lab.watch.scans
        until("every pod found", lambda: len(lab.reported()) == 20)
        assert sorted(lab.reported()) == sorted(uids)  # each once
        # Twenty pods, one pass (two if a sandbox appeared while a pass was reading /proc).
        assert lab.watch.scans - before <= 2
        assert lab.watch.waiting() == 0
        # Found pods are known: asking for them reads no /proc directory again.
        sandbox = lab.finder.find(uids["ns/pod-0"], scan=False)
        assert sandbox is not None and sandbox.pid >= 100


def test_a_dropped_pod_is_never_reported(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    kept, dropped = str(uuid.uuid4()), str(uuid.uuid4())
    with lab.running():
        lab.watch.wait("ns/kept", kept)
        lab.watch.wait("ns/dropped", dropped)
        lab.watch.drop("ns/dropped")  # the pod was deleted
        lab.start_sandbox(dropped)
        lab.start_sandbox(kept)
        until("the kept pod", lambda: lab.reported() == ["ns/kept"])
        scans = lab.watch.scans
        time.sleep(0.2)
        assert lab.reported() == ["ns/kept"]
        assert lab.watch.scans == scans  # nobody waits: no pass over /proc


def test_nothing_waits_no_pass(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    with lab.running():
        time.sleep(0.3)
    assert lab.watch.scans == 0


def test_a_pod_waits_longer_and_is_looked_for_less_often(tmp_path: Path) -> None:
    watch = Lab(tmp_path).watch
    # Young: looked for at the shortest interval (the cost floor applies after).
    assert watch._interval(0.05) == watch._interval(19) == 0.01
    assert watch._interval(30) == 1.0  # at most 1 s in the first minute
    assert watch._interval(120) == 10.0  # stuck: rarely


def test_asked_again_a_stuck_pod_gets_one_pass_soon_and_keeps_its_wait(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    uid = str(uuid.uuid4())
    lab.watch.wait("ns/stuck", uid)
    lab.watch._waiting["ns/stuck"] = (uid, time.monotonic() - 120)  # stuck for 2 minutes
    with lab.running():
        until("the pass asked for", lambda: lab.watch.scans == 1)
        time.sleep(0.3)
        assert lab.watch.scans == 1  # then rarely: every 10 s at 2 minutes
        lab.watch.wait("ns/stuck", uid)  # the periodic verify, or a hint from the API
        until("one more pass, soon", lambda: lab.watch.scans == 2, timeout=1.0)
        time.sleep(0.3)
        assert lab.watch.scans == 2
    waited = time.monotonic() - lab.watch._waiting["ns/stuck"][1]
    assert waited > 119  # still the stuck pod it was
