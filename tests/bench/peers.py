"""`make bench`, whole processes: `podnat apply` (file source) against its peers, each
process started straight into a fresh network namespace (no `ip netns exec` in between),
the contenders interleaved round by round so drift on a shared VM hits all of them.

1. istio's init, `pilot-agent istio-iptables` with its default capture
   (`-p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -b '*' -d 15090,15021,15020`), built
   from the pinned Go module (hack/bench/istio.sh), against `podnat apply` with the
   seed's one rule: with `--native-nftables` against podnat's nft backend (target
   <= 1.0x), and through iptables-legacy-restore (`--force-iptables-binary legacy`)
   against `--backend iptables-legacy` (target <= 1.5x). The namespaces are single-stack
   IPv4, as a kind pod is: istio captures IPv4 unless told --dual-stack, and podnat
   (ip-families auto) then makes IPv4 rules only. podnat's peak RSS: no worse than
   before this benchmark existed (RSS_BEFORE_MB: the worst of the runs then, rounded up).
2. `nft -f` of the very ruleset podnat renders, against `podnat apply`, for 1 and
   1,000 rules in dual-stack namespaces: target <= 2.5x, podnat's peak RSS <= 20 MB
   (1 rule) and <= 30 MB (1,000 rules). Beside them, no target, the floor of any
   Python process doing that job: the runtime's interpreter (`-I -S`, no site) loading
   libnftables and handing it the same file, nothing else (PYTHON_FLOOR). What a target
   leaves to podnat's own work is the target's allowance minus that floor.

Wall time from fork to the reaped exit; peak RSS from wait4 (the largest of the process
and the children it waited for, e.g. istio's iptables-restore). Runs as root.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.bench.startup import runtime_env, runtime_podnat
from tests.bench.targets import Targets
from tests.kit.paths import HACK

CLONE_NEWNET = 0x40000000
ISTIO_CAPTURE = (
    *("istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT"),
    *("-i", "*", "-b", "*", "-d", "15090,15021,15020"),
)
ISTIO_NFT_TARGET = 1.0
ISTIO_LEGACY_TARGET = 1.5
NFT_F_TARGET = 2.5
# podnat apply's worst peak RSS (1 rule) over the runs of the commit before this benchmark.
RSS_BEFORE_MB = {"podnat nft": 19.0, "podnat legacy": 21.0}
RSS_1_RULE_MB = 20.0
RSS_1000_RULES_MB = 30.0
_libc = ctypes.CDLL(None, use_errno=True)


# The apply any Python podnat must make: `ruleset` (bytes) handed to libnftables, the
# process ended with its result. The floors here and in tests.bench.cluster end with it.
LIBNFTABLES_APPLY = """
import ctypes, os
nft = ctypes.CDLL("libnftables.so.1")
nft.nft_ctx_new.restype = ctypes.c_void_p
nft.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
os._exit(nft.nft_run_cmd_from_buffer(nft.nft_ctx_new(0), ruleset))
"""
# The least a Python process can do to apply a ruleset file: no argument parsing, no
# plan, no address check, no lock, no report; the interpreter without site.
PYTHON_FLOOR = (
    """
import sys
with open(sys.argv[1], "rb") as file:
    ruleset = file.read()
