"""Mailboxes: the overflow policies, backpressure, the counters, and the fast path's
checkpoints; then a state machine of a held mailbox under every policy against a model."""

from __future__ import annotations

import gc
import math
from collections import deque
from typing import Any

import anyio
import pytest
from anyio.lowlevel import checkpoint
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from limelight.runtime import (
    CHECKPOINT_INTERVAL,
    Actor,
    ActorRef,
    ActorStopped,
    AskTimeout,
    BlockingRuntime,
    Context,
    MailboxFull,
    Overflow,
    Runtime,
    start_blocking_runtime,
)

pytestmark = pytest.mark.anyio


class Gate(Actor):
    """Holds on "hold" until released, so its mailbox fills up; records everything else."""

    def __init__(self) -> None:
        self.holding = anyio.Event()
        self.release = anyio.Event()
        self.seen: list[Any] = []

    async def handle(self, message: Any, ctx: Context) -> Any:
        match message:
            case "hold":
                self.holding.set()
                await self.release.wait()
            case "seen":
                return list(self.seen)
            case _:
                self.seen.append(message)
                return message


async def held(rt: Runtime, **options: Any) -> tuple[Gate, ActorRef]:
    """A Gate busy with "hold": nothing leaves its mailbox until ``gate.release`` is set."""
    gate = Gate()
    ref = await rt.spawn(gate, name="gate", **options)
    await ref.tell("hold")
    await gate.holding.wait()
    return gate, ref


async def drain(gate: Gate, ref: ActorRef) -> None:
    """Release the gate and wait until it has handled everything queued (an ask would not do:
    under a drop or fail policy, a full mailbox would refuse it)."""
    stats = ref.statistics()
    expected = stats.processed + 1 + stats.mailbox_size  # "hold" and the queue
    gate.release.set()
    with anyio.fail_after(5):
        while ref.statistics().processed < expected:
            await checkpoint()


# -- overflow policies ---------------------------------------------------------------------


async def test_block_makes_the_sender_wait_until_the_actor_drains() -> None:
    async with Runtime() as rt:
        gate, ref = await held(rt, mailbox_size=2)
        await ref.tell(1)
        await ref.tell(2)
        sent: list[int] = []

        async def send(n: int) -> None:
            await ref.tell(n)
            sent.append(n)

        async with anyio.create_task_group() as tg:
            tg.start_soon(send, 3)
            await anyio.wait_all_tasks_blocked()
            assert sent == []  # backpressure: the tell waits for room
            assert ref.statistics().mailbox_size == 2
            with pytest.raises(MailboxFull):
                ref.tell_nowait(4)  # the nowait form refuses instead of waiting
            gate.release.set()
        assert sent == [3]
        assert await ref.ask("seen") == [1, 2, 3]
        stats = ref.statistics()
        assert (stats.dropped, stats.rejected, stats.dead_letters) == (0, 1, 0)


async def test_ask_and_stream_timeouts_cover_waiting_for_room() -> None:
    async with Runtime() as rt:
        gate, ref = await held(rt, mailbox_size=1)
        await ref.tell(1)  # the mailbox is full, and stays full
        with anyio.fail_after(5):  # a hang ends as a plain TimeoutError, not an AskTimeout
            with pytest.raises(AskTimeout, match="full mailbox"):
                await ref.ask("ask", timeout=0.01)
            with pytest.raises(AskTimeout):
                async with ref.stream("stream", timeout=0.01) as replies:
                    await replies.__anext__()
        await drain(gate, ref)
        assert gate.seen == [1]  # neither request got in


async def test_a_refused_stream_raises_and_leaves_nothing_open() -> None:
    async with Runtime() as rt:
        gate, ref = await held(rt, mailbox_size=1, overflow=Overflow.FAIL)
        await ref.tell(1)
        with pytest.raises(MailboxFull):
            async with ref.stream("stream") as replies:
                await replies.__anext__()
        await drain(gate, ref)
        await ref.stop()
        with pytest.raises(ActorStopped):
            async with ref.stream("stream") as replies:
                await replies.__anext__()
    gc.collect()  # an unclosed stream end warns here, and warnings are errors


