"""The compatibility matrix: the kernel tier's results (cell → pass/fail, the versions) as
JSON, and that JSON as the README's Markdown table.

    python -m tests.kit.matrix render [RESULTS...]          # the table, to stdout
    python -m tests.kit.matrix update-readme [RESULTS...]   # rewrite it between the markers
    python -m tests.kit.matrix merge RESULTS... > FILE      # several runs as one file

Each run is one userspace: the host's (`tests/netns`, `build/matrix.json`) or a shipped
image's (`tests/image` runs the tier inside each suite's image: `build/matrix-<suite>.json`).
RESULTS defaults to the committed `tests/matrix/results.json` (merge a fresh run's files
over it to publish them); the table has one row per scenario and userspace.
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


USERSPACE = Path("/opt/podnat/USERSPACE")  # what a shipped image records (hack/image/rootfs.py)


def versions() -> dict[str, str]:
    debian = Path("/etc/debian_version")
    shipped = dict(
        line.split("=", 1) for line in _read(USERSPACE).splitlines() if "=" in line
    )  # the tools below come from the image's own suite (hack/image/collect-tools.sh)
    return {
        "userspace": shipped.get("suite", "host"),
        "kernel": platform.release(),
        "nft": _first_line("nft", "--version"),
        "iptables-nft": _first_line("iptables-nft", "--version"),
        "iptables-legacy": _first_line("iptables-legacy", "--version"),
        "python": platform.python_version(),
        "debian": shipped.get("debian") or _read(debian).strip() or "not Debian",
    }


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


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


def runs(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs in a results file: one run's own file, or several merged."""
    return list(results["runs"]) if "runs" in results else [results]


def userspace(run: dict[str, Any]) -> str:
    return str(run["versions"].get("userspace", "host"))


def merge(files: list[dict[str, Any]]) -> dict[str, Any]:
    """One file of every run, the latest of each userspace, in the order first given."""
    merged: dict[str, dict[str, Any]] = {}
    for run in (r for results in files for r in runs(results)):
        merged[userspace(run)] = run
    return {"runs": list(merged.values())}


def render(results: dict[str, Any]) -> str:
    """The Markdown table: one row per neighbour scenario and userspace, one column per
    backend and family; under it, each userspace's versions."""
    all_runs = runs(results)
    scenarios = sorted({key.split("/")[0] for run in all_runs for key in run["cells"]})
    head = ["neighbours in the pod", "userspace"]
    head += [f"{b} · {f}" for b in BACKENDS for f in FAMILIES]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for scenario in scenarios:
        for run in all_runs:
            row = [f"`{scenario}`", userspace(run)]
            for backend in BACKENDS:
                for family in FAMILIES:
                    cell = run["cells"].get(f"{scenario}/{backend}/{family}")
                    row.append(_cell(cell) if cell else "—")
            lines.append("| " + " | ".join(row) + " |")
    notes = [  # a paragraph each
        f"{userspace(run)}: run {run['date']}, kernel {v['kernel']}, {v['nft']}, "
        f"{v['iptables-nft']}, {v['iptables-legacy']}, Python {v['python']}, Debian {v['debian']}."
        for run in all_runs
        if (v := run["versions"])
    ]
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes) + "\n"


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
    if not argv or argv[0] not in ("render", "update-readme", "merge"):
        sys.stderr.write(__doc__ or "")
        return 2
    paths = [Path(arg) for arg in argv[1:]] or [COMMITTED]
    results = merge([json.loads(path.read_text()) for path in paths])
    if argv[0] == "render":
        sys.stdout.write(render(results))
    elif argv[0] == "merge":
        sys.stdout.write(json.dumps(results, indent=2, sort_keys=True) + "\n")
    else:
        update_readme(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
