"""Channels to the per-family nat tables.

libxtables keeps one address family per process: its extension registry is
global, so a DNAT target loaded for IPv4 cannot be found again for IPv6 (and
python-iptables' maintainer advises one family per process). So the first family
a process touches is served in-process (`LocalFamily`), and any other family by a
freshly started worker (`FamilyWorker`: `python -m helper.backends.xtables_worker`,
not a fork, so its libxtables is clean whatever the parent loaded). Both take the
same requests; a worker's run concurrently with the parent's own.

Requests and replies are pickles over the worker's stdin/stdout: a trusted
channel between a process and the child it started, and much cheaper than
JSON for a thousand rules. The worker inherits the parent's network namespace.
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from typing import TYPE_CHECKING, Any, Protocol

from helper.backends.base import BackendError
from helper.model import Family, ResolvedPlan
from helper.netns_lock import held_descriptors
from helper.render.iptables import render_ruleset

if TYPE_CHECKING:
    from helper.backends.xtables_family import FamilyTable


class Channel(Protocol):
    family: Family

    def send(self, request: Request) -> None: ...

    def receive(self, op: str) -> dict[str, Any]: ...

    def close(self) -> None: ...


class Request:
    """One request for every family; pickled once, and only if a worker needs it."""

    def __init__(self, op: str, resolved: ResolvedPlan | None = None) -> None:
        self.op = op
        self.body: dict[str, Any] = {"op": op, "resolved": resolved}
        self._encoded: bytes | None = None

    @property
    def encoded(self) -> bytes:
        if self._encoded is None:
            self._encoded = pickle.dumps(self.body, protocol=pickle.HIGHEST_PROTOCOL)
        return self._encoded


def call(channel: Channel, op: str, resolved: ResolvedPlan | None = None) -> dict[str, Any]:
    channel.send(Request(op, resolved))
    return channel.receive(op)


_local_family: Family | None = None  # the family this process's libxtables serves


def open_channel(family: Family) -> Channel:
    global _local_family  # noqa: PLW0603 - mirrors libxtables' own process-wide state
    if _local_family in (None, family):
        _local_family = family
        return LocalFamily(family)
    return FamilyWorker(family)


class LocalFamily:
    """The process's own family, served in-process; a request runs when it is sent."""

    def __init__(self, family: Family) -> None:
        self.family = family
        self._table: FamilyTable | None = None
        self._reply: dict[str, Any] = {}

    def send(self, request: Request) -> None:
        self._reply = self.answer(request.body)

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one request; every failure becomes an error reply."""
        try:
            if self._table is None:
                from helper.backends.xtables_family import FamilyTable  # noqa: PLC0415

                self._table = FamilyTable(self.family)
            return _handle(self._table, request)
        except Exception as err:  # python-iptables raises bare Exceptions too
            return {"error": _readable(err)}

    def receive(self, op: str) -> dict[str, Any]:
        return _checked(self.family, op, self._reply)

    def close(self) -> None:
        self._table = None


class FamilyWorker:
    """Another family, in a worker process of its own."""

    def __init__(self, family: Family) -> None:
        self.family = family
        self._process = subprocess.Popen(
            [sys.executable, "-m", "helper.backends.xtables_worker", family.value],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # The namespace lock stays held while this worker lives: killed after
            # sending it a commit, the parent must not let another podnat in before
            # that commit is done.
            pass_fds=held_descriptors(),
        )

    def send(self, request: Request) -> None:
        stdin = self._process.stdin
        try:
            if stdin is None:
                raise BrokenPipeError
            stdin.write(request.encoded)
            stdin.flush()
        except OSError as err:
            raise BackendError(f"{self.family}: worker failed ({err})") from err

    def receive(self, op: str) -> dict[str, Any]:
        try:
            reply: dict[str, Any] = pickle.load(self._process.stdout)  # type: ignore[arg-type]  # noqa: S301
        except EOFError:
            code = self._process.wait()
            raise BackendError(f"{self.family}: worker failed (exit code {code})") from None
        except OSError as err:
            raise BackendError(f"{self.family}: worker failed ({err})") from err
        return _checked(self.family, op, reply)

    def close(self) -> None:
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                stream.close()
        self._process.wait()


def _checked(family: Family, op: str, reply: dict[str, Any]) -> dict[str, Any]:
    if "error" in reply:
        raise BackendError(f"{family}: {op}: {reply['error']}")
    return reply


def _readable(err: Exception) -> str:
    # python-iptables formats libiptc's bytes messages with %s: b'...'
    return re.sub(r"b'([^']*)'", r"\1", str(err)) or type(err).__name__


def _handle(table: FamilyTable, request: dict[str, Any]) -> dict[str, Any]:
    op = request["op"]
    if op == "status":
        own, foreign = table.status()
        return {"own": own, "foreign": foreign}
    if op == "read":
        return {"ruleset": table.read()}
    if op == "cleanup":
        return {"removed": table.cleanup()}
    if op == "stage":
        return _stage(table, request["resolved"])
    if op in ("probe", "commit", "rollback"):
        getattr(table, op)()
        return {}
    return {"error": f"unknown op {op}"}


def _stage(table: FamilyTable, resolved: ResolvedPlan) -> dict[str, Any]:
    # Each side renders its own family: concurrently, and a plan pickles in far
    # less time than a thousand rendered rules.
    if table.family not in resolved.families:
        table.stage(None)
        return {"listing": None}
    ruleset = render_ruleset(resolved, table.family)
    table.stage(ruleset)
    return {"listing": ruleset.listing()}


def _serve(family: Family) -> None:
    """The worker's loop: one reply per request until the parent closes stdin."""
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    served = LocalFamily(family)
    while True:
        try:
            request = pickle.load(requests)  # noqa: S301 - our own parent
        except EOFError:
            return
        reply = served.answer(request)
        try:
            pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
            replies.flush()
        except BrokenPipeError:  # the parent is gone (killed): its request is done
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # quiet exit
            return


if __name__ == "__main__":
    from helper.privileges import raise_permitted  # the worker's exec: caps again

    raise_permitted()
    _serve(Family(sys.argv[1]))