"""
    + LIBNFTABLES_APPLY
)


def istio_binary() -> Path:
    out = subprocess.run(
        [str(HACK / "bench" / "istio.sh")], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def fresh_namespace(*, dual_stack: bool) -> Iterator[Path]:
    """A new namespace with a global IPv4 (and IPv6) address on a veth pair inside it."""
    name = f"podnat-bench-{uuid.uuid4().hex[:8]}"
    steps = [
        ["netns", "add", name],
        ["-n", name, "link", "set", "lo", "up"],
        ["-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
        ["-n", name, "link", "set", "v0", "up"],
        ["-n", name, "link", "set", "v1", "up"],
        ["-n", name, "addr", "add", "10.201.0.2/24", "dev", "v0"],
    ]
    if dual_stack:
        steps.append(["-n", name, "addr", "add", "fd00:201::2/64", "dev", "v0", "nodad"])
    try:
        for step in steps:
            subprocess.run(["ip", *step], check=True, capture_output=True)
        yield Path("/run/netns") / name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def run_inside(netns: Path, argv: list[str]) -> tuple[float, float]:
    """Wall ms and peak RSS MB of argv, started (setns before exec) in `netns`.

    The xtables lock is a file of the bench's own, as a pod's /run is its own: the
    host's /run/xtables.lock is shared with every other iptables user on the machine.
    """
    fd = os.open(netns, os.O_RDONLY)

    def enter() -> None:  # in the forked child, before exec
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            os._exit(127)

    try:
        with tempfile.TemporaryFile() as err, tempfile.TemporaryDirectory() as own_run:
            env = runtime_env(XTABLES_LOCKFILE=str(Path(own_run) / "xtables.lock"))
            started = time.perf_counter()
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                preexec_fn=enter,  # noqa: PLW1509 - the bench is single-threaded
            )
            _, status, usage = os.wait4(proc.pid, 0)
            wall = (time.perf_counter() - started) * 1000
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                err.seek(0)
                raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {err.read().decode()}")
    finally:
        os.close(fd)
    return wall, usage.ru_maxrss / 1024


def installed(netns: Path) -> str:
    """What the kernel holds in `netns`: the nft ruleset and the legacy nat tables."""
    out = []
    for tool in ("nft list ruleset", "iptables-legacy-save -t nat", "ip6tables-legacy-save -t nat"):
        out.append(
            subprocess.run(
                ["ip", "netns", "exec", netns.name, *tool.split()],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
        )
    return "\n".join(out)


def interleaved(
    contenders: dict[str, list[str]], repeat: int, *, dual_stack: bool, expect: dict[str, str]
) -> dict[str, tuple[float, float]]:
    """Median wall ms and worst peak RSS MB per contender, each run in a fresh namespace.

    `expect`: a string the kernel must hold after the contender's first run (it applied).
    """
    walls: dict[str, list[float]] = {name: [] for name in contenders}
    rss: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(repeat):
        for name, argv in contenders.items():
            with fresh_namespace(dual_stack=dual_stack) as netns:
                wall, peak = run_inside(netns, argv)
                if round_ == 0 and expect[name] not in installed(netns):
                    raise RuntimeError(f"{name}: no {expect[name]!r} in the namespace after it")
            walls[name].append(wall)
            rss[name].append(peak)
    return {name: (statistics.median(walls[name]), max(rss[name])) for name in contenders}


def nft_script(rules: int, path: Path) -> None:
    """The ruleset podnat renders for `rules` redirects, both families, as `nft -f` input."""
    from helper.plan.model import Family  # noqa: PLC0415
    from helper.plan.parse import parse_plan  # noqa: PLC0415
    from helper.plan.resolve import resolve  # noqa: PLC0415
    from helper.render import rulesets  # noqa: PLC0415
    from tests.bench.apply import annotation  # noqa: PLC0415

    both = frozenset((Family.IPV4, Family.IPV6))
    plan = parse_plan({"podnat.io/redirect": annotation(rules)})
    resolved = resolve(plan, global_families=both, nat_families=both, backend="nft").resolved
    path.write_text(rulesets.render("nft", resolved).text)


def annotations_file(rules: int, path: Path) -> None:
    from tests.bench.apply import annotation  # noqa: PLC0415

    value = "4321:1234" if rules == 1 else annotation(rules)
    path.write_text(f'podnat.io/redirect="{value}"\n')


def podnat(script: Path, annotations: Path, backend: str) -> list[str]:
    argv = [str(script), "apply", "--annotations-file", str(annotations), "--backend", backend]
    return [*argv, "--log-level", "warning"]


def floor(script: Path, ruleset: Path) -> list[str]:
    """PYTHON_FLOOR on the runtime venv's interpreter (the one `script` runs on)."""
    return [str(script.with_name("python")), "-I", "-S", "-c", PYTHON_FLOOR, str(ruleset)]


