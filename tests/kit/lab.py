"""A throwaway network lab on the real kernel: a "pod" namespace and client namespaces.

    client-a (10.77.1.2, fd77:1::2) ── veth ── pod (10.77.1.1, fd77:1::1)
    client-b (10.77.2.2, fd77:2::2) ── veth ── pod (10.77.2.1, fd77:2::1)

Sockets are opened from a short-lived thread that has entered the namespace
(setns affects only the calling thread), so servers and clients run in-process
and test traffic never leaves namespaces the lab created.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def sh(*argv: str, check: bool = True, stdin: str | None = None) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}")
    return done.stdout


@dataclass
class Netns:
    name: str

    @property
    def path(self) -> Path:
        return Path("/run/netns") / self.name

    def run(self, *argv: str, check: bool = True, stdin: str | None = None) -> str:
        return sh("ip", "netns", "exec", self.name, *argv, check=check, stdin=stdin)

    def call(self, fn: Callable[[], T]) -> T:
        """Run fn in a thread that has entered this namespace; return its result."""
        box: dict[str, object] = {}

        def body() -> None:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
                box["value"] = fn()
            except BaseException as err:  # handed to the caller below
                box["error"] = err
            finally:
                os.close(fd)

        thread = threading.Thread(target=body)
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box["value"]  # type: ignore[return-value]

    def socket(self, family: int, kind: int) -> socket.socket:
        return self.call(lambda: socket.socket(family, kind))


@dataclass
class Lab:
    pod: Netns
    client_a: Netns
    client_b: Netns
    servers: list[socket.socket] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    POD_A4, CLIENT_A4 = "10.77.1.1", "10.77.1.2"
    POD_B4, CLIENT_B4 = "10.77.2.1", "10.77.2.2"
    POD_A6, CLIENT_A6 = "fd77:1::1", "fd77:1::2"
    POD_B6, CLIENT_B6 = "fd77:2::1", "fd77:2::2"

    @classmethod
    @contextlib.contextmanager
    def create(cls) -> Iterator[Lab]:
        tag = uuid.uuid4().hex[:6]
        names = [f"pnt-{tag}-{role}" for role in ("pod", "a", "b")]
        created: list[str] = []
        lab = None
        try:
            for name in names:
                sh("ip", "netns", "add", name)
                created.append(name)
                sh("ip", "-n", name, "link", "set", "lo", "up")
            pod, a, b = (Netns(n) for n in names)
            lab = cls(pod, a, b)
            lab._wire(
                a,
                "a",
                pod4=cls.POD_A4,
                cli4=cls.CLIENT_A4,
                pod6=cls.POD_A6,
                cli6=cls.CLIENT_A6,
                tag=tag,
            )
            lab._wire(
                b,
                "b",
                pod4=cls.POD_B4,
                cli4=cls.CLIENT_B4,
                pod6=cls.POD_B6,
                cli6=cls.CLIENT_B6,
                tag=tag,
            )
            yield lab
        finally:
            if lab is not None:
                lab.stop_servers()
            for name in created:
                sh("ip", "netns", "del", name, check=False)

    def _wire(
        self, client: Netns, side: str, *, pod4: str, cli4: str, pod6: str, cli6: str, tag: str
    ) -> None:
        pod_if, cli_if = f"p{side}{tag}", f"c{side}{tag}"
        sh(
            "ip",
            "link",
            "add",
            pod_if,
            "netns",
            self.pod.name,
            "type",
            "veth",
            "peer",
            "name",
            cli_if,
            "netns",
            client.name,
        )
        for ns, ifname, addr4, addr6 in (
            (self.pod, pod_if, pod4, pod6),
            (client, cli_if, cli4, cli6),
        ):
            sh("ip", "-n", ns.name, "addr", "add", f"{addr4}/24", "dev", ifname)
            sh("ip", "-n", ns.name, "addr", "add", f"{addr6}/64", "dev", ifname, "nodad")
            sh("ip", "-n", ns.name, "link", "set", ifname, "up")

    # -- servers: each answers with the port it really listens on --------------------

    def serve(
        self, ns: Netns, port: int, proto: str = "tcp", family: int = socket.AF_INET6
    ) -> None:
        """A dual-stack server in `ns` that replies b"served-by:<port>"."""
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        sock = ns.socket(family, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
        sock.settimeout(0.2)
        if kind == socket.SOCK_STREAM:
            sock.listen(16)
        self.servers.append(sock)
        reply = f"served-by:{port}".encode()
        threading.Thread(target=self._loop, args=(sock, kind, reply), daemon=True).start()

    def _loop(self, sock: socket.socket, kind: int, reply: bytes) -> None:
        while not self._stop.is_set():
            try:
                if kind == socket.SOCK_STREAM:
                    conn, _ = sock.accept()
                    with conn:
                        conn.sendall(reply)
                else:
                    _, peer = sock.recvfrom(512)
                    sock.sendto(reply, peer)
            except (TimeoutError, OSError):
                continue

    def stop_servers(self) -> None:
        self._stop.set()
        for sock in self.servers:
            sock.close()

    # -- clients ------------------------------------------------------------------------

    @staticmethod
    def ask(ns: Netns, host: str, port: int, proto: str = "tcp", timeout: float = 2.0) -> str:
        """Connect from `ns` and return what the server said, or a short failure word."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        sock = ns.socket(family, kind)
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
            if kind == socket.SOCK_DGRAM:
                sock.send(b"ping")
            return sock.recv(512).decode()
        except ConnectionRefusedError:
            return "refused"
        except TimeoutError:
            return "timeout"
        finally:
            sock.close()
