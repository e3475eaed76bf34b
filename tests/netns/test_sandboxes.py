"""Finding a pod's network namespace from its UID, against real processes in real cgroups.

Each "pod" is `sleep` processes in a network namespace the test made, placed in cgroups laid
out as the kubelet lays them out (cgroupfs and systemd drivers, cgroup v1 and v2). The
"node" is the test's own network namespace.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helper.agent.cgroup_paths import InvalidPodUidError
from helper.agent.sandboxes import RUNTIME_HELPERS, STEADY_S, NodeNamespaceError, SandboxFinder
from helper.system import process_clock
from tests.kit.cgroups import (
    CONTAINER,
    V1_NAME,
    Hierarchy,
    Node,
    cgroupfs,
    hierarchy,
    mounted,
    node,
    systemd,
)
from tests.kit.paths import REPO

NODE_NETNS = Path("/proc/self/ns/net")


def new_uid() -> str:
    return str(uuid.uuid4())


@pytest.fixture(scope="module")
def v1_mount() -> Iterator[Path]:
    with mounted(1) as mountpoint:
        yield mountpoint


@pytest.fixture(scope="module")
def v2_mount() -> Iterator[Path]:
    with mounted(2) as mountpoint:
        yield mountpoint


@pytest.fixture(params=[1, 2], ids=["cgroup-v1", "cgroup-v2"])
def cgroups(request: pytest.FixtureRequest) -> Iterator[Hierarchy]:
    mountpoint = request.getfixturevalue("v1_mount" if request.param == 1 else "v2_mount")
    with hierarchy(request.param, mountpoint) as made:
        yield made


@pytest.fixture
def v2(v2_mount: Path) -> Iterator[Hierarchy]:
    with hierarchy(2, v2_mount) as made:
        yield made


@pytest.fixture
def lab_node(cgroups: Hierarchy) -> Iterator[Node]:
    # Processes stop (and leave their cgroups) before the hierarchy is taken apart.
    with node() as made:
        yield made


@pytest.fixture
def finder() -> SandboxFinder:
    return SandboxFinder(node_netns=NODE_NETNS)


LAYOUTS: dict[str, Callable[[str], str]] = {
    "cgroupfs-burstable": cgroupfs,
    "cgroupfs-guaranteed": lambda uid: cgroupfs(uid, qos=""),
    "cgroupfs-besteffort": lambda uid: cgroupfs(uid, qos="besteffort"),
    "cgroupfs-in-docker-node": lambda uid: cgroupfs(uid, prefix=f"docker/{CONTAINER}"),
    "cgroupfs-in-systemd-docker-node": lambda uid: cgroupfs(
        uid, prefix=f"system.slice/docker-{CONTAINER}.scope"
    ),
    "systemd-burstable-containerd": systemd,
    "systemd-guaranteed-docker": lambda uid: systemd(uid, qos="", scope="docker"),
    "systemd-besteffort-crio": lambda uid: systemd(uid, qos="besteffort", scope="crio"),
    "systemd-kind-node": lambda uid: (
        f"docker/{CONTAINER}/" + systemd(uid, qos="besteffort", root="kubelet")
    ),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_pod_is_found_by_uid_in_every_layout(
    layout: str, cgroups: Hierarchy, lab_node: Node, finder: SandboxFinder
) -> None:
    uid, netns = new_uid(), lab_node.netns()
    pid = lab_node.start(netns)
    cgroups.place(LAYOUTS[layout](uid), pid)
    line = next(
        entry
        for entry in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        if ("0::" if cgroups.version == 2 else f":{V1_NAME}:") in entry
    )
    assert uid.replace("-", "_") in line or uid in line  # the kernel's own text is parsed

    found = finder.find(uid)
    assert found is not None
    assert (found.pid, found.inode) == (pid, lab_node.inode(netns))
    assert found.netns == Path(f"/proc/{pid}/ns/net")
    assert found.netns.stat().st_ino == found.inode
    assert finder.scan()[uid] == found


def test_asking_again_rereads_the_process_found_before_without_a_scan(
    cgroups: Hierarchy, lab_node: Node, finder: SandboxFinder, monkeypatch: pytest.MonkeyPatch
) -> None:
    uid = new_uid()
    pid = lab_node.start(lab_node.netns())
    cgroups.place(systemd(uid), pid)
    found = finder.find(uid)
    listings: list[int] = []
    real_pids = finder._pids

    def counted() -> list[tuple[int, int]]:
        listings.append(1)
        return real_pids()

    monkeypatch.setattr(finder, "_pids", counted)
    assert [finder.find(uid) for _ in range(3)] == [found] * 3
    assert listings == []
    lab_node.stop(pid)  # the process found before is gone: one scan, and none found
    assert finder.find(uid) is None
    assert listings == [1]


def test_the_earliest_process_of_a_pod_is_its_sandbox(
    cgroups: Hierarchy, lab_node: Node, finder: SandboxFinder
) -> None:
    uid, netns, elsewhere = new_uid(), lab_node.netns(), lab_node.netns()
    pause = lab_node.start(netns)
    time.sleep(0.03)  # start times count 10 ms ticks
    app = lab_node.start(netns)
    time.sleep(0.03)
    stray = lab_node.start(elsewhere)
    # The app containers are placed first: the order of cgroup.procs must not matter.
    cgroups.place(systemd(uid).replace(CONTAINER, "b" * 64), stray)
    cgroups.place(systemd(uid).replace(CONTAINER, "a" * 64), app)
    cgroups.place(systemd(uid), pause)

    messages: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("podnat.agent.sandboxes")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        found = finder.find(uid)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert found is not None
    assert (found.pid, found.inode) == (pause, lab_node.inode(netns))
    assert any(f"pod {uid} has processes in 1 other network namespace" in m for m in messages)


def test_a_pod_in_the_nodes_namespace_is_refused(cgroups: Hierarchy, lab_node: Node) -> None:
    finder = SandboxFinder(node_netns=NODE_NETNS, settle=0.0)  # no sandbox being created
    uid, other = new_uid(), new_uid()
    host_network = lab_node.start(None)
    cgroups.place(cgroupfs(uid), host_network)
    pid = lab_node.start(lab_node.netns())
    cgroups.place(cgroupfs(other), pid)

    with pytest.raises(NodeNamespaceError) as refused:
        finder.find(uid)
    message = str(refused.value)
    assert uid in message
    assert f"pid {host_network}" in message
    assert "never touches the node's namespace" in message
    scanned = finder.scan()
    assert uid not in scanned  # left out, never returned
    assert scanned[other].pid == pid
    with pytest.raises(NodeNamespaceError):
        finder.find(uid)  # from the cache too


def test_an_unknown_pod_is_none(lab_node: Node, finder: SandboxFinder) -> None:
    assert finder.find(new_uid()) is None


def test_a_process_gone_after_the_scan_is_not_found_and_its_successor_is(
    cgroups: Hierarchy, lab_node: Node, finder: SandboxFinder
) -> None:
    uid = new_uid()
    first = lab_node.start(lab_node.netns())
    cgroups.place(cgroupfs(uid), first)
    assert finder.scan()[uid].pid == first
    lab_node.stop(first)
    assert finder.find(uid) is None
    assert uid not in finder.scan()

    netns = lab_node.netns()
    second = lab_node.start(netns)
    cgroups.place(cgroupfs(uid), second)
    found = finder.find(uid)
    assert found is not None
    assert (found.pid, found.inode) == (second, lab_node.inode(netns))


def test_a_process_is_read_at_every_pass_until_its_answer_is_final(
    cgroups: Hierarchy, lab_node: Node
) -> None:
    # A process's cgroup and namespace change only while the runtime sets it up: it is read
    # again while young and in no pod outside the node's namespace, then never. Moving a
    # process between cgroups afterwards (no kubelet does) shows whether it was read.
    steady = SandboxFinder(node_netns=NODE_NETNS, steady=0.0)  # every answer final at once
    young = SandboxFinder(node_netns=NODE_NETNS)
    first, second = new_uid(), new_uid()
    pid = lab_node.start(lab_node.netns())  # in no pod's cgroup yet: runc's, say
    assert first not in steady.present() and first not in young.present()
    cgroups.place(cgroupfs(first), pid)
    assert first not in steady.present()  # old enough: "no pod" was its answer for life
    assert first in young.present()  # young: read again, and now in a pod, in its namespace
    cgroups.place(cgroupfs(second), pid)
    assert first in young.present() and second not in young.present()  # final: not read


@pytest.mark.parametrize("steady", [0.0, STEADY_S], ids=["final", "young"])
def test_a_new_process_under_a_reused_pid_is_read(
    cgroups: Hierarchy, lab_node: Node, steady: float
) -> None:
    # Final: its answer is never reused. Young: its start (kept between passes) is not.
    finder = SandboxFinder(node_netns=NODE_NETNS, steady=steady)
    uid, netns = new_uid(), lab_node.netns()
    for _ in range(20):  # another process may take the PID first: tried again
        old = lab_node.start(None)  # in no pod's cgroup, and known as such for its life
        assert uid not in finder.present()
        lab_node.stop(old)
        time.sleep(0.05)  # a start some clock ticks later than old's
        Path("/proc/sys/kernel/ns_last_pid").write_text(str(old - 1))  # the next PID is old's
        pid = lab_node.start(netns)
        if pid == old:
            break
        lab_node.stop(pid)
    else:
        pytest.fail("no process got a reused PID in 20 tries")
    cgroups.place(cgroupfs(uid), pid)
    found = finder.find(uid, scan=False) if uid in finder.present() else None
    assert found is not None and (found.pid, found.inode) == (pid, lab_node.inode(netns))
    assert found.start_ticks == process_clock.start_ticks(Path(f"/proc/{pid}/stat").read_text())


def test_processes_that_come_and_go_during_scans_never_disturb_them(
    cgroups: Hierarchy, lab_node: Node, finder: SandboxFinder
) -> None:
    uid, netns = new_uid(), lab_node.netns()
    sandbox = lab_node.start(netns)
    cgroups.place(cgroupfs(uid), sandbox)
    time.sleep(0.03)
    # Its children inherit the pod's cgroup and exit at once, thousands per second.
    churn = lab_node.start(netns, "sh", "-c", "while :; do /bin/true; done")
    cgroups.place(cgroupfs(uid).replace(CONTAINER, "e" * 64), churn)
    started = time.monotonic()
    scans = 0
    while time.monotonic() - started < 1.0:
        assert finder.scan()[uid].pid == sandbox
        scans += 1
    lab_node.stop(churn)
    assert scans > 10


def test_a_replaced_sandbox_is_found_in_its_new_namespace(
    cgroups: Hierarchy, lab_node: Node, finder: SandboxFinder
) -> None:
    uid, old_netns, new_netns = new_uid(), lab_node.netns(), lab_node.netns()
    old = lab_node.start(old_netns)
    cgroups.place(systemd(uid), old)
    before = finder.find(uid)
    assert before is not None
    assert before.inode == lab_node.inode(old_netns)

    # The kubelet's new sandbox: a new pause process, a new namespace; the old one killed.
    new = lab_node.start(new_netns)
    cgroups.place(systemd(uid).replace(CONTAINER, "c" * 64), new)
    os.kill(old, signal.SIGKILL)  # not reaped yet: a zombie, with no namespace any more
    deadline = time.monotonic() + 10
    while Path(f"/proc/{old}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.005)
    after = finder.find(uid)
    assert after is not None
    assert (after.pid, after.inode) == (new, lab_node.inode(new_netns))
    assert after.inode != before.inode
    lab_node.stop(old)
    assert finder.find(uid) == after


HOSTILE = ["", "../", "*", "pod", "..", "kubepods", "%s/..", "%s*", "%s\n", "x" * 100_000]


def test_hostile_uids_match_nothing(
    cgroups: Hierarchy, lab_node: Node, finder: SandboxFinder
) -> None:
    uid = new_uid()
    cgroups.place(cgroupfs(uid), lab_node.start(lab_node.netns()))
    for hostile in HOSTILE:
        value = hostile.replace("%s", uid)
        with pytest.raises(InvalidPodUidError, match="is not a UUID"):
            finder.find(value)
    assert finder.find(uid) is not None


def test_the_uid_only_as_a_whole_kubelet_component_matches(
    cgroups: Hierarchy, lab_node: Node, finder: SandboxFinder
) -> None:
    uid, outer = new_uid(), new_uid()
    near_misses = [
        f"kubepods/burstable/pod{uid}x/{CONTAINER}",
        f"kubepods/burstable/{uid}/{CONTAINER}",
        f"user.slice/pod{uid}/{CONTAINER}",
        f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/x.scope",
        # a pod that makes cgroups below its own cannot pass for another pod
        f"kubepods/besteffort/pod{outer}/{CONTAINER}/kubepods/pod{uid}/x",
    ]
    for path in near_misses:
        cgroups.place(path, lab_node.start(lab_node.netns()))
    assert finder.find(uid) is None
    assert uid not in finder.scan()
    assert outer in finder.scan()


def test_a_reader_in_its_own_cgroup_namespace_finds_pods_above_it(
    v2: Hierarchy, finder: SandboxFinder
) -> None:
    """The agent in a pod sees other pods' paths from its cgroup namespace: `/../..`."""
    with node() as lab_node:
        guaranteed, besteffort, agent = new_uid(), new_uid(), new_uid()
        netns = {uid: lab_node.netns() for uid in (guaranteed, besteffort)}
        pids = {uid: lab_node.start(netns[uid]) for uid in netns}
        v2.place(systemd(guaranteed, qos=""), pids[guaranteed])
        v2.place(systemd(besteffort, qos="besteffort"), pids[besteffort])
        cgroup = v2.directory(systemd(agent).replace(CONTAINER, "d" * 64))
        # The reader enters the agent's cgroup, then a cgroup namespace rooted there.
        reader = subprocess.run(
            [
                *("sh", "-c", 'echo $$ > "$1" && exec unshare --cgroup "$2" -c "$3"', "sh"),
                *(str(cgroup / "cgroup.procs"), sys.executable, READER),
            ],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        seen = json.loads(reader.stdout)
        assert seen["self"] == "0::/"
        assert seen["example"].startswith("0::/../../../kubepods-pod")
        for uid, pid in pids.items():
            assert seen["pods"][uid] == [pid, lab_node.inode(netns[uid])]


READER = """
import json, os
from pathlib import Path
from helper.agent.sandboxes import SandboxFinder
pods = SandboxFinder(node_netns=Path("/proc/self/ns/net")).scan()
lines = [line for line in Path("/proc/self/cgroup").read_text().splitlines()
         if line.startswith("0::")]
example = ""
for uid, found in pods.items():
    for line in Path(f"/proc/{found.pid}/cgroup").read_text().splitlines():
        if line.startswith("0::") and "kubepods-pod" in line:
            example = line
print(json.dumps({"self": lines[0], "example": example,
                  "pods": {uid: [s.pid, s.inode] for uid, s in pods.items()}}))
"""


def test_runc_init_in_the_nodes_namespace_while_a_sandbox_is_created_is_no_refusal(
    cgroups: Hierarchy, lab_node: Node
) -> None:
    # The runtime's `runc init` is in the pod's cgroup before it joins the sandbox's
    # namespace: for a moment the pod's earliest (or only) process is in the node's.
    finder = SandboxFinder(node_netns=NODE_NETNS, settle=30.0)
    uid = new_uid()
    runc_init = lab_node.start(None)
    cgroups.place(cgroupfs(uid), runc_init)
    assert finder.find(uid) is None  # starting: neither a sandbox nor refused
    assert uid not in finder.present() and uid not in finder.scan()
    time.sleep(0.03)  # start times count 10 ms ticks
    netns = lab_node.netns()
    pause = lab_node.start(netns)
    cgroups.place(cgroupfs(uid), pause)
    found = finder.find(uid)
    assert found is not None and (found.pid, found.inode) == (pause, lab_node.inode(netns))
    assert uid in finder.present()
    assert finder.find(uid, scan=False) == found  # known: the sandbox, not runc's init


@pytest.mark.parametrize("stage", sorted(RUNTIME_HELPERS))
def test_runcs_own_processes_in_the_pods_namespace_are_not_its_sandbox(
    cgroups: Hierarchy, lab_node: Node, finder: SandboxFinder, tmp_path: Path, stage: str
) -> None:
    # runc's stage 1 joins the pod's namespace, forks the sandbox's process and exits:
    # earlier than the pause process and in the pod's namespace, it is still not the
    # sandbox, or the pause process would look like a new sandbox once it is gone.
    uid, netns = new_uid(), lab_node.netns()
    named = tmp_path / stage  # the command name is the name the program ran under
    named.symlink_to(shutil.which("sleep") or "/bin/sleep")
    helper = lab_node.start(netns, str(named), "600")
    comm = Path(f"/proc/{helper}/comm")
    deadline = time.monotonic() + 10
    while comm.read_text().strip() != stage:  # `ip netns exec` enters, then runs it
        assert time.monotonic() < deadline, comm.read_text()
        time.sleep(0.005)
    cgroups.place(cgroupfs(uid), helper)
    assert finder.find(uid) is None  # runc alone: the pod is starting
    assert uid not in finder.present()
    time.sleep(0.03)  # start times count 10 ms ticks
    pause = lab_node.start(netns)
    cgroups.place(cgroupfs(uid), pause)
    assert uid in finder.present()
    found = finder.find(uid, scan=False)
    assert found is not None and (found.pid, found.inode) == (pause, lab_node.inode(netns))
    lab_node.stop(helper)
    assert uid in finder.present()
    assert finder.find(uid) == found  # the same sandbox after runc's helper is gone


def test_a_pod_only_in_the_nodes_namespace_past_the_settle_time_is_refused(
    cgroups: Hierarchy, lab_node: Node
) -> None:
    finder = SandboxFinder(node_netns=NODE_NETNS, settle=0.3)
    uid = new_uid()
    cgroups.place(cgroupfs(uid), lab_node.start(None))
    assert finder.find(uid) is None
    time.sleep(0.4)
    with pytest.raises(NodeNamespaceError):
        finder.find(uid)
    assert uid in finder.present()  # reported, so that the agent refuses it with the reason
