"""The README's compatibility matrix is the renderer's output for the committed results."""

from __future__ import annotations

import json

from tests.kit import matrix


def test_the_readme_table_is_rendered_from_the_committed_results() -> None:
    results = json.loads(matrix.COMMITTED.read_text())
    table = matrix.readme_table(matrix.README.read_text())
    assert table == matrix.render(results), (
        "README's matrix is stale: python -m tests.kit.matrix update-readme"
    )


def test_the_committed_results_cover_every_cell_and_say_when_and_on_what() -> None:
    results = json.loads(matrix.COMMITTED.read_text())
    for run in matrix.runs(results):
        cells = run["cells"]
        scenarios = {key.split("/")[0] for key in cells}
        assert len(cells) == len(scenarios) * len(matrix.BACKENDS) * len(matrix.FAMILIES)
        assert {c["result"] for c in cells.values()} <= {"pass", "fail"}
        assert run["date"] and set(run["versions"]) >= {"kernel", "nft", "python"}


def test_the_committed_results_hold_both_shipped_userspaces() -> None:
    results = json.loads(matrix.COMMITTED.read_text())
    assert {matrix.userspace(run) for run in matrix.runs(results)} >= {"bookworm", "trixie"}


def test_runs_merge_by_userspace_the_latest_kept() -> None:
    def run(name: str, date: str) -> dict[str, object]:
        return {"date": date, "versions": {"userspace": name}, "cells": {}}

    merged = matrix.merge(
        [run("bookworm", "1"), {"runs": [run("trixie", "1")]}, run("bookworm", "2")]
    )
    assert [(r["versions"]["userspace"], r["date"]) for r in merged["runs"]] == [
        ("bookworm", "2"),
        ("trixie", "1"),
    ]


def test_a_failed_cell_shows_as_failed() -> None:
    results = {
        "date": "2026-01-01",
        "versions": dict.fromkeys(
            ("kernel", "nft", "iptables-nft", "iptables-legacy", "python", "debian"), "x"
        ),
        "cells": {"s/nft/ipv4": {"result": "fail", "order": "served", "requested": "nft"}},
    }
    row = matrix.render(results).splitlines()[2]
    assert row.startswith("| `s` | host | — | — | — | ❌ served |")
