"""Non-resident actors (``Actor.resident = False``): an idle one holds no task; the next message
starts one that goes on with the same incarnation. Seen from outside, nothing differs from a
resident actor: order, lifecycle hooks, stops, supervision, overflow policies, the runtime's
teardown, and the context its handlers run in."""

from __future__ import annotations

import contextvars
import functools
import gc
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from limelight.runtime import (
    Actor,
    ActorCrashed,
    ActorRef,
    ActorState,
    ActorStopped,
    Context,
    MailboxFull,
    Overflow,
    RestartIntensityExceeded,
    Runtime,
    Strategy,
    Supervision,
)
from limelight.runtime._tasks import Waker

from ._actors import Crash, Recorder
from ._virtual_time import wait_until

pytestmark = pytest.mark.anyio
VIRTUAL_TIME = True  # trio runs these on a MockClock (conftest.py)

NO_BACKOFF = Supervision(backoff_initial=0)

#: Set by the actors' on_start; read by their handlers.
var: contextvars.ContextVar[str] = contextvars.ContextVar("limelight_test_var", default="unset")


class Sleeper(Recorder):
    """A Recorder whose task ends while it waits for mail."""

    resident = False


class Counting(Actor):
    """Counts the handlers running at once (two tasks of one incarnation would overlap)."""

    resident = False

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.active = 0
        self.most = 0

    async def handle(self, message: Any, ctx: Context) -> Any:
        if message == "seen":
            return list(self.seen)
        self.active += 1
        self.most = max(self.most, self.active)
        try:
            await anyio.lowlevel.checkpoint()
            self.seen.append(message)
        finally:
            self.active -= 1
        return message


def task_ids() -> set[int]:
    return {task.id for task in anyio.get_running_tasks()}


def actor_tasks(rt: Runtime) -> int:
    """The actor tasks of ``rt`` running now (its own bookkeeping, on either backend)."""
    tasks: Any = rt._actor_tasks
    if hasattr(tasks, "_running"):
        return len(tasks._running)
    return len(tasks._nursery.child_tasks)


def dormant(ref: ActorRef) -> bool:
    cell = ref._cell
    return cell._running and cell._scope is None and type(cell.mailbox._receiver) is Waker


async def all_dormant(*refs: ActorRef) -> None:
    await wait_until(lambda: all(dormant(ref) for ref in refs))


# -- no task while idle -------------------------------------------------------------------


async def test_an_idle_non_resident_actor_holds_no_task() -> None:
    before = task_ids()
    async with Runtime() as rt:
        base = task_ids()
        refs = [await rt.spawn(Sleeper()) for _ in range(50)]
        await all_dormant(*refs)
        gc.collect()
        assert task_ids() == base
        assert actor_tasks(rt) == 0
        for ref in refs:
            stats = ref.statistics()
            assert stats.state is ActorState.RUNNING  # dormant looks running from outside
            assert ref.alive
        resident = await rt.spawn(Recorder())
        await wait_until(lambda: resident._cell.mailbox._receiver is not None)
        assert actor_tasks(rt) == 1  # a resident one waits in its task
    gc.collect()
    assert task_ids() == before


async def test_a_woken_actor_goes_dormant_again_once_its_mail_is_handled() -> None:
    async with Runtime() as rt:
        ref = await rt.spawn(Sleeper())
        for i in range(3):
            await all_dormant(ref)
            assert await ref.ask(i) == i
        await all_dormant(ref)
        assert actor_tasks(rt) == 0
        assert ref.statistics().processed == 3


async def test_tell_ask_stream_and_tell_nowait_wake_it() -> None:
    async with Runtime() as rt:
        ref = await rt.spawn(Sleeper())
        await all_dormant(ref)
        await ref.tell("told")
        await all_dormant(ref)
        ref.tell_nowait("told_nowait")
        await all_dormant(ref)
        assert await ref.ask("asked") == "asked"
        await all_dormant(ref)
        assert await ref.ask("asked_timed", timeout=0.5) == "asked_timed"
        await all_dormant(ref)  # once the deadline of the timed ask has passed
        assert [i async for i in ref.stream(("count", 3))] == [0, 1, 2]
        await all_dormant(ref)
        assert await ref.ask("seen") == ["told", "told_nowait", "asked", "asked_timed"]


