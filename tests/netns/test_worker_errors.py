"""Errors from iptables-legacy's family workers cross the pipe typed, and read well."""

from __future__ import annotations

import errno
import sys

from tests.cases import R
from tests.kit.lab import Lab
from tests.netns.podnat import podnat


def test_a_refused_commit_names_the_family_and_crosses_typed(lab: Lab) -> None:
    assert podnat(lab.pod, "apply", {R: "4321:1234"}, "--backend", "iptables-legacy").code == 0
    out = lab.pod.run(sys.executable, "-m", "tests.netns.rollback_probe", "5555:1111")
    message, cause = out.splitlines()
    # Before: the message showed a Python tuple, "(<Family.IPV6: 'ipv6'>, BackendError(...".
    assert message == (
        "iptables-legacy: ipv6: commit: can't commit: Resource temporarily unavailable; "
        "rolled back: ipv4"
    )
    # The kernel's EAGAIN (the table changed since it was read), as the worker saw it.
    assert cause == f"cause: ipv6 commit kernel {errno.EAGAIN}"
