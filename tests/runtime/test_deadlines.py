"""Timed asks: the runtime's deadline scheduler times them (no cancel scope per ask), and the
actor handles each request under its own deadline in a cancel scope it keeps between requests.

Expiry order, an earlier deadline while the scheduler sleeps, a reply just in time, askers
that leave, a runtime that stops (or is cancelled) with timed asks pending, nested asks, the
slow path of a full mailbox, and what follows a handler that overran its deadline. On
asyncio the scheduler also times the cancel scopes of tool batches (``time_scope``)."""

from __future__ import annotations

import gc
import math
from typing import Any

import anyio
import pytest
import sniffio
from anyio.lowlevel import checkpoint

from limelight.runtime import (
    Actor,
    ActorCrashed,
    ActorRef,
    ActorStopped,
    AskTimeout,
    Context,
    MailboxFull,
    Overflow,
    Runtime,
    Supervision,
)
from limelight.runtime._clock import loop_cancel_scope
from limelight.runtime._deadlines import Deadlines, time_scope
from limelight.runtime._envelopes import Ask

from ._actors import Crash, Recorder
from ._virtual_time import wait_until

pytestmark = pytest.mark.anyio
VIRTUAL_TIME = True  # trio runs these on a MockClock (conftest.py)


def unit_of_time(virtual_time: bool) -> float:
    """One "second" of these tests: real ones on trio's virtual clock, short ones on asyncio."""
    return 1.0 if virtual_time else 0.03


def task_ids() -> set[int]:
    return {task.id for task in anyio.get_running_tasks()}


class Gate(Actor):
    """Holds on ("wait", event) until the event is set; answers and records anything else."""

    def __init__(self) -> None:
        self.waiting = 0
        self.seen: list[Any] = []

    async def handle(self, message: Any, ctx: Context) -> Any:
        match message:
            case ("wait", anyio.Event() as event):
                self.waiting += 1
                await event.wait()
                return "released"
            case _:
                self.seen.append(message)
                return message


async def held(rt: Runtime, **options: Any) -> tuple[Gate, ActorRef, anyio.Event]:
    """A Gate busy with a request: nothing leaves its mailbox until the event is set."""
    gate = Gate()
    ref = await rt.spawn(gate, name="gate", **options)
    release = anyio.Event()
    await ref.tell(("wait", release))
    await wait_until(lambda: gate.waiting == 1)
    return gate, ref, release


# -- the scheduler ---------------------------------------------------------------------------


async def test_concurrent_timed_asks_expire_in_deadline_order(virtual_time: bool) -> None:
    unit = unit_of_time(virtual_time)
    timeouts = [unit * k for k in (5, 1, 4, 2, 6, 3)]  # registered out of order
    expired: list[float] = []
    errors: list[AskTimeout] = []
    async with Runtime() as rt:
        gate, ref, release = await held(rt)

        async def ask(timeout: float) -> None:
            with pytest.raises(AskTimeout) as info:
                await ref.ask(("question", timeout), timeout=timeout)
            expired.append(timeout)
            errors.append(info.value)

        async with anyio.create_task_group() as tg:
            for timeout in timeouts:
                tg.start_soon(ask, timeout)
        assert expired == sorted(timeouts)
        assert len(rt._deadlines) == 0
        for error, timeout in zip(errors, expired, strict=True):
            assert str(error).startswith(f"ask tuple to /gate timed out after {timeout} s (")
            assert "full mailbox" not in str(error)
            assert error.path == "/gate"
        release.set()
        assert await ref.ask("after", timeout=10 * unit) == "after"
        assert gate.seen == ["after"]  # no expired request reached the handler
        stats = ref.statistics()
        assert (stats.expired, stats.late_replies) == (len(timeouts), 0)


async def test_an_earlier_deadline_wakes_the_sleeping_scheduler(virtual_time: bool) -> None:
    unit = unit_of_time(virtual_time)
    async with Runtime() as rt:
        _, ref, release = await held(rt)
        far = anyio.current_time() + 1000 * unit
        long_outcome: list[BaseException] = []

        async def long_ask() -> None:
            try:
                await ref.ask("long", timeout=1000 * unit)
            except BaseException as exc:
                long_outcome.append(exc)
                raise

        async with anyio.create_task_group() as tg:
            tg.start_soon(long_ask)
            # The scheduler sleeps until the far deadline...
            await wait_until(lambda: rt._deadlines._sleep_until >= far)
            # ...and an earlier one must wake it (else this would wait for the far one).
            with anyio.fail_after(100 * unit), pytest.raises(AskTimeout):
                await ref.ask("short", timeout=unit)
            assert long_outcome == []  # still waiting
            assert len(rt._deadlines) == 1
            tg.cancel_scope.cancel()
        assert len(long_outcome) == 1
        assert len(rt._deadlines) == 0
        release.set()


