"""The corpus tier: real manifests from public projects (../shared/corpus, never copied here),
one local etcd + kube-apiserver for the whole run, figures printed at the end."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.corpus.kubectl import Kubectl, corpus_dir
from tests.kit.controlplane import running_control_plane
from tests.kit.paths import REPO

FIGURES: Counter[str] = Counter()


@pytest.fixture(scope="session")
def corpus() -> Path:
    return corpus_dir()


@pytest.fixture(scope="session")
def kubectl(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    with running_control_plane("kubectl") as plane:
        kc = plane.bin_dir / "kubectl"
        tool = Kubectl(kc, plane.kubeconfig, tmp_path_factory.mktemp("kc"))
        tool.create_namespaces(corpus)
        yield tool


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        figures = ", ".join(f"{key} {value}" for key, value in sorted(FIGURES.items()))
        terminalreporter.write_line(f"corpus: {figures}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "manifest" not in metafunc.fixturenames:
        return
    override = os.environ.get("PODNAT_CORPUS_DIR")
    path = Path(override) if override else REPO.parent / "shared" / "corpus" / "manifests"
    files = sorted(path.glob("*.yaml")) if path.is_dir() else []
    # A missing corpus must fail (in the corpus fixture), never collect zero tests.
    metafunc.parametrize("manifest", files or [path], ids=[f.stem for f in files] or ["missing"])
