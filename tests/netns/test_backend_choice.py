"""--backend auto on the real kernel: the documented rule, and failing without privilege."""

from __future__ import annotations

import json
import select
import shutil
import subprocess
import threading
import time
from collections.abc import Callable

import pytest

from tests.cases import R
from tests.kit.lab import Lab
from tests.netns.podnat import nat_dump, podnat

RULE = {R: "4321:1234"}


def chosen(stderr: str) -> str:
    line = next(line for line in stderr.splitlines() if "backend " in line and ": " in line)
    return line.split("backend ", 1)[1].split(":", 1)[0]


def test_a_fresh_namespace_gets_nft(lab: Lab) -> None:
    result = podnat(lab.pod, "apply", RULE)
    assert result.code == 0, result.stderr
    assert chosen(result.stderr) == "nft"


def test_a_readable_empty_legacy_nat_table_proves_nothing(lab: Lab) -> None:
    lab.pod.run("iptables-legacy", "-t", "nat", "-S")  # instantiates an empty legacy nat table
    result = podnat(lab.pod, "apply", RULE)
    assert chosen(result.stderr) == "nft"


def test_legacy_wins_where_other_tools_keep_legacy_nat_rules(lab: Lab) -> None:
    lab.pod.run(
        "iptables-legacy",
        "-t",
        "nat",
        "-A",
        "PREROUTING",
        "-p",
        "tcp",
        "--dport",
        "7777",
        "-j",
        "DNAT",
        "--to-destination",
        ":7000",
    )
    result = podnat(lab.pod, "apply", RULE)
    assert chosen(result.stderr) == "iptables-legacy"
    assert "PODNAT-PREROUTING" in nat_dump(lab.pod, "iptables-legacy")
    assert lab.pod.run("nft", "list", "tables", "inet") == ""


def test_a_rerun_stays_on_the_backend_holding_podnats_rules(lab: Lab) -> None:
    assert podnat(lab.pod, "apply", RULE, "--backend", "iptables-legacy").code == 0
    result = podnat(lab.pod, "apply", RULE)
    assert chosen(result.stderr) == "iptables-legacy"
    assert "already holds podnat's rules" in result.stderr


def test_switching_backend_removes_the_stale_rules(lab: Lab) -> None:
    assert podnat(lab.pod, "apply", RULE, "--backend", "iptables-legacy").code == 0
    result = podnat(lab.pod, "apply", RULE, "--backend", "nft")
    assert result.code == 0
    assert "PODNAT" not in nat_dump(lab.pod, "iptables-legacy")
    assert "table inet podnat" in nat_dump(lab.pod, "nft")


@pytest.mark.parametrize("backend", ["auto", "nft", "iptables-legacy"])
def test_without_net_admin_no_backend_is_usable(lab: Lab, backend: str) -> None:
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to drop CAP_NET_ADMIN"
    drop = (setpriv, "--inh-caps=-net_admin", "--bounding-set=-net_admin")
    # Enter the namespace first (needs CAP_SYS_ADMIN), then drop NET_ADMIN.
    result = podnat(
        lab.pod,
        "apply",
        RULE,
        "--backend",
        backend,
        prefix=("ip", "netns", "exec", lab.pod.name, *drop),
    )
    assert result.code == 4, result.stderr
    assert "Operation not permitted" in result.stderr or "Permission denied" in result.stderr
    assert "Traceback" not in result.stderr


def test_nft_needs_only_net_admin_while_legacy_also_needs_net_raw(lab: Lab) -> None:
    # What the injected init container must be granted: NET_ADMIN for nft, plus
    # NET_RAW for iptables-legacy (libiptc talks to the kernel over a raw socket).
    setpriv = shutil.which("setpriv")
    assert setpriv
    drop = (setpriv, "--inh-caps=-net_raw", "--bounding-set=-net_raw")
    prefix = ("ip", "netns", "exec", lab.pod.name, *drop)
    nft = podnat(lab.pod, "apply", RULE, "--backend", "nft", prefix=prefix)
    assert nft.code == 0, nft.stderr
    legacy = podnat(lab.pod, "apply", RULE, "--backend", "iptables-legacy", prefix=prefix)
    assert legacy.code == 4
    assert "Permission denied" in legacy.stderr


def tables_changed_by(lab: Lab, action: Callable[[], object]) -> list[str]:
    """The table events `nft monitor` sees in the pod while `action` runs: bracketed by
    a marker table the monitor must report first (it is listening) and last (all seen)."""
    monitor = subprocess.Popen(
        ["ip", "netns", "exec", lab.pod.name, "nft", "monitor", "tables"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert monitor.stdout is not None
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the monitor reports a marker
            lab.pod.run(
                "nft", "add table ip podnat_test_marker; delete table ip podnat_test_marker"
            )
            ready, _, _ = select.select([monitor.stdout], [], [], 0.2)
            if ready:
                break
        else:
            pytest.fail("nft monitor reported nothing for 10 s")
        action()
        lab.pod.run("nft", "add table ip podnat_test_end; delete table ip podnat_test_end")
        watchdog = threading.Timer(10, monitor.kill)  # the end marker, or EOF in 10 s
        watchdog.start()
        events = []
        for line in monitor.stdout:
            if "podnat_test_end" in line:
                break
            events.append(line.strip())
        else:
            pytest.fail(f"nft monitor never reported the end marker; saw {events}")
        watchdog.cancel()
    finally:
        monitor.kill()
        monitor.wait()
    return [e for e in events if "podnat_test_marker" not in e]


def test_an_nft_apply_is_one_kernel_transaction_with_no_probe_table(lab: Lab) -> None:
    # The apply proves nft as the probe would: a probe's own commit cost every start a
    # second RCU grace period when the netlink socket closed (~15 ms).
    results = []
    events = tables_changed_by(lab, lambda: results.append(podnat(lab.pod, "apply", RULE)))
    assert results[0].code == 0, results[0].stderr
    assert chosen(results[0].stderr) == "nft"
    assert events and not [e for e in events if "podnat_probe" in e], events
    assert "table inet podnat" in nat_dump(lab.pod, "nft")


def test_a_dry_run_still_probes_nft_for_real(lab: Lab) -> None:
    events = tables_changed_by(lab, lambda: podnat(lab.pod, "apply", RULE, "--dry-run"))
    assert [e for e in events if "podnat_probe" in e], events


@pytest.mark.parametrize("table", ["other_nat", "xxx-2", "other nat"])
def test_other_tools_nft_tables_are_read_whatever_their_names(lab: Lab, table: str) -> None:
    # Listed one by one (podnat's own table is never printed), or, where nft's syntax
    # would need the name quoted (only netlink or JSON makes such a name), in one
    # listing of the whole ruleset.
    redirect = [
        {
            "match": {
                "op": "==",
                "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                "right": 4321,
            }
        },
        {"redirect": {"port": 8080}},
    ]
    where = {"family": "ip", "table": table}
    commands = [
        {"add": {"table": {"family": "ip", "name": table}}},
        {
            "add": {
                "chain": {
                    **where,
                    "name": "pre",
                    "type": "nat",
                    "hook": "prerouting",
                    "prio": -100,
                    "policy": "accept",
                }
            }
        },
        {"add": {"rule": {**where, "chain": "pre", "expr": redirect}}},
    ]
    lab.pod.run("nft", "-j", "-f", "-", stdin=json.dumps({"nftables": commands}))
    result = podnat(lab.pod, "apply", RULE)
    assert result.code == 0, result.stderr
    assert "backend nft: nft already holds this netns's other nat rules" in result.stderr
    assert f"table ip {table} chain pre" in result.stderr  # its redirect of 4321, found
