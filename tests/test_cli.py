"""The command line without a kernel: plan output, exit codes, help."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cases import R, S
from tests.netns.podnat import cli, downward_file


def test_plan_prints_the_iptables_form_of_the_rule(tmp_path: Path) -> None:
    path = downward_file({R: "4321:1234", S: "192.168.10.0/24"}, tmp_path)
    done = cli("plan", "--format", "iptables", "--annotations-file", str(path))
    assert done.returncode == 0
    assert (
        "-A PODNAT-PREROUTING -s 192.168.10.0/24 -p tcp -m tcp --dport 4321 "
        "-j DNAT --to-destination :1234"
    ) in done.stdout.splitlines()


def test_plan_json_is_machine_readable(tmp_path: Path) -> None:
    path = downward_file({R: "5353:53/udp"}, tmp_path)
    done = cli("plan", "--format", "json", "--annotations-file", str(path))
    data = json.loads(done.stdout)
    assert data["redirects"][0] == {
        "proto": "udp",
        "from_ports": {"first": 5353, "last": 5353},
        "to_ports": {"first": 53, "last": 53},
    }


def test_plan_with_invalid_annotations_exits_2_without_a_traceback(tmp_path: Path) -> None:
    path = downward_file({R: "4321:1234/icmp"}, tmp_path)
    done = cli("plan", "--annotations-file", str(path), "--termination-log", str(tmp_path / "log"))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "protocol 'icmp' is not one of tcp, udp, sctp" in (tmp_path / "log").read_text()


def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    path = downward_file({R: "1:2"}, tmp_path)
    done = cli("plan", "--log-format", "json", "--annotations-file", str(path))
    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert records[-1]["msg"] == "planned: 1:2/tcp"
    assert records[-1]["level"] == "info"


def test_help_documents_the_exit_codes() -> None:
    done = cli("--help")
    assert "2 invalid annotations" in done.stdout


def test_the_whole_output_arrives_though_the_command_skips_interpreter_teardown(
    tmp_path: Path,
) -> None:
    # `podnat` exits with os._exit after flushing: more than a pipe's buffer must still arrive.
    redirects = ", ".join(f"{10000 + i}:{30000 + i}" for i in range(2000))
    path = downward_file({R: redirects}, tmp_path)
    done = cli("plan", "--format", "iptables", "--annotations-file", str(path))
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert len(done.stdout) > 65536
    assert (
        lines[-1]
        == "-A PODNAT-PREROUTING -p tcp -m tcp --dport 11999 -j DNAT --to-destination :31999"
    )
    assert done.stderr.rstrip().endswith("11999:31999/tcp")
