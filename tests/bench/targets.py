"""A benchmark's targets, checked as it prints its figures."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Targets:
    """A benchmark's targets, checked as it prints its numbers; `verdict` is the exit code."""

    missed: list[str] = field(default_factory=list)

    def check(self, met: bool, what: str) -> None:
        if not met:
            self.missed.append(what)

    def verdict(self, scope: str) -> int:
        if self.missed:
            print(f"{scope}: MISSED: " + "; ".join(self.missed))
            return 1
        print(f"{scope}: all targets met")
        return 0
