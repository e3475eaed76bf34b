"""Run as a non-root user: what `podnat agent` does to reach a pod's network namespace.

    python -m tests.netns.netns_probe PID NETNS_PATH [--no-new-privs-as UID BOUNDING HELD]

Prints one JSON object: whether it could open `/proc/PID/ns/net` (a process of another
user: a ptrace access check, CAP_SYS_PTRACE) before and after
`raise_permitted()`, and whether `setns()` into NETNS_PATH (readable by anyone:
CAP_SYS_ADMIN alone) then worked, with the inode it ended up in.

With `--no-new-privs-as`, it starts as root and first becomes what a container runtime
starts for a non-root container with `allowPrivilegeEscalation: false`: user UID, the
capabilities BOUNDING in its bounding set and HELD in its permitted and effective sets
(comma-separated numbers, may be empty), the no_new_privs flag set; then it re-executes
itself (without the option) through the interpreter named by PROBE_PYTHON, whose file
capabilities decide what it gets.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import sys
from pathlib import Path

from helper.system.privileges import raise_permitted

CLONE_NEWNET = 0x40000000
PR_SET_KEEPCAPS, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 8, 24, 38
LAST_CAP = 40
_libc = ctypes.CDLL(None, use_errno=True)


def attempt_open(path: str) -> tuple[str, int | None]:
    try:
        return "ok", os.open(path, os.O_RDONLY)
    except OSError as err:
        return errno.errorcode.get(err.errno or 0, str(err.errno)), None


def attempt_setns(path: str) -> str:
    result, fd = attempt_open(path)
    if fd is None:
        return f"open {result}"
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            return errno.errorcode[ctypes.get_errno()]
        return "ok"
    finally:
        os.close(fd)


def probe(pid: int, netns: str) -> dict[str, object]:
    pod_netns = f"/proc/{pid}/ns/net"
    before, fd = attempt_open(pod_netns)
    if fd is not None:
        os.close(fd)
    raise_permitted()
    after, fd = attempt_open(pod_netns)
    if fd is not None:
        os.close(fd)
    return {
        "uid": os.getuid(),
        "open_before_raise": before,
        "open_after_raise": after,
        "setns": attempt_setns(netns),
        "inode": Path("/proc/self/ns/net").stat().st_ino,
    }


def become_container(uid: int, bounding: list[int], held: list[int]) -> None:
    """What runc does for a non-root process with allowPrivilegeEscalation: false."""

    class Header(ctypes.Structure):
        _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))

    class Data(ctypes.Structure):
        _fields_ = (
            ("effective", ctypes.c_uint32),
            ("permitted", ctypes.c_uint32),
            ("inheritable", ctypes.c_uint32),
        )

    for cap in range(LAST_CAP + 1):
        if cap not in bounding:
            _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    _libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    mask = sum(1 << cap for cap in held)
    data = (Data * 2)()
    data[0].permitted = data[0].effective = mask & 0xFFFFFFFF
    data[1].permitted = data[1].effective = mask >> 32
    if _libc.capset(ctypes.byref(Header(0x20080522, 0)), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")


def main(argv: list[str]) -> None:
    pid, netns = int(argv[0]), argv[1]
    if argv[2:3] == ["--no-new-privs-as"]:
        bounding, held = ([int(c) for c in arg.split(",") if c] for arg in argv[4:6])
        become_container(int(argv[3]), bounding, held)
        python = os.environ["PROBE_PYTHON"]
        argv = [python, "-m", "tests.netns.netns_probe", str(pid), netns]
        os.execv(python, argv)  # noqa: S606 - the interpreter the test made, no shell
    print(json.dumps(probe(pid, netns)))  # noqa: T201 - read by the test


if __name__ == "__main__":
    main(sys.argv[1:])
