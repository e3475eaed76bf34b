"""Which pod a process belongs to, read from its cgroup paths as the kubelet lays them out.

Pure text parsing of `/proc/PID/cgroup`, for every layout the kubelet makes:

    cgroupfs driver  .../kubepods[/burstable|/besteffort]/pod<uid>/<container>
    systemd driver   .../kubepods.slice[/kubepods-burstable.slice]/
                         kubepods[-burstable]-pod<uid with _ for ->.slice/cri-containerd-<id>.scope

on cgroup v1 (`ID:controllers:/path`, one line per hierarchy) and v2 (`0::/path`), below any
prefix (a kind node's own cgroup, the kubelet's `--cgroup-root`, e.g. `kubelet.slice/
kubelet-kubepods.slice/...`). A reader in its own cgroup namespace (a pod) sees the paths of
other pods relative to its root, starting with `/..`: the hidden ancestors are accepted then.

The UID must be a whole path component in the kubelet's exact form and position, and the
outermost one wins: a pod that may create cgroups can nest `pod<victim>` only *below* its own
pod cgroup, where it is never read as the victim's.
"""

from __future__ import annotations

import re

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SYSTEMD_POD = re.compile(r"(.+)-pod([0-9a-f_]{36})\.slice")
_QOS_CLASSES = ("burstable", "besteffort")
_QOS_SLICE_WORDS = (["kubepods", "burstable"], ["kubepods", "besteffort"])
# cgroup names cannot be "..", so a leading run of them is the kernel's own doing.
_HIDDEN = ".."


class InvalidPodUidError(ValueError):
    """A pod UID that is not a UUID: looked up nowhere, so it can match nothing broadly."""


def checked_uid(pod_uid: str) -> str:
    """The UID in the kubelet's (lower-case) spelling, or InvalidPodUidError."""
    if len(pod_uid) == 36 and UUID.fullmatch(pod_uid.lower()):
        return pod_uid.lower()
    shown = pod_uid if len(pod_uid) <= 64 else pod_uid[:64] + "..."
    raise InvalidPodUidError(
        f"pod UID {shown!r} is not a UUID (8-4-4-4-12 hex digits): "
        "podnat looks up no other value in the node's cgroups"
    )


def pod_uid_of_process(cgroup_text: str) -> str | None:
    """The UID of the pod whose cgroups hold the process, or None.

    None too when the file is not what the kernel writes (a line it cannot parse, a hierarchy
    twice: a cgroup name holding a newline forges lines) or when its lines name two pods.
    """
    # A pod's cgroup is a path component `pod<uid>` (cgroupfs) or `...-pod<uid>.slice`
    # (systemd): most processes of a node have neither, and need no further reading.
    if "/pod" not in cgroup_text and "-pod" not in cgroup_text:
        return None
    # The agent reads every process's file at each scan: each distinct path is walked once
    # (on cgroup v1 most hierarchies repeat the same path).
    hierarchies: set[str] = set()
    paths: set[str] = set()
    lines = 0
    for line in cgroup_text.split("\n"):
        if not line:
            continue
        hierarchy, _, rest = line.partition(":")
        _, colon, path = rest.partition(":")
        if not colon or not hierarchy.isdecimal() or not path.startswith("/"):
            return None
        hierarchies.add(hierarchy)
        paths.add(path)
        lines += 1
    if len(hierarchies) != lines:
        return None
    uids = {pod_uid_in_path(path) for path in paths}
    uids.discard(None)
    return uids.pop() if len(uids) == 1 else None


def pod_uid_in_path(path: str) -> str | None:
    """The UID of the outermost pod cgroup on one cgroup path, or None."""
    if "pod" not in path:  # most lines of most processes: skipped cheaply
        return None
    parts = path.split("/")[1:]
    for index, part in enumerate(parts):
        if "pod" not in part:
            continue
        uid = _cgroupfs_pod(parts, index) or _systemd_pod(parts, index)
        if uid is not None:
            return uid
    return None


def _cgroupfs_pod(parts: list[str], index: int) -> str | None:
    uid = parts[index][3:]
    if not (parts[index].startswith("pod") and UUID.fullmatch(uid)):
        return None
    ancestors = parts[:index]
    if ancestors and ancestors[-1] in _QOS_CLASSES:
        ancestors = ancestors[:-1]
    if ancestors and ancestors[-1] == "kubepods":
        return uid
    return uid if _only_hidden(ancestors) else None


def _systemd_pod(parts: list[str], index: int) -> str | None:
    match = _SYSTEMD_POD.fullmatch(parts[index])
    if match is None:
        return None
    parent_slice, escaped_uid = match.group(1), match.group(2)
    words = parent_slice.split("-")
    if words[-1] != "kubepods" and words[-2:] not in _QOS_SLICE_WORDS:
        return None
    # systemd spells a slice's whole ancestry in its name: the parent is the name's prefix.
    ancestors = parts[:index]
    if not (ancestors and ancestors[-1] == parent_slice + ".slice") and not _only_hidden(ancestors):
        return None
    uid = escaped_uid.replace("_", "-")
    return uid if UUID.fullmatch(uid) else None


def _only_hidden(ancestors: list[str]) -> bool:
    return bool(ancestors) and all(part == _HIDDEN for part in ancestors)
