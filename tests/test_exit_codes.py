"""One ExitCode enum: the CLI's help, the README and the errors all read it."""

from __future__ import annotations

from pathlib import Path

from helper.admission.inject import Denied
from helper.backends.base import BackendError
from helper.errors import ExitCode, ManifestError, exit_codes_help
from helper.plan.parse import InvalidPlanError
from helper.sources.base import SourceError
from tests.netns.podnat import cli

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_codes_stay_what_they_are() -> None:
    assert [(c.name, c.value) for c in ExitCode] == [
        ("OK", 0),
        ("DRIFT", 1),
        ("INVALID", 2),
        ("SOURCE", 3),
        ("BACKEND", 4),
        ("MANIFEST", 5),
    ]


def test_each_error_kind_carries_its_code() -> None:
    assert InvalidPlanError.exit_code is ExitCode.INVALID
    assert Denied.exit_code is ExitCode.INVALID
    assert SourceError.exit_code is ExitCode.SOURCE
    assert BackendError.exit_code is ExitCode.BACKEND
    assert ManifestError.exit_code is ExitCode.MANIFEST


def test_the_cli_epilog_is_the_enum() -> None:
    shown = " ".join(cli("--help").stdout.split())  # argparse re-wraps the epilog
    assert exit_codes_help() in shown
    assert exit_codes_help().startswith("exit codes: 0 ok, 1 verify drift, 2 invalid annotations")


def test_the_readmes_exit_code_line_is_the_enum() -> None:
    line = " · ".join(f"{code.value} {code.meaning}" for code in ExitCode) + "."
    assert line in README.read_text().splitlines()
