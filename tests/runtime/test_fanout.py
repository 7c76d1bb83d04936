"""fan_out: calls at once, the first in the calling task, the others in tasks of their own;
every call has ended when it returns or raises, on asyncio and trio."""

from __future__ import annotations

import anyio
import pytest

from limelight.runtime import fan_out

pytestmark = pytest.mark.anyio


async def test_runs_every_call_at_once_the_first_in_the_callers_task() -> None:
    caller = anyio.get_current_task().id
    ran: dict[int, int] = {}
    started = 0
    all_started = anyio.Event()

    async def call(i: int) -> None:
        nonlocal started
        started += 1
        if started == 3:
            all_started.set()
        await all_started.wait()  # only returns if all three run at once
        ran[i] = anyio.get_current_task().id

    with anyio.fail_after(5):
        await fan_out(call, [(0,), (1,), (2,)])
    assert sorted(ran) == [0, 1, 2]
    assert ran[0] == caller
    assert len({caller, ran[1], ran[2]}) == 3  # three tasks


async def test_one_call_or_none() -> None:
    seen: list[int] = []

    async def call(i: int) -> None:
        seen.append(i)

    await fan_out(call, [])
    await fan_out(call, [(7,)])
    assert seen == [7]


async def test_cancelling_the_caller_cancels_and_waits_for_the_others() -> None:
    ended: list[str] = []
    entered = 0
    both_in = anyio.Event()

    async def call(name: str) -> None:
        nonlocal entered
        entered += 1
        if entered == 2:
            both_in.set()
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.01)  # its end takes a while: fan_out must wait for it
            ended.append(name)

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_when_in() -> None:
                await both_in.wait()
                scope.cancel()

            tg.start_soon(cancel_when_in)
            await fan_out(call, [("first",), ("other",)])
    assert scope.cancelled_caught
    assert sorted(ended) == ["first", "other"]  # the other call ended before fan_out did


async def test_a_calls_error_reaches_the_caller_in_a_group_and_ends_its_siblings() -> None:
    ended: list[str] = []

    class Boom(BaseException):
        pass

    async def call(name: str) -> None:
        try:
            if name == "fails":
                await anyio.sleep(0.01)
                raise Boom(name)
            if name == "sibling":
                await anyio.sleep_forever()
            await anyio.sleep(0.05)  # the first call, in the caller's task, runs to its end
        finally:
            ended.append(name)

    with anyio.fail_after(5), pytest.raises(BaseExceptionGroup) as caught:
        await fan_out(call, [("first",), ("fails",), ("sibling",)])
    assert [type(e) for e in caught.value.exceptions] == [Boom]
    assert sorted(ended) == ["fails", "first", "sibling"]


async def test_the_first_calls_error_cancels_the_others() -> None:
    started: list[str] = []
    ended: list[str] = []

    async def call(name: str) -> None:
        started.append(name)
        try:
            if name == "first":
                await anyio.sleep(0.01)  # the others are running by now
                raise ValueError("bad first call")
            await anyio.sleep_forever()
        finally:
            ended.append(name)

    with anyio.fail_after(5), pytest.raises(BaseExceptionGroup) as caught:
        await fan_out(call, [("first",), ("second",), ("third",)])
    errors = caught.value.exceptions
    assert [type(e) for e in errors] == [ValueError]
    assert sorted(started) == ["first", "second", "third"]
    assert sorted(ended) == sorted(started)


async def test_the_others_see_the_callers_context_variables() -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[str] = []

    async def call(i: int) -> None:
        seen.append(var.get())

    token = var.set("caller's")
    try:
        await fan_out(call, [(0,), (1,)])
    finally:
        var.reset(token)
    assert seen == ["caller's", "caller's"]


async def test_every_call_sees_the_callers_deadline_and_its_cancellation() -> None:
    """The other calls run under the caller's cancel scope, as a task group's tasks do: a
    nested ask or retry in any of them reads the same deadline, and the scope's expiry ends
    all of them."""
    deadlines: dict[int, float] = {}
    ended: list[int] = []

    async def call(i: int) -> None:
        deadlines[i] = anyio.current_effective_deadline()
        try:
            await anyio.sleep_forever()
        finally:
            ended.append(i)

    with anyio.move_on_after(0.2) as scope:
        await fan_out(call, [(0,), (1,), (2,)])
    assert scope.cancelled_caught
    assert deadlines == {0: scope.deadline, 1: scope.deadline, 2: scope.deadline}
    assert sorted(ended) == [0, 1, 2]


async def test_a_shield_in_a_call_holds_against_the_callers_deadline() -> None:
    finished: list[int] = []

    async def call(i: int) -> None:
        with anyio.CancelScope(shield=True):
            assert anyio.current_effective_deadline() == float("inf")
            await anyio.sleep(0.2)  # past the caller's deadline
            finished.append(i)
        await anyio.sleep_forever()

    with anyio.move_on_after(0.05) as scope:
        await fan_out(call, [(0,), (1,)])
    assert scope.cancelled_caught
    assert sorted(finished) == [0, 1]
