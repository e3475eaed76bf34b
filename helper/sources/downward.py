"""The Downward API annotations file: one `key="value"` per line, values Go-quoted.

The kubelet writes it with Go's strconv.Quote
(https://kubernetes.io/docs/concepts/workloads/pods/downward-api/), so values
may hold \\n, \\", \\\\, \\t, \\xNN, \\uNNNN and \\UNNNNNNNN escapes.
"""

from __future__ import annotations

import re
from pathlib import Path

from helper.sources.base import SourceError

DEFAULT_PATH = Path("/etc/podinfo/annotations")

_LINE = re.compile(r'(?P<key>[^=\s]+)="(?P<value>(?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)", re.DOTALL)
_SIMPLE = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}


class DownwardFileSource:
    def __init__(self, path: Path = DEFAULT_PATH) -> None:
        self.path = path

    def describe(self) -> str:
        return f"Downward API file {self.path}"

    def read(self) -> dict[str, str]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as err:
            raise SourceError(
                f"annotations file {self.path}: {err.strerror}; mount a Downward API volume "
                "with metadata.annotations there, or pass --annotations-file"
            ) from err
        return parse_annotations_file(text, str(self.path))


def parse_annotations_file(text: str, where: str = "annotations file") -> dict[str, str]:
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _LINE.fullmatch(line.strip())
        if match is None:
            raise SourceError(f'{where}:{number}: expected key="value", got {line[:80]!r}')
        out[match["key"]] = go_unquote(match["value"], f"{where}:{number}")
    return out


def go_unquote(body: str, where: str) -> str:
    """Undo strconv.Quote for the text between the quotes."""
    raw = bytearray()

    def emit(text: str) -> None:
        raw.extend(text.encode("utf-8"))

    position = 0
    for match in _ESCAPE.finditer(body):
        emit(body[position : match.start()])
        code = match.group(1)
        if code[0] == "x" or code[0] in "01234567":
            raw.append(int(code[1:], 16) if code[0] == "x" else int(code, 8))
        elif code[0] in "uU":
            emit(chr(int(code[1:], 16)))
        elif code in _SIMPLE:
            emit(_SIMPLE[code])
        else:
            raise SourceError(f"{where}: unknown escape \\{code}")
        position = match.end()
    emit(body[position:])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SourceError(f"{where}: value is not UTF-8: {err}") from err
