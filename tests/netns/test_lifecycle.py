"""Re-runs, foreign rules, invalid input, drift and cleanup, on the real kernel."""

from __future__ import annotations

import sys

import pytest

from tests.cases import R, S
from tests.kit.lab import Lab
from tests.netns.podnat import nat_dump, podnat

BACKENDS = ["nft", "iptables-legacy"]
GOOD = {R: "4321:1234, 5353:53/udp, 8000-8002:9000-9002", S: "10.77.1.0/24, fd77:1::/64"}

FOREIGN = {
    "nft": ["nft", "-f", "-"],
    "iptables-legacy": [
        "sh",
        "-e",
        "-c",
        "iptables-legacy -t nat -N FOREIGN\n"
        "iptables-legacy -t nat -A FOREIGN -p tcp --dport 7777 -j DNAT "
        "--to-destination :7000\n"
        "iptables-legacy -t nat -A PREROUTING -j FOREIGN\n"
        "iptables-legacy -t nat -A OUTPUT -p udp --dport 53 -j REDIRECT\n"
        "ip6tables-legacy -t nat -A PREROUTING -p tcp --dport 7777 -j DNAT "
        "--to-destination :7000\n",
    ],
}
FOREIGN_NFT = """
table ip foreign {
    chain pre { type nat hook prerouting priority -100; tcp dport 7777 dnat to :7000; }
}
table inet mesh {
    chain out { type nat hook output priority -100; udp dport 53 redirect to :15053; }
}
"""


def add_foreign_rules(lab: Lab, backend: str) -> None:
    lab.pod.run(*FOREIGN[backend], stdin=FOREIGN_NFT if backend == "nft" else None)


@pytest.mark.parametrize("backend", BACKENDS)
def test_apply_twice_gives_a_byte_identical_ruleset(lab: Lab, backend: str) -> None:
    assert podnat(lab.pod, "apply", GOOD, "--backend", backend).code == 0
    first = nat_dump(lab.pod, backend)
    assert podnat(lab.pod, "apply", GOOD, "--backend", backend).code == 0
    assert nat_dump(lab.pod, backend) == first
    assert "4321" in first


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_rerun_with_new_annotations_replaces_the_rules_wholly(lab: Lab, backend: str) -> None:
    assert podnat(lab.pod, "apply", GOOD, "--backend", backend).code == 0
    assert podnat(lab.pod, "apply", {R: "4444:1111"}, "--backend", backend).code == 0
    dump = nat_dump(lab.pod, backend)
    assert "4444" in dump
    assert "4321" not in dump
    assert podnat(lab.pod, "verify", {R: "4444:1111"}, "--backend", backend).code == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_foreign_nat_rules_survive_apply_and_cleanup(lab: Lab, backend: str) -> None:
    add_foreign_rules(lab, backend)
    before = nat_dump(lab.pod, backend)
    assert "7777" in before
    assert podnat(lab.pod, "apply", GOOD, "--backend", backend).code == 0
    during = nat_dump(lab.pod, backend)
    assert "4321" in during
    assert all(line in during.splitlines() for line in before.splitlines() if "7777" in line)
    result = podnat(lab.pod, "cleanup", None, "--backend", backend)
    assert result.code == 0, result.stderr
    assert nat_dump(lab.pod, backend) == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_invalid_annotations_change_nothing(lab: Lab, backend: str) -> None:
    assert podnat(lab.pod, "apply", GOOD, "--backend", backend).code == 0
    before = nat_dump(lab.pod, backend)
    result = podnat(lab.pod, "apply", {R: "4321:1234, 654321:80"}, "--backend", backend)
    assert result.code == 2
    assert 'podnat.io/redirect: "654321:80": port 654321 is out of range 1-65535' in result.stderr
    assert "Traceback" not in result.stderr
    assert nat_dump(lab.pod, backend) == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_verify_reports_a_hand_deleted_rule(lab: Lab, backend: str) -> None:
    assert podnat(lab.pod, "apply", GOOD, "--backend", backend).code == 0
    assert podnat(lab.pod, "verify", GOOD, "--backend", backend).code == 0
    if backend == "nft":
        listing = lab.pod.run("nft", "-a", "list", "chain", "inet", "podnat", "prerouting")
        line = next(line for line in listing.splitlines() if "udp dport 5353" in line)
        handle = line.rsplit("# handle ", 1)[1].strip()
        lab.pod.run("nft", "delete", "rule", "inet", "podnat", "prerouting", "handle", handle)
    else:
        lab.pod.run(
            "iptables-legacy",
            "-t",
            "nat",
            "-D",
            "PODNAT-PREROUTING",
            "-s",
            "10.77.1.0/24",
            "-p",
            "udp",
            "--dport",
            "5353",
            "-j",
            "DNAT",
            "--to-destination",
            ":53",
        )
    result = podnat(lab.pod, "verify", GOOD, "--backend", backend)
    assert result.code == 1
    removed = [line for line in result.stdout.splitlines() if line.startswith("-")]
    assert any("5353" in line for line in removed), result.stdout
    assert "drift" in result.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_cleanup_removes_everything_podnat_owns(lab: Lab, backend: str) -> None:
    pristine = nat_dump(lab.pod, backend)
    assert (
        podnat(
            lab.pod,
            "apply",
            {R: "4321:1234", "podnat.io/redirect-local": "true"},
            "--backend",
            backend,
        ).code
        == 0
    )
    assert podnat(lab.pod, "cleanup", None, "--backend", backend).code == 0
    after = nat_dump(lab.pod, backend)
    assert "podnat" not in after.lower()
    if backend == "nft":
        assert after == pristine
    second = podnat(lab.pod, "cleanup", None, "--backend", backend)
    assert second.code == 0
    assert "nothing to remove" in second.stderr


