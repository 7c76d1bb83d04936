"""Cancellation and deadlines: shutdown leaves no task behind, cancelled and timed-out asks
leave no reply waiting, deadlines travel with requests, and stops never hang a caller."""

from __future__ import annotations

import functools
import gc
import math
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from limelight.runtime import (
    Actor,
    ActorRef,
    ActorState,
    ActorStopped,
    AskTimeout,
    Context,
    Runtime,
    Supervision,
)

from ._actors import Crash, Recorder
from ._virtual_time import wait_until

pytestmark = pytest.mark.anyio
VIRTUAL_TIME = True  # trio runs these on a MockClock (conftest.py)

NO_BACKOFF = Supervision(backoff_initial=0)


class Held(Actor):
    """Handles "hold" by waiting for ``release`` (and returns "released"); records the rest.
    ``entered`` is set once it is holding."""

    def __init__(self) -> None:
        self.entered = anyio.Event()
        self.release = anyio.Event()
        self.seen: list[Any] = []

    async def handle(self, message: Any, ctx: Context) -> Any:
        if message == "hold":
            self.entered.set()
            await self.release.wait()
            return "released"
        self.seen.append(message)
        return message


class Relay(Actor):
    """Asks (or streams from) the actor at ``target`` while handling a message."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.outcome: list[Any] = []

    async def handle(self, message: Any, ctx: Context) -> Any:
        target = ctx.runtime.lookup(self.target)
        try:
            if message == "consume":
                async with target.stream("produce") as replies:
                    async for item in replies:
                        self.outcome.append(item)
                        await anyio.sleep(0.01)
                return None
            return await target.ask(message)
        except ActorStopped as exc:
            self.outcome.append(exc)
            return exc


class Producer(Actor):
    """Streams 0, 1, 2, ... for ever; ``stopped`` is set when the generator is closed."""

    def __init__(self) -> None:
        self.stopped = anyio.Event()
        self.produced = 0

    async def handle(self, message: Any, ctx: Context) -> Any:
        async def numbers() -> AsyncIterator[int]:
            try:
                while True:
                    yield self.produced
                    self.produced += 1
            finally:
                self.stopped.set()

        return numbers()


def task_ids() -> set[int]:
    return {task.id for task in anyio.get_running_tasks()}


# -- shutdown ------------------------------------------------------------------------------


async def test_shutdown_leaves_no_task_running() -> None:
    log: list[str] = []
    before = task_ids()

    class Parent(Recorder):
        async def on_start(self, ctx: Context) -> None:
            await super().on_start(ctx)
            for i in range(3):
                child = await ctx.spawn(functools.partial(Recorder, log, f"child-{i}"))
                await ctx.spawn(functools.partial(Recorder, log, f"grandchild-{i}"))
                await child.tell(("sleep", 1e6))  # busy

    slow_restart = Supervision(backoff_initial=1e6, backoff_max=1e6)
    async with Runtime(supervision=NO_BACKOFF) as rt:
        await rt.spawn(Parent(log, "parent"), name="parent")
        busy = await rt.spawn(Held(), name="busy")
        await busy.tell("hold")
        # Mid-ask: /asker waits for /busy, which never answers.
        asker = await rt.spawn(Relay("/busy"), name="asker")
        await asker.tell("hold")
        # Mid-stream: /consumer slowly reads an endless stream from /producer.
        producer = Producer()
        await rt.spawn(producer, name="producer")
        consumer = await rt.spawn(Relay("/producer"), name="consumer")
        await consumer.tell("consume")
        # A restart in progress: waiting out a very long backoff.
        sup = await rt.spawn(functools.partial(_Spawner, log), name="sup", supervision=slow_restart)
        await rt.lookup("/sup/w").tell("crash")
        await wait_until(lambda: rt.lookup("/sup/w").statistics().state is ActorState.RESTARTING)
        await wait_until(lambda: producer.produced > 3)
        assert len(task_ids() - before) > 10
    gc.collect()
    assert task_ids() == before
    assert producer.stopped.is_set()
    assert not sup.alive
    assert {f"stop child-{i}" for i in range(3)} <= set(log)
    assert log[-1] == "stop parent"  # the first actor spawned stops last


class _Spawner(Recorder):
    def __init__(self, log: list[str]) -> None:
        super().__init__(log, "sup")

    async def on_start(self, ctx: Context) -> None:
        await super().on_start(ctx)
        await ctx.spawn(functools.partial(Recorder, self.log, "w"), name="w")


# -- asks that are cancelled, time out or expire --------------------------------------------


async def test_cancelled_ask_leaves_no_reply_waiting() -> None:
    async with Runtime() as rt:
        held = Held()
        ref = await rt.spawn(held, name="held")
        async with anyio.create_task_group() as tg:
            tg.start_soon(ref.ask, "hold")
            await held.entered.wait()
            tg.cancel_scope.cancel()  # the asker leaves; no deadline was involved
        held.release.set()
        await wait_until(lambda: ref.statistics().processed == 1)
        stats = ref.statistics()
        assert (stats.late_replies, stats.expired, stats.dead_letters) == (1, 0, 1)
        assert rt.statistics().late_replies == 1
        assert await ref.ask("next") == "next"


async def test_timed_out_ask_reply_is_a_dead_letter(virtual_time: bool) -> None:
    timeout = 1.0 if virtual_time else 0.5
    started = anyio.Event()
    finish = anyio.Event()

    class Shielded(Actor):
        async def handle(self, message: Any, ctx: Context) -> Any:
            started.set()
            with anyio.CancelScope(shield=True):
                await finish.wait()  # finishes only after the asker gave up
            return "late"

    async with Runtime() as rt:
        ref = await rt.spawn(Shielded(), name="shielded")
        with pytest.raises(AskTimeout, match="timed out after"):
            await ref.ask("work", timeout=timeout)
        assert started.is_set()
        finish.set()
        await wait_until(lambda: ref.statistics().processed == 1)
        stats = ref.statistics()
        assert (stats.late_replies, stats.expired, stats.dead_letters) == (1, 0, 1)


async def test_ask_whose_deadline_passed_while_queued_is_never_handled(
    virtual_time: bool,
) -> None:
    timeout = 1.0 if virtual_time else 0.02
    async with Runtime() as rt:
        held = Held()
        ref = await rt.spawn(held, name="held")
        await ref.tell("hold")
        await held.entered.wait()
        with pytest.raises(AskTimeout):
            await ref.ask("own timeout", timeout=timeout)
        with anyio.move_on_after(timeout) as scope:
            await ref.ask("caller's deadline")
        assert scope.cancelled_caught
        held.release.set()
        assert await ref.ask("after") == "after"
        assert held.seen == ["after"]  # neither expired ask reached the handler
        stats = ref.statistics()
        assert (stats.expired, stats.late_replies, stats.dead_letters) == (2, 0, 2)


async def test_nested_ask_inherits_the_remaining_deadline() -> None:
    deadlines: dict[str, float] = {}

    class Inner(Actor):
        async def handle(self, message: Any, ctx: Context) -> Any:
            deadlines["inner"] = anyio.current_effective_deadline()
            return "inner"

    class Outer(Actor):
        async def handle(self, message: Any, ctx: Context) -> Any:
            deadlines["outer"] = anyio.current_effective_deadline()
            # A longer timeout of its own (if any) does not extend the caller's deadline.
            return await ctx.runtime.lookup("/inner").ask("hi", timeout=message)

    async with Runtime() as rt:
        await rt.spawn(Inner(), name="inner")
        outer = await rt.spawn(Outer(), name="outer")
        for own_timeout in (None, 1e6):
            deadlines.clear()
            with anyio.fail_after(100) as scope:
                assert await outer.ask(own_timeout) == "inner"
            assert deadlines == {"outer": scope.deadline, "inner": scope.deadline}

        deadlines.clear()
        before = anyio.current_time()
        assert await outer.ask(None, timeout=100) == "inner"
        assert deadlines["inner"] == deadlines["outer"]
        assert before + 100 <= deadlines["outer"] <= anyio.current_time() + 100

        deadlines.clear()
        assert await outer.ask(None) == "inner"  # no deadline anywhere: none inherited
        assert deadlines == {"outer": math.inf, "inner": math.inf}


# -- streams and stops ---------------------------------------------------------------------


async def test_cancelling_a_stream_consumer_stops_the_producer() -> None:
    producer = Producer()
    got: list[int] = []
    async with Runtime() as rt:
        ref = await rt.spawn(producer, name="producer")

        async def consume() -> None:
            async with ref.stream("go") as replies:
                async for item in replies:
                    got.append(item)
                    if len(got) == 3:
                        await anyio.sleep_forever()

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await wait_until(lambda: len(got) == 3)
            tg.cancel_scope.cancel()
        with anyio.fail_after(10):
            await producer.stopped.wait()
        assert got == [0, 1, 2]
        assert ref.statistics().late_replies == 1  # the item nobody took any more
        # The actor is free again.
        async with ref.stream("again") as replies:
            assert await replies.__anext__() > 0


async def test_stopping_an_actor_mid_ask_fails_the_asker() -> None:
    async with Runtime() as rt:
        held = Held()
        ref = await rt.spawn(held, name="held")
        errors: list[BaseException] = []

        async def ask() -> None:
            with pytest.raises(ActorStopped) as info:
                await ref.ask("hold")
            errors.append(info.value)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await held.entered.wait()
            await ref.stop()
        assert len(errors) == 1
        assert "was stopped while handling str" in str(errors[0])
        assert errors[0].path == "/held"  # type: ignore[attr-defined]


async def test_stopping_the_target_of_a_nested_ask_fails_the_asking_actor() -> None:
    async with Runtime() as rt:
        held = Held()
        target = await rt.spawn(held, name="held")
        relay = Relay("/held")
        ref = await rt.spawn(relay, name="relay")
        async with anyio.create_task_group() as tg:
            tg.start_soon(ref.ask, "hold")
            await held.entered.wait()
            await target.stop()
        assert len(relay.outcome) == 1
        assert isinstance(relay.outcome[0], ActorStopped)
        assert ref.statistics().state is ActorState.RUNNING


async def test_an_actor_that_stops_itself_is_stopped_for_good() -> None:
    log: list[str] = []

    class SelfStopper(Recorder):
        async def handle(self, message: Any, ctx: Context) -> Any:
            if message == "stop yourself":
                await ctx.self.stop()
            return await super().handle(message, ctx)

    async with Runtime() as rt:
        ref = await rt.spawn(SelfStopper(log, "s"), name="s")
        with pytest.raises(ActorStopped):
            await ref.ask("stop yourself")
        with anyio.fail_after(5), pytest.raises(ActorStopped):  # not a hang
            await ref.ask("after")
        assert ref.statistics().state is ActorState.STOPPED
        assert not ref.alive
        assert rt.get("/s") is None
        assert log == ["start s", "stop s"]


async def test_on_stop_runs_on_stop_restart_and_shutdown() -> None:
    log: list[str] = []
    async with Runtime(supervision=NO_BACKOFF) as rt:
        stopped = await rt.spawn(Recorder(log, "stopped"))
        restarted = await rt.spawn(Recorder(log, "restarted"))
        await rt.spawn(Recorder(log, "shutdown"))
        del log[:]
        await stopped.stop()
        assert log == ["stop stopped"]
        await restarted.tell("crash")
        assert await restarted.ask("ping") == "ping"
        assert log == ["stop stopped", "stop restarted", "start restarted"]
    assert log[3:] == ["stop shutdown", "stop restarted"]


async def test_hung_on_stop_is_bounded_by_shutdown_timeout(virtual_time: bool) -> None:
    shutdown_timeout = 5.0 if virtual_time else 0.05
    log: list[str] = []

    class Hangs(Actor):
        async def on_stop(self, ctx: Context) -> None:
            try:
                await anyio.sleep_forever()
            finally:
                log.append("hung on_stop cancelled")

    before = task_ids()
    async with Runtime(shutdown_timeout=shutdown_timeout) as rt:
        await rt.spawn(Recorder(log, "first"))
        hung = await rt.spawn(Hangs(), name="hung")
        started = anyio.current_time()
    elapsed = anyio.current_time() - started
    # Both on_stops ran; which ends first depends on which deadline fires first.
    assert log[0] == "start first"
    assert sorted(log[1:]) == ["hung on_stop cancelled", "stop first"]
    # Cancelled rather than stopped in time, but stopped for good all the same.
    assert not hung.alive
    with pytest.raises(ActorStopped):
        await hung.tell("after shutdown")
    gc.collect()
    assert task_ids() == before
    if virtual_time:
        assert shutdown_timeout <= elapsed < 2 * shutdown_timeout


async def test_hung_on_stop_does_not_hang_a_stop(virtual_time: bool) -> None:
    shutdown_timeout = 5.0 if virtual_time else 0.05
    cancelled = []

    class Hangs(Actor):
        async def on_stop(self, ctx: Context) -> None:
            try:
                await anyio.sleep_forever()
            finally:
                cancelled.append(ctx.path)

    async with Runtime(shutdown_timeout=shutdown_timeout) as rt:
        ref: ActorRef = await rt.spawn(Hangs(), name="hung")
        started = anyio.current_time()
        await ref.stop()
        elapsed = anyio.current_time() - started
        assert cancelled == ["/hung"]
        assert not ref.alive
        if virtual_time:
            assert shutdown_timeout <= elapsed < 2 * shutdown_timeout


class SlowStop(Held):
    """Takes a while (well within shutdown_timeout) to stop."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    async def on_stop(self, ctx: Context) -> None:
        await anyio.sleep(self.seconds)


