"""Fuzzing podnat's readers: in-process, then a sample through the real CLI into namespaces.

PODNAT_FUZZ_INPUTS (default 20,000) and PODNAT_FUZZ_CLI (default 200) set the counts,
PODNAT_FUZZ_SEED replays a run; `make fuzz` is the long run.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helper.plan.annotations import to_annotations
from helper.plan.parse import InvalidPlanError, parse_plan
from helper.sources.base import SourceError
from helper.sources.downward import DownwardFileSource, parse_annotations_bytes
from tests.kit.lab import Netns, sh
from tests.kit.paths import REPO
from tests.netns.podnat import nat_dump
from tests.reliability.fuzzing import Fuzzer, downward_bytes

INPUTS = int(os.environ.get("PODNAT_FUZZ_INPUTS", "20000"))
CLI_RUNS = int(os.environ.get("PODNAT_FUZZ_CLI", "200"))
SEED = int(os.environ.get("PODNAT_FUZZ_SEED", str(random.randrange(2**32))))
SLOWEST_ALLOWED_S = 1.0
MESSAGE_CAP = 20 * 500  # 20 problems of bounded length, and the "... and K more" line


def outcome(annotations: dict[str, str]) -> int:
    """The exit code podnat owes these annotations: 0 valid, 2 invalid. Nothing else escapes."""
    try:
        plan = parse_plan(annotations)
    except InvalidPlanError as err:
        lines = err.lines()
        assert lines, "an invalid plan names no problem"
        assert len("\n".join(lines)) < MESSAGE_CAP
        assert all(line.isprintable() for line in lines), lines
        return 2
    if not plan.is_empty:
        assert parse_plan(to_annotations(plan)) == plan
    return 0


def file_outcome(data: bytes, where: str = "f") -> int:
    try:
        annotations = parse_annotations_bytes(data, where)
    except SourceError as err:
        assert str(err).startswith(where) and len(str(err)) < 1000
        return 3
    return outcome(annotations)


def test_in_process_every_input_gets_a_podnat_answer(tmp_path: Path) -> None:
    fuzz = Fuzzer(random.Random(SEED))
    seen = {0: 0, 2: 0, 3: 0}
    slowest = (0.0, -1)
    processed = 0
    for index in range(INPUTS):
        kind = index % 2
        value: object = fuzz.annotations() if kind == 0 else fuzz.file()
        started = time.perf_counter()
        try:
            if isinstance(value, dict):
                code = outcome(value)
            elif index % 50 == 1:  # now and then through a real file and DownwardFileSource
                path = tmp_path / "annotations"
                path.write_bytes(value)  # type: ignore[arg-type]
                try:
                    code = outcome(DownwardFileSource(path).read())
                except SourceError:
                    code = 3
            else:
                code = file_outcome(value)  # type: ignore[arg-type]
        except AssertionError:
            raise
        except Exception as err:
            pytest.fail(f"seed {SEED}, input {index}: {type(err).__name__}: {err}\n{value!r:.500}")
        took = time.perf_counter() - started
        slowest = max(slowest, (took, index))
        seen[code] += 1
        processed += 1
    # The figures for the README (-s shows them).
    print(f"fuzz seed {SEED}: {processed} inputs, exits {seen}, slowest {slowest}")  # noqa: T201
    assert processed == INPUTS >= 1
    assert slowest[0] < SLOWEST_ALLOWED_S, f"seed {SEED}: input {slowest[1]} took {slowest[0]}s"
    assert all(seen.values()), f"seed {SEED}: a whole class of answers never came up: {seen}"


# -- through the real CLI --------------------------------------------------------------


@dataclass
class Case:
    data: bytes | None  # None: `special` names a path to make instead
    expected: int
    special: str = ""


def cli_cases(count: int) -> list[Case]:
    """Valid, invalid and unreadable inputs, about a third each, and the odd files."""
    fuzz = Fuzzer(random.Random(SEED + 1))
    specials = [Case(None, 3, "fifo"), Case(None, 3, "dev-zero"), Case(None, 3, "directory")]
    specials += [Case(None, 3, "huge"), Case(None, 0, "kubelet-layout")]
    buckets: dict[int, list[Case]] = {0: [], 2: [], 3: []}
    want = max(1, (count - len(specials)) // 3 + 1)
    while min(len(b) for b in buckets.values()) < want:
        data = fuzz.file() if fuzz.rng.random() < 0.5 else downward_bytes(fuzz.annotations())
        expected = file_outcome(data)
        if len(buckets[expected]) < want:
            buckets[expected].append(Case(data, expected))
    mixed = [case for trio in zip(*buckets.values(), strict=True) for case in trio]
    return (specials + mixed)[: max(count, len(specials))]


def make_input(case: Case, directory: Path) -> Path:
    path = directory / "annotations"
    if case.data is not None:
        path.write_bytes(case.data)
    elif case.special == "fifo":
        os.mkfifo(path)
    elif case.special == "dev-zero":
        path.symlink_to("/dev/zero")
    elif case.special == "directory":
        path.mkdir()
    elif case.special == "huge":
        with path.open("wb") as out:
            out.truncate(62_000_000)
    else:  # what the kubelet makes: annotations -> ..data/annotations -> ..<stamp>/annotations
        (directory / "..stamp").mkdir()
        (directory / "..stamp" / "annotations").write_bytes(b'podnat.io/redirect="4321:1234"\n')
        (directory / "..data").symlink_to("..stamp")
        path.symlink_to("..data/annotations")
    return path


@pytest.fixture
def pods() -> Iterator[list[Netns]]:
    """Two pod-like namespaces with global IPv4 and IPv6 addresses, one per backend."""
    tag = uuid.uuid4().hex[:6]
    made: list[Netns] = []
    try:
        for i in range(2):
            ns = Netns(f"pnf-{tag}-{i}")
            sh("ip", "netns", "add", ns.name)
            made.append(ns)
            sh("ip", "-n", ns.name, "link", "set", "lo", "up")
            sh("ip", "-n", ns.name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
            sh("ip", "-n", ns.name, "addr", "add", "10.88.0.2/24", "dev", "eth0")
            sh("ip", "-n", ns.name, "addr", "add", "fd88::2/64", "dev", "eth0", "nodad")
            for dev in ("eth0", "eth1"):
                sh("ip", "-n", ns.name, "link", "set", dev, "up")
        yield made
    finally:
        for ns in made:
            sh("ip", "netns", "del", ns.name, check=False)


def run_cases(ns: Netns, backend: str, cases: list[Case], failures: list[str]) -> None:
    try:
        run_each(ns, backend, cases, failures)
    except Exception as err:  # a thread's error must reach the test
        failures.append(f"seed {SEED}, {backend}: {type(err).__name__}: {err}")


def run_each(ns: Netns, backend: str, cases: list[Case], failures: list[str]) -> None:
    before = nat_dump(ns, backend)
    for number, case in enumerate(cases):
        with tempfile.TemporaryDirectory() as tmp:
            path = make_input(case, Path(tmp))
            argv = [sys.executable, "-m", "helper.cli", "apply", "--annotations-file", str(path)]
            argv += ["--netns", str(ns.path), "--backend", backend, "--source", "file"]
            argv += ["--termination-log", str(Path(tmp) / "termination-log")]
            done = subprocess.run(
                argv, cwd=REPO, capture_output=True, text=True, timeout=60, check=False
            )
        after = nat_dump(ns, backend)
        what = f"seed {SEED}, {backend} case {number} ({case.special or repr(case.data)[:300]})"
        if done.returncode != case.expected:
            failures.append(f"{what}: exit {done.returncode}, not {case.expected}: {done.stderr}")
        if "Traceback" in done.stderr:
            failures.append(f"{what}: a traceback: {done.stderr}")
        if case.expected != 0 and after != before:
            failures.append(f"{what}: exit {done.returncode} but the rules changed")
        before = after


def test_a_sample_through_the_cli_exits_as_documented_and_changes_nothing_when_invalid(
    pods: list[Netns],
) -> None:
    cases = cli_cases(CLI_RUNS)
    assert len(cases) >= CLI_RUNS
    assert {c.expected for c in cases} == {0, 2, 3}
    failures: list[str] = []
    halves = [cases[0::2], cases[1::2]]
    threads = [
        threading.Thread(target=run_cases, args=(ns, backend, half, failures))
        for ns, backend, half in zip(pods, ("nft", "iptables-legacy"), halves, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = {code: sum(c.expected == code for c in cases) for code in (0, 2, 3)}
    print(f"fuzz CLI seed {SEED}: {len(cases)} runs, expected exits {counts}")  # noqa: T201
    assert not failures, f"{len(failures)} of {len(cases)} CLI runs failed:\n" + "\n".join(
        failures[:10]
    )
