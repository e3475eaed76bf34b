"""One cache rule: the scripts' (hack/env/cache.sh) and the kit's cache_dir() agree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.kit.paths import HACK, cache_dir

CASES = [
    {"PODNAT_CACHE": "/srv/podnat-cache", "XDG_CACHE_HOME": "/xdg", "HOME": "/home/u"},
    {"PODNAT_CACHE": "", "XDG_CACHE_HOME": "/xdg", "HOME": "/home/u"},
    {"PODNAT_CACHE": "", "XDG_CACHE_HOME": "", "HOME": "/home/u"},
]


def shell_rule(env: dict[str, str]) -> Path:
    done = subprocess.run(
        ["bash", "-c", f'source "{HACK / "env" / "cache.sh"}" && printf %s "$cache"'],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(done.stdout)


@pytest.mark.parametrize("env", CASES, ids=["podnat-cache", "xdg", "home"])
def test_cache_dir_is_the_scripts_rule(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert cache_dir() == shell_rule(env)


def test_xdg_cache_home_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PODNAT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    assert cache_dir() == Path("/xdg/podnat")
