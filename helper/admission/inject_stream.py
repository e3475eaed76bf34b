"""`podnat inject` over a YAML stream: every object of every document, `kind: List` items too.

Every object is checked before anything is written: each refused object is reported
(document number, kind and name, why) and nothing goes to stdout, so a pipeline never
applies half a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from helper.admission.inject import Denied, InjectConfig, NotAString, misplaced_annotations, mutate
from helper.admission.manifests import Document, go_yaml_reads_as, read_documents, write_documents
from helper.admission.pod_templates import Obj, kind_of, list_of_mappings, pod_template
from helper.errors import ExitCode, ManifestError, PodnatError
from helper.plan.annotations import PREFIX
from helper.plan.parse import MAX_REPORTED_PROBLEMS


@dataclass
class Injected:
    text: str  # the stream to print
    objects: int = 0
    injected: int = 0
    warnings: list[str] = field(default_factory=list)

    def summary(self, where: str) -> str:
        if self.injected:
            return f"{where}: injected {self.injected} of {self.objects} objects"
        return f"{where}: nothing to inject, {self.objects} objects written unchanged"


class Refused(PodnatError):  # noqa: N818 - a verdict on the input, as Denied is
    """Some objects of the stream cannot be injected; `lines` says which and why."""

    def __init__(self, lines: list[str], exit_code: ExitCode) -> None:
        self.lines = lines
        self.exit_code = exit_code
        super().__init__(f"{len(lines)} objects refused")


def inject_stream(text: str, where: str, config: InjectConfig) -> Injected:
    """Raises ManifestError for a stream that is not YAML, Refused for refused objects."""
    documents = read_documents(text, where)
    result = Injected(text)
    refused: list[PodnatError] = []
    changed: set[int] = set()
    for document in documents:
        for label, obj, put in _objects(document, where, refused):
            result.objects += 1
            try:
                _mark_not_strings(obj, document.body)
                warning = misplaced_annotations(obj)
                out = mutate(obj, config)
            except (Denied, ManifestError) as err:
                message = err.message if isinstance(err, Denied) else str(err)
                refused.append(type(err)(f"{label}: {message}"))
                continue
            if warning is not None:
                result.warnings.append(f"{label}: {warning}")
            if out is not obj:
                put(out)
                changed.add(document.number)
                result.injected += 1
    if refused:
        raise _refusal(refused)
    result.text = write_documents(documents, changed)
    return result


def _objects(document: Document, where: str, refused: list[PodnatError]) -> list[Any]:
    """(label, object, setter) for each object of a document; problems go to `refused`."""
    label = f"{where}: document {document.number}"
    content = document.content
    if content is None:
        return []
    if not isinstance(content, dict):
        refused.append(ManifestError(f"{label}: {kind_of(content)}, not a Kubernetes object"))
        return []
    if content.get("kind") != "List":

        def put_document(out: Obj) -> None:
            document.content = out

        return [(label, content, put_document)]
    try:
        items = list_of_mappings(content, content, "items", "")
    except ManifestError as err:
        refused.append(ManifestError(f"{label}: {err}"))
        return []

    def setter(index: int) -> Any:
        def put_item(out: Obj) -> None:
            items[index] = out

        return put_item

    return [(f"{label}, item {i + 1}", item, setter(i)) for i, item in enumerate(items)]


def _mark_not_strings(obj: Obj, body: str) -> None:
    """Give podnat values kubectl reads as non-strings (`yes`, `8080`) their source text."""
    template = pod_template(obj)
    metadata = template.get("metadata") if template is not None else None
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(annotations, dict):
        return
    for key, value in list(annotations.items()):
        if not (isinstance(key, str) and key.startswith(PREFIX)) or value is None:
            continue
        if isinstance(value, date):  # ruamel's timestamp: a string to kubectl
            annotations[key] = _source_text(annotations, key, body) or value.isoformat()
        elif not isinstance(value, str):
            text = _source_text(annotations, key, body) or str(value)
            annotations[key] = NotAString(text, kind_of(value))
        # Quoted values are str subclasses (preserved quotes); plain ones are str itself.
        elif type(value) is str and (reads_as := go_yaml_reads_as(value)) is not None:
            annotations[key] = NotAString(value, reads_as)


def _source_text(annotations: Any, key: str, body: str) -> str | None:
    """A plain scalar's text as written (ruamel keeps `8080` and `1e3` only as numbers)."""
    try:
        line, column = annotations.lc.value(key)
        text = body.splitlines()[line][column:]
    except (AttributeError, KeyError, IndexError, TypeError):
        return None
    return text.split(" #", 1)[0].strip() or None


def _refusal(refused: list[PodnatError]) -> Refused:
    lines = [str(err) for err in refused[:MAX_REPORTED_PROBLEMS]]
    if len(refused) > MAX_REPORTED_PROBLEMS:
        lines.append(f"... and {len(refused) - MAX_REPORTED_PROBLEMS} more refused objects")
    malformed = any(isinstance(err, ManifestError) for err in refused)
    return Refused(lines, ManifestError.exit_code if malformed else Denied.exit_code)
