"""`make bench`: podnat against the raw tools, measured in the same run, on this machine.

1. Apply latency, N = 1/10/100/1000 redirects, per backend: podnat's transaction
   (the backend's apply(): stage, commit, read back) against the same ruleset fed
   to `nft -f` / `iptables-legacy-restore` + `ip6tables-legacy-restore`.
   Target: ratio <= 1.5 at 1000 rules.
3. The API path: `podnat apply --source api` with one rule, process start to rules
   committed, against the same job done by Go tools: `kubectl get pod -o jsonpath`
   into `nft -f`. Wall time and peak RSS. Target: ratio <= 1.5.
2. Cold start: `podnat apply --annotations-file` with one rule, process start to
   exit: wall time and peak RSS. Targets: <= 150 ms, <= 40 MB. Measured from a
   runtime venv laid out as the image's will be: a plain (non-editable) install,
   no pip or setuptools (their .pth hooks alone add ~30 ms to every start).
4. Validation at the documented limits: the slowest annotations podnat accepts
   (2,000 redirect items and 1,000 sources, longest shapes), in a fresh process:
   median wall time of parse_plan, and the tracemalloc peak of one call (memory
   the call allocates, imports excluded). Targets: <= 50 ms, <= 10 MB. Also shown,
   without target: 1,000 duplicate redirect items (1.5 s and 221 MB before the sweep).
   `hack/bench.py --validation` runs this part alone, without root.

Runs as root in throwaway network namespaces. Exit 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from testbed import Targets

REPO = Path(__file__).resolve().parents[1]
SIZES = (1, 10, 100, 1000)
RATIO_TARGET = 1.5
COLD_MS_TARGET = 150.0
COLD_MB_TARGET = 40.0
VALIDATION_MS_TARGET = 50.0
VALIDATION_MB_TARGET = 10.0


def sh(*argv: str, stdin: str | None = None) -> None:
    subprocess.run(argv, input=stdin, text=True, check=True, capture_output=True)


def make_netns(name: str) -> None:
    """A pod-like namespace with a global IPv4 and IPv6 address (so both families apply)."""
    sh("ip", "netns", "add", name)
    sh("ip", "-n", name, "link", "set", "lo", "up")
    sh("ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
    sh("ip", "-n", name, "addr", "add", "10.88.0.2/24", "dev", "eth0")
    sh("ip", "-n", name, "addr", "add", "fd88::2/64", "dev", "eth0", "nodad")
    for dev in ("eth0", "eth1"):
        sh("ip", "-n", name, "link", "set", dev, "up")


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


def inside(repeat: int) -> None:
    """Runs inside the bench namespace: podnat's transaction vs the raw tools."""
    from helper.backends.nft.backend import NftBackend  # noqa: PLC0415
    from helper.backends.xtables.backend import IptablesLegacyBackend  # noqa: PLC0415
    from helper.plan.model import Family  # noqa: PLC0415
    from helper.plan.parse import parse_plan  # noqa: PLC0415
    from helper.plan.resolve import resolve  # noqa: PLC0415
    from helper.render import rulesets  # noqa: PLC0415

    both = (Family.IPV4, Family.IPV6)
    results = []
    for n in SIZES:
        plan = parse_plan({"podnat.io/redirect": annotation(n)})
        resolved = resolve(plan, global_families=both, nat_families=both, backend="x").resolved
        reps = repeat
        with tempfile.TemporaryDirectory() as tmp:
            nft = NftBackend()
            script = Path(tmp) / "ruleset.nft"
            nft_ruleset = rulesets.render("nft", resolved)
            script.write_text(nft_ruleset.text)
            ours, raw = timed_pair(
                lambda: nft.apply(rulesets.render("nft", resolved)),  # noqa: B023
                lambda: sh("nft", "-f", str(script)),  # noqa: B023
                reps,
            )
            nft.cleanup()
            nft.close()
            results.append({"backend": "nft", "rules": n, "podnat_ms": ours, "raw_ms": raw})

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
                for tool, path in restores:  # noqa: B023
                    sh(tool, "--noflush", path)

            ours, raw = timed_pair(
                lambda: legacy.apply(rulesets.render("iptables-legacy", resolved)),  # noqa: B023
                raw_restore,
                reps,
            )
            legacy.cleanup()
            legacy.close()
            results.append(
                {"backend": "iptables-legacy", "rules": n, "podnat_ms": ours, "raw_ms": raw}
            )
    print(json.dumps(results))


