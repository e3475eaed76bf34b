"""`podnat agent`'s command line: bad flags are usage errors (exit 2), never a traceback."""

from __future__ import annotations

import pytest

from tests.netns.podnat import cli


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--listen", "nowhere"], "argument --listen: 'nowhere': expected HOST:PORT"),
        (["--node-name", "n", "--workers", "0"], "argument --workers: '0': expected a whole"),
        (["--node-name", "n", "--verify-interval", "0.5"], "'0.5': at least 1 second"),
        (["--node-name", "n", "--also-manage", "ns"], "expected NAMESPACE/KEY=VALUE"),
        (["--node-name", "n", "--namespace-label", "a=b,c=d"], "expected one KEY=VALUE"),
        ([], "--node-name (or $NODE_NAME) is required"),
    ],
)
def test_a_bad_flag_exits_2_naming_it(argv: list[str], message: str) -> None:
    done = cli("agent", *argv, env={"NODE_NAME": ""})
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
