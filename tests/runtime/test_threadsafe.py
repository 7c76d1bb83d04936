"""Tell and ask from another thread with one hop (``BlockingRuntime.tell`` / ``ask``): paths as
targets, a full mailbox, a deadline that travels (on trio's clock too), giving up, and what
fails on the loop raised in the thread. Each runs on asyncio and trio."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import anyio
import pytest

from limelight.runtime import (
    Actor,
    ActorCrashed,
    ActorNotFound,
    AskTimeout,
    Context,
    MailboxFull,
    Overflow,
    start_blocking_runtime,
)

from ._actors import Recorder

BACKENDS = pytest.mark.parametrize("backend", ["asyncio", "trio"])


class Gate(Actor):
    """Holds its loop on "hold" until ``opened``; answers the rest with what it saw: the
    message, and what was left of its deadline when it was handled."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.holding = threading.Event()
        self.cancelled = threading.Event()
        self.seen: list[Any] = []

    async def handle(self, message: Any, ctx: Context) -> Any:
        if message == "hold":
            self.holding.set()
            while not self.opened.is_set():
                await anyio.sleep(0.001)
            return "held"
        if message == "forever":
            try:
                await anyio.sleep(3600)
            finally:
                self.cancelled.set()
        self.seen.append(message)
        left = anyio.current_effective_deadline() - anyio.current_time()
        return message, left


def hold(rt: Any, ref: Any, gate: Gate) -> threading.Thread:
    """``ref`` busy with "hold" (asked from a thread of its own) until the gate opens."""
    thread = threading.Thread(target=rt.ask, args=(ref, "hold"))
    thread.start()
    assert gate.holding.wait(10)
    return thread


@BACKENDS
def test_an_ask_by_path_carries_its_deadline_on_the_loops_clock(backend: str) -> None:
    with start_blocking_runtime(backend=backend) as rt:
        rt.spawn(Gate(), name="g")
        message, left = rt.ask("/g", "hello", timeout=30)
        # Trio's clock has an offset of its own: the deadline is the loop's, not the thread's.
        assert message == "hello"
        assert 20 < left <= 30
        message, left = rt.ask("/g", "untimed")
        assert left == math.inf
        rt.tell("/g", "told")
        assert rt.ask("/g", "after")[0] == "after"
        with pytest.raises(ActorNotFound):
            rt.ask("/nobody", "x")
        with pytest.raises(ActorNotFound):
            rt.tell("/nobody", "x")


@BACKENDS
def test_a_crash_is_raised_in_the_asking_thread(backend: str) -> None:
    with start_blocking_runtime(backend=backend) as rt:
        ref = rt.spawn(Recorder(), name="r")
        with pytest.raises(ActorCrashed):
            rt.ask(ref, "crash", timeout=10)
        assert rt.ask(ref, "again", timeout=10) == "again"  # restarted


@BACKENDS
def test_a_full_mailbox_is_waited_for_within_the_deadline(backend: str) -> None:
    with start_blocking_runtime(backend=backend) as rt:
        gate = Gate()
        ref = rt.spawn(gate, name="g", mailbox_size=1)
        holder = hold(rt, ref, gate)
        rt.tell(ref, "queued")  # the one place in the mailbox
        # No room: the ask waits for it (a task on the loop), and gives up at its deadline.
        started = time.monotonic()
        with pytest.raises(AskTimeout):
            rt.ask(ref, "no room", timeout=0.2)
        assert time.monotonic() - started >= 0.2
        answers: list[Any] = []
        asker = threading.Thread(target=lambda: answers.append(rt.ask(ref, "room", timeout=30)))
        asker.start()
        teller = threading.Thread(target=rt.tell, args=(ref, "told after"))
        time.sleep(0.05)
        teller.start()
        time.sleep(0.05)
        assert asker.is_alive()  # both wait for room
        assert teller.is_alive()
        gate.opened.set()
        for thread in (holder, asker, teller):
            thread.join(10)
            assert not thread.is_alive()
        assert answers[0][0] == "room"
        assert rt.ask(ref, "last")[0] == "last"
        # The request that timed out waiting for room never reached the actor.
        assert "no room" not in gate.seen
        assert set(gate.seen) == {"queued", "room", "told after", "last"}


@BACKENDS
def test_a_full_mailbox_that_does_not_wait_fails_at_once(backend: str) -> None:
    with start_blocking_runtime(backend=backend) as rt:
        gate = Gate()
        ref = rt.spawn(gate, name="g", mailbox_size=1, overflow=Overflow.FAIL)
        holder = hold(rt, ref, gate)
        rt.tell(ref, "queued")
        with pytest.raises(MailboxFull):
            rt.tell(ref, "one too many")
        with pytest.raises(MailboxFull):
            rt.ask(ref, "one too many", timeout=10)
        gate.opened.set()
        holder.join(10)
        assert rt.ask(ref, "after")[0] == "after"
        assert gate.seen == ["queued", "after"]


@BACKENDS
def test_a_thread_that_gives_up_cancels_the_handler(backend: str) -> None:
    with start_blocking_runtime(backend=backend) as rt:
        gate = Gate()
        ref = rt.spawn(gate, name="g")
        started = time.monotonic()
        # Whichever sees the deadline first, the thread or the handler's scope on the loop.
        with pytest.raises(AskTimeout, match=r"timed out after 0\.2 s|deadline of request str"):
            rt.ask(ref, "forever", timeout=0.2)
        assert time.monotonic() - started >= 0.2
        assert gate.cancelled.wait(10)  # abandoned on the loop: nobody works on it any more
        assert rt.ask(ref, "next", timeout=10)[0] == "next"
        with pytest.raises(AskTimeout):
            rt.ask(ref, "no time", timeout=0)
        assert "no time" not in gate.seen
