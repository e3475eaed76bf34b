"""kubectl's dry runs over the corpus, against the corpus tier's own API server."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helper.admission.manifests import read_documents
from tests.kit.paths import REPO

Obj = dict[str, Any]


def corpus_dir() -> Path:
    """PODNAT_CORPUS_DIR, else ../shared/corpus/manifests beside the checkout."""
    override = os.environ.get("PODNAT_CORPUS_DIR")
    path = Path(override) if override else REPO.parent / "shared" / "corpus" / "manifests"
    if not path.is_dir() or not any(path.glob("*.yaml")):
        pytest.fail(
            f"the corpus is missing: no *.yaml in {path} (set PODNAT_CORPUS_DIR, or put "
            "../shared/corpus beside the checkout; see the README's Tests section)"
        )
    return path


def objects_of(text: str) -> list[Obj]:
    """Every object of a YAML stream, List items flattened (as kubectl sends them)."""
    out: list[Obj] = []
    for document in read_documents(text, "corpus"):
        content = document.content
        if isinstance(content, dict):
            items = content.get("items") if content.get("kind") == "List" else [content]
            out.extend(item for item in items or [] if isinstance(item, dict))
    return out


@dataclass
class DryRun:
    objects: list[Obj]  # what kubectl printed, List wrapper removed
    errors: list[str]  # one line per object it refused


@dataclass(frozen=True)
class Kubectl:
    binary: Path
    kubeconfig: Path
    cache: Path

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(self.binary),
                "--kubeconfig",
                str(self.kubeconfig),
                "--cache-dir",
                str(self.cache),
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def dry_run(self, text: str, mode: str) -> DryRun:
        """`kubectl create --dry-run=MODE -o json -f -`: the objects and the refusals."""
        done = self.run("create", f"--dry-run={mode}", "-o", "json", "-f", "-", stdin=text)
        objects: list[Obj] = []
        decoder, rest = json.JSONDecoder(), done.stdout.strip()
        while rest:
            value, end = decoder.raw_decode(rest)
            rest = rest[end:].strip()
            objects.extend(value["items"] if value.get("kind") == "List" else [value])
        errors = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 0 or errors, done
        return DryRun(objects, errors)

    def create_namespaces(self, corpus: Path) -> None:
        """Server-side dry runs need the namespaces the objects name to exist."""
        names = {"default"}
        for path in sorted(corpus.glob("*.yaml")):
            for obj in objects_of(path.read_text()):
                metadata = obj.get("metadata") or {}
                if obj.get("kind") == "Namespace" and metadata.get("name"):
                    names.add(metadata["name"])
                if metadata.get("namespace"):
                    names.add(metadata["namespace"])
        for name in sorted(names - {"default"}):
            self.run("create", "namespace", name)
        # No controller manager here: without the `default` service account the API
        # server's admission refuses every pod (after waiting for it).
        for name in sorted(names):
            self.run("create", "serviceaccount", "default", "--namespace", name)