def test_no_podnat_annotation_is_a_noop(lab: Lab) -> None:
    result = podnat(lab.pod, "apply", {"example.com/other": "x"})
    assert result.code == 0
    assert result.stderr.count("\n") == 1
    assert "no podnat.io/redirect annotation in Downward API file" in result.stderr
    assert "nothing to do" in result.stderr
    assert lab.pod.run("nft", "list", "ruleset") == ""


def test_errors_reach_the_termination_log(lab: Lab, tmp_path: object) -> None:
    from pathlib import Path  # noqa: PLC0415

    log = Path(str(tmp_path)) / "termination-log"
    result = podnat(lab.pod, "apply", {R: "80-90:1-2"}, "--termination-log", str(log))
    assert result.code == 2
    assert "ranges of unequal length" in log.read_text()


def test_a_missing_annotations_file_is_a_source_error(lab: Lab) -> None:
    result = podnat(lab.pod, "apply", None, "--annotations-file", "/nonexistent/annotations")
    assert result.code == 3
    assert "Downward API" in result.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_dry_run_prints_the_exact_ruleset_and_changes_nothing(lab: Lab, backend: str) -> None:
    before = nat_dump(lab.pod, backend)
    result = podnat(lab.pod, "apply", GOOD, "--backend", backend, "--dry-run")
    assert result.code == 0, result.stderr
    assert nat_dump(lab.pod, backend) == before
    assert "4321" in result.stdout
    if backend == "nft":  # the very batch apply would send
        assert result.stdout.startswith("add table inet podnat\ndelete table inet podnat\n")
    else:
        assert (
            "-A PODNAT-PREROUTING -s 10.77.1.0/24 -p udp -m udp --dport 5353 -j DNAT "
            "--to-destination :53" in result.stdout
        )


def test_a_failed_commit_rolls_the_other_family_back(lab: Lab) -> None:
    old = {R: "4321:1234"}
    assert podnat(lab.pod, "apply", old, "--backend", "iptables-legacy").code == 0
    before = nat_dump(lab.pod, "iptables-legacy")
    out = lab.pod.run(sys.executable, "-m", "tests.netns.rollback_probe", "5555:1111")
    assert "ipv6: commit:" in out
    assert "rolled back: ipv4" in out
    after = nat_dump(lab.pod, "iptables-legacy")
    # IPv4 holds the old rules again; IPv6 never got the new ones.
    assert "5555" not in after
    assert after.count("--dport 4321") == before.count("--dport 4321") == 2
    assert podnat(lab.pod, "verify", old, "--backend", "iptables-legacy").code == 0
