"""SIGKILL at random points of `podnat apply`: every family holds the old or the new
ruleset exactly, and the next apply converges.

Three kills in four come a random time after the process logs its backend (right
before the transaction), within the transaction's length as a few unkilled runs
timed it (log lines "backend ..." to "installed ruleset"); the rest at a random
time over the whole run. The log lines the killed process got out say where each
kill landed. After each kill the next apply must
give the plan's canonical listing (and `podnat verify` exit 0, every few kills).
Half the kills take the process alone (its iptables-legacy worker lives on),
half its whole process group, as a container runtime does.

PODNAT_KILLS (default 100) kills per backend; `PODNAT_KILLS=5000 make test-reliability`.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.cases import R, S
from tests.kit.lab import Lab
from tests.netns.podnat import podnat
from tests.reliability.harness import (
    AFTER,
    BEFORE,
    MID,
    TRANSACTION_BEGINS,
    TRANSACTION_ENDS,
    family_listings,
    kill,
    redirects,
    start,
    wait_until_quiet,
)

KILLS = int(os.environ.get("PODNAT_KILLS", "100"))
VERIFY_EVERY = 5  # `podnat verify` too, beside comparing canonical listings every time
PLANS = (
    {R: redirects(150, 10000, 20000), S: "10.77.1.0/24, fd77:1::/64"},
    {R: redirects(250, 30000, 40000) + ", 5353:53/udp"},
)


@pytest.mark.parametrize("backend", ["nft", "iptables-legacy"])
def test_sigkill_at_random_points_leaves_old_or_new_and_the_next_apply_converges(
    lab: Lab, tmp_path: Path, backend: str
) -> None:
    chosen = ("--backend", backend)
    listings = []
    for plan in PLANS:
        assert podnat(lab.pod, "apply", plan, *chosen).code == 0
        listings.append(family_listings(lab.pod, backend))
    assert all(listings[0][f] != listings[1][f] for f in listings[0])

    # Calibrate: when, after process start, the transaction begins and ends.
    spans, exits = [], []
    for i in range(4):
        run = start(lab.pod, "apply", PLANS[i % 2], tmp_path / f"cal{i}", *chosen)
        assert run.wait() == 0, run.stderr
        exits.append(time.perf_counter() - run.started)
        spans.append((run.stamp(TRANSACTION_ENDS) or 0.0) - (run.stamp(TRANSACTION_BEGINS) or 0.0))
    span, whole = statistics.median(spans), statistics.median(exits)

    rng = random.Random(os.environ.get("PODNAT_KILL_SEED", "podnat"))
    landed: Counter[str] = Counter()
    states: Counter[str] = Counter()
    current = 1  # the namespace holds PLANS[1] from the calibration
    for kill_no in range(KILLS):
        new = 1 - current
        run = start(lab.pod, "apply", PLANS[new], tmp_path / f"k{kill_no}", *chosen)
        if rng.random() < 0.75:
            run.began.wait(60)
            time.sleep(rng.uniform(0.0, span * 1.2))
        else:
            time.sleep(rng.uniform(0.0, whole))
        exited = run.process.poll() is not None
        kill(run, group=kill_no % 2 == 1)
        run.wait()
        landed[run.where_killed(exited)] += 1
        wait_until_quiet(lab.pod)

        live = family_listings(lab.pod, backend)
        held = []
        for family, text in live.items():
            old, fresh = listings[current][family], listings[new][family]
            assert text in (old, fresh), (
                f"kill {kill_no} ({backend}, {family}): neither the old nor the new ruleset:\n"
                f"{text}"
            )
            held.append("new" if text == fresh else "old")
        states["/".join(sorted(set(held)))] += 1

        repair = podnat(lab.pod, "apply", PLANS[new], *chosen)
        assert repair.code == 0, repair.stderr
        assert family_listings(lab.pod, backend) == listings[new], f"kill {kill_no}"
        if kill_no % VERIFY_EVERY == 0 or len(set(held)) > 1:  # the listing above says it too
            verdict = podnat(lab.pod, "verify", PLANS[new], *chosen)
            assert verdict.code == 0, f"kill {kill_no}: {verdict.stdout}{verdict.stderr}"
        current = new

    summary = f"{backend}: {KILLS} kills, landed {dict(landed)}, families held {dict(states)}"
    print(summary)  # noqa: T201 - the figures the README quotes (pytest -s shows them)
    with Path(os.environ.get("PODNAT_KILL_REPORT", tmp_path / "kills.txt")).open("a") as out:
        out.write(summary + "\n")
    assert landed[MID] >= KILLS // 5, summary  # a good share inside the transaction
    assert landed[BEFORE] and landed[AFTER], summary
    if backend == "nft":
        assert states["new/old"] == 0, summary  # one table, one transaction: never split