def _restore_text(ruleset: object) -> str:
    """The same rules as iptables-restore input; declaring a chain flushes it."""
    from helper.render.iptables import HOOKS, XtRuleset  # noqa: PLC0415

    if not isinstance(ruleset, XtRuleset):
        raise TypeError(ruleset)
    lines = ["*nat", *(f":{chain} - [0:0]" for chain in ruleset.chains)]
    lines += [rule.save_line() for rule in ruleset.rules if rule.chain not in HOOKS.values()]
    return "\n".join([*lines, "COMMIT", ""])


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
    assert max(len(v.encode()) for v in largest.values()) <= MAX_VALUE_BYTES  # noqa: S101
    plan = parse_plan(largest)  # it must be accepted, or it measures the wrong thing
    assert len(plan.redirects) == 2000 and plan.sources  # noqa: S101
    ms, mb = cost(largest)
    dup_ms, dup_mb = cost({"podnat.io/redirect": ", ".join(["100-200:1"] * 1000)})
    sizes = {key.removeprefix("podnat.io/"): len(value) for key, value in largest.items()}
    return {"ms": ms, "mb": mb, "dup_ms": dup_ms, "dup_mb": dup_mb, **sizes}


def measure_validation(repeat: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--validation-json", "--repeat", str(repeat)],
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
    targets.check(ms <= VALIDATION_MS_TARGET, f"validation {ms:.1f} ms")
    targets.check(mb <= VALIDATION_MB_TARGET, f"validation {mb:.2f} MB")


def runtime_podnat() -> Path:
    """This checkout installed into a cached pip-less runtime venv; its `podnat` script."""
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:12]
    cache = Path(os.environ.get("PODNAT_CACHE", Path.home() / ".cache" / "podnat"))
    venv = cache / f"runtime-{key}"
    pip = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(venv / "bin" / "python"),
        "install",
        "-q",
        "--disable-pip-version-check",
    ]
    if not (venv / ".deps-installed").exists():
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", "--clear", str(venv)], check=True
        )
        subprocess.run([*pip, str(REPO)], check=True, capture_output=True)
        (venv / ".deps-installed").touch()
    subprocess.run(
        [*pip, "--no-deps", "--force-reinstall", str(REPO)], check=True, capture_output=True
    )
    return venv / "bin" / "podnat"


def cold_start(ns: str, repeat: int) -> tuple[float, float]:
    podnat = runtime_podnat()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "annotations"
        path.write_text('podnat.io/redirect="4321:1234"\n')
        argv = [
            str(podnat),
            "apply",
            "--annotations-file",
            str(path),
            "--netns",
            f"/run/netns/{ns}",
            "--log-level",
            "warning",
        ]
        return _run_measured(argv, dict(os.environ), repeat)


