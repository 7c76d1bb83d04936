"""Supervision in the running kernel: strategies, restart policies, restart intensity,
escalation, backoff, and what callers and children see across a restart."""

from __future__ import annotations

import functools
from typing import Any

import anyio
import pytest

from limelight.runtime import (
    Actor,
    ActorCrashed,
    ActorStartFailed,
    ActorState,
    ActorStopped,
    Context,
    Restart,
    RestartIntensityExceeded,
    Runtime,
    Strategy,
    Supervision,
)

from ._actors import Crash, Recorder
from ._virtual_time import wait_until

pytestmark = pytest.mark.anyio
VIRTUAL_TIME = True  # trio runs these on a MockClock (conftest.py)

NO_BACKOFF = Supervision(backoff_initial=0)


class Sup(Recorder):
    """A supervisor: in on_start it spawns one fresh Recorder per child name, with that
    child's restart policy, all logging into the shared log."""

    def __init__(
        self, log: list[str], children: dict[str, Restart] | list[str], name: str = "sup"
    ) -> None:
        super().__init__(log, name)
        if isinstance(children, list):
            children = dict.fromkeys(children, Restart.PERMANENT)
        self.policies = children

    async def on_start(self, ctx: Context) -> None:
        await super().on_start(ctx)
        for child, policy in self.policies.items():
            factory = functools.partial(Recorder, self.log, child)
            await ctx.spawn(factory, name=child, restart=policy)


def sup_with(strategy: Strategy, **options: Any) -> Supervision:
    return Supervision(strategy=strategy, backoff_initial=0, **options)


async def crash(ref: Any) -> ActorCrashed:
    with pytest.raises(ActorCrashed) as info:
        await ref.ask("crash")
    return info.value


# -- strategies ----------------------------------------------------------------------------


async def test_one_for_one_restarts_only_the_failed_child() -> None:
    log: list[str] = []
    async with Runtime() as rt:
        await rt.spawn(
            Sup(log, ["a", "b", "c"]), name="sup", supervision=sup_with(Strategy.ONE_FOR_ONE)
        )
        a, b, c = (rt.lookup(f"/sup/{n}") for n in "abc")
        del log[:]
        await crash(b)
        assert await b.ask("ping") == "ping"  # queued behind the restart
        assert log == ["stop b", "start b"]
        assert [r.statistics().restarts for r in (a, b, c)] == [0, 1, 0]
        assert rt.lookup("/sup/b") == b  # the ref is stable across restarts


async def test_one_for_all_stops_siblings_in_reverse_then_restarts_all_in_start_order() -> None:
    log: list[str] = []
    async with Runtime() as rt:
        await rt.spawn(
            Sup(log, ["a", "b", "c"]), name="sup", supervision=sup_with(Strategy.ONE_FOR_ALL)
        )
        refs = [rt.lookup(f"/sup/{n}") for n in "abc"]
        await refs[0].tell("kept")  # the mailbox survives the restart, its state does not
        assert await refs[0].ask("seen") == ["kept"]
        del log[:]
        await crash(refs[1])
        await wait_until(lambda: len(log) == 6)
        assert log == ["stop b", "stop c", "stop a", "start a", "start b", "start c"]
        for ref in refs:
            assert await ref.ask("seen") == []
        assert [r.statistics().restarts for r in refs] == [1, 1, 1]
        assert all(r.statistics().state is ActorState.RUNNING for r in refs)


async def test_rest_for_one_restarts_the_failed_child_and_those_started_after_it() -> None:
    log: list[str] = []
    async with Runtime() as rt:
        await rt.spawn(
            Sup(log, ["a", "b", "c", "d"]),
            name="sup",
            supervision=sup_with(Strategy.REST_FOR_ONE),
        )
        refs = [rt.lookup(f"/sup/{n}") for n in "abcd"]
        del log[:]
        await crash(refs[1])
        await wait_until(lambda: len(log) == 6)
        assert log == ["stop b", "stop d", "stop c", "start b", "start c", "start d"]
        assert [r.statistics().restarts for r in refs] == [0, 1, 1, 1]


