"""The chart's README documents every value the schema allows, and the defaults agree."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1] / "charts" / "podnat"


def leaves(schema: dict[str, Any], prefix: str = "") -> list[str]:
    props = schema.get("properties")
    # Objects that take free-form or small structured values are documented as one row.
    if not props or prefix.endswith(("resources", "issuerRef", "updateStrategy")):
        return [prefix]
    return [
        leaf for key, sub in props.items() for leaf in leaves(sub, f"{prefix}.{key}".strip("."))
    ]


def documented() -> dict[str, str]:
    rows = re.findall(r"^\| `([\w.]+)` \| `(.*?)` \|", (CHART / "README.md").read_text(), re.M)
    return dict(rows)


def test_every_value_in_the_schema_has_a_readme_row_and_nothing_else_does() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert sorted(documented()) == sorted(leaves(schema))


def test_the_readme_defaults_are_the_values_yaml_defaults() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for path, default in documented().items():
        node: Any = values
        for key in path.split("."):
            node = node[key]
        assert json.loads(default) == node, path
