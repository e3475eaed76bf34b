"""Finding a pod's network namespace on this node from its UID, through `/proc/*/cgroup`.

Every process of a pod (the sandbox's pause process, then its containers) lives in a cgroup
named after the pod's UID (see cgroup_paths). The pod's sandbox is the earliest of them
outside the node's network namespace; its `/proc/PID/ns/net` is the pod's network namespace.
podnat never touches the node's namespace: a pod whose processes are all in it is refused
(a hostNetwork pod), unless they are younger than SETTLE_S. While a sandbox is created,
the runtime's `runc init` is in the pod's cgroup before it joins the sandbox's namespace,
for a moment the pod's only process: seen then, the pod is starting, not on the host network.

Processes come and go while /proc is read: one that vanishes, or that this process may not
read, is skipped. Each file is read through a descriptor of its /proc/PID directory, which
keeps naming the same process even if the PID is reused meanwhile, with a size cap.

A pass reads only the processes it has not classified before. A process's cgroup and network
namespace change only while the runtime sets it up (runc's init, milliseconds; under load
about a second): one older than STEADY_S is classified for its life, and so is one already in
a pod's cgroup and outside the node's namespace, where the runtime puts a container's
processes before they run (a starting pod's own processes were most of what each pass
read again, ten times a second, while 20 pods started). Its /proc/PID entry's
inode, from the listing, tells it from a successor under the same PID (the kernel gives a new
process a new inode). Reading every process's files at each pass cost 3.4-5.2 ms of CPU for
113 processes on the dev VM, ten times a second while pods start; a pass that reads nothing
new costs 0.1 ms.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import NamedTuple

from helper.agent.cgroup_paths import checked_uid, pod_uid_of_process
from helper.errors import ExitCode, PodnatError
from helper.system import process_clock

_log = logging.getLogger("podnat.agent.sandboxes")

SETTLE_S = 5.0  # runc's init lives for milliseconds in the node's namespace, under load ~1 s
STEADY_S = 5.0  # by then a process's cgroup and namespace are the ones it keeps
CGROUP_FILE_CAP = 64 * 1024  # 14 v1 hierarchies of long paths fit; a forged giant is skipped
STAT_FILE_CAP = 4096  # one line; the command name in it is at most 64 bytes
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# runc's own processes while it starts a container (nsexec's stages 0 and 1, by the names
# they give themselves). Stage 1 joins the pod's namespaces, forks the container's process
# and exits: caught in a pass, it was taken for the sandbox, then the pause process after it
# for a new sandbox, and the pod's condition went False and True again (2-5 of 20 starting
# pods per round in kind). Stage 2 inherits stage 1's name for a moment, then renames
# itself: a helper is read whole again at each pass, so stage 2 counts once renamed.
RUNTIME_HELPERS = frozenset({"runc:[0:PARENT]", "runc:[1:CHILD]"})


class Sandbox(NamedTuple):
    pid: int
    start_ticks: int  # since boot, in clock ticks: (pid, start_ticks) names one process
    netns: Path  # <proc>/<pid>/ns/net, to open
    inode: int  # of that network namespace


class DiscoveryError(PodnatError):
    """The node's processes cannot be read the way discovery needs."""

    exit_code = ExitCode.SOURCE


class NodeNamespaceError(DiscoveryError):
    """A pod's processes are in the node's own network namespace (a hostNetwork pod)."""


class _Process(NamedTuple):
    start_ticks: int
    pid: int
    netns: tuple[int, int]  # (st_dev, st_ino): one namespace


class _Classified(NamedTuple):
    inode: int  # of its /proc/PID entry: a successor under the same PID has another
    pod: tuple[str, _Process] | None  # (pod UID, process), or None: no pod's process


