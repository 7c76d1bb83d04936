"""The Mailbox on its own: FIFO order, waiting senders served in order, a cancelled waiter
passing on the room it was given, close semantics; and a hypothesis model of the queue."""

from __future__ import annotations

import anyio
import pytest
from anyio import ClosedResourceError, EndOfStream, WouldBlock
from hypothesis import given
from hypothesis import strategies as st

from limelight.runtime._mailbox import EMPTY, Mailbox

pytestmark = pytest.mark.anyio


async def test_fifo_and_nowait_errors() -> None:
    box = Mailbox(2)
    box.put_nowait(1)
    box.put_nowait(2)
    with pytest.raises(WouldBlock):
        box.put_nowait(3)
    assert [box.get_nowait(), await box.get()] == [1, 2]
    with pytest.raises(WouldBlock):
        box.get_nowait()
    assert box.poll() is EMPTY


async def test_waiting_senders_are_served_in_order() -> None:
    box = Mailbox(1)
    box.put_nowait("first")
    async with anyio.create_task_group() as tg:
        for name in ["a", "b", "c"]:
            tg.start_soon(box.put, name)
            await anyio.wait_all_tasks_blocked()
        got = [await box.get() for _ in range(4)]
    assert got == ["first", "a", "b", "c"]


async def test_a_cancelled_sender_that_was_given_room_passes_it_on() -> None:
    box = Mailbox(1)
    box.put_nowait("full")
    received: list[str] = []
    async with anyio.create_task_group() as tg:
        with anyio.CancelScope() as first:
            tg.start_soon(box.put, "x")  # waits
            await anyio.wait_all_tasks_blocked()
        tg.start_soon(box.put, "b")  # waits behind it
        await anyio.wait_all_tasks_blocked()
        # Room is made for the first waiter, which is cancelled before it can use it: the
        # room must go to "b" (or "x" used it after all), never be lost.
        assert box.get_nowait() == "full"
        first.cancel()
        await anyio.wait_all_tasks_blocked()
        assert len(box) == 1  # the free slot was taken by one of them
        while len(received) < 2 and received != ["b"]:
            received.append(await box.get())
    # The task group ended: no sender is left waiting.
    assert received in (["b"], ["x", "b"])


async def test_cancelled_waiting_sender_leaves_the_queue() -> None:
    box = Mailbox(1)
    box.put_nowait("full")
    with anyio.move_on_after(0.01):
        await box.put("never")
    assert box.get_nowait() == "full"
    assert box.poll() is EMPTY  # the cancelled put left nothing behind


async def test_close_wakes_everyone_and_drains() -> None:
    box = Mailbox(1)
    box.put_nowait("left")
    errors: list[type[BaseException]] = []

    async def blocked_put() -> None:
        try:
            await box.put("late")
        except ClosedResourceError as exc:
            errors.append(type(exc))

    async with anyio.create_task_group() as tg:
        tg.start_soon(blocked_put)
        await anyio.wait_all_tasks_blocked()
        box.close()
    assert errors == [ClosedResourceError]
    with pytest.raises(ClosedResourceError):
        box.put_nowait("after close")
    assert await box.get() == "left"  # what was queued can still be drained
    with pytest.raises(EndOfStream):
        await box.get()


async def test_close_wakes_a_waiting_receiver() -> None:
    box = Mailbox(4)
    outcome: list[str] = []

    async def receive() -> None:
        try:
            await box.get()
        except EndOfStream:
            outcome.append("end")

    async with anyio.create_task_group() as tg:
        tg.start_soon(receive)
        await anyio.wait_all_tasks_blocked()
        box.close()
    assert outcome == ["end"]


@given(st.lists(st.one_of(st.integers(), st.just(None)), max_size=60), st.integers(1, 8))
def test_matches_a_bounded_queue_model(ops: list[int | None], capacity: int) -> None:
    """``int``: put_nowait that value; ``None``: get_nowait. Compared with a plain list."""
    box = Mailbox(capacity)
    model: list[int] = []
    for op in ops:
        if op is None:
            if model:
                assert box.get_nowait() == model.pop(0)
            else:
                with pytest.raises(WouldBlock):
                    box.get_nowait()
        elif len(model) < capacity:
            box.put_nowait(op)
            model.append(op)
        else:
            with pytest.raises(WouldBlock):
                box.put_nowait(op)
        assert len(box) == len(model)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_woken_sender_cancelled_natively_passes_the_room_on() -> None:
    """asyncio's Task.cancel() still throws into a task whose wait has completed (anyio's
    scopes do not): the room that task was given must go to the next waiting sender."""
    import asyncio

    box = Mailbox(1)
    box.put_nowait("full")
    first = asyncio.get_running_loop().create_task(box.put("x"))
    await anyio.wait_all_tasks_blocked()
    second = asyncio.get_running_loop().create_task(box.put("b"))
    await anyio.wait_all_tasks_blocked()
    assert box.get_nowait() == "full"  # wakes "x"...
    first.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    with anyio.fail_after(5):
        await second  # the room went to "b"
    assert box.get_nowait() == "b"
