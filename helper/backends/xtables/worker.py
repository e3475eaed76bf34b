"""Channels to the per-family nat tables.

libxtables keeps one address family per process: its extension registry is
global, so a DNAT target loaded for IPv4 cannot be found again for IPv6 (and
python-iptables' maintainer advises one family per process). A family is served
either in-process (`LocalFamily`: only where the caller says this process serves
no other family and no other namespace, i.e. a one-shot CLI) or by a freshly
started worker (`FamilyWorker`: `python -m helper.backends.xtables.worker`, not a
fork, so its libxtables is clean whatever the parent loaded). Both take the same
requests (see xtables.protocol); a worker's run concurrently with the parent's own.

A worker is started from the thread that entered the target network namespace,
so it is born there; it serves that one namespace until it is closed.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING, Any, Protocol

from helper.backends.base import BackendError
from helper.backends.xtables.protocol import Failure, FailureKind, Request, checked, decoded
from helper.plan.model import Family

if TYPE_CHECKING:
    from helper.backends.xtables.family import FamilyTable
    from helper.render.iptables import XtRuleset


class Channel(Protocol):
    family: Family

    def send(self, request: Request) -> None: ...

    def receive(self, op: str) -> dict[str, Any]: ...

    def close(self) -> None: ...


def call(channel: Channel, op: str) -> dict[str, Any]:
    channel.send(Request(op))
    return channel.receive(op)


def open_channel(family: Family, *, in_process: bool, inherit_fds: tuple[int, ...]) -> Channel:
    """`in_process`: the caller vouches this process's libxtables serves only `family`."""
    if in_process:
        return LocalFamily(family)
    return FamilyWorker(family, inherit_fds)


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
                from helper.backends.xtables.family import FamilyTable  # noqa: PLC0415

                self._table = FamilyTable(self.family)
            return _handle(self._table, request)
        except Exception as err:  # python-iptables raises bare Exceptions too
            return {"failure": _failure(err)}

    def receive(self, op: str) -> dict[str, Any]:
        return checked(self.family, op, self._reply)

    def close(self) -> None:
        self._table = None


class FamilyWorker:
    """Another family, in a worker process of its own."""

    def __init__(self, family: Family, inherit_fds: tuple[int, ...]) -> None:
        self.family = family
        self._process = subprocess.Popen(
            [sys.executable, "-m", "helper.backends.xtables.worker", family.value],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # The namespace lock stays held while this worker lives: killed after
            # sending it a commit, the parent must not let another podnat in before
            # that commit is done.
            pass_fds=inherit_fds,
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
        import pickle  # noqa: PLC0415 - workers only (see protocol.Request.encoded)

        try:
            reply: dict[str, Any] = pickle.load(self._process.stdout)  # type: ignore[arg-type]  # noqa: S301
        except EOFError:
            code = self._process.wait()
            raise BackendError(f"{self.family}: worker failed (exit code {code})") from None
        except OSError as err:
            raise BackendError(f"{self.family}: worker failed ({err})") from err
        return checked(self.family, op, reply)

    def close(self) -> None:
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                stream.close()
        self._process.wait()


def _failure(err: Exception) -> Failure:
    if isinstance(err, OSError):
        return Failure(FailureKind.SYSTEM, err.errno, _readable(err))
    if type(err).__name__ == "IPTCError":  # python-iptables, not imported here
        # libiptc set errno and python-iptables formatted it; read the number back.
        return Failure(FailureKind.KERNEL, _c_errno() or None, _readable(err))
    return Failure(FailureKind.INTERNAL, None, _readable(err))


def _c_errno() -> int:
    """This thread's C errno, as libiptc left it (python-iptables reads it the same way)."""
    location = ctypes.CDLL(None).__errno_location
    location.restype = ctypes.POINTER(ctypes.c_int)
    return int(location()[0])


def _readable(err: Exception) -> str:
    # python-iptables formats libiptc's bytes messages with %s: b'...'
    return re.sub(r"b'([^']*)'", r"\1", str(err)) or type(err).__name__


def _handle(table: FamilyTable, request: dict[str, Any]) -> dict[str, Any]:  # noqa: PLR0911 - one per op
    op = request["op"]
    if op == "status":
        own, foreign = table.status()
        return {"own": own, "foreign": foreign}
    if op == "read":
        return {"ruleset": table.read()}
    if op == "neighbours":
        return {"neighbours": table.neighbours()}
    if op == "cleanup":
        return {"removed": table.cleanup()}
    if op == "stage":
        return _stage(table, request["ruleset"])
    if op in ("probe", "commit", "rollback"):
        getattr(table, op)()
        return {}
    return {"failure": Failure(FailureKind.PROTOCOL, errno.EINVAL, f"unknown op {op}")}


def _stage(table: FamilyTable, ruleset: XtRuleset | None) -> dict[str, Any]:
    # None: nothing wanted in this family, but stale podnat rules still go.
    table.stage(ruleset)
    return {"listing": ruleset.listing() if ruleset is not None else None}


def _serve(family: Family) -> None:
    """The worker's loop: one reply per request until the parent closes stdin."""
    import pickle  # noqa: PLC0415 - workers only (see protocol.Request.encoded)

    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    served = LocalFamily(family)
    while True:
        try:
            request = pickle.load(requests)  # noqa: S301 - our own parent
        except EOFError:
            return
        reply = served.answer(decoded(request))
        try:
            pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
            replies.flush()
        except BrokenPipeError:  # the parent is gone (killed): its request is done
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # quiet exit
            return


if __name__ == "__main__":
    from helper.system.privileges import raise_permitted  # the worker's exec: caps again

    raise_permitted()
    _serve(Family(sys.argv[1]))
