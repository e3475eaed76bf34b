"""The agent's Events leave from one thread of their own, in order, with a bound on those
waiting, once the conditions being written are quiet (a stand-in API client: the posting
order, the bound and the hold are pure logic; the real API server sees the Events in
tests/kube/test_agent.py)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from helper.agent import status
from helper.agent.pods import Condition, PodView
from helper.agent.status import StatusWriter

POD = PodView("ns", "web", "0" * 8 + "-0000-0000-0000-" + "0" * 12, "node", {}, {}, False,
              False, "Running", False, None)  # fmt: skip


class HeldClient:
    """Each request waits until `release` is set; the first says it has begun."""

    def __init__(self) -> None:
        self.begun, self.release = threading.Event(), threading.Event()
        self.reasons: list[str] = []
        self.stamps: list[str] = []

    def request(self, method: str, path: str, body: dict[str, Any], **_: object) -> None:
        assert (method, path) == ("POST", "/api/v1/namespaces/ns/events")
        self.begun.set()
        assert self.release.wait(10)
        self.reasons.append(body["reason"])
        self.stamps.append(body["firstTimestamp"])


def test_events_are_posted_in_order_by_their_thread_and_beyond_the_bound_dropped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(status, "EVENTS_WAITING", 3)
    client = HeldClient()
    writer = StatusWriter(client, "node")  # type: ignore[arg-type]
    writer.event(POD, "First", "m")
    assert client.begun.wait(10)  # the posting thread holds the first; the caller goes on
    with caplog.at_level(logging.WARNING, logger="podnat.agent"):
        for reason in ("Second", "Third", "Fourth", "Fifth"):
            writer.event(POD, reason, "m")
    assert "pod ns/web: Fifth Event dropped: 3 Events wait to be posted" in caplog.text
    client.release.set()
    writer.close(10)
    assert client.reasons == ["First", "Second", "Third", "Fourth"]


class FailingOnceClient:
    """Raises an unexpected error (not the API's) for the first Event, then records."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def request(self, method: str, path: str, body: dict[str, Any], **_: object) -> None:
        if not self.reasons:
            self.reasons.append("raised")
            raise RuntimeError("a bug")
        self.reasons.append(body["reason"])


def test_an_event_that_fails_unexpectedly_stops_no_later_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = FailingOnceClient()
    writer = StatusWriter(client, "node")  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="podnat.agent"):
        writer.event(POD, "First", "m")
        writer.event(POD, "Second", "m")
        writer.close(10)
    assert client.reasons == ["raised", "Second"]
    assert "pod ns/web: posting a First Event failed" in caplog.text


def test_an_event_says_when_it_happened_not_when_it_was_posted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stamps = iter(["2026-11-30T07:00:00Z", "2026-11-30T07:00:01Z", "2026-11-30T07:00:09Z"])
    monkeypatch.setattr(status, "_now", lambda: next(stamps))
    client = HeldClient()
    writer = StatusWriter(client, "node")  # type: ignore[arg-type]
    writer.event(POD, "First", "m")
    assert client.begun.wait(10)
    writer.event(POD, "Second", "m")  # waits behind the first
    client.release.set()
    writer.close(10)
    assert client.stamps == ["2026-11-30T07:00:00Z", "2026-11-30T07:00:01Z"]


class TimingClient:
    """Answers at once; records when each Event was posted (time.monotonic)."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, float]] = []
        self.done = threading.Event()

    def request(self, method: str, path: str, body: dict[str, Any], **_: object) -> None:
        if method == "POST":
            self.posted.append((body["reason"], time.monotonic()))
            self.done.set()


def test_events_wait_while_conditions_are_written_but_not_past_their_hold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(status, "EVENTS_QUIET_S", 0.3)
    monkeypatch.setattr(status, "EVENTS_HOLD_S", 0.8)
    client = TimingClient()
    writer = StatusWriter(client, "node")  # type: ignore[arg-type]
    written = time.monotonic()
    assert writer.condition(POD, Condition("True", "Applied", "m"))
    writer.event(POD, "Quiet", "m")
    assert client.done.wait(10)
    assert client.posted[0][1] - written >= 0.3  # the conditions were quiet that long first
    # Conditions written without a pause: the Event goes out once it is EVENTS_HOLD_S old.
    client.done.clear()
    queued = time.monotonic()
    writer.event(POD, "Held", "m")
    while not client.done.is_set():
        writer.condition(POD, Condition("True", "Applied", f"m {time.monotonic()}"))
        time.sleep(0.05)
    assert 0.8 <= client.posted[1][1] - queued < 5
    writer.close(10)


def test_closing_posts_held_events_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status, "EVENTS_QUIET_S", 60.0)
    client = TimingClient()
    writer = StatusWriter(client, "node")  # type: ignore[arg-type]
    assert writer.condition(POD, Condition("True", "Applied", "m"))
    writer.event(POD, "Held", "m")
    started = time.monotonic()
    writer.close(10)
    assert [reason for reason, _ in client.posted] == ["Held"]
    assert client.posted[0][1] - started < 5  # not the 60 s of quiet it would wait for