async def test_a_loop_callback_wakes_it(anyio_backend: object) -> None:
    """``tell_nowait`` from a callback of the event loop (not a task) starts the task."""
    async with Runtime() as rt:
        ref = await rt.spawn(Sleeper())
        await all_dormant(ref)
        if anyio_backend == "asyncio":
            import asyncio

            asyncio.get_running_loop().call_soon(ref.tell_nowait, "from a callback")
        else:
            import trio

            trio.lowlevel.current_trio_token().run_sync_soon(ref.tell_nowait, "from a callback")
        await wait_until(lambda: ref.statistics().processed == 1)
        await all_dormant(ref)
        assert await ref.ask("seen") == ["from a callback"]


async def test_order_is_kept_across_dormancy_and_one_task_runs_at_a_time() -> None:
    async with Runtime() as rt:
        actor = Counting()
        ref = await rt.spawn(actor)
        expected: list[int] = []
        for burst in range(5):
            await all_dormant(ref)
            # The first wakes it; the rest arrive while its task is scheduled, or running.
            for i in range(burst * 10, burst * 10 + 10):
                ref.tell_nowait(i)
                expected.append(i)
            await ref.tell(burst * 10 + 10)
            expected.append(burst * 10 + 10)
            await anyio.lowlevel.checkpoint()
            ref.tell_nowait(-burst)
            expected.append(-burst)
        assert await ref.ask("seen") == expected
        assert actor.most == 1


# -- lifecycle ------------------------------------------------------------------------------


async def test_on_start_and_on_stop_run_once_per_incarnation() -> None:
    log: list[str] = []
    async with Runtime() as rt:
        ref = await rt.spawn(Sleeper(log, "s"))
        for i in range(4):
            await all_dormant(ref)
            assert await ref.ask(i) == i
        await all_dormant(ref)
        assert log == ["start s"]
        await ref.stop()
        assert log == ["start s", "stop s"]
    assert log == ["start s", "stop s"]


async def test_a_stop_of_a_dormant_actor_stops_its_children_first_in_reverse_order() -> None:
    log: list[str] = []

    class Parent(Sleeper):
        async def on_start(self, ctx: Context) -> None:
            await super().on_start(ctx)
            await ctx.spawn(Sleeper(log, "c1"), name="c1")
            await ctx.spawn(Sleeper(log, "c2"), name="c2")

    async with Runtime() as rt:
        parent = await rt.spawn(Parent(log, "p"), name="p")
        c1, c2 = rt.lookup("/p/c1"), rt.lookup("/p/c2")
        await all_dormant(parent, c1, c2)
        assert actor_tasks(rt) == 0
        await parent.stop()
        assert log == ["start p", "start c1", "start c2", "stop c2", "stop c1", "stop p"]
        assert not any(ref.alive for ref in (parent, c1, c2))
        await wait_until(lambda: actor_tasks(rt) == 0)  # the tasks that ran the ends
        with pytest.raises(ActorStopped):
            await parent.tell("late")


async def test_a_stop_racing_the_wake_ends_the_incarnation_once() -> None:
    """The message starts a task for the dormant actor, the stop comes before it runs: the
    task runs the end (once), and the message is not handled twice, nor lost silently."""
    log: list[str] = []
    async with Runtime() as rt:
        ref = await rt.spawn(Sleeper(log, "s"))
        await all_dormant(ref)
        ref.tell_nowait("x")  # the task is scheduled...
        await ref.stop()  # ...and cancelled before it runs
        stats = ref.statistics()
        assert stats.state is ActorState.STOPPED
        assert stats.processed + stats.undelivered == 1
        assert log == ["start s", "stop s"]
        await wait_until(lambda: actor_tasks(rt) == 0)


async def test_a_closed_mailbox_wakes_a_dormant_actor_which_ends() -> None:
    log: list[str] = []
    async with Runtime() as rt:
        ref = await rt.spawn(Sleeper(log, "s"))
        await all_dormant(ref)
        cell = ref._cell
        cell.finalize()  # closes the mailbox: its waker starts the task that ends it
        assert not dormant(ref)
        await wait_until(lambda: not cell._running)
        assert log == ["start s", "stop s"]
        assert ref.statistics().state is ActorState.STOPPED
        await wait_until(lambda: actor_tasks(rt) == 0)


# -- supervision ----------------------------------------------------------------------------


async def test_a_crash_after_a_wake_is_supervised_as_before() -> None:
    log: list[str] = []
    async with Runtime(supervision=NO_BACKOFF) as rt:
        ref = await rt.spawn(functools.partial(Sleeper, log, "s"), name="s")
        for restarts in (1, 2):
            await all_dormant(ref)
            with pytest.raises(ActorCrashed) as info:
                await ref.ask("crash")
            assert isinstance(info.value.cause, Crash)
            await wait_until(lambda: ref.statistics().restarts == restarts)  # noqa: B023
            assert await ref.ask("ping") == "ping"
        stats = ref.statistics()
        assert stats.last_error is not None
        assert stats.last_error.startswith("Crash")
    assert log == ["start s", "stop s"] * 3


