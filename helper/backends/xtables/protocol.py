"""What crosses the pipe between the iptables-legacy backend and a family worker.

Requests and replies are pickles: a trusted channel between a process and the
child it started, and much cheaper than JSON for a thousand rules. A failure
crosses as a `Failure` (kind, errno, message), never as bare text. Defined here,
not in the worker's module, because the worker runs as `__main__`.
"""

# Annotations evaluated at import, no __future__ import: see helper/__init__.py.
from enum import Enum
from typing import Any, NamedTuple

from helper.backends.base import BackendError
from helper.plan.model import Family
from helper.render.iptables import XtMatch, XtRule, XtRuleset


class FailureKind(Enum):
    KERNEL = "kernel"  # libiptc refused (errno set by the kernel or libiptc)
    SYSTEM = "system"  # an OSError (errno set)
    INTERNAL = "internal"  # anything else python-iptables or podnat raised
    PROTOCOL = "protocol"  # a request the worker does not know


class Failure(NamedTuple):  # a named tuple: cheap to define in every worker's start
    kind: FailureKind
    errno: int | None
    message: str


class WorkerError(BackendError):
    """A family's request failed; typed as the worker reported it."""

    def __init__(self, family: Family, op: str, failure: Failure) -> None:
        self.family, self.op, self.failure = family, op, failure
        super().__init__(f"{family}: {op}: {failure.message}")


class Request:
    """One request for one family; pickled only if a worker serves that family."""

    def __init__(self, op: str, ruleset: XtRuleset | None = None) -> None:
        self.op = op
        self.ruleset = ruleset  # for "stage": the family's rules, rendered
        self._encoded: bytes | None = None

    @property
    def body(self) -> dict[str, Any]:
        return {"op": self.op, "ruleset": self.ruleset}

    @property
    def encoded(self) -> bytes:
        if self._encoded is None:
            # Only a worker's family is pickled: the in-process one (a single-stack pod's
            # only one) spares pickle's import, ~3 ms of its start.
            import pickle  # noqa: PLC0415

            wire = {"op": self.op, "ruleset": _to_wire(self.ruleset)}
            self._encoded = pickle.dumps(wire, protocol=pickle.HIGHEST_PROTOCOL)
        return self._encoded


def decoded(wire: dict[str, Any]) -> dict[str, Any]:
    """A worker's view of `Request.encoded`, unpickled: the body, ruleset rebuilt."""
    return {"op": wire["op"], "ruleset": _from_wire(wire["ruleset"])}


# Plain tuples on the wire: pickle writes them in C, while each named tuple costs a
# class lookup and a constructor call (~3x slower for a thousand rules).
_WireRule = tuple[Any, ...]


def _to_wire(ruleset: XtRuleset | None) -> tuple[str, tuple[str, ...], list[_WireRule]] | None:
    if ruleset is None:
        return None
    rules = [(*rule[:4], tuple(map(tuple, rule.matches)), *rule[5:]) for rule in ruleset.rules]
    return ruleset.family.value, ruleset.chains, rules


def _from_wire(wire: tuple[str, tuple[str, ...], list[_WireRule]] | None) -> XtRuleset | None:
    if wire is None:
        return None
    family, chains, rules = wire
    return XtRuleset(
        Family(family),
        chains,
        tuple(
            XtRule(c, t, s, p, tuple(XtMatch(*m) for m in ms), tp, ports)
            for c, t, s, p, ms, tp, ports in rules
        ),
    )


def checked(family: Family, op: str, reply: dict[str, Any]) -> dict[str, Any]:
    """The reply, or its failure raised as a WorkerError."""
    failure = reply.get("failure")
    if isinstance(failure, Failure):
        raise WorkerError(family, op, failure)
    return reply
