"""A node for `podnat agent` tests: a Node object, pods bound to it, and their "sandboxes".

Each sandbox is a `sleep` in a network namespace the test made, placed in a cgroup
laid out as the kubelet's cgroupfs driver does (`kubepods/besteffort/pod<UID>/<id>`)
on a named cgroup-v1 hierarchy mounted for the session. No kubelet, no scheduler.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from kubernetes import client, watch

from helper.engine import Engine
from helper.errors import ExitCode
from helper.host.base import Target
from helper.host.kernel import KernelHost
from helper.plan.parse import parse_plan
from tests.kit.lab import Netns, sh

T = TypeVar("T")
CONDITION = "podnat.io/redirects-applied"
LABEL = {"podnat.io/inject": "enabled"}


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 20.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def cgroup_hierarchy(directory: Path) -> Iterator[Path]:
    name = f"podnat{uuid.uuid4().hex[:8]}"
    directory.mkdir(parents=True, exist_ok=True)
    sh("mount", "-t", "cgroup", "-o", f"none,name={name}", "cgroup", str(directory))
    try:
        yield directory
    finally:
        # A killed process leaves its cgroup a moment after it is reaped (EBUSY until then).
        deadline = time.monotonic() + 5
        for path in sorted(directory.rglob("*"), key=lambda p: -len(p.parts)):
            while path.is_dir():
                try:
                    path.rmdir()
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        sh("umount", str(directory))


@dataclass
class Sandbox:
    netns: Netns | None  # None: the process runs in the node's (this test's) namespace
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        if self.netns is not None:
            sh("ip", "netns", "del", self.netns.name, check=False)
            self.netns = None


@dataclass
class PodHandle:
    namespace: str
    name: str
    uid: str
    sandbox: Sandbox | None = None

    @property
    def netns(self) -> Netns:
        """The network namespace of its sandbox (a pod made with one, in a netns)."""
        assert self.sandbox is not None and self.sandbox.netns is not None, self.name
        return self.sandbox.netns


@dataclass
class AgentNode:
    """The Node object, its labelled and unlabelled namespaces, its pods and sandboxes."""

    core: client.CoreV1Api
    cgroups: Path
    name: str = field(default_factory=lambda: f"node-{uuid.uuid4().hex[:6]}")
    sandboxes: list[Sandbox] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)

    def create(self) -> None:
        self.core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name=self.name)))

    def namespace(self, labelled: bool = True) -> str:
        name = f"agent-{uuid.uuid4().hex[:8]}"
        labels = dict(LABEL) if labelled else {}
        meta = client.V1ObjectMeta(name=name, labels=labels)
        self.core.create_namespace(client.V1Namespace(metadata=meta))
        self.core.create_namespaced_service_account(
            name, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="default"))
        )
        self.namespaces.append(name)
        return name

    def pod(
        self,
        namespace: str,
        annotations: dict[str, str],
        *,
        host_network: bool = False,
        sandbox: str = "netns",  # netns | bare (loopback only: no CNI yet) | host | none
        labels: dict[str, str] | None = None,
        windows: bool = False,
    ) -> PodHandle:
        name = f"web-{uuid.uuid4().hex[:6]}"
        body = client.V1Pod(
            metadata=client.V1ObjectMeta(name=name, annotations=annotations, labels=labels),
            spec=client.V1PodSpec(
                node_name=self.name,
                os=client.V1PodOS(name="windows") if windows else None,
                host_network=host_network,
                automount_service_account_token=False,
                containers=[client.V1Container(name="app", image="app")],
            ),
        )
        made = self.core.create_namespaced_pod(namespace, body)
        assert made.metadata is not None and made.metadata.uid
        handle = PodHandle(namespace, name, made.metadata.uid)
        if sandbox != "none":
            in_netns = sandbox in ("netns", "bare")
            handle.sandbox = self.start_sandbox(
                handle.uid, in_netns=in_netns, wired=sandbox != "bare"
            )
        return handle

    def start_sandbox(self, uid: str, *, in_netns: bool = True, wired: bool = True) -> Sandbox:
        netns = Netns(f"pna-{uuid.uuid4().hex[:8]}") if in_netns else None
        argv = ["sleep", "3600"]
        if netns is not None:
            sh("ip", "netns", "add", netns.name)
            try:
                if wired:
                    wire(netns)
                else:
                    sh("ip", "-n", netns.name, "link", "set", "lo", "up")
            except RuntimeError:
                sh("ip", "netns", "del", netns.name, check=False)
                raise
            argv = ["ip", "netns", "exec", netns.name, *argv]  # execs sleep: same pid
        process = subprocess.Popen(argv)
        group = self.cgroups / "kubepods" / "besteffort" / f"pod{uid}" / uuid.uuid4().hex
        group.mkdir(parents=True)
        (group / "cgroup.procs").write_text(f"{process.pid}\n")
        made = Sandbox(netns, process)
        self.sandboxes.append(made)
        # `ip netns exec` has exec'd sleep once the netns shows in its ns/net link.
        if netns is not None:
            wait_for("the sandbox to enter its netns", lambda: _in(process.pid, netns), 5)
        return made

    def annotate(self, pod: PodHandle, annotations: Mapping[str, str | None]) -> None:
        self.core.patch_namespaced_pod(
            pod.name, pod.namespace, {"metadata": {"annotations": annotations}}
        )

    def condition(self, pod: PodHandle) -> tuple[str, str, str] | None:
        status = self.core.read_namespaced_pod_status(pod.name, pod.namespace).status
        for item in (status.conditions if status else None) or ():
            if item.type == CONDITION:
                return (item.status, item.reason or "", item.message or "")
        return None

    def events(self, pod: PodHandle) -> list[str]:
        listed = self.core.list_namespaced_event(
            pod.namespace, field_selector=f"involvedObject.name={pod.name}"
        )
        return [
            e.reason or ""
            for e in listed.items
            if e.source is not None and e.source.component == "podnat-agent"
        ]

    def cleanup(self) -> None:
        for box in self.sandboxes:
            if box.process.poll() is None or box.netns is not None:
                box.stop()
        for ns in self.namespaces:
            with contextlib.suppress(client.ApiException):
                self.core.delete_namespace(ns)
        with contextlib.suppress(client.ApiException):
            self.core.delete_node(self.name)


def wire(netns: Netns) -> None:
    """lo, and a global address of each family, as a pod has: the rules cover both."""
    name = netns.name
    sh("ip", "-n", name, "link", "set", "lo", "up")
    sh("ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "peer0")
    sh("ip", "-n", name, "link", "set", "peer0", "up")
    sh("ip", "-n", name, "addr", "add", "10.88.0.2/24", "dev", "eth0")
    sh("ip", "-n", name, "addr", "add", "fd88::2/64", "dev", "eth0", "nodad")
    sh("ip", "-n", name, "link", "set", "eth0", "up")


def _in(pid: int, netns: Netns) -> bool:
    try:
        return Path(f"/proc/{pid}/ns/net").stat().st_ino == netns.path.stat().st_ino
    except OSError:
        return False


def verified(netns: Netns, annotations: dict[str, str], backend: str = "auto") -> bool:
    """The kernel in `netns` holds exactly the plan of these annotations (podnat's verify)."""
    target = Target(netns.path, backend)
    outcome = Engine(KernelHost()).verify(parse_plan(annotations), target)
    return outcome.exit_code == ExitCode.OK


def table(netns: Netns) -> str:
    """podnat's nft table with its handles, or "" when there is none."""
    done = subprocess.run(
        ["ip", "netns", "exec", netns.name, "nft", "-a", "list", "table", "inet", "podnat"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout if done.returncode == 0 else ""


def has_condition(node: AgentNode, pod: object, status: str, reason: str) -> bool:
    found = node.condition(pod)  # type: ignore[arg-type]
    return found is not None and found[:2] == (status, reason)


@contextlib.contextmanager
def condition_history(
    core: client.CoreV1Api, pod: PodHandle, on_change: Callable[[tuple[str, str]], object]
) -> Iterator[list[tuple[str, str, object]]]:
    """Every (status, reason) our condition takes, as a watch sees them, with what
    `on_change` said at that moment (e.g. whether the rules were in)."""
    seen: list[tuple[str, str, object]] = []
    stop = threading.Event()

    def follow() -> None:
        # Each watch goes on from the last version seen: a change between two is not lost.
        since: dict[str, str] = {}
        while not stop.is_set():
            for event in watch.Watch().stream(  # type: ignore[no-untyped-call]
                core.list_namespaced_pod,
                pod.namespace,
                field_selector=f"metadata.name={pod.name}",
                timeout_seconds=1,
                **since,
            ):
                since["resource_version"] = event["object"].metadata.resource_version
                status = event["object"].status
                for item in (status.conditions if status else None) or ():
                    if item.type == CONDITION:
                        now = (item.status, item.reason or "")
                        if not seen or seen[-1][:2] != now:
                            seen.append((*now, on_change(now)))

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(5)
