"""The compatibility matrix: the kernel tier's results (cell → pass/fail, the versions) as
JSON, and that JSON as the README's Markdown table.

    python -m tests.kit.matrix render [RESULTS]          # the table, to stdout
    python -m tests.kit.matrix update-readme [RESULTS]   # rewrite it between the markers

RESULTS defaults to the committed `tests/matrix/results.json` (copy a fresh run's file,
`$PODNAT_MATRIX_OUT` or `build/matrix.json`, over it to publish that run).
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.kit.paths import REPO

COMMITTED = REPO / "tests" / "matrix" / "results.json"
README = REPO / "README.md"
BEGIN, END = "<!-- matrix:begin -->", "<!-- matrix:end -->"
BACKENDS = ("auto", "nft", "iptables-legacy")
FAMILIES = ("ipv4", "ipv6", "dual")


def out_path() -> Path:
    return Path(os.environ.get("PODNAT_MATRIX_OUT") or REPO / "build" / "matrix.json")


def _first_line(*argv: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError as err:
        return f"unavailable ({err.strerror})"
    return (
        (done.stdout or done.stderr).strip().splitlines()[0] if done.stdout or done.stderr else "?"
    )


def versions() -> dict[str, str]:
    debian = Path("/etc/debian_version")
    return {
        "kernel": platform.release(),
        "nft": _first_line("nft", "--version"),
        "iptables-nft": _first_line("iptables-nft", "--version"),
        "iptables-legacy": _first_line("iptables-legacy", "--version"),
        "python": platform.python_version(),
        "debian": debian.read_text().strip() if debian.exists() else "not Debian",
    }


def write(cells: dict[str, dict[str, str]], path: Path | None = None) -> Path:
    """Write one run's results; `cells` maps "scenario/backend/family" to its result."""
    path = path or out_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "versions": versions(),
        "cells": dict(sorted(cells.items())),
    }
    path.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    return path


def render(results: dict[str, Any]) -> str:
    """The Markdown table: one row per neighbour scenario, one column per backend and family."""
    cells: dict[str, dict[str, str]] = results["cells"]
    scenarios = list(dict.fromkeys(key.split("/")[0] for key in cells))
    head = ["neighbours in the pod"] + [f"{b} · {f}" for b in BACKENDS for f in FAMILIES]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for scenario in scenarios:
        row = [f"`{scenario}`"]
        for backend in BACKENDS:
            for family in FAMILIES:
                cell = cells.get(f"{scenario}/{backend}/{family}")
                row.append(_cell(cell) if cell else "—")
        lines.append("| " + " | ".join(row) + " |")
    v = results["versions"]
    lines += [
        "",
        f"Run {results['date']}: kernel {v['kernel']}, {v['nft']}, {v['iptables-nft']}, "
        f"{v['iptables-legacy']}, Python {v['python']}, Debian {v['debian']}.",
    ]
    return "\n".join(lines) + "\n"


def _cell(cell: dict[str, str]) -> str:
    mark = "✅" if cell["result"] == "pass" else "❌"
    parts = [mark, cell.get("order", "")]
    if "undefined" in parts[1] and cell.get("answers"):  # what this kernel did this time
        served = sorted({answer.rsplit(":", 1)[1] for answer in cell["answers"].split()})
        parts.append(f"(got {'/'.join(served)})")
    if cell.get("chosen") and cell.get("requested") == "auto":
        parts.append(f"→{cell['chosen']}")
    return " ".join(p for p in parts if p)


def readme_table(text: str) -> str:
    match = re.search(re.escape(BEGIN) + r"\n(.*?)" + re.escape(END), text, re.S)
    if match is None:
        raise SystemExit(f"README.md has no {BEGIN} … {END} block")
    return match.group(1)


def update_readme(results: dict[str, Any]) -> None:
    text = README.read_text()
    readme_table(text)  # the markers must be there
    start, end = text.index(BEGIN) + len(BEGIN) + 1, text.index(END)
    README.write_text(text[:start] + render(results) + text[end:])


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("render", "update-readme"):
        sys.stderr.write(__doc__ or "")
        return 2
    results = json.loads(Path(argv[1] if len(argv) > 1 else COMMITTED).read_text())
    if argv[0] == "render":
        sys.stdout.write(render(results))
    else:
        update_readme(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