async def test_an_ask_answered_just_before_its_deadline_gets_its_reply(
    virtual_time: bool,
) -> None:
    unit = unit_of_time(virtual_time)
    timeout = 1.0 if virtual_time else 0.5
    margin = 0.001 if virtual_time else 0.3
    async with Runtime() as rt:
        ref = await rt.spawn(Recorder(), name="r")
        assert await ref.ask(("sleep", timeout - margin), timeout=timeout) == "slept"
        assert len(rt._deadlines) == 0
        # The scheduler's wake-up at that deadline finds nothing to do.
        await anyio.sleep(2 * margin)
        assert await ref.ask("after", timeout=10 * unit) == "after"
        stats = ref.statistics()
        assert (stats.processed, stats.expired, stats.late_replies) == (2, 0, 0)


async def test_answered_and_cancelled_timers_leave_no_garbage() -> None:
    deadlines = Deadlines()
    assert deadlines.add(math.inf, Ask("refused", math.inf)) is None  # not running yet
    async with anyio.create_task_group() as tg:
        await tg.start(deadlines.run)
        far = anyio.current_time() + 1e6
        asks = [Ask(i, far + i) for i in range(1000)]
        timers = [deadlines.add(far + i, ask) for i, ask in enumerate(asks)]
        assert len(deadlines) == 1000
        for timer in reversed(timers[1:]):  # never the earliest: lazy deletion
            assert timer is not None
            deadlines.cancel(timer)
            deadlines.cancel(timer)  # idempotent
        assert len(deadlines) == 1
        assert len(deadlines._heap) <= 2 * 65  # compacted as it went
        tg.cancel_scope.cancel()
    # Stopped with one ask still timed: its asker is woken, its request still pending, to
    # time itself from then on.
    assert not deadlines.running
    assert len(deadlines) == 0
    assert asks[0].pending
    assert asks[0]._signal.is_set()
    assert not asks[1]._signal.is_set()


# -- askers that leave -----------------------------------------------------------------------


async def test_a_cancelled_timed_ask_leaves_nothing_behind(virtual_time: bool) -> None:
    unit = unit_of_time(virtual_time)
    async with Runtime() as rt:
        gate, ref, release = await held(rt)
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: ref.ask("queued", timeout=100 * unit))
            await wait_until(lambda: len(rt._deadlines) == 1)
            tg.cancel_scope.cancel()
        assert len(rt._deadlines) == 0
        release.set()
        assert await ref.ask("after", timeout=10 * unit) == "after"
        assert gate.seen == ["after"]  # the abandoned request was dropped unhandled
        assert ref.statistics().expired == 1


async def test_a_cancelled_timed_ask_cancels_its_handler(virtual_time: bool) -> None:
    unit = unit_of_time(virtual_time)
    cancelled: list[str] = []
    entered = anyio.Event()

    class Stuck(Actor):
        async def handle(self, message: Any, ctx: Context) -> Any:
            if message != "stuck":
                return message
            entered.set()
            try:
                await anyio.sleep_forever()
            finally:
                cancelled.append(message)

    async with Runtime() as rt:
        ref = await rt.spawn(Stuck(), name="stuck")
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: ref.ask("stuck", timeout=100 * unit))
            await entered.wait()
            tg.cancel_scope.cancel()
        await wait_until(lambda: cancelled == ["stuck"])
        assert len(rt._deadlines) == 0
        assert await ref.ask("next", timeout=10 * unit) == "next"
        stats = ref.statistics()
        assert (stats.expired, stats.late_replies, stats.processed) == (1, 0, 1)


async def test_many_cancelled_timed_asks_leave_nothing_behind(virtual_time: bool) -> None:
    unit = unit_of_time(virtual_time)
    async with Runtime() as rt:
        gate, ref, release = await held(rt, mailbox_size=math.inf)
        async with anyio.create_task_group() as tg:
            for i in range(300):
                tg.start_soon(lambda i=i: ref.ask(i, timeout=(100 + i) * unit))
            await wait_until(lambda: len(rt._deadlines) == 300)
            tg.cancel_scope.cancel()
        assert len(rt._deadlines) == 0
        release.set()
        assert await ref.ask("after", timeout=10 * unit) == "after"
        assert gate.seen == ["after"]
        assert ref.statistics().expired == 300


# -- the runtime stops -----------------------------------------------------------------------