def api_path(ns: str, repeat: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """(podnat ms, MB), (kubectl + nft ms, MB) against a real local API server."""
    from controlplane import ControlPlane, tools_bin  # noqa: PLC0415

    bin_dir = tools_bin()
    podnat = runtime_podnat()
    with tempfile.TemporaryDirectory() as tmp:
        plane = ControlPlane(Path(tmp) / "cluster", bin_dir)
        plane.up()
        try:
            kubectl = [str(bin_dir / "kubectl"), "--kubeconfig", str(plane.kubeconfig)]
            manifest = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "web",
                    "namespace": "default",
                    "annotations": {"podnat.io/redirect": "4321:1234"},
                },
                "spec": {
                    "containers": [{"name": "app", "image": "app"}],
                    "automountServiceAccountToken": False,
                    "serviceAccountName": "bench",  # no controller makes "default" here
                },
            }
            subprocess.run(
                [*kubectl, "create", "serviceaccount", "bench"], check=True, capture_output=True
            )
            subprocess.run(
                [*kubectl, "create", "-f", "-"],
                input=json.dumps(manifest),
                text=True,
                check=True,
                capture_output=True,
            )
            # A plain Role: aggregated ClusterRoles such as "view" stay empty without the
            # controller-manager, which this control plane does not run.
            for step in (
                ["role", "podnat", "--verb=get", "--resource=pods"],
                ["rolebinding", "podnat", "--role=podnat", "--serviceaccount=default:bench"],
            ):
                subprocess.run([*kubectl, "create", *step], check=True, capture_output=True)
            token = subprocess.run(
                [*kubectl, "create", "token", "bench"], check=True, capture_output=True, text=True
            ).stdout.strip()
            sa = Path(tmp) / "sa"
            sa.mkdir()
            (sa / "token").write_text(token)
            (sa / "ca.crt").write_bytes(plane.ca.read_bytes())
            host, port = plane.server.removeprefix("https://").rsplit(":", 1)
            env = {
                **os.environ,
                "KUBERNETES_SERVICE_HOST": host,
                "KUBERNETES_SERVICE_PORT": port,
                "POD_NAME": "web",
                "POD_NAMESPACE": "default",
            }
            ours = [
                str(podnat),
                "apply",
                "--source",
                "api",
                "--service-account-dir",
                str(sa),
                "--netns",
                f"/run/netns/{ns}",
                "--log-format",
                "json",
            ]
            script = Path(tmp) / "rules.nft"
            script.write_text(
                "table inet podnat {\n chain prerouting {\n"
                "  type nat hook prerouting priority dstnat; policy accept;\n"
                "  tcp dport 4321 dnat to :1234\n }\n}\n"
            )
            go_job = (
                f"{bin_dir / 'kubectl'} --server {plane.server} --token {token} "
                f"--certificate-authority {plane.ca} get pod web -n default "
                "-o jsonpath='{.metadata.annotations.podnat\\.io/redirect}' >/dev/null && "
                f"ip netns exec {ns} nft -f {script}"
            )
            theirs = ["sh", "-c", go_job]
            return _until_committed(ours, env, repeat), _run_measured(theirs, env, repeat)
        finally:
            plane.down()


def _until_committed(argv: list[str], env: dict[str, str], repeat: int) -> tuple[float, float]:
    """Process start to rules committed (the "installed ruleset" log record), and peak RSS.

    What comes after the commit (the Event, interpreter exit) is not part of the span
    the baseline has an equivalent of; `make bench` prints the whole run too.
    """
    spans, rss, whole = [], [], []
    for _ in range(repeat):
        started = time.time()
        clock = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None  # noqa: S101 - PIPE was asked for
        stderr = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        whole.append((time.perf_counter() - clock) * 1000)
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {stderr}")
        record = next(
            json.loads(line) for line in stderr.splitlines() if '"installed ruleset' in line
        )
        stamp, micros = record["ts"].rstrip("Z").split(".")
        committed = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S")) + int(micros) / 1e6
        spans.append((committed - started) * 1000)
        rss.append(usage.ru_maxrss / 1024)
    print(f"API path, podnat start to exit (incl. the Event): {statistics.median(whole):.0f} ms")
    return statistics.median(spans), max(rss)


