"""The trio timers (``limelight.runtime._timers``): sleeps without a cancel scope each.

trio only: on asyncio the loop's own timer (``call_later``) is what the runtime uses, and this
module is never called there. Virtual time (a MockClock that jumps ahead whenever every task
waits), so wake-up times are exact.
"""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from limelight.providers import Scripted
from limelight.runtime import _timers as timers_module
from limelight.runtime._timers import _timers, sleep_until, wake_with_error
from limelight.schemas import CompletionRequest, Message

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> object:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


async def test_sleepers_wake_at_their_deadlines_in_order() -> None:
    start = trio.current_time()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, delay: float) -> None:
        await sleep_until(start + delay)
        woke.append((name, trio.current_time() - start))

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for name, delay in [("c", 3.0), ("a", 1.0), ("d", 4.0), ("b", 2.0)]:
                nursery.start_soon(sleeper, name, delay)
    assert woke == [("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)]
    assert len(_timers().heap) == 0


async def test_an_earlier_deadline_wakes_the_timer_task_sooner() -> None:
    start = trio.current_time()
    woke: dict[str, float] = {}

    async def sleeper(name: str, delay: float) -> None:
        await sleep_until(start + delay)
        woke[name] = trio.current_time() - start

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sleeper, "late", 100.0)
        await trio.sleep(1.0)  # the timer task now sleeps until the late deadline
        assert _timers().wake_at == start + 100.0
        nursery.start_soon(sleeper, "early", 2.0)
    assert woke == {"early": 2.0, "late": 100.0}


async def test_a_deadline_already_passed_is_a_checkpoint() -> None:
    start = trio.current_time()
    await sleep_until(start - 5.0)
    await sleep_until(start)
    assert trio.current_time() == start
    # No round trip through the timer task: it was not even started in this run.
    run_timers = timers_module._RUN_TIMERS
    assert run_timers is None or run_timers.get(None) is None
    with trio.CancelScope() as scope:
        scope.cancel()
        await sleep_until(start)  # still a cancellation point
        pytest.fail("not cancelled")


async def test_a_cancelled_sleeper_raises_and_its_entry_is_forgotten() -> None:
    start = trio.current_time()
    timers = _timers()
    with trio.move_on_after(1.0) as scope:
        await sleep_until(start + 50.0)
    assert scope.cancelled_caught
    assert trio.current_time() == start + 1.0
    assert [entry[2] for entry in timers.heap] == [None]  # left behind, not a task
    assert timers.cancelled == 1


async def test_cancelled_entries_are_compacted() -> None:
    timers = _timers()
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        # One sleeper that stays, and 200 that are cancelled while they sleep.
        nursery.start_soon(sleep_until, start + 1000.0)
        for _ in range(200):
            with trio.move_on_after(0.5):
                await sleep_until(start + 500.0)
        # Compacted whenever cancelled entries outnumbered live ones (and passed 64).
        assert len(timers.heap) - timers.cancelled == 1
        assert timers.cancelled <= 64
        nursery.cancel_scope.cancel()
    assert all(entry[2] is None for entry in timers.heap)


async def test_wake_with_error_ends_the_sleeps_held_in_a_set() -> None:
    held: set[object] = set()
    start = trio.current_time()
    errors: list[BaseException] = []
    other_woke: list[float] = []

    async def held_sleeper() -> None:
        try:
            await sleep_until(start + 100.0, held)
        except ConnectionError as exc:
            errors.append(exc)

    async def other() -> None:
        await sleep_until(start + 10.0)
        other_woke.append(trio.current_time() - start)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(held_sleeper)
        nursery.start_soon(held_sleeper)
        nursery.start_soon(other)
        await trio.sleep(1.0)
        assert len(held) == 2
        wake_with_error(held, lambda: ConnectionError("closed"))
        assert held == set()
    assert len(errors) == 2
    assert errors[0] is not errors[1]  # an exception each
    assert other_woke == [10.0]  # a sleep not held in the set goes on
    assert trio.current_time() == start + 10.0


async def test_each_trio_run_has_its_own_timers() -> None:
    timers = _timers()
    assert _timers() is timers

    def second_run() -> object:
        async def main() -> object:
            await sleep_until(trio.current_time() + 1.0)
            return _timers()

        return trio.run(main, clock=MockClock(autojump_threshold=0))

    other = await trio.to_thread.run_sync(second_run)
    assert other is not timers


async def test_scripted_waits_on_the_timers_without_a_cancel_scope() -> None:
    provider = Scripted(["hello"], delay=2.0)
    request = CompletionRequest(model="scripted", messages=[Message.user("hi")])
    start = trio.current_time()
    async with trio.open_nursery() as nursery:

        async def call() -> None:
            result = await provider.complete(request)
            assert result.content == "hello"

        nursery.start_soon(call)
        await trio.sleep(1.0)
        # The call's wait is a timer entry, held where aclose() can end it.
        assert len(provider._trio_sleeping) == 1
        assert len(_timers().heap) == 1
    assert trio.current_time() == start + 2.0
    assert provider._trio_sleeping == set()
