"""Run inside a lab namespace: make the second family's commit fail, for real.

Stages both families through the backend, then changes the IPv6 nat table behind
libiptc's back (as a tool ignoring the xtables lock would), so the kernel refuses
the IPv6 replace (EAGAIN: the table changed since it was read). Prints the error.
"""

from __future__ import annotations

import subprocess
import sys

from helper.backends.base import BackendError
from helper.backends.iptables_legacy import IptablesLegacyBackend
from helper.model import Family
from helper.parse import parse_plan
from helper.resolve import resolve

BOTH = (Family.IPV4, Family.IPV6)
plan = parse_plan({"podnat.io/redirect": sys.argv[1]})
resolved = resolve(plan, global_families=BOTH, nat_families=BOTH, backend="x").resolved
backend = IptablesLegacyBackend()
backend._each(list(BOTH), "stage", resolved)  # the seam under test
subprocess.run(
    [
        "ip6tables-legacy",
        "-w",
        "-t",
        "nat",
        "-A",
        "PREROUTING",
        "-p",
        "udp",
        "--dport",
        "9",
        "-j",
        "DNAT",
        "--to-destination",
        ":10",
    ],
    check=True,
)
try:
    backend._commit_all(list(BOTH))
except BackendError as err:
    print(err)  # noqa: T201 - read by the test
finally:
    backend.close()
