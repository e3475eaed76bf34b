"""`make bench`: every part in turn, then ONE table of every figure, its baseline, ratio,
target and verdict. Exit 1 if a target is missed or a part failed.

    python -m tests.bench.table [PART...]   (default: apply peers admission cluster)

Each part prints its details as it goes; the table at the end gathers their rows
(tests.bench.targets, through $PODNAT_BENCH_ROWS).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from tests.bench.targets import HEADER, ROWS_ENV, Row
from tests.kit.paths import REPO

PARTS = ("apply", "peers", "admission", "agent", "cluster")


def main(argv: list[str]) -> int:
    # A part this checkout lacks (agent: the node agent's branch) is left out.
    parts = argv or [p for p in PARTS if importlib.util.find_spec(f"tests.bench.{p}")]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        print(f"unknown part(s) {', '.join(unknown)}; parts: {', '.join(PARTS)}", file=sys.stderr)
        return 2
    failed: list[str] = []
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for part in parts:
            print(f"\n=== {part} ===", flush=True)
            rows_file = Path(tmp) / f"{part}.jsonl"
            rows_file.touch()
            done = subprocess.run(
                [sys.executable, "-m", f"tests.bench.{part}"],
                cwd=REPO,
                env={**os.environ, ROWS_ENV: str(rows_file)},
                check=False,
            )
            if done.returncode != 0:
                failed.append(part)
            for line in rows_file.read_text().splitlines():
                row = Row(**json.loads(line))
                rows.append(row if row.part else replace(row, part=part))
    print(f"\n{HEADER}")
    for row in rows:
        print(row.line())
    missed = [row for row in rows if row.met is False]
    # A part that failed without a missed row crashed or could not run: that fails too.
    crashed = [part for part in failed if not any(row.part == part for row in missed)]
    print()
    if crashed:
        print(f"part(s) that did not finish: {', '.join(crashed)}")
    if missed:
        print(f"MISSED {len(missed)} of {sum(r.met is not None for r in rows)} targets")
    if missed or crashed:
        return 1
    print(f"all {sum(r.met is not None for r in rows)} targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
