"""The tasks actors run in (``_tasks``): started bare on the event loop, each incarnation
cancelled through a cancel scope of its own, all of them cancelled and waited for when the
runtime is torn down; and the lazy parts of an idle actor (its mailbox's queue, its waits)."""

from __future__ import annotations

import gc
from typing import Any

import anyio
import pytest
from anyio import ClosedResourceError, EndOfStream

from limelight.runtime import (
    Actor,
    ActorState,
    ActorStopped,
    Context,
    MailboxFull,
    Overflow,
    Runtime,
    Supervision,
)
from limelight.runtime._mailbox import EMPTY, Mailbox
from limelight.runtime._signal import new_signal

from ._actors import Recorder
from ._virtual_time import wait_until

pytestmark = pytest.mark.anyio
VIRTUAL_TIME = True  # trio runs these on a MockClock (conftest.py)

NO_BACKOFF = Supervision(backoff_initial=0)


def task_ids() -> set[int]:
    return {task.id for task in anyio.get_running_tasks()}


class Idle(Actor):
    async def handle(self, message: Any, ctx: Context) -> Any:
        return message


class Shielding(Actor):
    """On "go": a shielded wait of ``hold`` seconds, then a wait for ever; logs each step."""

    def __init__(self, log: list[str], hold: float) -> None:
        self.log = log
        self.hold = hold
        self.shielded = anyio.Event()

    async def handle(self, message: Any, ctx: Context) -> Any:
        try:
            with anyio.CancelScope(shield=True):
                self.shielded.set()
                await anyio.sleep(self.hold)
                self.log.append("shielded part done")
            await anyio.sleep_forever()
        finally:
            self.log.append("handler ended")


async def test_a_stop_waits_out_a_shielded_section_then_cancels_at_the_next_await() -> None:
    log: list[str] = []
    async with Runtime() as rt:
        actor = Shielding(log, hold=0.05)
        ref = await rt.spawn(actor)
        await ref.tell("go")
        await actor.shielded.wait()
        await ref.stop()  # arrives inside the shield: delivered once it is left
        assert log == ["shielded part done", "handler ended"]
        assert not ref.alive


async def test_a_stop_during_on_start_cancels_it_and_fails_the_spawn() -> None:
    log: list[str] = []
    entered = anyio.Event()

    class SlowStart(Recorder):
        async def on_start(self, ctx: Context) -> None:
            entered.set()
            try:
                await anyio.sleep_forever()
            finally:
                log.append("on_start cancelled")

    outcome: list[BaseException] = []

    async def spawn(rt: Runtime) -> None:
        try:
            await rt.spawn(SlowStart(log), name="slow")
        except ActorStopped as exc:
            outcome.append(exc)

    before = task_ids()
    async with Runtime() as rt, anyio.create_task_group() as tg:
        tg.start_soon(spawn, rt)
        await entered.wait()
        await rt.lookup("/slow").stop()
    assert log == ["on_start cancelled"]
    assert len(outcome) == 1
    gc.collect()
    assert task_ids() == before


async def test_a_stop_during_the_shielded_cleanup_lets_on_stop_finish() -> None:
    """A crash starts the incarnation's end (on_stop, shielded and bounded); a stop that
    arrives meanwhile does not cut it short, and the actor is not restarted."""
    log: list[str] = []
    in_on_stop = anyio.Event()

    class SlowStop(Recorder):
        async def on_stop(self, ctx: Context) -> None:
            in_on_stop.set()
            await anyio.sleep(0.05)
            log.append("on_stop finished")

    async with Runtime(supervision=NO_BACKOFF) as rt:
        ref = await rt.spawn(SlowStop(log), name="slow")
        await ref.tell("crash")
        await in_on_stop.wait()
        await ref.stop()
        assert log == ["start slow", "on_stop finished"]
        assert ref.statistics().restarts == 0
        assert ref.statistics().state is ActorState.STOPPED


async def test_teardown_of_10000_idle_actors_leaves_no_task_running() -> None:
    before = task_ids()
    async with Runtime() as rt:
        refs = [await rt.spawn(Idle(), mailbox_size=16) for _ in range(10_000)]
        # Some have had mail, and one is busy: all end with the block.
        for ref in refs[:100]:
            assert await ref.ask("hi") == "hi"
        busy = await rt.spawn(Recorder(), name="busy")
        await busy.tell(("sleep", 1e6))
        assert len(task_ids() - before) >= 10_001
    gc.collect()
    assert task_ids() == before
    assert not any(ref.alive for ref in refs)
    assert not busy.alive


async def test_a_runtime_cancelled_from_outside_still_waits_for_every_actor() -> None:
    log: list[str] = []
    before = task_ids()

    class SlowStop(Recorder):
        async def on_stop(self, ctx: Context) -> None:
            await anyio.sleep(0.02)
            await super().on_stop(ctx)

    with anyio.CancelScope() as outer:
        async with Runtime() as rt:
            for i in range(3):
                ref = await rt.spawn(SlowStop(log, f"a{i}"))
                await ref.tell(("sleep", 1e6))  # busy when the block is cancelled
            outer.cancel()
            await anyio.sleep_forever()
    assert outer.cancelled_caught
    assert sorted(entry for entry in log if entry.startswith("stop")) == [
        "stop a0",
        "stop a1",
        "stop a2",
    ]
    gc.collect()
    assert task_ids() == before


