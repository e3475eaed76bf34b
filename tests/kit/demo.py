"""`make demo`: podnat's main job, for real, in throwaway network namespaces.

A "pod" namespace runs a server on 1234. Two client namespaces reach it over veth.
podnat applies `podnat.io/redirect: "4321:1234"` with `podnat.io/redirect-sources`
set to client A's address. Client A reaches the server through 4321; client B is
refused. Everything is removed at the end, even on failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.kit.lab import Lab, Netns

POD_A, ADDR_A = Lab.POD_A4, Lab.CLIENT_A4
POD_B, ADDR_B = Lab.POD_B4, Lab.CLIENT_B4

SERVER = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 1234)); s.listen(8)
print("ready", flush=True)
while True:
    c, peer = s.accept(); c.sendall(b"hello from the app on port 1234\\n"); c.close()
"""
CLIENT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], 4321), timeout=2)
    print(c.recv(100).decode().strip())
except OSError as err:
    print(f"connection failed: {err.strerror or err}")
    sys.exit(1)
"""


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, text=True, capture_output=True)


def connect(client: Netns, address: str) -> tuple[bool, str]:
    done = subprocess.run(
        ["ip", "netns", "exec", client.name, sys.executable, "-c", CLIENT, address],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode == 0, done.stdout.strip()


def podnat(pod: Netns, *args: str) -> None:
    argv = [sys.executable, "-m", "helper.cli", *args, "--netns", str(pod.path)]
    print("$ podnat " + " ".join(args) + f" --netns {pod.path}", flush=True)
    subprocess.run(argv, check=True)


@contextmanager
def served(pod: Netns) -> Iterator[None]:
    """The app: a server on 1234 in the pod, up when this yields, killed after."""
    server = subprocess.Popen(
        ["ip", "netns", "exec", pod.name, sys.executable, "-c", SERVER],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if server.stdout is None or not server.stdout.readline():
            raise RuntimeError("the demo server did not start")
        yield
    finally:
        server.kill()
        server.wait()


def main() -> int:
    if os.geteuid() != 0:
        print("make demo creates network namespaces: run it as root", file=sys.stderr)
        return 1
    say(f"a pod namespace ({POD_A}, {POD_B}) and two clients (A {ADDR_A}, B {ADDR_B})")
    # The lab removes its namespaces at the end, even on failure.
    with Lab.create() as lab, served(lab.pod), tempfile.TemporaryDirectory() as tmp:
        print("app listening on port 1234 in the pod")
        annotations = Path(tmp) / "annotations"
        annotations.write_text(
            f'podnat.io/redirect="4321:1234"\npodnat.io/redirect-sources="{ADDR_A}"\n'
        )
        say("the pod's annotations (Downward API file)")
        print(annotations.read_text(), end="")
        say("podnat apply: installs the rules and logs them")
        started = time.perf_counter()
        podnat(lab.pod, "apply", "--annotations-file", str(annotations))
        print(f"(took {1000 * (time.perf_counter() - started):.0f} ms)")

        say(f"client A ({ADDR_A}, listed) connects to {POD_A}:4321")
        ok_a, text_a = connect(lab.client_a, POD_A)
        print(text_a)
        say(f"client B ({ADDR_B}, not listed) connects to {POD_B}:4321")
        ok_b, text_b = connect(lab.client_b, POD_B)
        print(text_b)

        say("podnat verify, then cleanup")
        podnat(lab.pod, "verify", "--annotations-file", str(annotations))
        podnat(lab.pod, "cleanup")
    if ok_a and not ok_b:
        say("demo passed: A was redirected to 1234, B was refused")
        return 0
    say("demo FAILED: expected A to connect and B to be refused")
    return 1


if __name__ == "__main__":
    sys.exit(main())