async def test_temporary_sibling_is_stopped_not_restarted_by_one_for_all() -> None:
    log: list[str] = []
    children = {"a": Restart.TEMPORARY, "b": Restart.PERMANENT, "c": Restart.TRANSIENT}
    async with Runtime() as rt:
        await rt.spawn(Sup(log, children), name="sup", supervision=sup_with(Strategy.ONE_FOR_ALL))
        a, b, c = (rt.lookup(f"/sup/{n}") for n in "abc")
        del log[:]
        await crash(b)
        await wait_until(lambda: len(log) == 5)
        assert log == ["stop b", "stop c", "stop a", "start b", "start c"]
        assert not a.alive
        with pytest.raises(ActorStopped):
            await a.ask("ping")
        assert [r.statistics().restarts for r in (b, c)] == [1, 1]
        assert [child.name for child in rt.tree().children[0].children] == ["b", "c"]


# -- restart policies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "how", "restarted"),
    [
        (Restart.PERMANENT, "crash", True),
        (Restart.PERMANENT, "exit", True),
        (Restart.TRANSIENT, "crash", True),
        (Restart.TRANSIENT, "exit", False),
        (Restart.TEMPORARY, "crash", False),
        (Restart.TEMPORARY, "exit", False),
    ],
)
async def test_restart_policy(policy: Restart, how: str, restarted: bool) -> None:
    log: list[str] = []
    async with Runtime(supervision=NO_BACKOFF) as rt:
        ref = await rt.spawn(functools.partial(Recorder, log, "w"), name="w", restart=policy)
        if how == "crash":
            await crash(ref)
        else:
            assert await ref.ask("exit") is None  # ctx.stop(): a normal end of the incarnation
        if restarted:
            assert await ref.ask("ping") == "ping"
            assert ref.statistics().restarts == 1
            assert rt.get("/w") == ref
            assert log == ["start w", "stop w", "start w"]
        else:
            with pytest.raises(ActorStopped):
                await ref.ask("ping")
            await wait_until(lambda: not ref.alive)
            assert rt.get("/w") is None
            assert ref.statistics().restarts == 0
            assert log == ["start w", "stop w"]


# -- restart intensity and escalation --------------------------------------------------------


async def test_top_level_intensity_exceeded_fails_the_runtime_block() -> None:
    log: list[str] = []
    strict = Supervision(max_restarts=2, within=60, backoff_initial=0)
    with pytest.raises(RestartIntensityExceeded) as info:
        async with Runtime(supervision=strict) as rt:
            ref = await rt.spawn(functools.partial(Recorder, log, "w"), name="w")
            crashes = [await crash(ref) for _ in range(3)]
            with anyio.fail_after(5):
                await anyio.sleep_forever()  # the escalation cancels the block
    assert info.value.cause is crashes[-1].cause
    assert info.value.__cause__ is info.value.cause
    assert isinstance(info.value.cause, Crash)
    assert ref.statistics().restarts == 2
    assert not ref.alive
    assert log == ["start w", "stop w", "start w", "stop w", "start w", "stop w"]


async def test_top_level_escalation_stops_the_other_top_level_actors() -> None:
    log: list[str] = []
    strict = Supervision(max_restarts=1, within=60, backoff_initial=0)
    with pytest.raises(RestartIntensityExceeded) as info:
        async with Runtime(supervision=strict) as rt:
            other = await rt.spawn(Recorder(log, "other"), name="other")
            ref = await rt.spawn(functools.partial(Recorder, log, "w"), name="w")
            await crash(ref)
            await crash(ref)
            with anyio.fail_after(5):
                await anyio.sleep_forever()
    assert isinstance(info.value.cause, Crash)
    assert not other.alive
    assert log.count("stop other") == 1


