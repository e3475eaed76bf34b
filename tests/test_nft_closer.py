"""The nft context closer's logic (stand-in contexts: which thread frees them, and the
bound); tests/netns/test_library.py frees real ones and counts descriptors."""

from __future__ import annotations

import threading

from helper.backends.nft.closer import Closer


class Context:
    def __init__(self, hold: threading.Event | None = None) -> None:
        self.hold, self.closed_by = hold, ""
        self.closing = threading.Event()

    def close(self) -> None:
        self.closing.set()
        if self.hold is not None:
            assert self.hold.wait(10)
        self.closed_by = threading.current_thread().name


def test_contexts_are_freed_by_the_closers_thread_not_the_caller() -> None:
    closer = Closer()
    contexts = [Context() for _ in range(5)]
    for context in contexts:
        closer.close(context)  # type: ignore[arg-type]
    closer.wait_idle()
    assert {c.closed_by for c in contexts} == {"nft-closer"}


def test_beyond_the_bound_the_caller_frees_its_context_in_place() -> None:
    closer, hold = Closer(waiting=1), threading.Event()
    first, second, third = Context(hold), Context(), Context()
    closer.close(first)  # type: ignore[arg-type]
    assert first.closing.wait(10)  # the thread is busy with it
    closer.close(second)  # type: ignore[arg-type]  # waits in the queue: its one place
    closer.close(third)  # type: ignore[arg-type]  # no place left
    assert third.closed_by == threading.current_thread().name
    hold.set()
    closer.wait_idle()
    assert (first.closed_by, second.closed_by) == ("nft-closer", "nft-closer")
