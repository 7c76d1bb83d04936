"""Actors, refs and the runtime: messaging, replies, streams, crashes, paths, the tree."""

from __future__ import annotations

import functools
import gc
import math
from typing import Any

import anyio
import pytest

from limelight.runtime import (
    Actor,
    ActorCrashed,
    ActorNotFound,
    ActorStartFailed,
    ActorState,
    ActorStopped,
    AskTimeout,
    ConfigError,
    Context,
    Restart,
    Runtime,
    RuntimeNotRunning,
    Supervision,
)

from ._actors import Crash, Recorder

pytestmark = pytest.mark.anyio

NO_BACKOFF = Supervision(backoff_initial=0)


async def test_tell_is_handled_in_order() -> None:
    async with Runtime() as rt:
        ref = await rt.spawn(Recorder(), name="r")
        for i in range(500):
            await ref.tell(i)
        assert await ref.ask("seen") == list(range(500))
        assert ref.statistics().processed == 501


async def test_ask_returns_what_handle_returned() -> None:
    async with Runtime() as rt:
        ref = await rt.spawn(Recorder())
        assert await ref.ask({"x": 1}) == {"x": 1}
        assert await ref.ask(("sleep", 0.0), timeout=5) == "slept"


async def test_stream_yields_each_item_then_ends() -> None:
    async with Runtime() as rt:
        ref = await rt.spawn(Recorder())
        assert [i async for i in ref.stream(("count", 5))] == [0, 1, 2, 3, 4]
        # A plain (non-iterable) return value streams as one item.
        async with ref.stream("hello") as replies:
            assert [r async for r in replies] == ["hello"]


async def test_stream_crash_reaches_the_consumer() -> None:
    class Bad(Actor):
        async def handle(self, message: Any, ctx: Context) -> Any:
            async def gen() -> Any:
                yield 1
                raise Crash("mid-stream")

            return gen()

    async with Runtime(supervision=NO_BACKOFF) as rt:
        ref = await rt.spawn(Bad)
        got = []
        with pytest.raises(ActorCrashed) as info:
            async for item in ref.stream("go"):
                got.append(item)
        assert got == [1]
        assert isinstance(info.value.__cause__, Crash)


async def test_consumer_leaving_a_stream_early_stops_the_producer() -> None:
    produced = []

    class Endless(Actor):
        async def handle(self, message: Any, ctx: Context) -> Any:
            async def gen() -> Any:
                for i in range(10_000):
                    produced.append(i)
                    yield i

            return gen()

    async with Runtime() as rt:
        ref = await rt.spawn(Endless())
        async with ref.stream("go") as replies:
            async for item in replies:
                if item == 3:
                    break
        # The actor is free again (it noticed the consumer left), so a new stream runs.
        async with ref.stream("again") as replies2:
            assert await replies2.__anext__() == 0
        assert len(produced) < 10_000


async def test_crash_during_ask_raises_actor_crashed_with_cause() -> None:
    async with Runtime(supervision=NO_BACKOFF) as rt:
        ref = await rt.spawn(Recorder, name="fragile")
        with pytest.raises(ActorCrashed) as info:
            await ref.ask("crash")
        assert isinstance(info.value.cause, Crash)
        assert info.value.__cause__ is info.value.cause
        assert info.value.path == "/fragile"
        # Restarted (a fresh instance, since a factory was given) and serving again.
        assert await ref.ask("after") == "after"
        assert ref.statistics().restarts == 1
        assert await ref.ask("seen") == ["after"]


async def test_failed_on_start_raises_from_spawn() -> None:
    class NoStart(Actor):
        async def on_start(self, ctx: Context) -> None:
            raise Crash("no")

    async with Runtime() as rt:
        with pytest.raises(ActorStartFailed) as info:
            await rt.spawn(NoStart(), name="nostart")
        assert isinstance(info.value.__cause__, Crash)
        assert rt.get("/nostart") is None
        assert rt.tree().children == ()


async def test_ask_timeout() -> None:
    async with Runtime() as rt:
        ref = await rt.spawn(Recorder(), name="slow")
        with pytest.raises(AskTimeout) as info:
            await ref.ask(("sleep", 10.0), timeout=0.05)
        assert "/slow" in str(info.value)
        assert isinstance(info.value, TimeoutError)


async def test_paths_lookup_and_children() -> None:
    async with Runtime() as rt:
        parent = await rt.spawn(Recorder(), name="agents")

        class Spawner(Actor):
            async def on_start(self, ctx: Context) -> None:
                await ctx.spawn(Recorder(), name="sub-1")
                await ctx.spawn(Recorder(), name="sub-2")

            async def handle(self, message: Any, ctx: Context) -> Any:
                return [c.path for c in ctx.children], ctx.parent

        research = await rt.spawn(Spawner(), name="research")
        assert parent.path == "/agents"
        assert await research.ask("children") == (["/research/sub-1", "/research/sub-2"], None)
        assert rt.lookup("/research/sub-2").path == "/research/sub-2"
        assert rt.lookup("/agents") == parent
        with pytest.raises(ActorNotFound):
            rt.lookup("/nope")
        paths = [n.path for n in rt.tree().walk()]
        assert paths == ["/", "/agents", "/research", "/research/sub-1", "/research/sub-2"]