async def test_a_normal_exit_after_a_wake_restarts_a_permanent_actor() -> None:
    log: list[str] = []
    async with Runtime(supervision=NO_BACKOFF) as rt:
        ref = await rt.spawn(functools.partial(Sleeper, log, "s"), name="s")
        await all_dormant(ref)
        await ref.tell("exit")  # ctx.stop(): the incarnation ends after this message
        await wait_until(lambda: ref.statistics().restarts == 1)
        await all_dormant(ref)
        assert await ref.ask("ping") == "ping"
        assert log == ["start s", "stop s", "start s"]


async def test_restart_intensity_counts_crashes_after_wakes() -> None:
    """...and the runtime's failure ends a dormant bystander too."""
    log: list[str] = []
    strict = Supervision(max_restarts=2, within=60, backoff_initial=0)
    with pytest.raises(RestartIntensityExceeded) as info:
        async with Runtime(supervision=strict) as rt:
            other = await rt.spawn(Sleeper(log, "other"), name="other")
            ref = await rt.spawn(functools.partial(Sleeper, log, "w"), name="w")
            await all_dormant(other)
            for _ in range(3):
                await all_dormant(ref)
                with pytest.raises(ActorCrashed):
                    await ref.ask("crash")
            with anyio.fail_after(5):
                await anyio.sleep_forever()  # the escalation cancels the block
    assert isinstance(info.value.cause, Crash)
    assert ref.statistics().restarts == 2
    assert not ref.alive
    assert not other.alive
    restarts = ["stop w", "start w"] * 2
    assert log == ["start other", "start w", *restarts, "stop w", "stop other"]


async def test_a_dormant_supervisor_that_gives_up_is_restarted_by_its_parent() -> None:
    """The child's crash is reported (in the child's task) to a supervisor with no task: its
    give-up must reach it all the same."""
    log: list[str] = []

    class Sup(Sleeper):
        async def on_start(self, ctx: Context) -> None:
            await super().on_start(ctx)
            await ctx.spawn(functools.partial(Sleeper, log, "w"), name="w")

    one = Supervision(max_restarts=1, within=60, backoff_initial=0)
    async with Runtime(supervision=NO_BACKOFF) as rt:
        sup = await rt.spawn(functools.partial(Sup, log, "sup"), name="sup", supervision=one)
        w = rt.lookup("/sup/w")
        for _ in range(2):
            await all_dormant(sup, w)
            with pytest.raises(ActorCrashed):
                await w.ask("crash")
            await wait_until(lambda: log[-1] == "start w")
        await wait_until(lambda: sup.statistics().restarts == 1)
        first_restart = ["stop w", "start w"]
        give_up = ["stop w", "stop sup", "start sup", "start w"]
        assert log == ["start sup", "start w", *first_restart, *give_up]
        last_error = sup.statistics().last_error
        assert last_error is not None
        assert last_error.startswith("RestartIntensityExceeded")
        new_w = rt.lookup("/sup/w")
        assert new_w != w
        assert await new_w.ask("ping") == "ping"


async def test_one_for_all_halts_dormant_siblings_and_starts_them_again() -> None:
    log: list[str] = []

    class Sup(Sleeper):
        async def on_start(self, ctx: Context) -> None:
            await super().on_start(ctx)
            for name in ("a", "b", "c"):
                await ctx.spawn(functools.partial(Sleeper, log, name), name=name)

    all_of_them = Supervision(strategy=Strategy.ONE_FOR_ALL, backoff_initial=0)
    async with Runtime() as rt:
        sup = await rt.spawn(Sup(log, "sup"), name="sup", supervision=all_of_them)
        a, b, c = (rt.lookup(f"/sup/{name}") for name in "abc")
        await all_dormant(sup, a, b, c)
        del log[:]
        with pytest.raises(ActorCrashed):
            await b.ask("crash")
        await wait_until(lambda: len(log) == 6)
        assert log == ["stop b", "stop c", "stop a", "start a", "start b", "start c"]
        await all_dormant(sup, a, b, c)
        assert [await ref.ask(ref.name) for ref in (a, b, c)] == ["a", "b", "c"]


# -- mailbox overflow -----------------------------------------------------------------------


