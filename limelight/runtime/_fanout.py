"""Fan-out: a few calls at once, the first in the calling task, the others in tasks of their own.

What an anyio task group does for a turn's parallel tool calls, without its per-task price:
since anyio 4.14 every task a task group starts gets a ``TaskHandle`` (a cancel scope with two
sets, an ``Event`` with its deque, a wrapper coroutine, a done callback), about 2 KB and a
dozen objects the garbage collector tracks, alive as long as the call runs; on top of the
group's own cancel scope and task set. In ``bench/agents.py`` (10,000 agents, two parallel
tool calls a turn) those were the largest item at the run's memory peak. Here, on asyncio,
each extra call is a bare task of the loop's with one done callback; on trio, a nursery of
trio's own. The structured-concurrency promise is the task group's: when :func:`fan_out`
returns or raises, every call has ended; if the caller is cancelled (or its first call
raises), the other calls are cancelled and waited for; the calls' errors reach the caller in
a ``BaseExceptionGroup``, as a task group's do (an error beats a cancellation). One
difference: a failed call cancels its sibling tasks, but not the first call, which runs in
the caller's own task (its callers' calls report their failures as results and never raise).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from anyio import CancelScope

from ._signal import Signal, new_signal

if TYPE_CHECKING:
    from asyncio import Task

__all__ = ["fan_out"]


async def fan_out(
    fn: Callable[..., Coroutine[Any, Any, None]], calls: Sequence[tuple[Any, ...]]
) -> None:
    """Run ``fn(*args)`` for every ``args`` of ``calls`` at once; return when all have ended.

    The first runs in the calling task (which would otherwise only wait). ``fn`` reports its
    outcome itself (its return value is dropped): an exception it raises ends the fan-out.
    """
    if not calls:
        return
    if len(calls) == 1:
        await fn(*calls[0])
        return
    trio = sys.modules.get("trio")
    if trio is not None and trio.lowlevel.in_trio_run():
        async with trio.open_nursery() as nursery:
            for args in calls[1:]:
                nursery.start_soon(fn, *args)
            await fn(*calls[0])
        return
    await _Fan(fn, calls).run()


class _Fan:
    """One asyncio fan-out: its tasks, and the signal of the caller waiting for them."""

    __slots__ = ("_calls", "_fn", "_left", "_tasks", "_waiter")

    def __init__(
        self, fn: Callable[..., Coroutine[Any, Any, None]], calls: Sequence[tuple[Any, ...]]
    ):
        self._fn = fn
        self._calls = calls
        self._tasks: list[Task[None]] = []
        self._left = 0
        self._waiter: Signal | None = None

    def _ended(self, task: Task[None]) -> None:
        self._left -= 1
        if not task.cancelled() and task.exception() is not None:
            for other in self._tasks:
                other.cancel()  # a failed call ends its siblings, as in a task group
        waiter = self._waiter
        if not self._left and waiter is not None:
            self._waiter = None
            waiter.set()

    async def _wait(self) -> None:
        while self._left:
            waiter = self._waiter = new_signal()
            await waiter.wait()

    async def run(self) -> None:
        import asyncio

        fn, calls = self._fn, self._calls
        create = asyncio.get_running_loop().create_task
        tasks = self._tasks
        for args in calls[1:]:
            task = create(fn(*args))
            task.add_done_callback(self._ended)
            tasks.append(task)
        self._left = len(tasks)
        try:
            await fn(*calls[0])
            await self._wait()
        except BaseException as exc:
            for task in tasks:
                task.cancel()
            with CancelScope(shield=True):
                await self._wait()
            errors = self._errors()
            if errors or isinstance(exc, Exception):
                raise BaseExceptionGroup(
                    "errors in fan_out", [exc, *errors] if isinstance(exc, Exception) else errors
                ) from None
            raise
        errors = self._errors()
        if errors:
            raise BaseExceptionGroup("errors in fan_out", errors)

    def _errors(self) -> list[BaseException]:
        """What the tasks ended with, cancellations aside (each is retrieved, so that asyncio
        does not report it as never retrieved)."""
        errors: list[BaseException] = []
        for task in self._tasks:
            if not task.cancelled():
                error = task.exception()
                if error is not None:
                    errors.append(error)
        return errors
