"""The Downward API file format (kubelet writes values with Go's strconv.Quote)."""

from __future__ import annotations

from pathlib import Path

import pytest

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