async def test_tree_renders_state_restarts_depth_and_dead_letters() -> None:
    async with Runtime(supervision=NO_BACKOFF) as rt:
        ref = await rt.spawn(Recorder, name="worker")
        with pytest.raises(ActorCrashed):
            await ref.ask("crash")
        assert rt.tree().children[0].stats is not None
        await ref.ask("ping")  # queued behind the restart: answered by the new incarnation
        text = rt.tree().render()
        assert text.splitlines()[0] == "/  (runtime)"
        assert "└── worker  Recorder  running  restarts=1  mailbox=0/1024  dead=0" in text
        assert "last_error=Crash" in text


async def test_names_are_validated_and_unique() -> None:
    async with Runtime() as rt:
        await rt.spawn(Recorder(), name="a")
        with pytest.raises(ConfigError, match="already has a child named 'a'"):
            await rt.spawn(Recorder(), name="a")
        with pytest.raises(ConfigError, match="invalid actor name"):
            await rt.spawn(Recorder(), name="a/b")
        with pytest.raises(ConfigError, match="mailbox_size"):
            await rt.spawn(Recorder(), mailbox_size=0)
        auto = await rt.spawn(Recorder())
        assert auto.name.startswith("recorder-")


async def test_stop_fails_queued_asks_and_counts_queued_tells() -> None:
    async with Runtime() as rt:
        ref = await rt.spawn(Recorder(), name="busy")
        results: list[Any] = []

        async def ask_later() -> None:
            try:
                await ref.ask("queued")
            except ActorStopped as exc:
                results.append(exc)

        async with anyio.create_task_group() as tg:
            await ref.tell(("sleep", 10.0))
            await anyio.sleep(0.01)  # let it start sleeping
            await ref.tell("t1")
            await ref.tell("t2")
            tg.start_soon(ask_later)
            await anyio.sleep(0.01)
            await ref.stop()
        assert len(results) == 1
        stats = ref.statistics()
        assert stats.state is ActorState.STOPPED
        assert stats.undelivered == 2
        assert not ref.alive
        with pytest.raises(ActorStopped):
            await ref.tell("late")
        with pytest.raises(ActorStopped):
            ref.tell_nowait("late")
        assert rt.statistics().undelivered == 2


async def test_stop_order_children_before_parent_reverse_start_order() -> None:
    log: list[str] = []

    class Parent(Recorder):
        async def on_start(self, ctx: Context) -> None:
            await super().on_start(ctx)
            for i in range(3):
                await ctx.spawn(Recorder(log, f"child-{i}"), name=f"child-{i}")

    async with Runtime() as rt:
        await rt.spawn(Recorder(log, "first"), name="first")
        await rt.spawn(Parent(log, "parent"), name="parent")
    assert log[-5:] == ["stop child-2", "stop child-1", "stop child-0", "stop parent", "stop first"]


async def test_exception_in_block_propagates_unwrapped() -> None:
    with pytest.raises(KeyError):
        async with Runtime() as rt:
            await rt.spawn(Recorder())
            raise KeyError("mine")


async def test_runtime_not_running() -> None:
    rt = Runtime()
    with pytest.raises(RuntimeNotRunning):
        await rt.spawn(Recorder())
    async with rt:
        pass
    with pytest.raises(RuntimeNotRunning):
        await rt.spawn(Recorder())
    with pytest.raises(ConfigError):
        Runtime(mailbox_size=-1)


async def test_unbounded_mailbox() -> None:
    async with Runtime(mailbox_size=math.inf) as rt:
        ref = await rt.spawn(Recorder())
        for i in range(3000):
            ref.tell_nowait(i)
        assert len(await ref.ask("seen")) == 3000


async def test_temporary_child_is_not_restarted() -> None:
    async with Runtime(supervision=NO_BACKOFF) as rt:
        ref = await rt.spawn(Recorder, name="once", restart=Restart.TEMPORARY)
        with pytest.raises(ActorCrashed):
            await ref.ask("crash")
        await anyio.sleep(0.01)
        assert not ref.alive
        assert rt.get("/once") is None


async def test_no_task_left_running_after_shutdown() -> None:
    # Earlier tests' garbage first: its finalizers may start tasks of their own on this loop
    # (google-genai's clients schedule their aclose()), which are not the runtime's; they
    # end in a moment.
    gc.collect()
    await anyio.sleep(0.1)
    before = len(anyio.get_running_tasks())
    async with Runtime() as rt:
        for i in range(20):
            parent = await rt.spawn(Recorder(), name=f"p{i}")
            assert parent.alive
        assert len(anyio.get_running_tasks()) > before
    gc.collect()
    assert len(anyio.get_running_tasks()) == before


async def test_a_caller_giving_up_cancels_the_handler_of_its_ask() -> None:
    cancelled = anyio.Event()
    entered = anyio.Event()

    class Slow(Actor):
        async def handle(self, message: Any, ctx: Context) -> Any:
            entered.set()
            try:
                await anyio.sleep_forever()
            finally:
                cancelled.set()

    async with Runtime() as rt:
        ref = await rt.spawn(Slow(), name="slow")
        async with anyio.create_task_group() as tg:
            # A deadline far away: the handler is stopped because its caller left, not by it.
            tg.start_soon(functools.partial(ref.ask, "work", timeout=3600))
            await entered.wait()
            tg.cancel_scope.cancel()
        with anyio.fail_after(5):
            await cancelled.wait()
        assert ref.statistics().expired == 1  # counted: a request nobody waited for any more
        assert ref.alive  # the actor itself goes on
