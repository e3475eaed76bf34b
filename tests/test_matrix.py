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
    cells = results["cells"]
    scenarios = {key.split("/")[0] for key in cells}
    assert len(cells) == len(scenarios) * len(matrix.BACKENDS) * len(matrix.FAMILIES)
    assert {c["result"] for c in cells.values()} <= {"pass", "fail"}
    assert results["date"] and set(results["versions"]) >= {"kernel", "nft", "python"}


def test_a_failed_cell_shows_as_failed() -> None:
    results = {
        "date": "2026-01-01",
        "versions": dict.fromkeys(
            ("kernel", "nft", "iptables-nft", "iptables-legacy", "python", "debian"), "x"
        ),
        "cells": {"s/nft/ipv4": {"result": "fail", "order": "served", "requested": "nft"}},
    }
    row = matrix.render(results).splitlines()[2]
    assert row.startswith("| `s` | — | — | — | ❌ served |")
