"""Real manifests through `podnat inject`, judged by kubectl and a real API server.

For every corpus file: (a) as it is, kubectl reads the same objects from inject's output
as from its input; (b) with `podnat.io/redirect` added to every pod template, each gets
exactly one podnat-init (hostNetwork and Windows templates are refused with the message
instead) and nothing else changes; (c) every object the API server's server-side dry run
accepted before inject, it accepts after.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from helper.admission.inject import INIT_NAME, VOLUME_NAME
from helper.admission.manifests import read_documents, write_documents
from helper.admission.pod_templates import pod_template
from tests.corpus.conftest import FIGURES
from tests.corpus.kubectl import DryRun, Kubectl, Obj, objects_of
from tests.netns.podnat import cli

ANNOTATION = {"podnat.io/redirect": "4321:1234"}


def unfit(template: Obj) -> str | None:
    """Why podnat must refuse this pod template, if it must."""
    spec = template.get("spec") or {}
    if spec.get("hostNetwork"):
        return "hostNetwork pod"
    windows = (
        (spec.get("os") or {}).get("name"),
        (spec.get("nodeSelector") or {}).get("kubernetes.io/os"),
    )
    return "Windows pod" if "windows" in windows else None


def annotate(text: str, fit: bool) -> tuple[str, int]:
    """The stream with podnat's annotation on every fit (or every unfit) pod template."""
    documents, changed, count = read_documents(text, "corpus"), set(), 0
    for document in documents:
        content = document.content
        if not isinstance(content, dict):
            continue
        for obj in content.get("items") or [] if content.get("kind") == "List" else [content]:
            template = pod_template(obj)
            if template is None or (unfit(template) is None) != fit:
                continue
            metadata = template.setdefault("metadata", {})
            if metadata.get("annotations") is None:
                metadata["annotations"] = {}
            metadata["annotations"].update(ANNOTATION)
            changed.add(document.number)
            count += 1
    return write_documents(documents, changed), count


def inject(text: str) -> Any:
    return cli("inject", "-f", "-", stdin=text)


def without_podnat(obj: Obj, before: Obj) -> tuple[Obj, int]:
    """`obj` without the container and volume inject adds; how many podnat-init it had."""
    out = copy.deepcopy(obj)
    template, original = pod_template(out), pod_template(before)
    if template is None or original is None:
        return out, 0
    spec, old_spec = template.get("spec") or {}, original.get("spec") or {}
    inits = [c for c in spec.get("initContainers") or [] if c.get("name") != INIT_NAME]
    found = len(spec.get("initContainers") or []) - len(inits)
    for field, kept in (
        ("initContainers", inits),
        ("volumes", [v for v in spec.get("volumes") or [] if v.get("name") != VOLUME_NAME]),
    ):
        if kept or field in old_spec:
            spec[field] = kept
        else:
            spec.pop(field, None)
    return out, found


def accepted(run: DryRun) -> set[tuple[str, str, str]]:
    return {
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"].get("name", ""))
        for o in run.objects
    }


def test_inject_keeps_what_kubectl_and_the_api_server_read(
    manifest: Path, kubectl: Kubectl
) -> None:
    text = manifest.read_text()
    FIGURES["files"] += 1
    # (a) as it is: same objects to kubectl, byte for byte when nothing is annotated.
    plain = inject(text)
    assert plain.returncode == 0, plain.stderr
    FIGURES["byte-identical"] += plain.stdout == text
    before, after = kubectl.dry_run(text, "client"), kubectl.dry_run(plain.stdout, "client")
    assert after.objects == before.objects
    assert after.errors == before.errors
    FIGURES["objects"] += len(before.objects)

    # (b) every fit pod template annotated: one podnat-init each, nothing else changed.
    annotated, templates = annotate(text, fit=True)
    done = inject(annotated)
    assert done.returncode == 0, done.stderr
    before, after = kubectl.dry_run(annotated, "client"), kubectl.dry_run(done.stdout, "client")
    assert after.errors == before.errors
    assert len(after.objects) == len(before.objects)
    injected = 0
    for old, new in zip(before.objects, after.objects, strict=True):
        stripped, found = without_podnat(new, old)
        template = pod_template(old)
        expected = 1 if template is not None and unfit(template) is None else 0
        assert found == expected, (old["kind"], old["metadata"])
        injected += found
        assert stripped == old
    # kubectl cannot read kinds no longer served (batch/v1beta1): inject still counts them.
    summary = f": injected {templates} of " if templates else ": nothing to inject, "
    assert summary in done.stderr, done.stderr
    FIGURES["templates injected"] += injected
    FIGURES["templates refused"] += _refused(text)

    # (c) what the API server accepted before inject, it accepts after.
    server_before = kubectl.dry_run(annotated, "server")
    server_after = kubectl.dry_run(done.stdout, "server")
    assert accepted(server_before) <= accepted(server_after), server_after.errors
    FIGURES["server-accepted"] += len(accepted(server_before))
    # Objects of CRDs this API server does not have, pods naming absent service accounts...
    rejected = len(objects_of(annotated)) - len(accepted(server_before))
    FIGURES["server-rejected before and after"] += rejected


def _refused(text: str) -> int:
    """Annotate only the unfit templates: each is refused, by name, with the reason."""
    annotated, count = annotate(text, fit=False)
    if not count:
        return 0
    done = inject(annotated)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    reasons = [line for line in done.stderr.splitlines() if "podnat.io/redirect on a" in line]
    assert len(reasons) == count, done.stderr
    assert all("hostNetwork pod" in r or "Windows pod" in r for r in reasons)
    return count
