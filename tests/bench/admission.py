"""`make bench`, admission part: `podnat webhook` under a fixed request rate, over TLS on
loopback, against a trivial HTTPS responder on the same server stack in the same run.

Open loop: requests start on a fixed schedule (200/s for 10 s, on 8 kept-alive
connections), so a slow answer cannot slow the load down and hide itself.
Targets: p99 <= 10 ms at 200 requests/s; webhook peak RSS <= 80 MB.
Then each server's CPU while idle (IDLE_S after the load, no target; said beside the
responder's, which runs uvicorn's own main loop: ten wake-ups a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.bench.targets import Targets
from tests.kit.paths import REPO
from tests.kit.pki import Pki
from tests.kit.webhook import free_port

RATE, SECONDS, CONNECTIONS = 200, 10, 8
IDLE_S = 30.0
P99_TARGET_MS, RSS_TARGET_MB = 10.0, 80.0

TRIVIAL = """
import sys, uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    body = (b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",'
            b'"response":{"uid":"x","allowed":true}}')
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), ssl_certfile=sys.argv[2],
            ssl_keyfile=sys.argv[3], log_level="warning", access_log=False)
"""


def review_body() -> bytes:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "web-",
            "namespace": "shop",
            "annotations": {"podnat.io/redirect": "4321:1234, 5353:53/udp"},
        },
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
    }
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "bench",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "operation": "CREATE",
                "namespace": "shop",
                "object": pod,
            },
        }
    ).encode()


async def _connection(
    port: int,
    context: ssl.SSLContext,
    body: bytes,
    queue: asyncio.Queue[float],
    latencies: list[float],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    request = (
        f"POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    try:
        while True:
            scheduled = await queue.get()
            if scheduled < 0:
                return
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - scheduled) * 1000)
    finally:
        writer.close()


async def _load(port: int, context: ssl.SSLContext, body: bytes) -> tuple[list[float], float]:
    queue: asyncio.Queue[float] = asyncio.Queue()
    latencies: list[float] = []
    workers = [
        asyncio.create_task(_connection(port, context, body, queue, latencies))
        for _ in range(CONNECTIONS)
    ]
    started = time.perf_counter()
    for n in range(RATE * SECONDS):
        due = started + n / RATE
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        queue.put_nowait(due)  # latency counts from when the request was due
    for _ in workers:
        queue.put_nowait(-1.0)
    await asyncio.gather(*workers)
    return latencies, len(latencies) / (time.perf_counter() - started)


def cpu_seconds(pid: int) -> float:
    """Time on a CPU of the process's threads, to the nanosecond (schedstat): the clock-tick
    counts in /proc/PID/stat only sample whoever runs when a tick falls, and read 2.5 %
    for an idle webhook that schedstat put at 1.1 % (2026-11-30)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def measure(
    argv: list[str], port: int, context: ssl.SSLContext
) -> tuple[list[float], float, float, float]:
    process = subprocess.Popen(argv, cwd=REPO)
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        asyncio.run(_load(port, context, review_body()))  # warm-up round, discarded
        latencies, rate = asyncio.run(_load(port, context, review_body()))
        status = Path(f"/proc/{process.pid}/status").read_text()
        rss = (
            next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
            / 1024
        )
        time.sleep(2.0)  # the load's connections closed and forgotten
        cpu, started = cpu_seconds(process.pid), time.monotonic()
        time.sleep(IDLE_S)
        idle = (cpu_seconds(process.pid) - cpu) / (time.monotonic() - started)
        return latencies, rate, rss, idle
    finally:
        process.terminate()
        process.wait(timeout=10)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def main() -> int:
    podnat = Path(sys.executable).with_name("podnat")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        pki = Pki.create(d)
        pki.issue("tls", "/CN=bench")
        context = pki.context()
        port = free_port()
        ours = measure(
            [
                str(podnat),
                "webhook",
                "--cert",
                str(d / "tls.crt"),
                "--key",
                str(d / "tls.key"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            port,
            context,
        )
        port = free_port()
        trivial = measure(
            [sys.executable, "-c", TRIVIAL, str(port), str(d / "tls.crt"), str(d / "tls.key")],
            port,
            context,
        )
    targets = Targets(part="admission")
    print(f"\nadmission, {RATE}/s for {SECONDS}s on {CONNECTIONS} TLS connections:")
    for name, (latencies, rate, rss, idle) in (
        ("podnat webhook", ours),
        ("trivial responder", trivial),
    ):
        print(
            f"  {name:<18} p50 {statistics.median(latencies):5.2f} ms  "
            f"p99 {percentile(latencies, 0.99):5.2f} ms  {rate:5.0f} req/s  RSS {rss:5.1f} MB  "
            f"idle CPU {100 * idle:.2f} % of a core ({IDLE_S:.0f} s)"
        )
    p99, base = percentile(ours[0], 0.99), percentile(trivial[0], 0.99)
    print(
        f"  p99 ratio {p99 / base:.2f}; targets: p99 <= {P99_TARGET_MS:g} ms, "
        f"RSS <= {RSS_TARGET_MB:g} MB"
    )
    targets.ratio(f"webhook p99 at {RATE}/s vs a trivial TLS responder", p99, base, target=None)
    targets.limit(f"webhook p99 at {RATE}/s", p99, target=P99_TARGET_MS, unit="ms")
    targets.limit("webhook peak RSS", ours[2], target=RSS_TARGET_MB, unit="MB")
    if trivial[3] > 0:  # zero only if the responder never ran in IDLE_S: no ratio then
        targets.ratio(
            "webhook idle CPU vs a responder on uvicorn's own loop",
            100 * ours[3],
            100 * trivial[3],
            target=None,
            unit="%",
        )
    return targets.verdict("admission")


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