class SandboxFinder:
    """Pod UID → sandbox, for the pods running on this node. Safe to share between threads."""

    def __init__(
        self,
        proc: Path = Path("/proc"),
        node_netns: Path = Path("/proc/1/ns/net"),
        settle: float = SETTLE_S,
        steady: float = STEADY_S,
    ) -> None:
        self._proc, self._settle, self._steady_after = proc, settle, steady
        try:
            node = node_netns.stat()
        except OSError as err:
            raise DiscoveryError(
                f"node network namespace {node_netns}: {err.strerror}: podnat must know the "
                "node's namespace to never touch it"
            ) from err
        self._node_netns = (node.st_dev, node.st_ino)
        self._lock = threading.Lock()
        self._known: dict[str, tuple[int, int]] = {}  # uid -> (pid, start_ticks)
        self._final: dict[int, _Classified] = {}  # pid -> its answer, once `steady` old
        self._young: dict[int, tuple[int, int]] = {}  # pid -> (entry inode, start ticks)
        self._proc_dir = str(proc)  # joined as text: pathlib was a fifth of a pass's CPU

    def find(self, pod_uid: str, *, scan: bool = True) -> Sandbox | None:
        """The pod's sandbox; None when no process of the pod runs here.

        Raises InvalidPodUidError (a ValueError) for a UID that is not a UUID, and
        NodeNamespaceError when the pod's sandbox is in the node's network namespace.
        Cheap when asked again: the sandbox found last is re-read alone while it lives.
        With `scan=False`, a pod not found before is None without a pass over /proc
        (the agent's SandboxWatch makes one pass for every pod it waits for).
        """
        uid = checked_uid(pod_uid)
        with self._lock:
            known = self._known.get(uid)
            if known is not None:
                again = self._reread(uid, *known)
                if again is None:  # gone, or a zombie with no namespace: not a final answer
                    self._final.pop(known[0], None)
                # One in the node's namespace may be runc's init, the pod's sandbox to come:
                # a scan looks at every process of the pod.
                if again is not None and (again.netns != self._node_netns or not scan):
                    return self._sandbox(uid, [again])
            if not scan:
                return None
            processes = self._scan_locked().get(uid)
        return None if processes is None else self._sandbox(uid, processes)

    def scan(self) -> dict[str, Sandbox]:
        """Every pod seen on the node → its sandbox, in one pass over /proc.

        Pods in the node's network namespace are left out (find() raises for them).
        """
        with self._lock:
            pods = self._scan_locked()
        found = {}
        for uid, processes in pods.items():
            try:
                sandbox = self._sandbox(uid, processes)
            except NodeNamespaceError:
                _log.debug("pod %s is in the node's network namespace: left out", uid)
                continue
            if sandbox is not None:
                found[uid] = sandbox
        return found

    def present(self) -> set[str]:
        """The UID of every pod with a sandbox on the node (or refused: find() says why),
        in one pass over /proc; after it, find(uid, scan=False) knows each of them."""
        with self._lock:
            pods = self._scan_locked()
        return {uid for uid, processes in pods.items() if not self._settling(processes)}

    # -- the pass over /proc ---------------------------------------------------------------

    def _scan_locked(self) -> dict[str, list[_Process]]:
        pods: dict[str, list[_Process]] = {}
        final: dict[int, _Classified] = {}
        young: dict[int, tuple[int, int]] = {}
        for pid, inode in self._pids():
            known = self._final.get(pid)
            if known is not None and known.inode == inode:
                seen = known.pod
                final[pid] = known
            else:
                # A process read before keeps its start: only its cgroup is read again.
                before = self._young.get(pid)
                start = before[1] if before is not None and before[0] == inode else None
                seen, ticks = self._read(pid, None, start)
                # Inode 1: the kernel could not say which process the entry was.
                if inode > 1 and ticks is not None:
                    if self._final_answer(seen, ticks):
                        final[pid] = _Classified(inode, seen)
                    else:
                        young[pid] = (inode, ticks)
            if seen is not None:
                pods.setdefault(seen[0], []).append(seen[1])
        # Processes gone since the last pass are forgotten.
        self._final, self._young = final, young
        for processes in pods.values():
            processes.sort()  # earliest start first; the PID breaks a tie within a tick
        chosen = {uid: self._earliest(ps) for uid, ps in pods.items()}
        self._known = {uid: (p.pid, p.start_ticks) for uid, p in chosen.items()}
        return pods

    def _final_answer(self, seen: tuple[str, _Process] | None, ticks: int) -> bool:
        placed = seen is not None and seen[1].netns != self._node_netns
        return placed or process_clock.age(ticks) >= self._steady_after

    def _pids(self) -> list[tuple[int, int]]:
        """(PID, inode of its /proc entry) of every process; the inode comes with the listing."""
        try:
            with os.scandir(self._proc) as entries:
                return [
                    (int(e.name), e.inode())
                    for e in entries
                    if e.name.isascii() and e.name.isdigit()
                ]
        except OSError as err:
            raise DiscoveryError(f"cannot list {self._proc}: {err.strerror}") from err

    def _reread(self, uid: str, pid: int, ticks: int) -> _Process | None:
        """The process found before, if it still runs and still belongs to the pod."""
        seen, _ = self._read(pid, uid)
        if seen is None or seen[1].start_ticks != ticks:
            return None
        return seen[1]

    def _read(
        self, pid: int, want_uid: str | None, ticks: int | None = None
    ) -> tuple[tuple[str, _Process] | None, int | None]:
        """(pod UID, process) when the process belongs to a pod (to that one, if given), else
        None; and the process's start in ticks (read unless given), None when it could not
        be read."""
        try:
            directory = os.open(f"{self._proc_dir}/{pid}", _DIRECTORY)
        except OSError:
            return None, None  # gone
        try:
            if ticks is None:
                stat = _read_capped("stat", directory, STAT_FILE_CAP)
                if _command(stat) in RUNTIME_HELPERS:
                    return None, None  # no pod's process (yet): read whole again next time
                ticks = process_clock.start_ticks(stat)
            uid = pod_uid_of_process(_read_capped("cgroup", directory, CGROUP_FILE_CAP))
            if uid is None or (want_uid is not None and uid != want_uid):
                return None, ticks
            netns = os.stat("ns/net", dir_fd=directory)
        except (OSError, ValueError, IndexError) as err:
            # Gone mid-read (ESRCH, ENOENT), not ours to read (EACCES), or not the kernel's
            # format: skipped, as a process that is not there, and read again next time.
            _log.debug("process %d skipped: %s", pid, err)
            return None, None
        finally:
            os.close(directory)
        return (uid, _Process(ticks, pid, (netns.st_dev, netns.st_ino))), ticks

    # -- the answer --------------------------------------------------------------------

    def _earliest(self, processes: list[_Process]) -> _Process:
        """The earliest process outside the node's namespace, else the earliest."""
        return next((p for p in processes if p.netns != self._node_netns), processes[0])

    def _settling(self, processes: list[_Process]) -> bool:
        """All in the node's namespace, and young: a sandbox being created (runc's init)."""
        first = self._earliest(processes)
        return (
            first.netns == self._node_netns and process_clock.age(first.start_ticks) < self._settle
        )

    def _sandbox(self, uid: str, processes: list[_Process]) -> Sandbox | None:
        """The pod's sandbox; None while it is being created; NodeNamespaceError."""
        first = self._earliest(processes)
        others = {p.netns for p in processes} - {first.netns, self._node_netns}
        if others:
            _log.debug(
                "pod %s has processes in %d other network namespace(s); using pid %d's, "
                "the earliest",
                uid,
                len(others),
                first.pid,
            )
        if first.netns == self._node_netns:
            if self._settling(processes):
                _log.debug("pod %s: only runc's init so far (pid %d)", uid, first.pid)
                return None
            raise NodeNamespaceError(
                f"pod {uid}: its sandbox (pid {first.pid}) is in the node's network namespace; "
                "podnat never touches the node's namespace"
            )
        return Sandbox(
            first.pid, first.start_ticks, self._proc / str(first.pid) / "ns/net", first.netns[1]
        )


def _command(stat_text: str) -> str:
    """/proc/PID/stat's second field: the command name, between the first "(" and the last ")"."""
    return stat_text[stat_text.find("(") + 1 : stat_text.rfind(")")]


def _read_capped(name: str, directory: int, cap: int) -> str:
    """A /proc file through the process's directory; ValueError when it exceeds `cap`."""
    fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=directory)
    try:
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, cap + 1 - size):
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                raise ValueError(f"{name} is over {cap} bytes")
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "surrogateescape")
