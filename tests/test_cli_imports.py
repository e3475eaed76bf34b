"""Importing the command line loads none of what the init container does without.

The kernel tier (tests/netns/test_apply_imports.py) runs whole applies; this is
its rootless half: the `podnat` command's own import, in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.kit.paths import REPO

# compile() (typing compiles string annotations) builds the AST module's state the
# first time it runs (see helper/__init__.py): the probes count the calls in `compiled`.
COUNT_COMPILES = """
import builtins, json, sys
compiled = []
real_compile = builtins.compile
def counting_compile(source, filename, mode, *args, **kwargs):
    if mode != "exec":  # "exec": the import system compiling a module without bytecode
        compiled.append(repr(source)[:80])
    return real_compile(source, filename, mode, *args, **kwargs)
builtins.compile = counting_compile
"""
_PROBE = (
    COUNT_COMPILES
    + """
before = set(sys.modules)
import helper.cli
print(json.dumps({"modules": sorted(set(sys.modules) - before), "compiled": compiled}))
"""
)
NEVER_AT_IMPORT = (
    *("logging", "dataclasses", "inspect", "threading", "http", "ssl"),
    *("pathlib", "urllib", "ipaddress"),  # str paths; ipaddress only for sources
    *("iptc", "pydantic", "kubernetes", "yaml", "ruamel", "uvicorn", "prometheus_client"),
    *("helper.admission", "helper.agent", "helper.kube", "helper.sources.kube_api"),
    *("helper.backends.xtables.worker", "helper.render.iptables", "helper.plan_json"),
)


def test_importing_the_cli_loads_no_other_command_and_no_heavy_convenience() -> None:
    # -S: no site, so nothing the dev venv's import hooks load hides from the probe (the
    # checkout is importable from the working directory).
    done = subprocess.run(
        [sys.executable, "-S", "-c", _PROBE], cwd=REPO, capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout)
    modules: list[str] = result["modules"]
    assert "helper.engine" in modules
    heavy = [m for m in modules if any(m == r or m.startswith(r + ".") for r in NEVER_AT_IMPORT)]
    assert heavy == []
    assert result["compiled"] == []  # a named tuple's string annotation, typically


def test_the_api_source_speaks_https_without_http_client() -> None:
    # http.client brings the email package, ~18 ms of an API-path start.
    probe = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        "import helper.sources.kube_api\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    modules: list[str] = json.loads(done.stdout)
    assert "ssl" in modules
    assert [m for m in modules if m.split(".")[0] in ("http", "email", "logging")] == []
