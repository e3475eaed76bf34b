"""The Downward API file format (kubelet writes values with Go's strconv.Quote)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from helper.plan.limits import MAX_DOWNWARD_FILE_BYTES
from helper.sources.base import SourceError
from helper.sources.downward import DownwardFileSource, parse_annotations_file

# What the kubelet wrote for a pod (captured format: sorted keys, Go-quoted values).
KUBELET_FILE = (
    'kubectl.kubernetes.io/last-applied-configuration="{\\"apiVersion\\":\\"v1\\"}\\n"\n'
    'kubernetes.io/config.seen="2026-11-23T10:00:00.000000000Z"\n'
    'note="tab\\there, quote \\" backslash \\\\ caf\\u00e9 \\xe2\\x82\\xac \\U0001F600"\n'
    'podnat.io/redirect="4321:1234, 5353:53/udp"\n'
)


def test_kubelet_format_is_decoded() -> None:
    annotations = parse_annotations_file(KUBELET_FILE)
    assert annotations["podnat.io/redirect"] == "4321:1234, 5353:53/udp"
    assert annotations["kubectl.kubernetes.io/last-applied-configuration"] == (
        '{"apiVersion":"v1"}\n'
    )
    assert annotations["note"] == 'tab\there, quote " backslash \\ café € 😀'


def test_an_empty_file_means_no_annotations() -> None:
    assert parse_annotations_file("") == {}


def test_a_malformed_line_is_a_source_error_with_its_line_number() -> None:
    with pytest.raises(SourceError, match=r"f:2: expected key=\"value\""):
        parse_annotations_file('a="1"\nb=2\n', "f")


def test_a_missing_file_explains_the_downward_api_volume(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="Downward API volume"):
        DownwardFileSource(tmp_path / "annotations").read()


@pytest.mark.parametrize(
    ("escape", "reason"),
    [
        ("\\777", r"octal escape \\777 is more than one byte"),
        ("\\x4", r"escape \\x is cut short"),
        ("\\u12", r"escape \\u is cut short"),
        ("\\UFFFFFFFF", r"escape \\UFFFFFFFF is beyond U\+10FFFF"),
        ("\\ud800", r"escape \\ud800 is a surrogate"),
        ("\\q", r"unknown escape \\q"),
        ("\\xff", "value is not UTF-8 once unquoted"),
    ],
)
def test_a_bad_escape_is_a_source_error_naming_file_line_and_reason(
    escape: str, reason: str
) -> None:
    with pytest.raises(SourceError, match=f"^f:2: {reason}"):
        parse_annotations_file(f'a="1"\nb="x{escape}y"\n', "f")


def test_octal_escapes_up_to_377_are_bytes() -> None:
    assert parse_annotations_file('a="\\101\\303\\251"\n') == {"a": "Aé"}


def test_a_raw_non_utf8_byte_names_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "annotations"
    path.write_bytes(b'a="1"\nb="x\xffy"\n')
    with pytest.raises(SourceError, match=r"annotations:2: not UTF-8 \(byte 0xff at column 5\)"):
        DownwardFileSource(path).read()


def test_only_newline_ends_a_line() -> None:
    # str.splitlines() would cut this value in two at U+2028.
    assert parse_annotations_file('a="x\u2028y\x1cz"\n') == {"a": "x\u2028y\x1cz"}


def read_within(path: Path, seconds: float = 5.0) -> BaseException | dict[str, str]:
    """The read's result or error; fails the test (without hanging it) if the read blocks."""
    box: list[BaseException | dict[str, str]] = []

    def body() -> None:
        try:
            box.append(DownwardFileSource(path).read())
        except BaseException as err:  # handed to the test
            box.append(err)

    thread = threading.Thread(target=body, daemon=True)
    started = time.perf_counter()
    thread.start()
    thread.join(seconds)
    assert box, f"reading {path} still blocked after {seconds} s"
    assert time.perf_counter() - started < 1.0
    return box[0]


def test_a_fifo_without_writer_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "annotations"
    os.mkfifo(fifo)
    outcome = read_within(fifo)
    assert isinstance(outcome, SourceError)
    assert str(outcome) == f"annotations file {fifo}: is a FIFO, not a regular file"


def test_a_device_is_refused_without_reading_it() -> None:
    outcome = read_within(Path("/dev/zero"))
    assert isinstance(outcome, SourceError)
    assert "is a character device, not a regular file" in str(outcome)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    outcome = read_within(tmp_path)
    assert isinstance(outcome, SourceError)
    assert "is a directory, not a regular file" in str(outcome)


def test_a_file_over_the_cap_is_refused_after_reading_cap_plus_one_bytes(tmp_path: Path) -> None:
    huge = tmp_path / "annotations"
    with huge.open("wb") as out:
        out.truncate(62_000_000)  # sparse: 62 MB that take no disk
    outcome = read_within(huge)
    assert isinstance(outcome, SourceError)
    assert f"larger than {MAX_DOWNWARD_FILE_BYTES} bytes" in str(outcome)


def test_a_file_of_exactly_the_cap_is_read(tmp_path: Path) -> None:
    path = tmp_path / "annotations"
    head = b'podnat.io/redirect="4321:1234"\nfill="'
    path.write_bytes(head + b"x" * (MAX_DOWNWARD_FILE_BYTES - len(head) - 2) + b'"\n')
    assert path.stat().st_size == MAX_DOWNWARD_FILE_BYTES
    assert DownwardFileSource(path).read()["podnat.io/redirect"] == "4321:1234"
    with path.open("ab") as out:
        out.write(b"\n")
    with pytest.raises(SourceError, match="larger than"):
        DownwardFileSource(path).read()


def test_the_kubelets_symlinked_layout_is_followed(tmp_path: Path) -> None:
    # What the kubelet's atomic writer makes: annotations -> ..data/annotations, ..data -> ..<ts>.
    stamped = tmp_path / "..2026_11_23_10_00_00.000000001"
    stamped.mkdir()
    (stamped / "annotations").write_text('podnat.io/redirect="4321:1234"\n')
    (tmp_path / "..data").symlink_to(stamped.name)
    (tmp_path / "annotations").symlink_to("..data/annotations")
    assert DownwardFileSource(tmp_path / "annotations").read() == {
        "podnat.io/redirect": "4321:1234"
    }


def test_a_symlink_to_a_fifo_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "annotations").symlink_to("fifo")
    outcome = read_within(tmp_path / "annotations")
    assert isinstance(outcome, SourceError)
    assert "is a FIFO" in str(outcome)


def test_a_malformed_line_is_quoted_short_and_escaped() -> None:
    with pytest.raises(SourceError) as caught:
        parse_annotations_file("\x1b[2J" + "x" * 5000 + "\n", "f")
    assert str(caught.value) == 'f:1: expected key="value", got "\\x1b[2J' + "x" * 57 + '…"'
