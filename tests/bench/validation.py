"""`make bench`, part 4: validation at the documented limits, in a fresh process (see
tests.bench.apply)."""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import time

from tests.bench.targets import Targets
from tests.kit.paths import REPO

VALIDATION_MS_TARGET = 50.0
VALIDATION_MB_TARGET = 10.0


def largest_annotations() -> dict[str, str]:
    """The slowest annotations within the limits: every item at its longest accepted shape."""
    protos = ("tcp", "udp", "sctp")
    redirect = ",".join(
        f"{10000 + i // 3 * 3}-{10001 + i // 3 * 3}:{40000 + i // 3 * 3}-{40001 + i // 3 * 3}"
        f"/{protos[i % 3]}"
        for i in range(2000)
    )
    # Fully written IPv6 addresses in adjacent pairs that straddle a CIDR boundary: the
    # slowest shape found (every pair merges, then is cut back into two), and one IPv4.
    sources = ",".join(
        [
            f"fd00:1234:5678:9abc:def0:0000:ffff:{3 * (i // 2) + 1 + i % 2:04x}/128"
            for i in range(999)
        ]
        + ["192.168.100.100/32"]
    )
    return {
        "podnat.io/redirect": redirect,
        "podnat.io/redirect-sources": sources,
        "podnat.io/redirect-local": "true",
        "podnat.io/ip-families": "dual",
    }


def validation_cost(repeat: int) -> dict[str, float]:
    """Runs in a fresh process (`--validation`): ms and MB of parse_plan, largest and duplicates."""
    import tracemalloc  # noqa: PLC0415

    from helper.plan.limits import MAX_VALUE_BYTES  # noqa: PLC0415
    from helper.plan.parse import InvalidPlanError, parse_plan  # noqa: PLC0415

    def cost(annotations: dict[str, str]) -> tuple[float, float]:
        def once() -> None:
            with contextlib.suppress(InvalidPlanError):
                parse_plan(annotations)

        once()  # warm: regexes compiled, enum lookups cached
        walls = []
        for _ in range(repeat):
            started = time.perf_counter()
            once()
            walls.append((time.perf_counter() - started) * 1000)
        tracemalloc.start()
        once()
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        return statistics.median(walls), peak

    largest = largest_annotations()
    assert max(len(v.encode()) for v in largest.values()) <= MAX_VALUE_BYTES
    plan = parse_plan(largest)  # it must be accepted, or it measures the wrong thing
    assert len(plan.redirects) == 2000 and plan.sources
    ms, mb = cost(largest)
    dup_ms, dup_mb = cost({"podnat.io/redirect": ", ".join(["100-200:1"] * 1000)})
    sizes = {key.removeprefix("podnat.io/"): len(value) for key, value in largest.items()}
    return {"ms": ms, "mb": mb, "dup_ms": dup_ms, "dup_mb": dup_mb, **sizes}


def measure_validation(repeat: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.apply", "--validation-json", "--repeat", str(repeat)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


def report_validation(targets: Targets, figures: dict[str, float]) -> None:
    ms, mb = figures["ms"], figures["mb"]
    print(
        f"validation at the limits (2,000 redirect items, {figures['redirect']} bytes; "
        f"1,000 sources, {figures['redirect-sources']} bytes): {ms:.1f} ms median, "
        f"{mb:.2f} MB tracemalloc peak (targets <= {VALIDATION_MS_TARGET:.0f} ms, "
        f"<= {VALIDATION_MB_TARGET:.0f} MB); 1,000 duplicate items: "
        f"{figures['dup_ms']:.1f} ms, {figures['dup_mb']:.2f} MB"
    )
    targets.limit(
        "validation at the limits, parse_plan median", ms, target=VALIDATION_MS_TARGET, unit="ms"
    )
    targets.limit(
        "validation at the limits, tracemalloc peak", mb, target=VALIDATION_MB_TARGET, unit="MB"
    )