@pytest.mark.parametrize("overflow", list(Overflow))
async def test_overflow_policies_apply_to_a_dormant_actor(overflow: Overflow) -> None:
    async with Runtime() as rt:
        ref = await rt.spawn(Sleeper(), mailbox_size=1, overflow=overflow)
        await ref.tell("warm")  # the mailbox's queue is made by its first put
        await all_dormant(ref)
        ref.tell_nowait("first")  # wakes it; its task has not run yet
        if overflow in (Overflow.FAIL, Overflow.BLOCK):
            with pytest.raises(MailboxFull):
                ref.tell_nowait("second")
            assert ref.statistics().rejected == 1
            if overflow is Overflow.BLOCK:
                await ref.tell("third")  # waits for room: the woken task makes it
                expected = ["warm", "first", "third"]
            else:
                expected = ["warm", "first"]
        else:
            ref.tell_nowait("second")
            assert ref.statistics().dropped == 1
            kept = "first" if overflow is Overflow.DROP_NEWEST else "second"
            expected = ["warm", kept]
        # (An ask now would find the one place taken, and the policy would apply to it.)
        await wait_until(lambda: ref.statistics().processed == len(expected))
        assert await ref.ask("seen") == expected
        await all_dormant(ref)


# -- the runtime's teardown -----------------------------------------------------------------


async def test_leaving_the_runtime_ends_every_dormant_actor() -> None:
    log: list[str] = []

    class Parent(Sleeper):
        async def on_start(self, ctx: Context) -> None:
            await super().on_start(ctx)
            await ctx.spawn(Sleeper(log, f"{ctx.name}/child"), name="child")

    before = task_ids()
    async with Runtime() as rt:
        refs = [await rt.spawn(Parent(log, f"p{i}"), name=f"p{i}") for i in range(20)]
        children = [rt.lookup(f"/p{i}/child") for i in range(20)]
        await all_dormant(*refs, *children)
        assert actor_tasks(rt) == 0
        del log[:]
    # Reverse start order, each child before its parent.
    expected: list[str] = []
    for i in reversed(range(20)):
        expected += [f"stop p{i}/child", f"stop p{i}"]
    assert log == expected
    assert not any(ref.alive for ref in refs + children)
    assert not rt._actor_tasks._dormant  # type: ignore[union-attr]
    gc.collect()
    assert task_ids() == before


async def test_dormant_actors_left_by_a_timed_out_shutdown_are_ended_too() -> None:
    """A hung on_stop makes the orderly shutdown run out of time before it reaches the other
    actors: the teardown of the actor tasks ends the dormant ones, and waits for them."""
    log: list[str] = []

    class Hung(Recorder):
        async def on_stop(self, ctx: Context) -> None:
            log.append("hung")
            await anyio.sleep_forever()

    before = task_ids()
    async with Runtime(shutdown_timeout=0.2) as rt:
        sleepers = [await rt.spawn(Sleeper(log, f"s{i}")) for i in range(5)]
        await rt.spawn(Hung(), name="hung")  # stopped first: the last started
        await all_dormant(*sleepers)
        del log[:]
    assert log[0] == "hung"
    assert sorted(log[1:]) == [f"stop s{i}" for i in range(5)]
    assert not any(ref.alive for ref in sleepers)
    gc.collect()
    assert task_ids() == before


async def test_a_runtime_cancelled_from_outside_ends_dormant_actors() -> None:
    log: list[str] = []
    before = task_ids()
    with anyio.CancelScope() as outer:
        async with Runtime() as rt:
            refs = [await rt.spawn(Sleeper(log, f"s{i}")) for i in range(3)]
            await all_dormant(*refs)
            outer.cancel()
            await anyio.sleep_forever()
    assert outer.cancelled_caught
    assert sorted(entry for entry in log if entry.startswith("stop")) == [
        "stop s0",
        "stop s1",
        "stop s2",
    ]
    gc.collect()
    assert task_ids() == before


# -- contextvars ----------------------------------------------------------------------------


class Contextual(Actor):
    resident = False

    async def on_start(self, ctx: Context) -> None:
        var.set("on_start")

    async def handle(self, message: Any, ctx: Context) -> Any:
        if message == "get":
            return var.get()
        var.set(message)
        return None


async def test_a_context_variable_set_in_on_start_is_seen_after_a_wake() -> None:
    """Each new task goes on in the incarnation's context (on asyncio the very one; on trio a
    copy of it), not in the waking sender's."""
    async with Runtime() as rt:
        ref = await rt.spawn(Contextual())
        await all_dormant(ref)
        var.set("sender")
        assert await ref.ask("get") == "on_start"
        await all_dormant(ref)
        await ref.tell("set in a handler")
        await all_dormant(ref)
        assert await ref.ask("get") == "set in a handler"
        assert var.get() == "sender"  # and the sender's own is untouched
