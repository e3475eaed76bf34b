"""Which IP families this network namespace has a global address for (read from /proc).

/proc/thread-self/net is the reading thread's network namespace, so this works
in a thread that entered one, without netlink. (/proc/net is /proc/self/net: the
main thread's namespace, wrong for any other thread.) Scope 0 in if_inet6 is
global (ULA counts: pods use fd00::/8 addresses); link-local and loopback do not.
"""

from __future__ import annotations

import os

from helper.plan.model import Family
from helper.system import StrPath

PROC_NET = "/proc/thread-self/net"


def global_families(proc_net: StrPath = PROC_NET) -> frozenset[Family]:
    found: set[Family] = set()
    if _has_global_ipv4(os.path.join(proc_net, "fib_trie")):
        found.add(Family.IPV4)
    if _has_global_ipv6(os.path.join(proc_net, "if_inet6")):
        found.add(Family.IPV6)
    return frozenset(found)


def _has_global_ipv4(fib_trie: str) -> bool:
    # Local addresses appear as "|-- ADDR" followed by "/32 host LOCAL".
    try:
        with open(fib_trie, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError:
        return False
    last = None
    for line in lines:
        text = line.strip()
        if text.startswith("|-- "):
            last = text[4:]
        elif (
            text == "/32 host LOCAL"
            and last is not None
            and not last.startswith("127.")  # 127.0.0.0/8, IPv4's loopback
        ):
            return True
    return False


def _has_global_ipv6(if_inet6: str) -> bool:
    try:
        with open(if_inet6, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError:
        return False
    return any(len(f := line.split()) >= 4 and f[3] == "00" for line in lines)
