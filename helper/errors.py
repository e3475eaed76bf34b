"""The one base of every error podnat reports to its user, and the exit codes.

The CLI catches this base (never a traceback for user error); each kind says its
code. `ExitCode` is the contract: the CLI's epilog, the README and the tests read
it from here.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    DRIFT = 1
    INVALID = 2
    SOURCE = 3
    BACKEND = 4
    MANIFEST = 5

    @property
    def meaning(self) -> str:
        """What the code means, as the CLI's epilog says it."""
        return _MEANINGS[self]


_MEANINGS = {
    ExitCode.OK: "ok",
    ExitCode.DRIFT: "verify drift",
    ExitCode.INVALID: "invalid annotations (or a pod inject or the webhook refuses)",
    ExitCode.SOURCE: "source error",
    ExitCode.BACKEND: "backend error",
    ExitCode.MANIFEST: "inject's input is not YAML or not a manifest podnat can read",
}


def exit_codes_help() -> str:
    return "exit codes: " + ", ".join(f"{code.value} {code.meaning}" for code in ExitCode)


class PodnatError(Exception):
    exit_code: ExitCode = ExitCode.BACKEND


class ManifestError(PodnatError):
    """`inject`'s input, or a webhook's object, is not a manifest podnat can read.

    `inject` exits 5; the webhook answers 400 (a malformed request, not a denial).
    """

    exit_code = ExitCode.MANIFEST
