"""The chart's `helm test` pod, its script run for real in a lab "pod" namespace: in agent mode
it waits for rules the agent installs after the pod started; in init mode the rules are
there before it starts, so it fails at once without them, with the hint."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import yaml

from tests.kit.lab import Lab
from tests.kit.tools import tools_bin
from tests.kube.helm import CHART
from tests.netns.podnat import podnat

TEST_POD = "templates/tests/test-redirect.yaml"


def rendered_test_pod(*values: str) -> tuple[str, dict[str, str]]:
    """The test pod's script and its podnat annotations, as the chart renders them."""
    helm = tools_bin() / "helm"
    if not helm.exists():
        pytest.fail(f"{helm} is missing: run `make tools-test` (make test-kernel does)")
    rendered = subprocess.run(
        [str(helm), "template", "rel", str(CHART), "--show-only", TEST_POD,
         *values],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    pod = yaml.safe_load(rendered)
    (container,) = pod["spec"]["containers"]
    assert container["command"][:2] == ["python3", "-c"]
    annotations = pod["metadata"]["annotations"]
    return container["command"][2], {k: v for k, v in annotations.items() if "podnat.io/" in k}


def start(lab: Lab, script: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["ip", "netns", "exec", lab.pod.name, sys.executable, "-c", script],
        env={**os.environ, "POD_IP": lab.POD_A4},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_in_agent_mode_it_waits_for_the_rules_the_agent_installs_later(lab: Lab) -> None:
    script, annotations = rendered_test_pod("--set", "mode=agent")
    started = time.monotonic()
    check = start(lab, script)
    time.sleep(2)  # the agent reconciles after the pod started
    assert check.poll() is None, check.communicate()
    applied = podnat(lab.pod, "apply", annotations, "--backend", "nft")
    assert applied.code == 0, applied.stderr
    out, err = check.communicate(timeout=30)
    assert check.returncode == 0, err
    assert f"ok: {lab.POD_A4}:4321 reached the server on :1234 through podnat" in out
    assert time.monotonic() - started >= 2


def test_in_init_mode_it_fails_at_once_without_rules_and_names_podnat_init(lab: Lab) -> None:
    script, _ = rendered_test_pod()
    check = start(lab, script)
    out, err = check.communicate(timeout=30)
    assert check.returncode == 1, out
    assert f"FAIL: {lab.POD_A4}:4321" in err
    assert "was podnat-init injected?" in err
