"""The init container's `podnat apply` imports only what it runs.

Every module an init container imports is paid on every pod's start (the interpreter
starts from nothing each time), so the apply path is kept to its own code: no
library of the other backend, the webhook, the agent or the kubeconfig loader, and
none of the standard library's heavier conveniences podnat does without there. Real
applies in the lab's pod namespace, each in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cases import R
from tests.kit.lab import Lab
from tests.kit.paths import REPO
from tests.netns.podnat import downward_file, nat_dump
from tests.test_cli_imports import COUNT_COMPILES

# Never on the apply path, whichever backend: the other commands' libraries.
NOT_FOR_APPLY = (
    *("helper.admission", "helper.agent", "helper.kube", "helper.plan_json"),
    *("pydantic", "kubernetes", "yaml", "ruamel", "uvicorn", "h11", "prometheus_client"),
    # The annotations come from a file here: no HTTP, no TLS.
    *("http", "ssl", "helper.sources.kube_api"),
    # What a one-shot command does without (helper.log; named tuples, not dataclasses).
    *("logging", "dataclasses", "inspect"),
)
# ... and with nft chosen, nothing of iptables-legacy's beyond a look at /proc (the
# worker's subprocess brings threading, python-iptables' loader pathlib), nor ipaddress
# (only a plan with sources needs it).
NOT_FOR_NFT = (
    *("iptc", "helper.backends.xtables.worker", "helper.render.iptables", "threading"),
    *("pathlib", "urllib", "ipaddress"),
)

_PROBE = (
    COUNT_COMPILES
    + """
before = set(sys.modules)
from helper import cli
code = cli.main(sys.argv[1:])
new = sorted(set(sys.modules) - before)
print(json.dumps({"code": code, "new": new, "compiled": compiled}))
"""
)


def imported_by_apply(lab: Lab, tmp_path: Path, backend: str) -> list[str]:
    annotations = downward_file({R: "4321:1234"}, tmp_path)
    argv = ["apply", "--annotations-file", str(annotations), "--netns", str(lab.pod.path)]
    # nft needs no third-party package: -S (no site), so nothing the dev venv's import
    # hooks load hides from the probe; python-iptables is in the venv's site-packages.
    flags = ["-S"] if backend != "iptables-legacy" else []
    done = subprocess.run(
        [
            sys.executable,
            *flags,
            "-c",
            _PROBE,
            *argv,
            "--backend",
            backend,
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["code"] == 0, done.stderr
    assert result["compiled"] == []  # a named tuple's string annotation, typically
    modules: list[str] = result["new"]
    return modules


def loaded(modules: list[str], roots: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == r or m.startswith(r + ".") for r in roots)]


@pytest.mark.parametrize("backend", ["auto", "nft"])
def test_an_nft_apply_imports_nothing_of_iptables_legacy_or_the_other_commands(
    lab: Lab, tmp_path: Path, backend: str
) -> None:
    modules = imported_by_apply(lab, tmp_path, backend)
    assert "dnat to :1234" in nat_dump(lab.pod, "nft")
    assert "helper.backends.nft.libnftables" in modules  # the probe saw the real path
    assert loaded(modules, NOT_FOR_APPLY + NOT_FOR_NFT) == []


def test_an_iptables_legacy_apply_imports_none_of_the_other_commands(
    lab: Lab, tmp_path: Path
) -> None:
    modules = imported_by_apply(lab, tmp_path, "iptables-legacy")
    assert "--to-destination :1234" in nat_dump(lab.pod, "iptables-legacy")
    assert "iptc" in modules
    assert loaded(modules, NOT_FOR_APPLY) == []
