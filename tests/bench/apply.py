"""`make bench`: podnat against the raw tools, measured in the same run, on this machine.

1. Apply latency, N = 1/10/100/1000 redirects, per backend: podnat's transaction
   (the backend's apply(): stage, commit, read back) against the same ruleset fed
   to `nft -f` / `iptables-legacy-restore` + `ip6tables-legacy-restore`.
   Targets at 1000 rules: nft <= 1.5x; iptables-legacy (both families) <= 1.2x, and
   <= 2.0x pinned to one core (`taskset -c 0`: the worker's family cannot overlap).
3. The API path: `podnat apply --source api` with one rule, process start to rules
   committed, against the same job done by Go tools: `kubectl get pod -o jsonpath`
   into `nft -f`. Wall time and peak RSS. Targets: <= 1.0x in time, <= 0.5x in memory.
2. Cold start: `podnat apply --annotations-file` with one rule, process start to
   exit: wall time and peak RSS. Targets: <= 150 ms, <= 40 MB. Measured from a
   runtime venv laid out as the image's will be: a plain (non-editable) install,
   no pip or setuptools (their .pth hooks alone add ~30 ms to every start).
4. Validation at the documented limits: the slowest annotations podnat accepts
   (2,000 redirect items and 1,000 sources, longest shapes), in a fresh process:
   median wall time of parse_plan, and the tracemalloc peak of one call (memory
   the call allocates, imports excluded). Targets: <= 50 ms, <= 10 MB. Also shown,
   without target: 1,000 duplicate redirect items (1.5 s and 221 MB before the sweep).
   `python -m tests.bench.apply --validation` runs this part alone, without root.

Runs as root in throwaway network namespaces. Exit 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.bench.startup import api_path, cold_start
from tests.bench.targets import Targets
from tests.bench.validation import measure_validation, report_validation, validation_cost
from tests.kit.lab import Lab
from tests.kit.paths import REPO

if TYPE_CHECKING:
    from helper.plan.model import ResolvedPlan

SIZES = (1, 10, 100, 1000)
RATIO_TARGET = 1.5  # nft's transaction at 1,000 rules
LEGACY_TWO_CORES_TARGET = 1.2  # iptables-legacy at 1,000 rules, both families, two cores
LEGACY_ONE_CORE_TARGET = 2.0  # the same on one core (taskset -c 0): the worker cannot overlap
API_TIME_TARGET = 1.0
API_MEMORY_TARGET = 0.5
COLD_MS_TARGET = 150.0
COLD_MB_TARGET = 40.0


def sh(*argv: str, stdin: str | None = None) -> None:
    subprocess.run(argv, input=stdin, text=True, check=True, capture_output=True)


def annotation(n: int) -> str:
    # Distinct ports, irregular offsets: nothing for a renderer to merge.
    return ", ".join(f"{10000 + i}:{30000 + (i * 37) % 20000}" for i in range(n))


def timed_pair(
    ours: Callable[[], object], raw: Callable[[], object], repeat: int
) -> tuple[float, float]:
    """Median wall times in ms, the two interleaved so drift on a shared VM hits both."""
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for fn, out in ((ours, samples[0]), (raw, samples[1])):
            started = time.perf_counter()
            fn()
            out.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples[0]), statistics.median(samples[1])


def inside(repeat: int, sizes: tuple[int, ...], backends: tuple[str, ...]) -> None:
    """Runs inside the bench namespace: podnat's transaction vs the raw tools."""
    from helper.plan.model import Family  # noqa: PLC0415
    from helper.plan.parse import parse_plan  # noqa: PLC0415
    from helper.plan.resolve import resolve  # noqa: PLC0415

    both = (Family.IPV4, Family.IPV6)
    results = []
    for n in sizes:
        plan = parse_plan({"podnat.io/redirect": annotation(n)})
        resolved = resolve(plan, global_families=both, nat_families=both, backend="x").resolved
        for backend, pair in (("nft", _nft_pair), ("iptables-legacy", _legacy_pair)):
            if backend in backends:
                ours, raw = pair(resolved, repeat)
                results.append({"backend": backend, "rules": n, "podnat_ms": ours, "raw_ms": raw})
    print(json.dumps(results))


def _nft_pair(resolved: ResolvedPlan, repeat: int) -> tuple[float, float]:
    from helper.backends.nft.backend import NftBackend  # noqa: PLC0415
    from helper.render import rulesets  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        nft = NftBackend()
        script = Path(tmp) / "ruleset.nft"
        script.write_text(rulesets.render("nft", resolved).text)
        pair = timed_pair(
            lambda: nft.apply(rulesets.render("nft", resolved)),
            lambda: sh("nft", "-f", str(script)),
            repeat,
        )
        nft.cleanup()
        nft.close()
    return pair