def _run_measured(argv: list[str], env: dict[str, str], repeat: int) -> tuple[float, float]:
    walls, rss = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        walls.append((time.perf_counter() - started) * 1000)
        rss.append(usage.ru_maxrss / 1024)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{argv[0]} failed")
    return statistics.median(walls), max(rss)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--validation", action="store_true", help="only the validation figures (no root needed)"
    )
    parser.add_argument("--validation-json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    if args.inside:
        inside(args.repeat)
        return 0
    if args.validation_json:  # the fresh process measure_validation starts
        print(json.dumps(validation_cost(args.repeat)))
        return 0
    if args.validation:
        targets = Targets()
        report_validation(targets, measure_validation(args.repeat))
        return targets.verdict("validation")
    if os.geteuid() != 0:
        print("make bench creates network namespaces: run it as root", file=sys.stderr)
        return 1

    ns = f"podnat-bench-{os.getpid()}"
    make_netns(ns)
    try:
        done = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                ns,
                sys.executable,
                __file__,
                "--inside",
                "--repeat",
                str(args.repeat),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        rows = json.loads(done.stdout)
    except subprocess.CalledProcessError as err:
        print(err.stderr, file=sys.stderr)
        raise
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)

    cold_ns = f"podnat-cold-{os.getpid()}"
    make_netns(cold_ns)
    try:
        cold_ms, cold_mb = cold_start(cold_ns, args.repeat)
        api = api_path(cold_ns, args.repeat)
    finally:
        subprocess.run(["ip", "netns", "del", cold_ns], check=False)
    return report(rows, cold_ms, cold_mb, api, measure_validation(args.repeat))


def report(
    rows: list[dict[str, float]],
    cold_ms: float,
    cold_mb: float,
    api: tuple[tuple[float, float], tuple[float, float]],
    validation: dict[str, float],
) -> int:
    targets = Targets()
    print(f"{'backend':<16}{'rules':>6}{'podnat ms':>11}{'raw ms':>9}{'ratio':>7}")
    for row in rows:
        ratio = row["podnat_ms"] / row["raw_ms"]
        mark = ""
        if row["rules"] == 1000:
            ok = ratio <= RATIO_TARGET
            mark = "  ok" if ok else f"  MISSED (target <= {RATIO_TARGET})"
            targets.check(ok, f"{row['backend']} ratio {ratio:.2f} at 1000 rules")
        print(
            f"{row['backend']:<16}{row['rules']:>6}{row['podnat_ms']:>11.1f}"
            f"{row['raw_ms']:>9.1f}{ratio:>7.2f}{mark}"
        )
    print(
        f"\ncold start, podnat apply --annotations-file (1 rule, nft): "
        f"{cold_ms:.0f} ms median, {cold_mb:.1f} MB peak RSS "
        f"(targets <= {COLD_MS_TARGET:.0f} ms, <= {COLD_MB_TARGET:.0f} MB)"
    )
    targets.check(cold_ms <= COLD_MS_TARGET, f"cold start {cold_ms:.0f} ms")
    targets.check(cold_mb <= COLD_MB_TARGET, f"cold start {cold_mb:.1f} MB")
    (ours_ms, ours_mb), (go_ms, go_mb) = api
    api_ratio, rss_ratio = ours_ms / go_ms, ours_mb / go_mb
    print(
        f"API path, podnat apply --source api (1 rule): {ours_ms:.0f} ms, {ours_mb:.1f} MB; "
        f"kubectl get + nft -f: {go_ms:.0f} ms, {go_mb:.1f} MB; ratios {api_ratio:.2f} (time), "
        f"{rss_ratio:.2f} (memory) (targets <= {RATIO_TARGET})"
    )
    targets.check(api_ratio <= RATIO_TARGET, f"API path time ratio {api_ratio:.2f}")
    targets.check(rss_ratio <= RATIO_TARGET, f"API path memory ratio {rss_ratio:.2f}")
    report_validation(targets, validation)
    print()
    return targets.verdict("apply, cold start, API path, validation")


if __name__ == "__main__":
    sys.exit(main())
