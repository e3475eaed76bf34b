"""Multi-document YAML in and out for `podnat inject`, read the way kubectl reads it.

GitOps users diff inject's output, so a document podnat does not change is written
back byte for byte (its original text), and a changed one goes through ruamel.yaml's
round-trip mode: comments, key order, quoting and flow style survive. ruamel reads YAML
1.2; kubectl (go-yaml v2) reads some plain words 1.1's way (`yes`, `on`, `y`): those are
only a problem where podnat reads a value (its annotations) or writes one (its container),
and both places use `go_yaml_reads_as`.
Never imported by `podnat apply` (ruamel costs tens of milliseconds).
"""

from __future__ import annotations

import io
import itertools
import re
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedBase
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import DocumentEndEvent
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from helper.errors import ManifestError

# Plain scalars go-yaml v2 (sigs.k8s.io/yaml, hence kubectl) does not read as a string.
_BOOLS = "y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF"
_NUMBER = r"[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?|[-+]?0[xXoObB][0-9a-fA-F_]+"
_SPECIAL = r"[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"
_NOT_STRING = {
    "a boolean": re.compile(f"(?:{_BOOLS})"),
    "null": re.compile("(?:~|null|Null|NULL|)"),
    "a number": re.compile(f"(?:{_NUMBER}|{_SPECIAL})"),
}
# A changed document is written with lines this long rather than re-folded.
_WIDTH = 1 << 20


def go_yaml_reads_as(plain: str) -> str | None:
    """What kubectl reads this unquoted scalar as, when not as a string."""
    for what, pattern in _NOT_STRING.items():
        if pattern.fullmatch(plain):
            return what
    return None


@dataclass
class Document:
    """One YAML document of a stream: its original text, and its content as read."""

    number: int  # 1-based, as a reader counts the `---` separated documents
    head: str  # leading comments, blank lines and `---`: kept as they are
    body: str
    first_line: int  # 1-based line of `body` in the whole stream
    content: Any = None


def read_documents(text: str, where: str) -> list[Document]:
    """The documents of a stream, each with its own text. Raises ManifestError."""
    yaml = YAML(typ="rt")
    ends = []
    try:
        for event in yaml.parse(text):
            if isinstance(event, DocumentEndEvent):
                ends.append(event.end_mark.index)
    except YAMLError as err:
        raise ManifestError(_yaml_problem(err, where, len(ends) + 1, 0)) from err
    except RecursionError as err:
        raise ManifestError(f"{where}: document {len(ends) + 1}: nested too deeply") from err
    cuts = [0, *ends[:-1], len(text)] if ends else [0, len(text)]
    documents = []
    for number, (start, end) in enumerate(itertools.pairwise(cuts), start=1):
        head, body = _split_head(text[start:end])
        chunk = Document(number, head, body, text.count("\n", 0, start) + head.count("\n") + 1)
        chunk.content = _load(chunk, where)
        documents.append(chunk)
    return documents


def _load(document: Document, where: str) -> Any:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    try:
        return yaml.load(document.body)
    except YAMLError as err:
        raise ManifestError(
            _yaml_problem(err, where, document.number, document.first_line - 1)
        ) from err
    except RecursionError as err:
        raise ManifestError(f"{where}: document {document.number}: nested too deeply") from err


def _yaml_problem(err: YAMLError, where: str, number: int, line_offset: int) -> str:
    if isinstance(err, MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        at = f"line {mark.line + 1 + line_offset}, column {mark.column + 1}"
        return f"{where}: document {number}, {at}: not valid YAML: {err.problem}"
    return f"{where}: document {number}: not valid YAML: {err}"


def write_documents(documents: list[Document], changed: set[int]) -> str:
    """The stream again: unchanged documents as they were read, changed ones re-emitted."""
    return "".join(
        document.head + (_dump(document) if document.number in changed else document.body)
        for document in documents
    )


def _dump(document: Document) -> str:
    body = document.body
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = _WIDTH
    mapping, dash_offset = _guess_indent(body)
    yaml.indent(mapping=mapping, sequence=dash_offset + 2, offset=dash_offset)
    # A `--- # comment` line, or a document ended by `...`, keeps its marker.
    yaml.explicit_start = body.lstrip().startswith("---")
    out = io.StringIO()
    yaml.dump(_quote_new_strings(document.content), out)
    ended = body.rstrip().endswith("\n...") or body.rstrip() == "..."
    return out.getvalue() + ("...\n" if ended else "")


_KEY_LINE = re.compile(r"( *)[^ #-][^:]*:( |$)")
_DASH_LINE = re.compile(r"( *)- ")


def _guess_indent(body: str) -> tuple[int, int]:
    """The document's mapping indent and how far its `- ` sit in from their key.

    One style per document is all ruamel can write; the first nested key and the
    first block sequence decide (kubectl's `2, 0` and the `2, 2` of many charts).
    """
    mapping = dash_offset = None
    parent = 0
    for line in body.splitlines():
        if key := _KEY_LINE.match(line):
            if mapping is None and len(key.group(1)) > 0:
                mapping = len(key.group(1))
            parent = len(key.group(1))
        elif (dash := _DASH_LINE.match(line)) and dash_offset is None:
            dash_offset = max(0, len(dash.group(1)) - parent)
        if mapping is not None and dash_offset is not None:
            break
    return mapping or 2, dash_offset or 0


def _split_head(text: str) -> tuple[str, str]:
    """The leading comments, blank lines and `---` of a document, and the rest."""
    lines = text.splitlines(keepends=True)
    count = 0
    for line in lines:
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and stripped != "---":
            break
        count += 1
    return "".join(lines[:count]), "".join(lines[count:])


def _quote_new_strings(node: Any, new: bool = False) -> Any:
    """Quote what podnat adds where kubectl would not read it as a string (`--image yes`).

    Nodes read from the input are ruamel's Commented* types and keep their own quoting:
    a plain `y` there meant a boolean to kubectl, and still does.
    """
    new = new or not isinstance(node, CommentedBase)
    if isinstance(node, dict):
        for key, value in node.items():
            node[key] = _quote_new_strings(value, new)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            node[index] = _quote_new_strings(value, new)
    elif new and type(node) is str and go_yaml_reads_as(node):
        return DoubleQuotedScalarString(node)
    return node