async def test_drop_newest_drops_and_counts_the_new_message() -> None:
    async with Runtime() as rt:
        gate, ref = await held(rt, mailbox_size=2, overflow=Overflow.DROP_NEWEST)
        for n in range(1, 6):
            await ref.tell(n)
        assert ref.statistics().dropped == 3
        with pytest.raises(MailboxFull, match="overflow=drop_newest"):
            await ref.ask("dropped ask")
        ref.tell_nowait(6)  # dropped too, without an error
        stats = ref.statistics()
        assert (stats.dropped, stats.rejected, stats.mailbox_size) == (5, 0, 2)
        assert stats.dead_letters == 5
        await drain(gate, ref)
        assert gate.seen == [1, 2]


async def test_drop_oldest_keeps_the_newest_and_fails_an_evicted_ask() -> None:
    async with Runtime() as rt:
        gate, ref = await held(rt, mailbox_size=2, overflow=Overflow.DROP_OLDEST)
        errors: list[BaseException] = []

        async def ask_first() -> None:
            try:
                await ref.ask("oldest ask")
            except MailboxFull as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask_first)
            await anyio.wait_all_tasks_blocked()
            assert ref.statistics().mailbox_size == 1
            await ref.tell(1)
            await ref.tell(2)  # evicts the ask
            await anyio.wait_all_tasks_blocked()
            assert len(errors) == 1
            await ref.tell(3)  # evicts 1
            ref.tell_nowait(4)  # evicts 2
        stats = ref.statistics()
        assert (stats.dropped, stats.rejected, stats.mailbox_size) == (3, 0, 2)
        await drain(gate, ref)
        assert gate.seen == [3, 4]
        assert rt.statistics().dropped == 3


async def test_fail_rejects_with_mailbox_full_and_counts_it() -> None:
    async with Runtime() as rt:
        gate, ref = await held(rt, mailbox_size=2, overflow=Overflow.FAIL)
        await ref.tell(1)
        await ref.tell(2)
        with pytest.raises(MailboxFull) as info:
            await ref.tell(3)
        assert info.value.path == "/gate"
        assert "mailbox of /gate is full (2 messages, overflow=fail)" in str(info.value)
        with pytest.raises(MailboxFull):
            await ref.ask("ask")
        with pytest.raises(MailboxFull):
            ref.tell_nowait(4)
        stats = ref.statistics()
        # Rejected messages were refused to their sender: not dead letters.
        assert (stats.rejected, stats.dropped, stats.dead_letters) == (3, 0, 0)
        await drain(gate, ref)
        assert gate.seen == [1, 2]
        assert rt.statistics().rejected == 3


# -- the fast path yields ------------------------------------------------------------------


