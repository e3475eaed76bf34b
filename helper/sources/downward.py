"""The Downward API annotations file: one `key="value"` per line, values Go-quoted.

The kubelet writes it with Go's strconv.Quote
(https://kubernetes.io/docs/concepts/workloads/pods/downward-api/), so values
may hold \\n, \\", \\\\, \\t, \\xNN, \\uNNNN and \\UNNNNNNNN escapes (and Go's
Unquote also reads \\NNN octal). Anything else is a SourceError naming the file,
the line and the reason: never a traceback, never an unbounded read.
"""

from __future__ import annotations

import os
import re
import stat

from helper.plan.limits import MAX_DOWNWARD_FILE_BYTES, shown
from helper.sources.base import SourceError
from helper.system import StrPath

DEFAULT_PATH = "/etc/podinfo/annotations"

_LINE = re.compile(r'(?P<key>[^=\s]+)="(?P<value>(?:[^"\\]++|\\.)*+)"', re.DOTALL)
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
_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


class DownwardFileSource:
    def __init__(self, path: StrPath = DEFAULT_PATH) -> None:
        self.path = path

    def describe(self) -> str:
        return f"Downward API file {self.path}"

    def read(self) -> dict[str, str]:
        return parse_annotations_bytes(read_bounded(self.path), str(self.path))


def read_bounded(path: StrPath, limit: int = MAX_DOWNWARD_FILE_BYTES) -> bytes:
    """The bytes of a regular file (symlinks followed, as the kubelet's ..data links are).

    O_NONBLOCK: opening a FIFO with no writer must not wait forever; a FIFO, a device
    or a directory is refused before any read. At most limit + 1 bytes are read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as err:
        raise SourceError(
            f"annotations file {path}: {err.strerror}; mount a Downward API volume "
            "with metadata.annotations there, or pass --annotations-file"
        ) from err
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
            raise SourceError(f"annotations file {path}: is {kind}, not a regular file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as err:
        raise SourceError(f"annotations file {path}: {err.strerror}") from err
    finally:
        os.close(fd)
    if size > limit:
        raise SourceError(
            f"annotations file {path}: larger than {limit} bytes; the kubelet writes at most "
            "256 KiB of annotations, so this is not its Downward API file"
        )
    return b"".join(chunks)


def parse_annotations_bytes(data: bytes, where: str = "annotations file") -> dict[str, str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise SourceError(
            f"{where}:{line}: not UTF-8 (byte 0x{data[err.start]:02x} at column {column})"
        ) from err
    return parse_annotations_file(text, where)


def parse_annotations_file(text: str, where: str = "annotations file") -> dict[str, str]:
    out: dict[str, str] = {}
    # Only "\n" ends a line: str.splitlines() would also split at \x1c, \u2028 and others.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        match = _LINE.fullmatch(line.strip())
        if match is None:
            raise SourceError(f'{where}:{number}: expected key="value", got "{shown(line)}"')
        out[match["key"]] = go_unquote(match["value"], f"{where}:{number}")
    return out


def go_unquote(body: str, where: str) -> str:
    """Undo strconv.Quote for the text between the quotes; refuse what Go's Unquote refuses."""
    raw = bytearray()

    def emit(text: str) -> None:
        raw.extend(text.encode("utf-8", "surrogatepass"))

    position = 0
    for match in _ESCAPE.finditer(body):
        emit(body[position : match.start()])
        raw.extend(_unescape(match.group(1), where))
        position = match.end()
    emit(body[position:])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SourceError(f"{where}: value is not UTF-8 once unquoted: {err.reason}") from err


def _unescape(code: str, where: str) -> bytes:
    """The bytes one escape stands for (without its backslash)."""
    if code in _SIMPLE:
        return _SIMPLE[code].encode()
    if len(code) == 1:
        # The regex took one character because the long forms did not match.
        if code in "xuU01234567":
            raise SourceError(f"{where}: escape \\{shown(code)} is cut short")
        raise SourceError(f"{where}: unknown escape \\{shown(code)}")
    if code[0] == "x":
        return bytes([int(code[1:], 16)])
    if code[0] in "uU":
        rune = int(code[1:], 16)
        if rune > 0x10FFFF or 0xD800 <= rune <= 0xDFFF:
            reason = "a surrogate" if rune <= 0xDFFF else "beyond U+10FFFF"
            raise SourceError(f"{where}: escape \\{code} is {reason}, not a character")
        return chr(rune).encode()
    value = int(code, 8)
    if value > 0xFF:
        raise SourceError(f"{where}: octal escape \\{code} is more than one byte (> \\377)")
    return bytes([value])
