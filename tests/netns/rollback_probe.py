"""Run inside a lab namespace: make the second family's commit fail, for real.

Applies both families through the backend's public apply; between staging and
committing (`before_commit`) it changes the IPv6 nat table behind libiptc's back
(as a tool ignoring the xtables lock would), so the kernel refuses the IPv6
replace (EAGAIN: the table changed since it was read). Prints the error.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from helper.backends.base import BackendError
from helper.backends.xtables.backend import IptablesLegacyBackend
from helper.backends.xtables.protocol import WorkerError
from helper.plan.model import Family
from helper.plan.parse import parse_plan
from helper.plan.resolve import resolve
from helper.render.rulesets import render

BOTH = (Family.IPV4, Family.IPV6)
FOREIGN_CHANGE = (
    *("ip6tables-legacy", "-w", "-t", "nat", "-A", "PREROUTING", "-p", "udp"),
    *("--dport", "9", "-j", "DNAT", "--to-destination", ":10"),
)


def change_ipv6_behind_libiptcs_back() -> None:
    # podnat holds the xtables lock here: this tool uses another lock file, as a
    # tool that ignores podnat's lock would.
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "XTABLES_LOCKFILE": f"{tmp}/xtables.lock"}
        subprocess.run(FOREIGN_CHANGE, check=True, env=env)


plan = parse_plan({"podnat.io/redirect": sys.argv[1]})
resolved = resolve(plan, global_families=BOTH, nat_families=BOTH, backend="x").resolved
# As the CLI serves them: IPv4 in-process, IPv6 in a worker.
backend = IptablesLegacyBackend(first_family_in_process=True)
try:
    backend.apply(
        render("iptables-legacy", resolved), before_commit=change_ipv6_behind_libiptcs_back
    )
except BackendError as err:
    print(err)  # noqa: T201 - read by the test
    cause = err.__cause__
    if isinstance(cause, WorkerError):  # how the worker typed it
        failure = cause.failure
        print(f"cause: {cause.family} {cause.op} {failure.kind.value} {failure.errno}")  # noqa: T201
finally:
    backend.close()
