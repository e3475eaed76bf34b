"""Where a pod's annotations come from. The Kubernetes API source plugs in here."""

from __future__ import annotations

from typing import Protocol


class SourceError(Exception):
    """The annotations could not be read (not: they were read and are invalid)."""

    exit_code = 3


class AnnotationSource(Protocol):
    def describe(self) -> str:
        """Where the annotations are read from, for logs."""
        ...

    def read(self) -> dict[str, str]: ...
