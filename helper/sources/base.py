"""Where a pod's annotations come from: what every source provides (Downward API file, API)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from helper.errors import ExitCode, PodnatError

# Where the kubelet mounts a pod's service-account token and the cluster CA.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class SourceError(PodnatError):
    """The annotations could not be read (not: they were read and are invalid)."""

    exit_code = ExitCode.SOURCE


class AccessDeniedError(SourceError):
    """The API refused this identity (401/403): a missing binding, not an outage."""


class AnnotationSource(Protocol):
    def describe(self) -> str:
        """Where the annotations are read from, for logs."""
        ...

    def read(self) -> dict[str, str]: ...


@runtime_checkable
class EventSink(Protocol):
    """A source that can also tell the pod's owner what happened (Kubernetes Events)."""

    def event(self, reason: str, message: str, *, warning: bool = False) -> None: ...
