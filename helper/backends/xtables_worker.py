"""A child process that owns one family's nat table (python-iptables keeps one family
per process). The parent forks it *before* python-iptables is imported anywhere, so
each child loads libxtables fresh for its own family. Requests and replies are
pickles over pipes (parent and its own forked child: a trusted channel; dataclass
JSON round trips cost more than the rules themselves). The child inherits the
parent's network namespace.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import sys
from pathlib import Path
from typing import Any

from helper.backends.base import BackendError
from helper.model import Family, ResolvedPlan
from helper.render.iptables import render_ruleset


class FamilyWorker:
    def __init__(self, family: Family) -> None:
        self.family = family
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # child: serve until the parent hangs up
            _close_inherited_fds(keep={0, 1, 2, down_r, up_w})
            code = 0
            try:
                _serve(family, os.fdopen(down_r, "rb"), os.fdopen(up_w, "wb"))
            except BaseException:  # a crash must never fall back into the parent's code
                code = 70
            finally:
                os._exit(code)
        os.close(down_r)
        os.close(up_w)
        self._pid = pid
        self._to = os.fdopen(down_w, "wb")
        self._from = os.fdopen(up_r, "rb")

    def call(self, op: str, resolved: ResolvedPlan | None = None) -> dict[str, Any]:
        self.send(op, resolved)
        return self.receive(op)

    def send(self, op: str, resolved: ResolvedPlan | None = None) -> None:
        try:
            pickle.dump({"op": op, "resolved": resolved}, self._to)
            self._to.flush()
        except OSError as err:
            raise BackendError(f"{self.family}: worker failed ({err})") from err

    def receive(self, op: str) -> dict[str, Any]:
        try:
            reply: dict[str, Any] = pickle.load(self._from)  # noqa: S301 - our own child
        except EOFError:
            raise BackendError(f"{self.family}: worker failed (it exited)") from None
        except OSError as err:
            raise BackendError(f"{self.family}: worker failed ({err})") from err
        if "error" in reply:
            raise BackendError(f"{self.family}: {op}: {reply['error']}")
        return reply

    def close(self) -> None:
        for stream in (self._to, self._from):
            with contextlib.suppress(OSError):
                stream.close()
        os.waitpid(self._pid, 0)


def _close_inherited_fds(keep: set[int]) -> None:
    """Drop every fd the fork copied but the child must not hold.

    Another worker's request pipe held open would keep that worker from seeing
    EOF, and a copied xtables-lock fd would hold the parent's flock.
    """
    for fd in [int(entry.name) for entry in Path("/proc/self/fd").iterdir()]:
        if fd not in keep:
            with contextlib.suppress(OSError):  # e.g. the fd iterdir itself used
                os.close(fd)


def _serve(family: Family, requests: Any, replies: Any) -> None:
    from helper.backends.xtables_family import FamilyTable  # noqa: PLC0415 - child only

    table: FamilyTable | None = None
    while True:
        try:
            request = pickle.load(requests)  # noqa: S301 - our own parent
        except EOFError:
            return
        try:
            if table is None:
                table = FamilyTable(family)
            reply = _handle(table, request)
        except Exception as err:  # every failure goes back as a reply
            reply = {"error": _readable(err)}
        pickle.dump(reply, replies)
        replies.flush()


def _readable(err: Exception) -> str:
    # python-iptables formats libiptc's bytes messages with %s: b'...'
    return re.sub(r"b'([^']*)'", r"\1", str(err)) or type(err).__name__


def _handle(table: Any, request: dict[str, Any]) -> dict[str, Any]:
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


def _stage(table: Any, resolved: ResolvedPlan) -> dict[str, Any]:
    # The child renders its own family: in parallel, and a plan pickles in
    # microseconds where a thousand rendered rules take milliseconds.
    if table.family not in resolved.families:
        table.stage(None)
        return {"listing": None}
    ruleset = render_ruleset(resolved, table.family)
    table.stage(ruleset)
    return {"listing": ruleset.listing()}
