"""Concurrent appliers, mixed backends, one namespace: one complete ruleset at the end."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.cases import R, S
from tests.kit.lab import Lab
from tests.netns.podnat import podnat
from tests.reliability.harness import holds_rules, start

APPLIERS = 10
ROUNDS = int(os.environ.get("PODNAT_RACE_ROUNDS", "6"))
BACKENDS = ("nft", "iptables-legacy", "auto")


def plan(index: int) -> dict[str, str]:
    """A different plan per applier, so the survivor can be told apart."""
    return {
        R: f"{20000 + index}:{30000 + index}, {21000 + index}:{31000 + index}/udp",
        S: f"10.77.{index}.0/24, fd77:{index}::/64",
    }


def installed_at(stderr: str) -> str | None:
    """When this applier committed (its JSON log's timestamp), if it did."""
    for line in stderr.splitlines():
        record = json.loads(line)
        if record["msg"].startswith("installed ruleset"):
            return str(record["ts"])
    return None


def test_ten_concurrent_appliers_leave_exactly_one_complete_ruleset(
    lab: Lab, tmp_path: Path
) -> None:
    for round_ in range(ROUNDS):
        appliers = [
            start(
                lab.pod,
                "apply",
                plan(i),
                tmp_path / f"{round_}-{i}",
                "--backend",
                BACKENDS[(i + round_) % len(BACKENDS)],
                "--log-format",
                "json",
                "--lock-timeout",
                "120",
            )
            for i in range(APPLIERS)
        ]
        codes = [applier.wait() for applier in appliers]
        assert codes == [0] * APPLIERS, [a.stderr for a in appliers]

        holders = [b for b in ("nft", "iptables-legacy") if holds_rules(lab.pod, b)]
        assert len(holders) == 1, f"round {round_}: podnat rules in {holders or 'no backend'}"
        # Under the lock the last to commit also removed everyone else's: its plan stands.
        stamps = [installed_at(a.stderr) for a in appliers]
        assert None not in stamps
        last = max(range(APPLIERS), key=lambda i: str(stamps[i]))
        verdict = podnat(lab.pod, "verify", plan(last), "--backend", holders[0])
        assert verdict.code == 0, f"round {round_}: {verdict.stdout}{verdict.stderr}"
