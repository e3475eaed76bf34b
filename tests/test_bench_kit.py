"""make bench's own parsing and bookkeeping: containerd's task events, the table's rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.targets import ROWS_ENV, Targets
from tests.bench.task_events import parse_line
from tests.kit.paths import REPO

START = '2026-11-29 22:40:01.123456789 +0000 UTC k8s.io /tasks/start {"container_id":"abc","pid":7}'
EXIT = (
    "2026-11-29 22:40:01.2 +0000 UTC k8s.io /tasks/exit "
    '{"container_id":"abc","id":"abc","pid":7,"exited_at":"2026-11-29T22:40:01.2Z"}'
)


def test_a_start_and_an_exit_event_give_nanosecond_times() -> None:
    start, end = parse_line(START), parse_line(EXIT)
    assert start is not None and end is not None
    assert (start.topic, start.container) == ("/tasks/start", "abc")
    assert end.topic == "/tasks/exit"
    assert end.at - start.at == pytest.approx(0.076543211, abs=1e-6)


@pytest.mark.parametrize(
    "line",
    [
        # an exec'd process of the container exiting, not the container itself
        EXIT.replace('"id":"abc"', '"id":"exec-1"'),
        START.replace("/tasks/start", "/tasks/create"),
        "ctr: failed to dial",
        "",
    ],
)
def test_other_lines_are_not_task_events(line: str) -> None:
    assert parse_line(line) is None


def test_a_whole_second_and_an_offset_parse() -> None:
    utc = parse_line(START.replace(".123456789", ""))
    east = parse_line(START.replace(".123456789 +0000", " +0100"))
    assert utc is not None and east is not None
    assert utc.at - east.at == 3600


def test_rows_go_to_the_table_file_and_a_miss_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = tmp_path / "rows.jsonl"
    monkeypatch.setenv(ROWS_ENV, str(rows))
    targets = Targets(part="peers")
    assert targets.ratio("fast", 10.0, 20.0, target=1.0) == 0.5
    targets.ratio("slow", 30.0, 20.0, target=1.0)
    targets.limit("rss", 18.6, target=20.0, unit="MB")
    targets.ratio("shown only", 5.0, 1.0, target=None)
    written = [json.loads(line) for line in rows.read_text().splitlines()]
    assert [(r["figure"], r["met"]) for r in written] == [
        ("fast", True),
        ("slow", False),
        ("rss", True),
        ("shown only", None),
    ]
    assert targets.verdict("peers") == 1
    assert targets.missed == ["slow: 30.0 ms"]


def test_the_table_refuses_an_unknown_part() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.table", "apply", "nosuch"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "unknown part(s) nosuch; parts: apply, peers, admission, agent, cluster" in done.stderr
