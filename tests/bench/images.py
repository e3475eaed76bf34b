"""The shipped images side by side, one per Debian suite: `python -m tests.bench.images`.

Size: compressed (`docker save | gzip -6`, what a node pulls) and unpacked (the image's
size in docker). Cold start: `podnat apply --annotations-file` with one rule, through nft
and through iptables-legacy, process start to exit, each run in a fresh network namespace,
inside each suite's kernel-test layer (so with the image's own interpreter, libraries and
bytecode; the layer only adds tools), suites and backends interleaved round by round, the
order turned each round. Root; builds with hack/env/images.sh ($PODNAT_IMAGE names them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import uuid

from tests.image.conftest import SUITES, docker, image_names
from tests.kit.cluster import docker_host
from tests.kit.paths import HACK

BACKENDS = ("nft", "iptables-legacy")
# One run, inside the container: a fresh namespace, podnat as a child, its own rusage.
PROBE = """
import json, os, subprocess, sys, time, uuid
backend = sys.argv[1]
ns = "bench-" + uuid.uuid4().hex[:8]
subprocess.run(["ip", "netns", "add", ns], check=True)
try:
    with open("/tmp/annotations", "w") as f:
        f.write('podnat.io/redirect="4321:1234"\\n')
    argv = ["podnat", "apply", "--annotations-file", "/tmp/annotations", "--netns",
            f"/run/netns/{ns}", "--backend", backend, "--log-level", "warning"]
    started = time.perf_counter()
    child = subprocess.Popen(argv)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    assert os.waitstatus_to_exitcode(status) == 0, status
finally:
    subprocess.run(["ip", "netns", "del", ns], check=True)
print(json.dumps({"ms": elapsed * 1000, "mb": usage.ru_maxrss / 1024}))
"""


def build(suite: str) -> None:
    subprocess.run(
        [str(HACK / "env" / "images.sh"), "test-layer"],
        env={**os.environ, "PODNAT_SUITE": suite},
        check=True,
    )


def sizes(image: str) -> tuple[float, float]:
    """(compressed MB, unpacked MB)."""
    env = {**os.environ, "DOCKER_HOST": docker_host()}
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE, env=env)
    gzip = subprocess.Popen(["gzip", "-6", "-c"], stdin=save.stdout, stdout=subprocess.PIPE)
    assert gzip.stdout is not None
    compressed = 0
    while chunk := gzip.stdout.read(1 << 20):
        compressed += len(chunk)
    assert save.wait() == 0
    assert gzip.wait() == 0
    unpacked = int(docker("image", "inspect", "-f", "{{.Size}}", image).stdout)
    return compressed / 1e6, unpacked / 1e6


def cold_starts(rounds: int) -> dict[tuple[str, str], list[dict[str, float]]]:
    containers = {suite: f"podnat-bench-{suite}-{uuid.uuid4().hex[:6]}" for suite in SUITES}
    results: dict[tuple[str, str], list[dict[str, float]]] = {
        (s, b): [] for s in SUITES for b in BACKENDS
    }
    try:
        for suite, name in containers.items():
            started = docker(
                "run", "-d", "--name", name, "--privileged", "--network", "none",
                "--tmpfs", "/tmp", "--tmpfs", "/run/netns",  # noqa: S108 - the container's
                "--entrypoint", "/opt/test-tools/path/sleep", image_names(suite)[1], "infinity",
            )  # fmt: skip
            assert started.returncode == 0, started.stderr
        order = list(results)
        for round_ in range(rounds + 1):  # the first round warms the page cache: not counted
            for suite, backend in order:
                run = docker("exec", containers[suite], "python3", "-c", PROBE, backend)
                assert run.returncode == 0, run.stderr
                if round_:
                    results[(suite, backend)].append(json.loads(run.stdout))
            order.reverse()
    finally:
        for name in containers.values():
            docker("rm", "-f", name)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    for suite in SUITES:
        build(suite)
    for suite in SUITES:
        compressed, unpacked = sizes(image_names(suite)[0])
        print(f"{suite}: {compressed:.1f} MB compressed, {unpacked:.1f} MB unpacked")
    for (suite, backend), runs in cold_starts(args.rounds).items():
        ms = [r["ms"] for r in runs]
        mb = max(r["mb"] for r in runs)
        print(
            f"{suite} {backend}: cold start median {statistics.median(ms):.0f} ms "
            f"(min {min(ms):.0f}, max {max(ms):.0f}, n={len(ms)}), peak RSS {mb:.1f} MB"
        )


if __name__ == "__main__":
    main()