async def ticking(ticks: list[int], *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
    """Counts how often it gets to run: each tick is one turn of the event loop for it."""
    task_status.started()
    while True:
        ticks[0] += 1
        await checkpoint()


def assert_progress_in_every_window(seen: list[int]) -> None:
    # Another runnable task gets a turn at least once per CHECKPOINT_INTERVAL messages;
    # two intervals allow for the scheduler running it just before or after us.
    window = 2 * CHECKPOINT_INTERVAL
    stalls = [i for i in range(len(seen) - window) if seen[i + window] == seen[i]]
    assert stalls == []


async def test_hot_sender_does_not_starve_another_task() -> None:
    burst = 20 * CHECKPOINT_INTERVAL
    async with Runtime(mailbox_size=math.inf) as rt:
        gate, ref = await held(rt)
        ticks = [0]
        seen: list[int] = []
        async with anyio.create_task_group() as tg:
            await tg.start(ticking, ticks)
            for n in range(burst):
                await ref.tell(n)  # never full: always the fast path
                seen.append(ticks[0])
            tg.cancel_scope.cancel()
        assert ref.statistics().mailbox_size == burst
        assert_progress_in_every_window(seen)
        gate.release.set()
        assert len(await ref.ask("seen")) == burst


async def test_hot_receiver_does_not_starve_another_task() -> None:
    burst = 20 * CHECKPOINT_INTERVAL
    ticks = [0]
    seen: list[int] = []

    class Busy(Actor):
        async def handle(self, message: Any, ctx: Context) -> Any:
            if message != "done":
                seen.append(ticks[0])  # handled without awaiting anything
            return None

    async with Runtime(mailbox_size=math.inf) as rt:
        ref = await rt.spawn(Busy(), name="busy")
        async with anyio.create_task_group() as tg:
            await tg.start(ticking, ticks)
            for n in range(burst):
                ref.tell_nowait(n)  # no await: the actor gets them all at once
            await ref.ask("done")
            tg.cancel_scope.cancel()
        assert len(seen) == burst
        assert_progress_in_every_window(seen)


# -- a held mailbox against a model --------------------------------------------------------


class MailboxMachine(RuleBasedStateMachine):
    """Messages offered with tell_nowait to an actor that consumes nothing, under a random
    policy and capacity; at the end the actor is released and what it received must be what
    the model queue kept."""

    backend = "asyncio"

    @initialize(overflow=st.sampled_from(Overflow), capacity=st.integers(1, 4))
    def start(self, overflow: Overflow, capacity: int) -> None:
        self._cm = start_blocking_runtime(backend=self.backend)
        self.rt: BlockingRuntime = self._cm.__enter__()
        self.overflow = overflow
        self.capacity = capacity
        self.gate: Gate = self.rt.call(Gate)  # made on the loop: its events belong there
        self.ref = self.rt.spawn(self.gate, mailbox_size=capacity, overflow=overflow)
        self.rt.tell(self.ref, "hold")
        self.rt.call(self.gate.holding.wait)
        self.queue: deque[int] = deque()
        self.dropped = 0
        self.rejected = 0
        self.next = 0

    @rule()
    def offer(self) -> None:
        message, self.next = self.next, self.next + 1
        full = len(self.queue) >= self.capacity
        try:
            self.rt.call(self.ref.tell_nowait, message)
        except MailboxFull:
            assert full
            assert self.overflow in (Overflow.BLOCK, Overflow.FAIL)
            self.rejected += 1
            return
        if not full:
            self.queue.append(message)
        elif self.overflow is Overflow.DROP_NEWEST:
            self.dropped += 1
        elif self.overflow is Overflow.DROP_OLDEST:
            self.queue.popleft()
            self.queue.append(message)
            self.dropped += 1
        else:
            raise AssertionError(f"{self.overflow} accepted a message into a full mailbox")

    @invariant()
    def counters_match(self) -> None:
        if not hasattr(self, "ref"):
            return
        stats = self.ref.statistics()
        assert stats.mailbox_size == len(self.queue)
        assert (stats.dropped, stats.rejected) == (self.dropped, self.rejected)
        assert stats.dead_letters == self.dropped

    def teardown(self) -> None:
        if not hasattr(self, "_cm"):
            return
        try:
            self.rt.call(drain, self.gate, self.ref)
            assert self.rt.call(list, self.gate.seen) == list(self.queue)
            assert self.ref.statistics().processed == len(self.queue) + 1  # and "hold"
        finally:
            self._cm.__exit__(None, None, None)


class TrioMailboxMachine(MailboxMachine):
    backend = "trio"


TestMailboxAsyncio = MailboxMachine.TestCase
TestMailboxTrio = TrioMailboxMachine.TestCase
TestMailboxAsyncio.settings = settings(max_examples=40, stateful_step_count=12, deadline=None)
TestMailboxTrio.settings = TestMailboxAsyncio.settings
