"""Slots: a free slot is taken without waiting, waiters are served in order, and a waiter
cancelled while (or just after) being handed a slot never loses it."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from limelight.runtime import Slots

pytestmark = pytest.mark.anyio


async def test_free_slots_are_taken_at_once_and_given_back() -> None:
    slots = Slots(2)
    await slots.acquire()
    async with slots:
        assert slots.free == 0
    assert slots.free == 1
    slots.release()
    assert slots.free == 2
    with pytest.raises(RuntimeError, match="without a matching acquire"):
        slots.release()


async def test_waiters_are_served_in_arrival_order() -> None:
    slots = Slots(1)
    order: list[int] = []
    await slots.acquire()
    async with anyio.create_task_group() as tg:
        for i in range(4):

            async def wait(i: int = i) -> None:
                async with slots:
                    order.append(i)
                    await anyio.lowlevel.checkpoint()

            tg.start_soon(wait)
            await anyio.sleep(0.01)  # each is in line before the next arrives
        assert slots.waiting == 4
        slots.release()
    assert order == [0, 1, 2, 3]
    assert slots.free == 1


async def test_a_newcomer_does_not_overtake_a_waiter() -> None:
    slots = Slots(1)
    await slots.acquire()
    got: list[str] = []
    async with anyio.create_task_group() as tg:

        async def waiter() -> None:
            async with slots:
                got.append("waiter")

        tg.start_soon(waiter)
        await anyio.sleep(0.01)
        slots.release()  # handed to the waiter, not freed
        assert slots.free == 0
        async with slots:
            got.append("newcomer")
    assert got == ["waiter", "newcomer"]


async def test_a_cancelled_waiter_leaves_the_line() -> None:
    slots = Slots(1)
    await slots.acquire()
    with anyio.move_on_after(0.05):
        await slots.acquire()
    assert slots.waiting == 0
    slots.release()
    assert slots.free == 1


async def test_a_slot_handed_to_a_cancelled_waiter_is_passed_on() -> None:
    slots = Slots(1)
    await slots.acquire()
    async with anyio.create_task_group() as tg:
        scope = anyio.CancelScope()

        async def doomed() -> None:
            with scope:
                async with slots:  # woken with the slot, or cancelled and passing it on
                    await anyio.sleep_forever()

        tg.start_soon(doomed)
        await anyio.sleep(0.01)
        slots.release()  # handed over ...
        scope.cancel()  # ... and cancelled before it woke up
    assert slots.free == 1
    assert slots.waiting == 0


def test_at_least_one_slot() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Slots(0)


async def test_a_slot_handed_to_a_waiter_already_cancelled_is_passed_on() -> None:
    """The other order: cancelled first, handed the slot before it could wake up (on
    asyncio the wait's future is cancelled by then, so the hand-over must not rely on it)."""
    slots = Slots(1)
    await slots.acquire()
    async with anyio.create_task_group() as tg:
        scope = anyio.CancelScope()

        async def doomed() -> None:
            with scope:
                async with slots:
                    await anyio.sleep_forever()

        tg.start_soon(doomed)
        await anyio.sleep(0.01)
        scope.cancel()
        slots.release()
    assert slots.free == 1
    assert slots.waiting == 0
    async with slots:  # and it can be taken again
        pass


async def test_take_is_acquire_without_waiting() -> None:
    slots = Slots(1)
    assert slots.take()
    assert not slots.take()  # none free
    waiter_in = anyio.Event()

    async def wait_for_one() -> None:
        waiter_in.set()
        await slots.acquire()

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_for_one)
        await waiter_in.wait()
        await anyio.lowlevel.checkpoint()
        assert slots.waiting == 1
        slots.release()  # handed to the waiter, not freed
        assert not slots.take()
    slots.release()
    assert slots.take()  # free again, and nobody waiting