async def test_nested_supervisor_gives_up_and_its_parent_restarts_it() -> None:
    log: list[str] = []

    class Top(Recorder):
        async def on_start(self, ctx: Context) -> None:
            await super().on_start(ctx)
            await ctx.spawn(
                Sup(log, ["w"]),
                name="sup",
                supervision=Supervision(max_restarts=1, within=60, backoff_initial=0),
            )

    async with Runtime(supervision=NO_BACKOFF) as rt:
        await rt.spawn(Top(log, "top"), name="top")
        sup = rt.lookup("/top/sup")
        w = rt.lookup("/top/sup/w")
        await crash(w)
        assert await w.ask("ping") == "ping"
        del log[:]
        await crash(w)  # the second restart within the window: the supervisor gives up
        await wait_until(lambda: len(log) == 4)
        assert log == ["stop w", "stop sup", "start sup", "start w"]
        stats = sup.statistics()
        assert stats.last_error is not None
        assert stats.last_error.startswith("RestartIntensityExceeded")
        assert not w.alive  # stopped for good; the restarted supervisor made a new one
        new_w = rt.lookup("/top/sup/w")
        assert new_w != w
        assert await new_w.ask("ping") == "ping"


async def test_nested_give_up_stops_running_siblings_and_escalates() -> None:
    log: list[str] = []

    class Top(Recorder):
        async def on_start(self, ctx: Context) -> None:
            await super().on_start(ctx)
            await ctx.spawn(
                Sup(log, ["w", "x"]),
                name="sup",
                supervision=Supervision(max_restarts=0, within=60, backoff_initial=0),
            )

    strict = Supervision(max_restarts=0, within=60, backoff_initial=0)
    with pytest.raises(RestartIntensityExceeded) as info:
        async with Runtime(supervision=strict) as rt:
            await rt.spawn(Top(log, "top"), name="top", supervision=strict)
            x = rt.lookup("/top/sup/x")
            del log[:]
            await crash(rt.lookup("/top/sup/w"))
            with anyio.fail_after(5):
                await anyio.sleep_forever()
    # Each supervisor gave up on the one below: the runtime on /top, /top on /top/sup,
    # /top/sup on w, whose crash is at the end of the chain.
    chain: list[BaseException] = [info.value]
    while isinstance(chain[-1], RestartIntensityExceeded):
        chain.append(chain[-1].cause)
    assert [getattr(e, "path", None) for e in chain] == ["/", "/top", "/top/sup", None]
    assert isinstance(chain[-1], Crash)
    assert all(e.__cause__ is e.cause for e in chain[:-1])  # type: ignore[attr-defined]
    assert not x.alive
    assert log[:4] == ["stop w", "stop x", "stop sup", "stop top"]


async def test_restarts_outside_the_window_do_not_count(virtual_time: bool) -> None:
    # Real time on asyncio: a window wide enough for two quick restarts even on a loaded
    # machine, and waits that are lower bounds (a sleep never ends early).
    window = 10.0 if virtual_time else 0.25
    strict = Supervision(max_restarts=1, within=window, backoff_initial=0)
    with pytest.raises(RestartIntensityExceeded):
        async with Runtime(supervision=strict) as rt:
            ref = await rt.spawn(Recorder, name="w")
            for _ in range(2):
                await crash(ref)
                assert await ref.ask("ping") == "ping"
                await anyio.sleep(window * 1.5)  # the previous restart leaves the window
            assert ref.statistics().restarts == 2
            # Two restarts inside one window are one too many.
            await crash(ref)
            await crash(ref)
            with anyio.fail_after(5):
                await anyio.sleep_forever()


async def test_backoff_grows_between_restarts(virtual_time: bool) -> None:
    initial = 1.0 if virtual_time else 0.001
    sup = Supervision(
        max_restarts=10, within=1000, backoff_initial=initial, backoff_max=3 * initial
    )
    async with Runtime(supervision=sup, shutdown_timeout=100) as rt:
        ref = await rt.spawn(Recorder, name="w")
        waits = []
        for _ in range(4):
            before = anyio.current_time()
            await crash(ref)
            assert await ref.ask("ping") == "ping"  # answered once the restart is done
            waits.append(anyio.current_time() - before)
        assert ref.statistics().restarts == 4
        if virtual_time:
            # 1, 2, 4 capped at 3, 3: virtual time advances exactly by each backoff.
            assert waits == pytest.approx([1.0, 2.0, 3.0, 3.0])