async def test_stopping_the_runtime_fails_pending_timed_asks(virtual_time: bool) -> None:
    unit = unit_of_time(virtual_time)
    before = task_ids()
    failed: list[ActorStopped] = []
    async with anyio.create_task_group() as outside:
        async with Runtime() as rt:
            _, ref, _ = await held(rt)

            async def ask(i: int) -> None:
                with pytest.raises(ActorStopped) as info:
                    await ref.ask(i, timeout=1000 * unit)
                failed.append(info.value)

            for i in range(5):
                outside.start_soon(ask, i)
            await wait_until(lambda: len(rt._deadlines) == 5)
            assert rt._deadlines.running
        assert len(failed) == 5  # failed as the actor stopped, not timed out, not hanging
    assert not rt._deadlines.running
    assert len(rt._deadlines) == 0
    with pytest.raises(ActorStopped):
        await ref.ask("after", timeout=unit)
    gc.collect()
    assert task_ids() == before


async def test_timed_asks_of_on_stop_hooks_are_still_timed(virtual_time: bool) -> None:
    unit = unit_of_time(virtual_time)
    outcome: list[BaseException] = []

    class AsksOnStop(Actor):
        async def on_stop(self, ctx: Context) -> None:
            try:
                await ctx.runtime.lookup("/gate").ask("bye", timeout=unit)
            except AskTimeout as exc:
                outcome.append(exc)

    async with Runtime(shutdown_timeout=100 * unit) as rt:
        _, _, release = await held(rt)  # stopped last: spawned first
        await rt.spawn(AsksOnStop(), name="asker")
    release.set()
    assert len(outcome) == 1  # timed out, well within shutdown_timeout
    assert "timed out after" in str(outcome[0])


async def test_a_timed_ask_outlives_its_scheduler(virtual_time: bool) -> None:
    """Cancelled from outside, the runtime's task group (the scheduler with it) ends at once,
    while its actors still stop in order: an outside asker still times out on time."""
    unit = unit_of_time(virtual_time)
    outcome: list[BaseException] = []

    class SlowStop(Gate):
        async def on_stop(self, ctx: Context) -> None:
            await anyio.sleep(5 * unit)

    async with anyio.create_task_group() as outside:
        with anyio.CancelScope() as host:
            async with Runtime(shutdown_timeout=100 * unit) as rt:
                gate = SlowStop()
                ref = await rt.spawn(gate, name="gate")
                await ref.tell(("wait", anyio.Event()))
                await wait_until(lambda: gate.waiting == 1)

                async def ask() -> None:
                    try:
                        await ref.ask("question", timeout=unit)
                    except BaseException as exc:
                        outcome.append(exc)

                outside.start_soon(ask)
                await wait_until(lambda: len(rt._deadlines) == 1)
                host.cancel()
                await anyio.sleep_forever()
    assert not rt._deadlines.running
    [error] = outcome
    assert isinstance(error, AskTimeout)  # not ActorStopped once /gate had stopped
    assert str(error).startswith(f"ask str to /gate timed out after {unit} s (mailbox depth")


# -- the handler's deadline ------------------------------------------------------------------


async def test_each_request_is_handled_under_its_own_deadline() -> None:
    seen: list[tuple[str, Any, float]] = []

    class Inner(Actor):
        async def handle(self, message: Any, ctx: Context) -> Any:
            seen.append(("inner", message, anyio.current_effective_deadline()))
            return message

    class Outer(Actor):
        async def handle(self, message: Any, ctx: Context) -> Any:
            seen.append(("outer", message, anyio.current_effective_deadline()))
            if message == "tell":
                return None
            return await ctx.runtime.lookup("/inner").ask(message)

    async with Runtime() as rt:
        await rt.spawn(Inner(), name="inner")
        outer = await rt.spawn(Outer(), name="outer")
        for timeout in (100.0, 50.0, 200.0, None, 100.0):
            seen.clear()
            before = anyio.current_time()
            assert await outer.ask(timeout, timeout=timeout) == timeout
            after = anyio.current_time()
            [(_, _, outer_deadline), (_, _, inner_deadline)] = seen
            assert inner_deadline == outer_deadline  # the nested ask inherited what was left
            if timeout is None:
                assert outer_deadline == math.inf
            else:
                assert before + timeout <= outer_deadline <= after + timeout
            seen.clear()
            await outer.tell("tell")  # a tell between timed asks runs with no deadline
            await wait_until(lambda: len(seen) == 1)
            assert seen == [("outer", "tell", math.inf)]
        assert len(rt._deadlines) == 0


