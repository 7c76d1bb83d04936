"""The kernel's inlined hot paths behave as the code they stand for.

The loop primitives a runtime binds once (``_clock``: the effective deadline, the checkpoint)
against anyio's own, and the paths of a timed request inlined in ``ActorRef.ask`` and in the
message loop's scope: the mailbox put and the drop of a stale request (the reply, a late one
included, is covered in test_deadlines.py). Real time (no virtual clock): a handler holds the
loop up with ``time.sleep`` so that a deadline passes before anything can expire it. And the
fast ``tell`` (it queues the message itself and returns a finished awaitable) with the loop's
inner run of plain messages: requests among them keep their place, a stop or a crash ends the
run at that message.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
import sniffio
from anyio.abc import TaskGroup

from limelight.runtime import (
    Actor,
    ActorRef,
    ActorStopped,
    AskTimeout,
    Context,
    Restart,
    Runtime,
)

from ._actors import Recorder
from ._virtual_time import wait_until

pytestmark = pytest.mark.anyio


# -- what the runtime binds for its loop -----------------------------------------------------


async def test_the_bound_effective_deadline_is_anyios() -> None:
    async with Runtime() as rt:
        bound = rt._effective_deadline
        assert bound() == anyio.current_effective_deadline() == math.inf
        # (Scopes around no await: only what they report is under test.)
        with anyio.CancelScope(deadline=anyio.current_time() + 100) as outer:  # noqa: ASYNC100
            assert bound() == anyio.current_effective_deadline() == outer.deadline
            with anyio.CancelScope(deadline=anyio.current_time() + 200):  # noqa: ASYNC100
                assert bound() == outer.deadline  # the nearer one binds
            with anyio.CancelScope(  # noqa: ASYNC100
                shield=True, deadline=anyio.current_time() + 300
            ) as shield:
                assert bound() == anyio.current_effective_deadline() == shield.deadline
            outer.cancel()
            assert bound() == anyio.current_effective_deadline() == -math.inf


async def test_the_bound_checkpoint_yields_and_is_a_cancellation_point() -> None:
    ran = anyio.Event()
    async with Runtime() as rt:
        checkpoint = rt._checkpoint

        async def other() -> None:
            ran.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(other)
            # Only checkpoints in between: without a yield the other task never runs. (trio
            # runs the tasks ready at a yield in random order, so not necessarily at the first.)
            for _ in range(100):
                await checkpoint()
                if ran.is_set():
                    break
            assert ran.is_set()
        reached = False
        with anyio.CancelScope() as scope:
            scope.cancel()
            await checkpoint()
            reached = True
        assert scope.cancelled_caught
        assert not reached


# -- a timed request's paths -----------------------------------------------------------------


class Holds(Actor):
    """On ("hold", seconds), blocks the whole loop that long (no await: nothing else runs,
    the deadline scheduler included); records and answers anything else."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.holding = anyio.Event()

    async def handle(self, message: Any, ctx: Context) -> Any:
        match message:
            case ("hold", float() as seconds, anyio.Event() as go):
                self.holding.set()
                await go.wait()
                time.sleep(seconds)  # noqa: ASYNC251 - holding the loop up is the point
                return "held"
            case _:
                self.seen.append(message)
                return message


async def test_a_request_whose_deadline_passed_behind_a_timed_one_is_dropped() -> None:
    """The actor is in its scoped loop (handling a timed request) when a timed request queued
    behind it runs out of time, before the scheduler could expire it: the loop drops it."""
    async with Runtime() as rt:
        holds = Holds()
        ref = await rt.spawn(holds, name="h")
        go = anyio.Event()
        outcome: dict[str, Any] = {}

        async def ask(key: str, message: Any, timeout: float) -> None:
            try:
                outcome[key] = await ref.ask(message, timeout=timeout)
            except AskTimeout as exc:
                outcome[key] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, "hold", ("hold", 0.2, go), 100.0)
            await holds.holding.wait()
            tg.start_soon(ask, "short", "short", 0.05)
            await wait_until(lambda: ref.statistics().mailbox_size == 1)
            go.set()
        assert outcome["hold"] == "held"
        assert isinstance(outcome["short"], AskTimeout)
        assert holds.seen == []  # never handled
        stats = ref.statistics()
        assert (stats.processed, stats.expired, stats.late_replies) == (1, 1, 0)
        assert await ref.ask("after", timeout=100) == "after"
        assert len(rt._deadlines) == 0


async def test_an_abandoned_request_behind_a_timed_one_is_dropped() -> None:
    async with Runtime() as rt:
        holds = Holds()
        ref = await rt.spawn(holds, name="h")
        go = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: ref.ask(("hold", 0.0, go), timeout=100))
            await holds.holding.wait()
            async with anyio.create_task_group() as askers:
                askers.start_soon(lambda: ref.ask("left", timeout=100))
                askers.start_soon(lambda: ref.ask("left untimed"))
                await wait_until(lambda: ref.statistics().mailbox_size == 2)
                askers.cancel_scope.cancel()  # both askers leave
            go.set()
        assert await ref.ask("after", timeout=100) == "after"
        assert holds.seen == ["after"]
        stats = ref.statistics()
        assert (stats.processed, stats.expired, stats.late_replies) == (2, 2, 0)
        assert len(rt._deadlines) == 0


async def test_a_timed_ask_to_a_stopped_actor() -> None:
    async with Runtime() as rt:
        ref = await rt.spawn(Recorder(), name="r")
        assert await ref.ask("a", timeout=100) == "a"
        await ref.stop()
        with pytest.raises(ActorStopped):
            await ref.ask("b", timeout=100)
        assert len(rt._deadlines) == 0


# -- a run of plain messages -----------------------------------------------------------------