async def test_a_crash_of_a_restarted_actor_is_reported_and_restarted_again() -> None:
    """Each incarnation is a task of its own: the second crash is supervised like the
    first."""
    log: list[str] = []
    async with Runtime(supervision=NO_BACKOFF) as rt:
        ref = await rt.spawn(Recorder(log, "r"))
        await ref.tell("crash")
        await wait_until(lambda: ref.statistics().restarts == 1)
        assert await ref.ask("ping") == "ping"
        await ref.tell("crash")
        await wait_until(lambda: ref.statistics().restarts == 2)
        assert await ref.ask("ping") == "ping"
    assert log == ["start r", "stop r"] * 3


# -- an idle actor's mailbox --------------------------------------------------------------


@pytest.mark.parametrize("overflow", list(Overflow))
async def test_the_first_message_to_a_fresh_mailbox_is_delivered(overflow: Overflow) -> None:
    """The first put makes the mailbox's queue (slow path): no overflow policy may mistake
    it for a full mailbox, whichever way the message comes, and it takes one place."""
    async with Runtime() as rt:
        told = await rt.spawn(Recorder(), mailbox_size=2, overflow=overflow)
        await told.tell("a")
        assert await told.ask("seen") == ["a"]
        told_nowait = await rt.spawn(Recorder(), mailbox_size=2, overflow=overflow)
        told_nowait.tell_nowait("b")
        assert await told_nowait.ask("seen", timeout=5) == ["b"]
        asked = await rt.spawn(Recorder(), mailbox_size=1, overflow=overflow)
        assert await asked.ask("c", timeout=5) == "c"
        untimed = await rt.spawn(Recorder(), mailbox_size=1, overflow=overflow)
        assert await untimed.ask("d") == "d"
        one = await rt.spawn(Recorder(), mailbox_size=1, overflow=overflow)
        one.tell_nowait("first")
        if overflow in (Overflow.FAIL, Overflow.BLOCK):
            with pytest.raises(MailboxFull):
                one.tell_nowait("second")  # the actor has not run: its one place is taken
            await wait_until(lambda: one.statistics().processed == 1)
            assert await one.ask("seen") == ["first"]
        else:
            one.tell_nowait("second")
            kept = "first" if overflow is Overflow.DROP_NEWEST else "second"
            await wait_until(lambda: one.statistics().processed == 1)
            assert await one.ask("seen") == [kept]
            assert one.statistics().dropped == 1


async def test_a_stopped_actor_that_never_had_mail_refuses_it() -> None:
    async with Runtime() as rt:
        ref = await rt.spawn(Idle())
        await ref.stop()
        with pytest.raises(ActorStopped):
            await ref.tell("late")
        with pytest.raises(ActorStopped):
            ref.tell_nowait("late")
        with pytest.raises(ActorStopped):
            await ref.ask("late", timeout=1)
        assert ref.statistics().undelivered == 0


async def test_a_mailbox_closed_before_any_put() -> None:
    box = Mailbox(4)
    assert len(box) == 0
    assert box.poll() is EMPTY
    box.close()
    with pytest.raises(ClosedResourceError):
        box.put_nowait("x")
    with pytest.raises(ClosedResourceError):
        await box.put("x")
    with pytest.raises(EndOfStream):
        await box.get()


async def test_a_receiver_woken_by_the_first_put_gets_it() -> None:
    box = Mailbox(2)
    got: list[Any] = []

    async def receive() -> None:
        got.append(await box.get())
        got.append(await box.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(receive)
        await anyio.wait_all_tasks_blocked()
        box.put_nowait(1)  # makes the queue while the receiver waits
        await anyio.wait_all_tasks_blocked()
        box.put_nowait(2)
    assert got == [1, 2]


# -- signals --------------------------------------------------------------------------------


async def test_a_signal_set_before_its_wait_returns_at_once() -> None:
    signal = new_signal()
    signal.set()
    assert signal.is_set()
    with anyio.fail_after(1):
        await signal.wait()


async def test_a_signal_set_after_its_waiter_was_cancelled_reads_as_set() -> None:
    signal = new_signal()
    with anyio.move_on_after(0.01) as scope:
        await signal.wait()
    assert scope.cancelled_caught
    assert not signal.is_set()
    signal.set()  # wakes nobody, and does not fail
    assert signal.is_set()


async def test_a_signal_wakes_its_waiter() -> None:
    signal = new_signal()
    woken: list[bool] = []

    async def waiter() -> None:
        await signal.wait()
        woken.append(True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        assert woken == []
        signal.set()
        signal.set()  # a second set changes nothing
    assert woken == [True]
