"""Where things are: the checkout, and the cache the hack/ scripts share with Python."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HACK = REPO / "hack"


def cache_dir() -> Path:
    """${PODNAT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/podnat}, as hack/env/cache.sh has it."""
    if os.environ.get("PODNAT_CACHE"):
        return Path(os.environ["PODNAT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "podnat"