def against_istio(targets: Targets, script: Path, repeat: int, tmp: Path) -> None:
    pilot = str(istio_binary())
    seed = tmp / "seed"
    seed.write_text('podnat.io/redirect="4321:1234"\n')
    figures = interleaved(
        {
            "istio nft": ([pilot, *ISTIO_CAPTURE, "--native-nftables"]),
            "podnat nft": podnat(script, seed, "nft"),
            "istio legacy": ([pilot, *ISTIO_CAPTURE, "--force-iptables-binary", "legacy"]),
            "podnat legacy": podnat(script, seed, "iptables-legacy"),
        },
        repeat,
        dual_stack=False,
        expect={
            "istio nft": "istio-redirect",
            "podnat nft": "dnat to :1234",
            "istio legacy": "ISTIO_REDIRECT",
            "podnat legacy": "--to-destination :1234",
        },
    )
    for ours, theirs, target, what in (
        ("podnat nft", "istio nft", ISTIO_NFT_TARGET, "nft: podnat apply (1 rule) vs istio init"),
        (
            "podnat legacy",
            "istio legacy",
            ISTIO_LEGACY_TARGET,
            "iptables-legacy: podnat apply (1 rule) vs istio init",
        ),
    ):
        targets.ratio(what, figures[ours][0], figures[theirs][0], target=target)
        targets.ratio(
            f"{what}, peak RSS", figures[ours][1], figures[theirs][1], target=None, unit="MB"
        )
        targets.limit(
            f"{ours} apply (1 rule), peak RSS vs before",
            figures[ours][1],
            target=RSS_BEFORE_MB[ours],
            unit="MB",
        )


def against_nft_f(targets: Targets, script: Path, repeat: int, tmp: Path) -> None:
    contenders: dict[str, list[str]] = {}
    expect = {}
    for rules in (1, 1000):
        ruleset, annotations = tmp / f"rules-{rules}.nft", tmp / f"annotations-{rules}"
        nft_script(rules, ruleset)
        annotations_file(rules, annotations)
        contenders[f"nft -f {rules}"] = ["nft", "-f", str(ruleset)]
        contenders[f"podnat {rules}"] = podnat(script, annotations, "nft")
        contenders[f"python floor {rules}"] = floor(script, ruleset)
        for name in (f"nft -f {rules}", f"podnat {rules}", f"python floor {rules}"):
            expect[name] = "dnat"
    figures = interleaved(contenders, repeat, dual_stack=True, expect=expect)
    for rules, rss_target in ((1, RSS_1_RULE_MB), (1000, RSS_1000_RULES_MB)):
        ours, theirs = figures[f"podnat {rules}"], figures[f"nft -f {rules}"]
        what = (
            f"podnat apply vs nft -f, {rules} rule{'s' if rules > 1 else ''} (nft, both families)"
        )
        targets.ratio(what, ours[0], theirs[0], target=NFT_F_TARGET)
        targets.ratio(
            f"the Python floor vs nft -f, {rules} rule{'s' if rules > 1 else ''}",
            figures[f"python floor {rules}"][0],
            theirs[0],
            target=None,
        )
        targets.limit(
            f"podnat apply, {rules} rule{'s' if rules > 1 else ''}, peak RSS",
            ours[1],
            target=rss_target,
            unit="MB",
        )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the peer benchmark creates network namespaces: run it as root", file=sys.stderr)
        return 1
    targets = Targets(part="peers")
    script = runtime_podnat()
    with tempfile.TemporaryDirectory() as tmp:
        against_istio(targets, script, args.repeat, Path(tmp))
        against_nft_f(targets, script, args.repeat, Path(tmp))
    return targets.verdict("peers: istio's init and nft -f, whole processes")


if __name__ == "__main__":
    sys.exit(main())
