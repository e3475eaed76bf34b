"""The chart, its value sets, and reading what `helm template` renders."""

from __future__ import annotations

from typing import Any

import yaml

from tests.kit.paths import REPO
from tests.kit.tools import Tools

CHART = REPO / "charts" / "podnat"
VALUE_SETS = REPO / "tests" / "chart_values"


def template(tools: Tools, release: str, namespace: str, *args: str) -> str:
    return tools.helm("template", release, str(CHART), "--namespace", namespace, *args).stdout


def documents(rendered: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def find(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]
