"""Which pod a /proc/PID/cgroup text names: the kubelet's layouts, and what must never match.

The real files come from real processes in tests/netns/test_sandboxes.py; these cover the
layouts a test machine cannot make (cgroup namespaces of other pods, forged lines) quickly.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helper.agent.cgroup_paths import (
    InvalidPodUidError,
    checked_uid,
    pod_uid_in_path,
    pod_uid_of_process,
)
from helper.agent.sandboxes import CGROUP_FILE_CAP, DiscoveryError, SandboxFinder
from helper.system.process_clock import start_ticks
from tests.kit.paths import REPO

UID = "4f1d2c3b-9a8e-4d7c-b6a5-0123456789ab"
OTHER = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
ESC = UID.replace("-", "_")
CID = "3f5c" * 16

KUBELET_PATHS = [
    f"/kubepods/burstable/pod{UID}/{CID}",
    f"/kubepods/besteffort/pod{UID}/{CID}",
    f"/kubepods/pod{UID}/{CID}",
    f"/kubepods/pod{UID}",
    f"/docker/{CID}/kubepods/burstable/pod{UID}/{CID}",
    f"/system.slice/docker-{CID}.scope/kubepods/pod{UID}/{CID}",
    f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{ESC}.slice/"
    f"cri-containerd-{CID}.scope",
    f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{ESC}.slice/"
    f"crio-{CID}.scope",
    f"/kubepods.slice/kubepods-pod{ESC}.slice/docker-{CID}.scope",
    # kind: the kubelet's --cgroup-root, below the node container's own cgroup
    f"/docker/{CID}/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
    f"kubelet-kubepods-besteffort-pod{ESC}.slice/cri-containerd-{CID}.scope",
    # read from inside another pod's cgroup namespace: the ancestors show as ".."
    f"/../../kubepods-besteffort-pod{ESC}.slice/cri-containerd-{CID}.scope",
    f"/../../../kubepods-pod{ESC}.slice/cri-containerd-{CID}.scope",
    f"/../../pod{UID}/{CID}",
    f"/../besteffort/pod{UID}/{CID}",
]


@pytest.mark.parametrize("path", KUBELET_PATHS)
def test_every_kubelet_layout_names_the_pod(path: str) -> None:
    assert pod_uid_in_path(path) == UID


NOT_A_POD = [
    f"/kubepods/burstable/pod{UID}x/{CID}",  # the UID as a substring of a longer name
    f"/kubepods/burstable/xpod{UID}/{CID}",
    f"/kubepods/burstable/{UID}/{CID}",  # no "pod" prefix
    f"/user.slice/pod{UID}/{CID}",  # not below kubepods
    f"/kubepods/guaranteed/pod{UID}",  # no such QoS directory
    f"/pod{UID}",
    f"/kubepods/burstable/pod{ESC}/{CID}",  # cgroupfs never escapes
    f"/kubepods.slice/kubepods-burstable-pod{ESC}.slice/{CID}",  # parent slice missing
    f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID}.slice/x",  # dashes
    f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{ESC}.slice.bak/x",
    f"/kubepods.slice/kubepods-burstable.slice/other-burstable-pod{ESC}.slice/x",
    f"/kubepods/burstable/pod{UID.upper()}/{CID}",
    f"/kubepods/burstable/pod{UID[:-1]}/{CID}",
    "/",
    "",
]


@pytest.mark.parametrize("path", NOT_A_POD)
def test_near_misses_name_no_pod(path: str) -> None:
    assert pod_uid_in_path(path) is None


def test_a_pod_cgroup_nested_below_another_pod_names_the_outer_one() -> None:
    # A pod allowed to make cgroups can only make them below its own.
    path = f"/kubepods/burstable/pod{OTHER}/{CID}/kubepods/pod{UID}/x"
    assert pod_uid_in_path(path) == OTHER
    systemd = (
        f"/kubepods.slice/kubepods-pod{OTHER.replace('-', '_')}.slice/x.scope/"
        f"kubepods.slice/kubepods-pod{ESC}.slice/y.scope"
    )
    assert pod_uid_in_path(systemd) == OTHER


def v1(path: str) -> str:
    return "\n".join(
        [
            f"12:pids:{path}",
            "11:rdma:/",
            f"10:memory:{path}",
            f"4:cpu,cpuacct:{path}",
            f"1:name=systemd:{path}",
            "0::/",
            "",
        ]
    )


def test_v1_and_v2_files_name_the_pod() -> None:
    path = f"/kubepods/burstable/pod{UID}/{CID}"
    assert pod_uid_of_process(v1(path)) == UID
    assert pod_uid_of_process(f"0::{path}\n") == UID
    assert pod_uid_of_process("0::/user.slice/session-1.scope\n") is None


def test_a_path_holding_colons_is_read_whole() -> None:
    assert pod_uid_of_process(f"0::/kubepods/pod{UID}/a:b\n") == UID


@pytest.mark.parametrize(
    "text",
    [
        # a cgroup name holding a newline forges a line: a hierarchy twice, or two pods
        f"0::/kubepods/pod{OTHER}/c/x\n0::/kubepods/pod{UID}/c\n",
        f"1:name=systemd:/kubepods/pod{OTHER}/c/x\n2:pids:/kubepods/pod{UID}/c\n",
        f"0::/kubepods/pod{OTHER}/c/x\nkubepods/pod{UID}\n",
        f"0::/x\nnot a line\n0::/kubepods/pod{UID}/c",
        f"a::/kubepods/pod{UID}/c\n",
        f"0::kubepods/pod{UID}/c\n",
    ],
)
def test_a_file_the_kernel_would_not_write_names_no_pod(text: str) -> None:
    assert pod_uid_of_process(text) is None


@pytest.mark.parametrize(
    "hostile", ["", "../", "*", "pod", UID + "\n", UID[:-1] + "*", f"{UID}/..", "x" * 10_000]
)
def test_a_uid_that_is_not_a_uuid_is_refused_clearly(hostile: str) -> None:
    with pytest.raises(InvalidPodUidError, match="is not a UUID") as caught:
        checked_uid(hostile)
    assert len(str(caught.value)) < 200
    assert isinstance(caught.value, ValueError)


def test_a_uid_in_capitals_is_the_kubelets_lower_case_one() -> None:
    assert checked_uid(UID.upper()) == UID


def test_start_ticks_is_field_22_even_when_the_name_holds_parentheses() -> None:
    rest = " ".join(str(n) for n in range(3, 53))  # fields 3..52: field 22 holds "22"
    assert start_ticks(f"1234 (sleep) S {rest[2:]}") == 22
    assert start_ticks(f"1234 (a) b) (c) S {rest[2:]}") == 22
    with pytest.raises(ValueError):
        start_ticks("1234 no parenthesis")


# -- a /proc laid out by hand: the branches real processes cannot be made to take ----------


def fake_process(proc: Path, pid: int, cgroup: str | bytes, ticks: int = 100) -> None:
    directory = proc / str(pid)
    (directory / "ns").mkdir(parents=True)
    (directory / "ns" / "net").write_text("")  # a file: its inode stands for a namespace
    data = cgroup if isinstance(cgroup, bytes) else cgroup.encode()
    (directory / "cgroup").write_bytes(data)
    rest = " ".join(["S", *("0" for _ in range(18)), str(ticks), "0"])
    (directory / "stat").write_text(f"{pid} (pause) {rest}\n")


def test_a_file_over_the_cap_or_a_stat_the_kernel_would_not_write_is_skipped(
    tmp_path: Path,
) -> None:
    proc, node = tmp_path / "proc", tmp_path / "node-netns"
    node.write_text("")
    huge = f"0::/kubepods/pod{UID}/" + "x" * CGROUP_FILE_CAP + "\n"
    fake_process(proc, 10, huge.encode())
    fake_process(proc, 11, f"0::/kubepods/pod{OTHER}/c\n")
    (proc / "11" / "stat").write_text("11 (truncated")
    fake_process(proc, 12, b"0::/kubepods/pod" + UID.encode() + b"/\xff\xfe\n", ticks=7)
    (proc / "self").mkdir()
    (proc / "١٢").mkdir()  # digits, but not ASCII ones: not a PID
    finder = SandboxFinder(proc, node)
    found = finder.scan()
    assert list(found) == [UID]
    assert (found[UID].pid, found[UID].start_ticks) == (12, 7)
    assert found[UID].netns == proc / "12" / "ns/net"
    assert finder.find(OTHER) is None


def test_the_nodes_namespace_must_be_readable(tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError, match=r"node network namespace .*missing: No such file"):
        SandboxFinder(tmp_path, tmp_path / "missing")


def test_an_unreadable_proc_is_a_clear_error(tmp_path: Path) -> None:
    node = tmp_path / "node"
    node.write_text("")
    finder = SandboxFinder(tmp_path / "no-proc", node)
    with pytest.raises(DiscoveryError, match=r"cannot list .*no-proc: No such file"):
        finder.scan()


def test_the_earliest_start_wins_over_the_lowest_pid(tmp_path: Path) -> None:
    # PIDs wrap around: a later PID may be the older process.
    proc, node = tmp_path / "proc", tmp_path / "node-netns"
    node.write_text("")
    fake_process(proc, 30, f"0::/kubepods/pod{UID}/app\n", ticks=50)
    fake_process(proc, 31, f"0::/kubepods/pod{UID}/pause\n", ticks=40)
    found = SandboxFinder(proc, node).find(UID)
    assert found is not None
    assert (found.pid, found.start_ticks) == (31, 40)


def test_a_fresh_process_reads_its_own_age_on_the_kernels_clock() -> None:
    # The init container's "since_start_ms" (make bench reads it) and the agent's sandbox
    # ages come from helper.system.process_clock.
    probe = "from helper import report; print(report.since_process_start_ms())"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert 0 < float(done.stdout) < 60_000
