"""What is wrong with a pod's annotations: each problem, and the one error that lists them."""

# Annotations evaluated at import, no __future__ import: see helper/__init__.py.
from typing import NamedTuple

from helper.errors import ExitCode, PodnatError
from helper.plan.limits import shown


# A named tuple, not a dataclass (see helper/__init__.py).
class Problem(NamedTuple):
    """One reason the annotations are invalid."""

    annotation: str
    item: str | None
    reason: str

    def __str__(self) -> str:
        # Annotation keys are at most 317 characters in Kubernetes, but a file has no such cap.
        annotation = shown(self.annotation, 120)
        if self.item is None:
            return f"{annotation}: {self.reason}"
        return f'{annotation}: "{shown(self.item)}": {self.reason}'


# A message names at most this many problems, then says how many more there were:
# a hostile annotation must not become a megabyte-long Event or admission answer.
MAX_REPORTED_PROBLEMS = 20


class InvalidPlanError(PodnatError):
    """The annotations cannot be planned.

    `problems` holds the first MAX_REPORTED_PROBLEMS reasons; `omitted` counts the rest.
    """

    exit_code = ExitCode.INVALID

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems[:MAX_REPORTED_PROBLEMS])
        self.omitted = max(0, len(problems) - MAX_REPORTED_PROBLEMS)
        super().__init__("; ".join(self.lines()))

    def lines(self) -> list[str]:
        """One line per reported problem, and "… and K more problems" when some were left out."""
        lines = [str(p) for p in self.problems]
        if self.omitted:
            lines.append(f"... and {self.omitted} more problem{'s' if self.omitted > 1 else ''}")
        return lines
