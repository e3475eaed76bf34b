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
from pathlib import Path

TAG = f"{os.getpid() % 100000}"
POD, CLIENT_A, CLIENT_B = (f"podnat-demo-{TAG}-{r}" for r in ("pod", "a", "b"))
POD_A, ADDR_A = "10.66.1.1", "10.66.1.2"
POD_B, ADDR_B = "10.66.2.1", "10.66.2.2"

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


def setup() -> None:
    for ns in (POD, CLIENT_A, CLIENT_B):
        run("ip", "netns", "add", ns)
        run("ip", "-n", ns, "link", "set", "lo", "up")
    for client, pod_addr, addr, side in (
        (CLIENT_A, POD_A, ADDR_A, "a"),
        (CLIENT_B, POD_B, ADDR_B, "b"),
    ):
        pod_if, client_if = f"pd{side}{TAG}", f"cl{side}{TAG}"
        run(
            "ip",
            "link",
            "add",
            pod_if,
            "netns",
            POD,
            "type",
            "veth",
            "peer",
            "name",
            client_if,
            "netns",
            client,
        )
        run("ip", "-n", POD, "addr", "add", f"{pod_addr}/24", "dev", pod_if)
        run("ip", "-n", client, "addr", "add", f"{addr}/24", "dev", client_if)
        run("ip", "-n", POD, "link", "set", pod_if, "up")
        run("ip", "-n", client, "link", "set", client_if, "up")


def teardown(server: subprocess.Popen[str] | None) -> None:
    if server is not None:
        server.kill()
        server.wait()
    for ns in (POD, CLIENT_A, CLIENT_B):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def connect(client: str, address: str) -> tuple[bool, str]:
    done = subprocess.run(
        ["ip", "netns", "exec", client, sys.executable, "-c", CLIENT, address],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode == 0, done.stdout.strip()


def podnat(*args: str) -> None:
    argv = [sys.executable, "-m", "helper.cli", *args, "--netns", f"/run/netns/{POD}"]
    print("$ podnat " + " ".join(args) + f" --netns /run/netns/{POD}", flush=True)
    subprocess.run(argv, check=True)


def main() -> int:
    if os.geteuid() != 0:
        print("make demo creates network namespaces: run it as root", file=sys.stderr)
        return 1
    server = None
    try:
        say(f"a pod namespace ({POD_A}, {POD_B}) and two clients (A {ADDR_A}, B {ADDR_B})")
        setup()
        server = subprocess.Popen(
            ["ip", "netns", "exec", POD, sys.executable, "-c", SERVER],
            stdout=subprocess.PIPE,
            text=True,
        )
        if server.stdout is None or not server.stdout.readline():
            raise RuntimeError("the demo server did not start")
        print("app listening on port 1234 in the pod")

        with tempfile.TemporaryDirectory() as tmp:
            annotations = Path(tmp) / "annotations"
            annotations.write_text(
                f'podnat.io/redirect="4321:1234"\npodnat.io/redirect-sources="{ADDR_A}"\n'
            )
            say("the pod's annotations (Downward API file)")
            print(annotations.read_text(), end="")
            say("podnat apply: installs the rules and logs them")
            started = time.perf_counter()
            podnat("apply", "--annotations-file", str(annotations))
            print(f"(took {1000 * (time.perf_counter() - started):.0f} ms)")

            say(f"client A ({ADDR_A}, listed) connects to {POD_A}:4321")
            ok_a, text_a = connect(CLIENT_A, POD_A)
            print(text_a)
            say(f"client B ({ADDR_B}, not listed) connects to {POD_B}:4321")
            ok_b, text_b = connect(CLIENT_B, POD_B)
            print(text_b)

            say("podnat verify, then cleanup")
            podnat("verify", "--annotations-file", str(annotations))
            podnat("cleanup")
        if ok_a and not ok_b:
            say("demo passed: A was redirected to 1234, B was refused")
            return 0
        say("demo FAILED: expected A to connect and B to be refused")
        return 1
    finally:
        teardown(server)


if __name__ == "__main__":
    sys.exit(main())
