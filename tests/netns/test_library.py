"""The engine as a library on the real kernel: many namespaces, many threads, one process.

setns acts per thread; the engine enters a pod's namespace in a thread of its own,
so rules land where asked, the caller's threads stay where they were, and nothing
(contexts, workers, descriptors) outlives an operation.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from helper.engine import Engine
from helper.errors import ExitCode
from helper.host.base import Target
from helper.host.kernel import KernelHost
from helper.plan.parse import parse_plan
from helper.system.addresses import global_families
from tests.cases import R
from tests.kit.lab import Lab, Netns, sh
from tests.netns.podnat import nat_dump

BACKENDS = ["nft", "iptables-legacy"]
OWN_NAMESPACE = "/proc/thread-self/ns/net"


@pytest.fixture
def second_lab() -> Iterator[Lab]:
    with Lab.create() as created:
        yield created


@pytest.fixture
def bare() -> Iterator[Netns]:
    """A namespace with loopback only: no global address of either family."""
    name = f"pnt-bare-{os.getpid()}"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        yield Netns(name)
    finally:
        sh("ip", "netns", "del", name, check=False)


def own_namespace() -> str:
    return str(Path(OWN_NAMESPACE).readlink())


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_threads_apply_to_two_namespaces_at_once(
    lab: Lab, second_lab: Lab, backend: str
) -> None:
    engine = Engine()  # the library's host: contexts freed, every family in a worker
    pods = {lab.pod.path: "1111:11", second_lab.pod.path: "2222:22"}
    caller = own_namespace()
    start = threading.Barrier(len(pods))
    seen: dict[Path, tuple[str, str]] = {}
    failures: list[BaseException] = []

    def work(path: Path) -> None:
        before = own_namespace()
        start.wait()
        try:
            plan = parse_plan({R: pods[path]})
            for _ in range(3):
                assert engine.apply(plan, Target(path, backend)).exit_code is ExitCode.OK
                assert engine.verify(plan, Target(path, backend)).exit_code is ExitCode.OK
        except BaseException as err:  # handed to the test's thread
            failures.append(err)
        seen[path] = (before, own_namespace())

    threads = [threading.Thread(target=work, args=(path,)) for path in pods]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert all(before == after == caller for before, after in seen.values())
    assert own_namespace() == caller
    first, second = nat_dump(lab.pod, backend), nat_dump(second_lab.pod, backend)
    assert "1111" in first and "2222" not in first
    assert "2222" in second and "1111" not in second
    # The rules work: each pod's redirect answers in its own namespace.
    for each, port in ((lab, 1111), (second_lab, 2222)):
        each.serve(each.pod, port // 101)
        assert each.ask(each.client_a, each.POD_A4, port) == f"served-by:{port // 101}"
        assert each.ask(each.client_a, each.POD_A6, port) == f"served-by:{port // 101}"


def _open_descriptors() -> int:
    return sum(1 for _ in Path("/proc/self/fd").iterdir())


def _children() -> list[str]:
    found = []
    for task in Path("/proc/self/task").iterdir():
        try:
            found += (task / "children").read_text().split()
        except FileNotFoundError:  # a thread that ended meanwhile has no children left
            continue
    return found


def test_many_operations_leave_nothing_behind(lab: Lab, second_lab: Lab) -> None:
    host = KernelHost()
    engine = Engine(host)
    plan = parse_plan({R: "4321:1234, 8000-8002:9000-9002"})
    descriptors, children = _open_descriptors(), _children()
    for _ in range(3):
        for pod in (lab.pod, second_lab.pod):
            for backend in BACKENDS:
                target = Target(pod.path, backend)
                assert engine.apply(plan, target).exit_code is ExitCode.OK
                assert engine.verify(plan, target).exit_code is ExitCode.OK
            # Both backends hold the plan now? No: apply removed the other's as stale.
            assert "4321" not in nat_dump(pod, "nft")
            assert engine.cleanup(Target(pod.path)).summary == (
                "removed podnat's rules from iptables-legacy"
            )
    assert host.closer is not None
    host.closer.wait_idle()  # contexts are freed in its thread, off the caller's path
    assert _open_descriptors() == descriptors
    assert _children() == children
    assert threading.active_count() == 1 + sum(1 for t in threading.enumerate() if t.daemon)


def test_families_are_those_of_the_entered_namespace(bare: Netns) -> None:
    assert global_families(), "the test's own namespace needs a global address to compare"
    outcome = Engine().apply(parse_plan({R: "4321:1234"}), Target(bare.path, "nft"))
    assert outcome.summary == "applied with nft (no family): 4321:1234/tcp"


def _as_written(ns: Netns, backend: str) -> str:
    """The live rules with what a rewrite would change: nft's handles, xtables' counters."""
    if backend == "nft":
        return ns.run("nft", "-a", "list", "ruleset")
    saved = (
        ns.run(save, "-c", "-t", "nat")
        for save in ("iptables-legacy-save", "ip6tables-legacy-save")
    )
    return "\n".join(
        line for text in saved for line in text.splitlines() if not line.startswith("#")
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_converge_leaves_right_rules_unwritten_and_rewrites_drift(lab: Lab, backend: str) -> None:
    engine, target = Engine(), Target(lab.pod.path, backend)
    plan = parse_plan({R: "4321:1234"})
    first = engine.converge(plan, target)
    assert first.changed and first.summary.startswith(f"applied with {backend}")
    lab.serve(lab.pod, 1234)
    assert lab.ask(lab.client_a, lab.POD_A4, 4321) == "served-by:1234"  # counts a packet
    written = _as_written(lab.pod, backend)
    assert backend == "nft" or re.search(r"\[[1-9]\d*:\d+\] -A", written), written
    again = engine.converge(plan, target)
    assert (again.changed, again.summary) == (
        False,
        f"verified: {backend} holds exactly the planned ruleset",
    )
    assert _as_written(lab.pod, backend) == written  # same handles, counters kept
    engine.cleanup(target)  # drift: the rules are gone
    repaired = engine.converge(plan, target)
    assert repaired.changed
    assert engine.verify(plan, target).exit_code is ExitCode.OK
    assert lab.ask(lab.client_a, lab.POD_A4, 4321) == "served-by:1234"


@pytest.mark.parametrize("backend", BACKENDS)
def test_converge_with_its_receipt_reads_only_its_rules_and_still_sees_drift(
    lab: Lab, backend: str
) -> None:
    engine, target = Engine(), Target(lab.pod.path, backend)
    plan = parse_plan({R: "4321:1234"})
    first = engine.converge(plan, target)
    assert first.receipt is not None and first.receipt.backend == backend
    lab.serve(lab.pod, 1234)
    assert lab.ask(lab.client_a, lab.POD_A4, 4321) == "served-by:1234"
    written = _as_written(lab.pod, backend)
    again = engine.converge(plan, target, receipt=first.receipt)
    assert (again.changed, again.receipt) == (False, first.receipt)
    assert _as_written(lab.pod, backend) == written  # same handles, counters kept
    engine.cleanup(target)  # drift: the receipt no longer matches the kernel
    repaired = engine.converge(plan, target, receipt=first.receipt)
    assert repaired.changed and repaired.receipt == first.receipt
    assert lab.ask(lab.client_a, lab.POD_A4, 4321) == "served-by:1234"
    moved = parse_plan({R: "4322:1234"})  # another plan: the receipt says nothing of it
    changed = engine.converge(moved, target, receipt=repaired.receipt)
    assert changed.changed and changed.receipt is not None and changed.receipt.plan == moved
    assert lab.ask(lab.client_a, lab.POD_A4, 4322) == "served-by:1234"
    assert engine.verify(moved, target).exit_code is ExitCode.OK