class Dependent(Actor):
    """A supervisor of its own (spawns in on_start) that waits on /slow in a handler, and
    crashes when /slow stops under it."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def on_start(self, ctx: Context) -> None:
        self.log.append(f"start {ctx.path}")
        await ctx.spawn(Held(), name="leaf")

    async def handle(self, message: Any, ctx: Context) -> Any:
        return await ctx.runtime.lookup("/slow").ask(message)


class Parent(Actor):
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def on_start(self, ctx: Context) -> None:
        await ctx.spawn(functools.partial(Dependent, self.log), name="dependent")


@pytest.mark.parametrize(
    "nested",
    [
        pytest.param(False, id="top-level"),
        pytest.param(True, id="nested"),
    ],
)
async def test_a_crash_during_shutdown_is_not_restarted(virtual_time: bool, nested: bool) -> None:
    log: list[str] = []
    async with Runtime(supervision=NO_BACKOFF) as rt:
        if nested:  # under a supervisor that is still running when the crash comes
            await rt.spawn(functools.partial(Parent, log), name="sup")
            path = "/sup/dependent"
        else:
            await rt.spawn(functools.partial(Dependent, log), name="dependent")
            path = "/dependent"
        dependent = rt.lookup(path)
        slow = SlowStop(1.0 if virtual_time else 0.05)
        await rt.spawn(slow, name="slow")
        await dependent.tell("hold")
        await slow.entered.wait()
    # Stopping /slow (the last spawned, so the first stopped) failed the ask the dependent
    # was waiting on, which crashed it; nothing is restarted once the runtime shuts down.
    stats = dependent.statistics()
    assert stats.last_error is not None
    assert stats.last_error.startswith("ActorStopped")
    assert stats.restarts == 0
    assert log.count(f"start {path}") == 1


async def test_crash_in_on_stop_is_recorded_not_raised() -> None:
    class BadStop(Recorder):
        async def on_stop(self, ctx: Context) -> None:
            raise Crash("on_stop failed")

    async with Runtime() as rt:
        ref = await rt.spawn(BadStop(), name="bad")
        with capture_logs() as logs:
            await ref.stop()
        stats = ref.statistics()
        assert stats.state is ActorState.STOPPED
        assert stats.last_error == "Crash: on_stop failed"
    [event] = [e for e in logs if e["event"] == "on_stop raised"]
    assert event["actor"] == "/bad"
    assert event["error"] == "Crash: on_stop failed"
