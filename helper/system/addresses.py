"""Which IP families this network namespace has a global address for (read from /proc).

/proc/thread-self/net is the reading thread's network namespace, so this works
in a thread that entered one, without netlink. (/proc/net is /proc/self/net: the
main thread's namespace, wrong for any other thread.) Scope 0 in if_inet6 is
global (ULA counts: pods use fd00::/8 addresses); link-local and loopback do not.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from helper.plan.model import Family

PROC_NET = Path("/proc/thread-self/net")


def global_families(proc_net: Path = PROC_NET) -> frozenset[Family]:
    found: set[Family] = set()
    if _has_global_ipv4(proc_net / "fib_trie"):
        found.add(Family.IPV4)
    if _has_global_ipv6(proc_net / "if_inet6"):
        found.add(Family.IPV6)
    return frozenset(found)


def _has_global_ipv4(fib_trie: Path) -> bool:
    # Local addresses appear as "|-- ADDR" followed by "/32 host LOCAL".
    try:
        lines = fib_trie.read_text().splitlines()
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
            and not ipaddress.IPv4Address(last).is_loopback
        ):
            return True
    return False


def _has_global_ipv6(if_inet6: Path) -> bool:
    try:
        lines = if_inet6.read_text().splitlines()
    except OSError:
        return False
    return any(len(f := line.split()) >= 4 and f[3] == "00" for line in lines)