async def test_requests_after_an_overrun_are_handled_normally(virtual_time: bool) -> None:
    """A shielded handler finishes after its deadline: what waited meanwhile is handled
    outside the cancelled scope, not cut short by it."""
    unit = unit_of_time(virtual_time)
    entered = anyio.Event()
    seen: list[Any] = []

    class Overruns(Actor):
        async def handle(self, message: Any, ctx: Context) -> Any:
            if message == "overrun":
                entered.set()
                with anyio.CancelScope(shield=True):
                    await anyio.sleep(3 * unit)
                return "late"
            await checkpoint()  # a handler in a cancelled scope would be cut short here
            seen.append(message)
            return message

    async with Runtime() as rt:
        ref = await rt.spawn(Overruns(), name="o")
        replies: dict[str, Any] = {}

        async def ask(message: str, timeout: float | None) -> None:
            try:
                replies[message] = await ref.ask(message, timeout=timeout)
            except AskTimeout as exc:
                replies[message] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, "overrun", unit)
            await entered.wait()
            await ref.tell("tell")
            tg.start_soon(ask, "untimed", None)
            await wait_until(lambda: ref.statistics().mailbox_size == 2)
            tg.start_soon(ask, "timed", 100 * unit)
        assert isinstance(replies.pop("overrun"), AskTimeout)
        assert replies == {"untimed": "untimed", "timed": "timed"}
        assert seen == ["tell", "untimed", "timed"]
        stats = ref.statistics()
        assert (stats.processed, stats.late_replies, stats.expired) == (4, 1, 0)
        # An idle actor outlives the deadline of the last request it handled.
        await anyio.sleep(200 * unit if virtual_time else 0.1)
        assert await ref.ask("again", timeout=unit) == "again"
        assert len(rt._deadlines) == 0


async def test_an_idle_actor_outlives_the_deadline_of_its_last_request(
    virtual_time: bool,
) -> None:
    unit = unit_of_time(virtual_time)
    async with Runtime() as rt:
        recorder = Recorder()
        ref = await rt.spawn(recorder, name="r")
        assert await ref.ask("a", timeout=unit) == "a"
        await anyio.sleep(2 * unit)  # that deadline passes while the actor waits for mail
        await ref.tell("b")
        assert await ref.ask("c") == "c"
        assert await ref.ask("d", timeout=unit) == "d"
        assert recorder.seen == ["a", "b", "c", "d"]
        stats = ref.statistics()
        assert (stats.processed, stats.expired, stats.late_replies) == (4, 0, 0)


async def test_a_crash_during_a_timed_ask_reaches_the_asker() -> None:
    async with Runtime(supervision=Supervision(backoff_initial=0)) as rt:
        ref = await rt.spawn(Recorder, name="r")
        with pytest.raises(ActorCrashed) as info:
            await ref.ask("crash", timeout=100)
        assert isinstance(info.value.cause, Crash)
        assert len(rt._deadlines) == 0
        assert await ref.ask("after", timeout=100) == "after"  # restarted
        assert ref.statistics().restarts == 1


async def test_a_timed_stream_is_cut_at_its_deadline_and_the_actor_goes_on(
    virtual_time: bool,
) -> None:
    unit = unit_of_time(virtual_time)
    stopped = anyio.Event()

    class Ticker(Actor):
        async def handle(self, message: Any, ctx: Context) -> Any:
            if message != "tick":
                return message

            async def ticks() -> Any:
                try:
                    for i in range(1000):
                        yield i
                        await anyio.sleep(unit)
                finally:
                    stopped.set()

            return ticks()

    async with Runtime() as rt:
        ref = await rt.spawn(Ticker(), name="t")
        assert await ref.ask("warm", timeout=unit) == "warm"  # the actor holds a scope now
        got: list[int] = []
        # The consumer's timeout and the producer's deadline fire together: either tells it.
        with pytest.raises(AskTimeout) as info:
            async with ref.stream("tick", timeout=3.5 * unit) as replies:
                async for item in replies:
                    got.append(item)
        assert info.value.path == "/t"
        assert got[:3] == [0, 1, 2]
        with anyio.fail_after(100 * unit):
            await stopped.wait()  # the producer was cancelled too
        assert await ref.ask("after", timeout=unit) == "after"


# -- the mailbox -----------------------------------------------------------------------------