class Gated(Holds):
    """Holds, and on "exit" asks to stop after this message; on "crash" raises."""

    async def handle(self, message: Any, ctx: Context) -> Any:
        if message == "exit":
            self.seen.append(message)
            ctx.stop()
            return None
        if message == "crash":
            raise RuntimeError("told to crash")
        return await super().handle(message, ctx)


@contextlib.asynccontextmanager
async def held(
    rt: Runtime, restart: Restart = Restart.PERMANENT
) -> AsyncIterator[tuple[Gated, ActorRef, TaskGroup]]:
    """A Gated actor busy with a request for as long as the block runs, so that what is sent
    meanwhile queues up and is taken as one run when the block ends (with the task group the
    block may start askers in)."""
    gated = Gated()
    ref = await rt.spawn(gated, name="g", restart=restart)
    go = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: ref.ask(("hold", 0.0, go)))
        await gated.holding.wait()
        try:
            yield gated, ref, tg
        finally:
            go.set()


async def test_tell_queues_the_message_before_it_is_awaited() -> None:
    async with Runtime() as rt:
        async with held(rt) as (gated, ref, _):
            sent = ref.tell("first")
            assert ref.statistics().mailbox_size == 1  # queued by the call itself
            await sent  # done already: nothing left to wait for
        assert await ref.ask("after") == "after"
        assert gated.seen == ["first", "after"]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_what_tell_returns_is_a_future_of_the_running_loop() -> None:
    """asyncio's helpers take what tell returns as any future of their loop (asyncio only:
    these are asyncio's own functions)."""
    import asyncio

    async with Runtime() as rt:
        refs = [await rt.spawn(Recorder(), name=f"r{i}") for i in range(3)]
        await refs[0].tell("make the mailbox")  # the first put takes the slow path
        assert await asyncio.gather(*(r.tell("g") for r in refs)) == [None, None, None]
        assert await asyncio.wait_for(refs[0].tell("w"), 5) is None
        await asyncio.ensure_future(refs[0].tell("e"))
        await asyncio.create_task(refs[0].tell("t"))  # it reads as a coroutine, too
        assert await refs[0].ask("seen") == ["make the mailbox", "g", "w", "e", "t"]


async def test_tell_can_be_started_in_a_task_of_its_own() -> None:
    """What takes a coroutine function takes tell, on its fast path as on its slow one."""
    async with Runtime() as rt:
        ref = await rt.spawn(Recorder(), name="r")
        async with anyio.create_task_group() as tg:
            tg.start_soon(ref.tell, "first")  # the first put: the slow path's coroutine
        async with anyio.create_task_group() as tg:
            tg.start_soon(ref.tell, "fast")  # room in the mailbox: the finished future
        assert await ref.ask("seen") == ["first", "fast"]
        if sniffio.current_async_library() == "trio":
            import trio

            async with trio.open_nursery() as nursery:
                nursery.start_soon(ref.tell, "trio")
            assert await ref.ask("seen") == ["first", "fast", "trio"]


async def test_requests_among_a_run_of_tells_keep_their_place() -> None:
    async with Runtime() as rt:
        answers: dict[str, Any] = {}

        async def ask(ref: ActorRef, message: str, timeout: float | None) -> None:
            answers[message] = await ref.ask(message, timeout=timeout)

        async with held(rt) as (gated, ref, tg):
            for i in range(3):
                await ref.tell(i)
            tg.start_soon(ask, ref, "untimed", None)
            await wait_until(lambda: ref.statistics().mailbox_size == 4)
            await ref.tell(3)
            tg.start_soon(ask, ref, "timed", 100.0)
            await wait_until(lambda: ref.statistics().mailbox_size == 6)
            for i in range(4, 7):
                await ref.tell(i)
        assert gated.seen == [0, 1, 2, "untimed", 3, "timed", 4, 5, 6]
        assert answers == {"untimed": "untimed", "timed": "timed"}
        assert ref.statistics().processed == 10  # the hold included


async def test_a_stop_in_a_run_of_tells_ends_it_after_that_message() -> None:
    async with Runtime() as rt:
        async with held(rt, Restart.TRANSIENT) as (gated, ref, _):  # a normal exit is for good
            for message in (0, 1, "exit", 2, 3):
                await ref.tell(message)
        await wait_until(lambda: not ref.alive)
        assert gated.seen == [0, 1, "exit"]
        stats = ref.statistics()
        assert stats.processed == 4  # the hold, 0, 1 and "exit"
        assert stats.undelivered == 2  # 2 and 3


async def test_a_crash_in_a_run_of_tells_is_reported_for_that_message() -> None:
    async with Runtime() as rt:
        async with held(rt) as (gated, ref, _):
            for message in (0, 1, 2, "crash", 3):
                await ref.tell(message)
        # Restarted (the default supervision): the message after the crash is still handled.
        await wait_until(lambda: ref.statistics().restarts == 1)
        assert await ref.ask("after") == "after"
        assert gated.seen == [0, 1, 2, 3, "after"]
        stats = ref.statistics()
        assert stats.last_error == "RuntimeError: told to crash"
        # The hold, 0 to 3 and "after": not the crash, but 1 and 2, which the run handled
        # before it (the run counts its messages as it ends, however it ends).
        assert stats.processed == 6


def test_the_run_of_plain_messages_knows_every_kind_of_envelope() -> None:
    """The inner run tells requests from plain messages by exact type, naming each kind of
    Envelope: a new kind must be named there too (or it would be handled as a plain message)."""
    from limelight.runtime._envelopes import Ask, Envelope, StreamRequest

    assert set(Envelope.__subclasses__()) == {Ask, StreamRequest}
    assert not Ask.__subclasses__()
    assert not StreamRequest.__subclasses__()