def _legacy_pair(resolved: ResolvedPlan, repeat: int) -> tuple[float, float]:
    from helper.backends.xtables.backend import IptablesLegacyBackend  # noqa: PLC0415
    from helper.plan.model import Family  # noqa: PLC0415
    from helper.render import rulesets  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        # As the CLI runs it: the first family in-process, the other in a worker.
        legacy = IptablesLegacyBackend(first_family_in_process=True)
        xt = rulesets.render("iptables-legacy", resolved)
        legacy.apply(xt)  # warm: workers started, extensions loaded
        restores = []
        for ruleset in xt.rulesets if isinstance(xt, rulesets.XtRulesets) else ():
            path = Path(tmp) / f"{ruleset.family}.rules"
            path.write_text(_restore_text(ruleset))
            tool = "iptables" if ruleset.family is Family.IPV4 else "ip6tables"
            restores.append((f"{tool}-legacy-restore", str(path)))

        def raw_restore() -> None:
            for tool, path in restores:
                sh(tool, "--noflush", path)

        pair = timed_pair(
            lambda: legacy.apply(rulesets.render("iptables-legacy", resolved)),
            raw_restore,
            repeat,
        )
        legacy.cleanup()
        legacy.close()
    return pair


def _restore_text(ruleset: object) -> str:
    """The same rules as iptables-restore input; declaring a chain flushes it."""
    from helper.render.iptables import HOOKS, XtRuleset  # noqa: PLC0415

    if not isinstance(ruleset, XtRuleset):
        raise TypeError(ruleset)
    lines = ["*nat", *(f":{chain} - [0:0]" for chain in ruleset.chains)]
    lines += [rule.save_line() for rule in ruleset.rules if rule.chain not in HOOKS.values()]
    return "\n".join([*lines, "COMMIT", ""])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--validation", action="store_true", help="only the validation figures (no root needed)"
    )
    parser.add_argument("--validation-json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help=argparse.SUPPRESS)
    parser.add_argument("--backends", default="nft,iptables-legacy", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        sizes = tuple(int(n) for n in args.sizes.split(","))
        inside(args.repeat, sizes, tuple(args.backends.split(",")))
        return 0
    if args.validation_json:  # the fresh process measure_validation starts
        print(json.dumps(validation_cost(args.repeat)))
        return 0
    if args.validation:
        targets = Targets(part="apply")
        report_validation(targets, measure_validation(args.repeat))
        return targets.verdict("validation")
    if os.geteuid() != 0:
        print("make bench creates network namespaces: run it as root", file=sys.stderr)
        return 1

    # A lab's pod namespace has a global IPv4 and IPv6 address: both families apply.
    with Lab.create() as lab:
        rows = transactions(lab.pod.name, args.repeat)
        # A pod rarely has two free cores: the worker's family then cannot overlap.
        one_core = transactions(
            lab.pod.name, args.repeat, sizes="1000", backends="iptables-legacy", cpus="0"
        )

    with Lab.create() as lab:
        cold_ms, cold_mb = cold_start(lab.pod.name, args.repeat)
        api = api_path(lab.pod.name, args.repeat)
    validation = measure_validation(args.repeat)
    return report(rows, one_core, cold_ms=cold_ms, cold_mb=cold_mb, api=api, validation=validation)


def transactions(
    netns: str,
    repeat: int,
    *,
    sizes: str = ",".join(map(str, SIZES)),
    backends: str = "nft,iptables-legacy",
    cpus: str | None = None,
) -> list[dict[str, Any]]:
    """`inside` in the lab's pod namespace; `cpus`: pinned there, raw tools included."""
    pin = ["taskset", "-c", cpus] if cpus is not None else []
    argv = [*pin, "ip", "netns", "exec", netns, sys.executable, "-m", "tests.bench.apply"]
    argv += ["--inside", "--repeat", str(repeat), "--sizes", sizes, "--backends", backends]
    try:
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=True)
    except subprocess.CalledProcessError as err:
        print(err.stderr, file=sys.stderr)
        raise
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def report(
    rows: list[dict[str, Any]],
    one_core: list[dict[str, Any]],
    *,
    cold_ms: float,
    cold_mb: float,
    api: tuple[tuple[float, float], tuple[float, float]],
    validation: dict[str, float],
) -> int:
    targets = Targets(part="apply")
    for row in rows:
        target = None
        if row["rules"] == 1000:
            target = (
                LEGACY_TWO_CORES_TARGET if row["backend"] == "iptables-legacy" else RATIO_TARGET
            )
        targets.ratio(
            f"{row['backend']} transaction, {row['rules']} rules vs raw tool",
            row["podnat_ms"],
            row["raw_ms"],
            target=target,
        )
    for row in one_core:
        targets.ratio(
            f"{row['backend']} transaction, {row['rules']} rules vs raw, one core",
            row["podnat_ms"],
            row["raw_ms"],
            target=LEGACY_ONE_CORE_TARGET,
        )
    targets.limit(
        "cold start, apply --annotations-file (1 rule, nft)",
        cold_ms,
        target=COLD_MS_TARGET,
        unit="ms",
    )
    targets.limit("cold start, peak RSS", cold_mb, target=COLD_MB_TARGET, unit="MB")
    (ours_ms, ours_mb), (go_ms, go_mb) = api
    targets.ratio(
        "API path: start -> committed vs kubectl get + nft -f",
        ours_ms,
        go_ms,
        target=API_TIME_TARGET,
    )
    targets.ratio(
        "API path: peak RSS vs kubectl get + nft -f",
        ours_mb,
        go_mb,
        target=API_MEMORY_TARGET,
        unit="MB",
    )
    report_validation(targets, validation)
    return targets.verdict("apply, cold start, API path, validation")


if __name__ == "__main__":
    sys.exit(main())