async def test_a_timed_ask_that_got_room_then_times_out_while_queued(virtual_time: bool) -> None:
    unit = unit_of_time(virtual_time)
    async with Runtime() as rt:
        gate, ref, release = await held(rt, mailbox_size=1)
        second = anyio.Event()
        await ref.tell(("wait", second))  # the mailbox is full
        async with anyio.create_task_group() as tg:
            outcome: list[AskTimeout] = []

            async def ask() -> None:
                with pytest.raises(AskTimeout) as info:
                    await ref.ask("late", timeout=5 * unit)
                outcome.append(info.value)

            tg.start_soon(ask)
            await anyio.sleep(unit)  # the asker waits for room
            release.set()  # /gate takes the second wait: the ask gets in, and waits there
        [error] = outcome
        assert str(error) == f"ask str to /gate timed out after {5 * unit} s (mailbox depth 1)"
        with pytest.raises(AskTimeout, match="waiting for room in a full mailbox"):
            await ref.ask("no room", timeout=unit)  # the mailbox is full again
        second.set()
        assert await ref.ask("after", timeout=10 * unit) == "after"
        assert gate.seen == ["after"]
        assert len(rt._deadlines) == 0


async def test_a_timed_ask_with_no_time_left_is_never_handled() -> None:
    async with Runtime() as rt:
        recorder = Recorder()
        ref = await rt.spawn(recorder, name="r")
        for timeout in (0.0, -1.0):
            # Timed out by the asker or dropped by the actor, whichever comes first.
            with pytest.raises(AskTimeout) as info:
                await ref.ask("never", timeout=timeout)
            assert info.value.path == "/r"
        assert await ref.ask("after") == "after"
        assert recorder.seen == ["after"]
        assert ref.statistics().expired == 2


@pytest.mark.parametrize("overflow", [Overflow.FAIL, Overflow.DROP_NEWEST])
async def test_a_timed_ask_refused_by_a_full_mailbox(overflow: Overflow) -> None:
    async with Runtime() as rt:
        gate, ref, release = await held(rt, mailbox_size=1, overflow=overflow)
        await ref.tell("filler")
        with pytest.raises(MailboxFull):
            await ref.ask("refused", timeout=100)
        assert len(rt._deadlines) == 0
        release.set()
        await wait_until(lambda: gate.seen == ["filler"])
        assert await ref.ask("after", timeout=100) == "after"
        assert gate.seen == ["filler", "after"]


# -- cancel scopes: a tool batch's, timed by the scheduler on asyncio -----------------------


async def test_a_scope_is_cancelled_at_the_deadline_the_scheduler_times(virtual_time: bool) -> None:
    """On asyncio the scheduler times the scope (anyio arms no timer of its own for it), on
    trio the scope times itself; either way its deadline is the one
    ``current_effective_deadline()`` reads, and the scope is cancelled when it passes."""
    unit = unit_of_time(virtual_time)
    on_scheduler = sniffio.current_async_library() == "asyncio"
    deadlines = Deadlines()
    async with anyio.create_task_group() as tg:
        await tg.start(deadlines.run)
        deadline = anyio.current_time() + 2 * unit
        scope = loop_cancel_scope()()
        with scope:
            timer = time_scope(deadlines, scope, deadline)
            assert (timer is not None) == on_scheduler
            assert len(deadlines) == (1 if on_scheduler else 0)
            if on_scheduler:
                assert scope._timeout_handle is None
            assert anyio.current_effective_deadline() == scope.deadline == deadline
            await anyio.sleep(100 * unit)
        assert scope.cancelled_caught
        assert anyio.current_time() >= deadline
        assert len(deadlines) == 0
        # Left in time: its timer is taken off, and nothing cancels it afterwards.
        early = loop_cancel_scope()()
        with early:
            timer = time_scope(deadlines, early, anyio.current_time() + 2 * unit)
            await checkpoint()
        if timer is not None:
            deadlines.cancel(timer)
        assert len(deadlines) == 0
        await anyio.sleep(4 * unit)
        assert not early.cancel_called
        tg.cancel_scope.cancel()


async def test_a_scope_outliving_the_scheduler_is_timed_by_anyio(virtual_time: bool) -> None:
    unit = unit_of_time(virtual_time)
    deadlines = Deadlines()
    scheduler = anyio.CancelScope()

    async def run_scheduler(*, task_status: Any) -> None:
        with scheduler:
            await deadlines.run(task_status=task_status)

    async with anyio.create_task_group() as tg:
        await tg.start(run_scheduler)
        deadline = anyio.current_time() + 2 * unit
        scope = loop_cancel_scope()()
        with scope:
            time_scope(deadlines, scope, deadline)
            scheduler.cancel()  # the runtime is being torn down, say
            await wait_until(lambda: not deadlines.running)
            assert scope.deadline == deadline
            await anyio.sleep(100 * unit)
        assert scope.cancelled_caught
        assert anyio.current_time() >= deadline
    assert time_scope(deadlines, scope, deadline) is None  # not running: the scope's own
