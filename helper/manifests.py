"""Multi-document YAML in and out, for `podnat inject` (GitOps pipelines)."""

from __future__ import annotations

from typing import Any

import yaml

from helper.sources.base import SourceError


def read_documents(text: str, where: str) -> list[Any]:
    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as err:
        raise SourceError(f"{where}: not valid YAML: {err}") from err


def dump_documents(documents: list[Any]) -> str:
    kept = [doc for doc in documents if doc is not None]
    return str(yaml.safe_dump_all(kept, sort_keys=False, default_flow_style=False))