async def test_backoff_counts_each_childs_own_restarts(virtual_time: bool) -> None:
    initial = 1.0 if virtual_time else 0.001
    sup = Supervision(
        max_restarts=10, within=1000, backoff_initial=initial, backoff_max=8 * initial
    )
    async with Runtime(supervision=sup) as rt:
        a = await rt.spawn(Recorder, name="a")
        b = await rt.spawn(Recorder, name="b")
        waits = []
        for ref in (a, b, a, b):
            before = anyio.current_time()
            await crash(ref)
            assert await ref.ask("ping") == "ping"
            waits.append(anyio.current_time() - before)
        assert [a.statistics().restarts, b.statistics().restarts] == [2, 2]
        if virtual_time:
            assert waits == pytest.approx([1.0, 1.0, 2.0, 2.0])


async def test_backoff_longer_than_shutdown_timeout_still_restarts(virtual_time: bool) -> None:
    shutdown = 1.0 if virtual_time else 0.02
    sup = Supervision(backoff_initial=2 * shutdown, backoff_max=2 * shutdown)
    async with Runtime(supervision=sup, shutdown_timeout=shutdown) as rt:
        ref = await rt.spawn(Recorder, name="w")
        await crash(ref)
        with anyio.fail_after(5):
            assert await ref.ask("ping") == "ping"
        assert ref.statistics().restarts == 1


async def test_failing_on_start_during_restart_counts_toward_intensity() -> None:
    starts: list[int] = []

    class BadRestart(Actor):
        async def on_start(self, ctx: Context) -> None:
            starts.append(ctx.restarts)
            if ctx.restarts:
                raise Crash(f"cannot restart ({ctx.restarts})")

        async def handle(self, message: Any, ctx: Context) -> Any:
            raise Crash("first crash")

    strict = Supervision(max_restarts=2, within=60, backoff_initial=0)
    with pytest.raises(RestartIntensityExceeded) as info:
        async with Runtime(supervision=strict) as rt:
            ref = await rt.spawn(BadRestart(), name="bad")
            await crash(ref)
            with anyio.fail_after(5):
                await anyio.sleep_forever()
    assert starts == [0, 1, 2]
    assert isinstance(info.value.cause, ActorStartFailed)
    assert str(info.value.cause.cause) == "cannot restart (2)"


# -- what callers and children see ---------------------------------------------------------


async def test_crash_during_a_nested_ask_reaches_the_asking_actor() -> None:
    class Asker(Actor):
        async def handle(self, message: Any, ctx: Context) -> Any:
            try:
                await ctx.runtime.lookup("/sup/b").ask("crash")
            except ActorCrashed as exc:
                return exc
            return None

    async with Runtime(supervision=NO_BACKOFF) as rt:
        await rt.spawn(Sup([], ["b"]), name="sup", supervision=NO_BACKOFF)
        asker = await rt.spawn(Asker(), name="asker")
        error = await asker.ask("go")
        assert isinstance(error, ActorCrashed)
        assert error.path == "/sup/b"
        assert isinstance(error.cause, Crash)
        assert error.__cause__ is error.cause
        assert "crashed handling str" in str(error)
        assert asker.statistics().restarts == 0  # the asker handled it; only b restarted
        assert await rt.lookup("/sup/b").ask("ping") == "ping"


async def test_children_of_a_restarted_actor_are_stopped_and_respawned() -> None:
    log: list[str] = []
    async with Runtime(supervision=NO_BACKOFF) as rt:
        parent = await rt.spawn(Sup(log, ["c1", "c2"], name="p"), name="p")
        old = [rt.lookup("/p/c1"), rt.lookup("/p/c2")]
        del log[:]
        await crash(parent)
        assert await parent.ask("ping") == "ping"
        assert log == ["stop c2", "stop c1", "stop p", "start p", "start c1", "start c2"]
        assert not any(ref.alive for ref in old)
        new = [rt.lookup("/p/c1"), rt.lookup("/p/c2")]
        assert new != old
        assert [await ref.ask("hi") for ref in new] == ["hi", "hi"]
        assert [ref.statistics().restarts for ref in new] == [0, 0]
