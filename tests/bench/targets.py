"""A benchmark's targets, checked as it prints its figures, and the rows of `make bench`'s
one table (tests.bench.table prints it).

Each part (apply, peers, admission, cluster) records a row per figure: its value, its
baseline measured in the same run, their ratio, the target and the verdict. A part run
alone prints its own rows; under `python -m tests.bench.table` it also appends them, as
JSON lines, to the file named by $PODNAT_BENCH_ROWS, and the table gathers every part's.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

ROWS_ENV = "PODNAT_BENCH_ROWS"


@dataclass(frozen=True)
class Row:
    """One line of the table; `ratio` is None for an absolute figure (no baseline)."""

    part: str
    figure: str
    value: str
    baseline: str
    ratio: float | None
    target: str
    met: bool | None  # None: shown for information, no target

    def line(self) -> str:
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}"
        verdict = {True: "ok", False: "MISSED", None: ""}[self.met]
        return (
            f"{self.part:<9} {self.figure:<64} {self.value:>10} {self.baseline:>10} "
            f"{ratio:>6} {self.target:>9} {verdict}"
        ).rstrip()


HEADER = (
    f"{'part':<9} {'figure':<64} {'value':>10} {'baseline':>10} {'ratio':>6} {'target':>9} verdict"
)


@dataclass
class Targets:
    """A part's rows and misses; `verdict` is its exit code."""

    part: str = ""
    missed: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)

    def check(self, met: bool, what: str) -> None:
        """A target checked by the part itself; `what` says the figure and its value."""
        self._add(Row(self.part, what, "", "", None, "", met))

    def ratio(
        self,
        figure: str,
        value: float,
        baseline: float,
        *,
        target: float | None,
        unit: str = "ms",
    ) -> float:
        """A figure against its baseline; met when value / baseline <= target."""
        ratio = value / baseline
        met = None if target is None else ratio <= target
        shown = "" if target is None else f"<= {target:g}x"
        self._add(
            Row(self.part, figure, _fmt(value, unit), _fmt(baseline, unit), ratio, shown, met)
        )
        return ratio

    def limit(self, figure: str, value: float, *, target: float | None, unit: str) -> None:
        """An absolute figure; met when value <= target."""
        met = None if target is None else value <= target
        shown = "" if target is None else f"<= {_fmt(target, unit)}"
        self._add(Row(self.part, figure, _fmt(value, unit), "", None, shown, met))

    def unmeasured(self, figure: str, why: str) -> None:
        """A figure with a target that could not be measured: a miss, and why."""
        self._add(Row(self.part, figure, "n/a", "", None, why, False))

    def _add(self, row: Row) -> None:
        self.rows.append(row)
        if row.met is False:
            self.missed.append(f"{row.figure}: {row.value}" if row.value else row.figure)
        path = os.environ.get(ROWS_ENV)
        if path:
            with open(path, "a", encoding="utf-8") as out:  # noqa: PTH123 - one append
                out.write(json.dumps(asdict(row)) + "\n")

    def verdict(self, scope: str) -> int:
        if self.rows:
            print(f"\n{HEADER}")
            for row in self.rows:
                print(row.line())
        if self.missed:
            print(f"{scope}: MISSED: " + "; ".join(self.missed))
            return 1
        print(f"{scope}: all targets met")
        return 0


def _fmt(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}"
    digits = 1 if unit == "MB" or value < 100 else 0
    return f"{value:.{digits}f} {unit}"
