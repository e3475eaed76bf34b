"""podnat beside other tools' nat rules: every neighbour scenario, backend, family.

One lab per scenario (module scope: the neighbours are installed once; every apply
replaces podnat's rules wholly, and they are removed before each `auto` cell). For
each cell: the neighbours' rules are byte-identical afterwards, `auto` chooses as the
README says and logs why, and a client in another namespace reaches the pod through
4321, served by podnat's redirect (1234), or by the neighbour's (4322) where the
neighbour's chain runs first. Where the order is undefined the outcome says so, with
what to do. The cells' results go to the compatibility matrix (tests/kit/matrix.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import pytest

from helper.engine import Engine, Outcome
from helper.host.base import Target
from helper.plan.parse import parse_plan
from tests.cases import F, R
from tests.kit import matrix
from tests.kit.lab import Lab
from tests.netns.neighbours import PORT, SCENARIOS, THEIRS, TO, Scenario, neighbours_state

CELLS = [(b, f) for b in ("nft", "auto", "iptables-legacy") for f in matrix.FAMILIES]
RESULTS: dict[str, dict[str, str]] = {}
ENGINE = Engine()
_LAST: dict[str, str] = {}  # the backend the scenario's previous cell applied with


@pytest.fixture(scope="module", autouse=True)
def _write_matrix() -> Iterator[None]:
    yield
    if RESULTS:
        matrix.write(RESULTS)


@pytest.fixture(scope="module", params=SCENARIOS, ids=[s.name for s in SCENARIOS])
def neighbourhood(request: pytest.FixtureRequest) -> Iterator[tuple[Scenario, Lab, str]]:
    scenario: Scenario = request.param
    with Lab.create() as lab:
        scenario.install(lab.pod)
        lab.serve(lab.pod, TO)
        lab.serve(lab.pod, THEIRS)
        yield scenario, lab, neighbours_state(lab.pod)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def _logged() -> Iterator[list[str]]:
    handler, logger = _Lines(), logging.getLogger("podnat")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _apply(lab: Lab, scenario: Scenario, backend: str, family: str) -> tuple[Outcome, list[str]]:
    last = _LAST.get(scenario.name)
    if backend == "auto" and last is not None:  # `auto` then decides on the neighbours alone
        ENGINE.cleanup(Target(netns=lab.pod.path, backend=last))
    plan = parse_plan({R: f"{PORT}:{TO}", F: family})
    with _logged() as lines:
        outcome = ENGINE.apply(plan, Target(netns=lab.pod.path, backend=backend))
    return outcome, lines


@pytest.mark.parametrize(("backend", "family"), CELLS, ids=[f"{b}-{f}" for b, f in CELLS])
def test_podnat_beside_neighbours(
    neighbourhood: tuple[Scenario, Lab, str], backend: str, family: str
) -> None:
    scenario, lab, before = neighbourhood
    cell = {"result": "fail", "requested": backend}
    RESULTS[f"{scenario.name}/{backend}/{family}"] = cell
    outcome, lines = _apply(lab, scenario, backend, family)
    choice = next(line for line in lines if line.startswith("backend "))
    chosen = choice.split()[1].rstrip(":")
    _LAST[scenario.name] = chosen
    cell["chosen"] = chosen
    if backend == "auto":
        assert chosen == scenario.auto_choice, choice
        assert f"{chosen} already holds this netns's other nat rules" in choice
    else:
        assert chosen == backend, choice

    assert neighbours_state(lab.pod) == before, "a neighbour's rules changed"

    families = ("ipv4", "ipv6") if family == "dual" else (family,)
    assert outcome.summary.startswith(
        f"applied with {chosen} ({'/'.join(families)}): {PORT}:{TO}/tcp"
    ), outcome.summary
    order = scenario.order(chosen)
    cell["order"], cell["summary"] = order, outcome.summary
    expected = _check_order(order, outcome, lines)
    answers = []
    for name, address in (("ipv4", lab.POD_A4), ("ipv6", lab.POD_A6)):
        answer = lab.ask(lab.client_a, address, PORT)
        if name in families:
            answers.append(f"{name}:{answer}")
            cell["answers"] = " ".join(answers)  # where undefined: what this kernel did
            assert answer in expected, (name, answer, outcome.summary)
        else:  # no rule of podnat's in this family
            assert answer != f"served-by:{TO}", (name, answer)
    cell["result"] = "pass"


def _check_order(order: str, outcome: Outcome, lines: list[str]) -> set[str]:
    """The summary's (and so the Event's) statement of who wins; the answers allowed."""
    ours, theirs = f"served-by:{TO}", f"served-by:{THEIRS}"
    if order == "served":
        assert not outcome.warning and ";" not in outcome.summary, outcome.summary
        return {ours}
    if order == "podnat first":
        assert not outcome.warning, outcome.summary
        assert f"podnat's {PORT}→{TO} runs first" in outcome.summary, outcome.summary
        return {ours}
    assert outcome.warning, outcome.summary
    if order == "neighbour first":
        assert (
            f"podnat's {PORT}→{TO} is shadowed by table inet neighbour chain pre "
            f"(priority dstnat-10) which redirects tcp dport {PORT} first"
        ) in outcome.summary
        assert any("is shadowed by" in line for line in lines)
        return {theirs}
    assert "WARNING order undefined" in outcome.summary, outcome.summary
    assert "To fix:" in outcome.summary
    assert any(line.startswith("order undefined") for line in lines)
    return {ours, theirs}  # the kernel's registration order decides: either is honest


def test_at_one_priority_the_last_registered_chain_wins_so_podnat_warns(lab: Lab) -> None:
    """Why "undefined" is the honest word: the winner flips with registration order."""
    lab.serve(lab.pod, TO)
    lab.serve(lab.pod, THEIRS)
    plan = parse_plan({R: f"{PORT}:{TO}"})
    target = Target(netns=lab.pod.path, backend="nft")
    assert not ENGINE.apply(plan, target).warning
    late = "\n".join(
        [
            "table inet late {",
            "\tchain pre {",
            "\t\ttype nat hook prerouting priority dstnat; policy accept;",
            f"\t\ttcp dport {PORT} redirect to :{THEIRS}",
            "\t}",
            "}",
            "",
        ]
    )
    lab.pod.run("nft", "-f", "-", stdin=late)  # registered after podnat's table
    assert lab.ask(lab.client_a, lab.POD_A4, PORT) == f"served-by:{THEIRS}"
    again = ENGINE.apply(plan, target)  # podnat's table re-created: now the latest
    assert again.warning
    assert "WARNING order undefined" in again.summary
    assert "give table inet late chain pre a priority after dstnat" in again.summary
    assert lab.ask(lab.client_a, lab.POD_A4, PORT) == f"served-by:{TO}"
