"""Sleeps on trio without a cancel scope each: one timer task per trio run.

``trio.sleep`` opens a cancel scope with the deadline and waits until trio cancels it: a
scope and its status (with two sets) alive across the wait, then a ``Cancelled`` raised
through the waiting frames, with its reason, outcome and tracebacks. Where a runtime waits
on a clock by itself (the ``Scripted`` provider's reply delay), many such waits at once keep
all of that alive and feed the cyclic collector. :func:`sleep_until` parks the task instead
(``wait_task_rescheduled``) with its deadline in a heap; one system task per trio run sleeps
until the earliest deadline (under one scope, moved earlier when an earlier deadline comes)
and reschedules the tasks whose deadline has passed. A cancelled sleeper leaves its heap
entry behind (lazy deletion, as asyncio's timer heap does), compacted when such entries
outnumber live ones. asyncio needs none of this: ``loop.call_later`` is its timer.
"""

from __future__ import annotations

import math
from heapq import heapify, heappop, heappush
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

__all__ = ["one_more_cancelled", "pop_due", "sleep_until", "wake_with_error"]

_INF = math.inf
#: Below this many cancelled entries the heap is never compacted (not worth a pass).
_COMPACT_MIN: Final = 64


def pop_due(heap: list[Any], now: float) -> tuple[list[Any], int]:
    """Pop what is due by ``now`` from a timer heap with lazy deletion (entries ``[deadline,
    sequence number, item or None, ...]``, ``None`` once cancelled): the due entries, their
    items still in place, and how many cancelled entries were dropped on the way."""
    due = []
    dropped = 0
    while heap:
        entry = heap[0]
        if entry[2] is None:
            heappop(heap)
            dropped += 1
        elif entry[0] <= now:
            due.append(heappop(heap))
        else:
            break
    return due, dropped


def one_more_cancelled(heap: list[Any], cancelled: int) -> int:
    """The count of cancelled entries (``None`` third) in a timer heap with lazy deletion, after
    one more: the heap is compacted, and the count back to 0, once they outnumber the live ones
    (and are over ``_COMPACT_MIN``)."""
    cancelled += 1
    if cancelled > _COMPACT_MIN and 2 * cancelled > len(heap):
        heap[:] = [entry for entry in heap if entry[2] is not None]
        heapify(heap)
        return 0
    return cancelled


class _Timer(list[Any]):
    """A heap entry, ``[deadline, sequence number, task or None, timers, waiting set or
    None]``: a list, so that the heap compares entries in C (the sequence number breaks ties).
    Its bound :meth:`abort` is the one object a sleep adds for trio's cancellation."""

    __slots__ = ()
    __hash__ = object.__hash__  # type: ignore[assignment]  # held in sets by identity

    def abort(self, raise_cancel: Any) -> Any:
        """The sleeper is cancelled: forget it (trio raises ``Cancelled`` in it)."""
        import trio

        if self[2] is not None:
            self[2] = None
            self[3].forgotten()
            if self[4] is not None:
                self[4].discard(self)
        return trio.lowlevel.Abort.SUCCEEDED


class _Timers:
    """The pending sleeps of one trio run and the system task that ends them."""

    __slots__ = ("cancelled", "heap", "scope", "seq", "wake_at")

    def __init__(self) -> None:
        self.heap: list[_Timer] = []
        self.seq = 0
        self.cancelled = 0  # entries of heap whose task is None
        #: The scope the timer task sleeps under, and its deadline (-inf while it is awake).
        self.scope: Any = None
        self.wake_at = -_INF

    def forgotten(self) -> None:
        self.cancelled = one_more_cancelled(self.heap, self.cancelled)

    async def run(self) -> None:
        import trio

        heap = self.heap
        reschedule = trio.lowlevel.reschedule
        try:
            while True:
                due, dropped = pop_due(heap, trio.current_time())
                self.cancelled -= dropped
                for entry in due:
                    task, entry[2] = entry[2], None
                    if entry[4] is not None:
                        entry[4].discard(entry)
                    reschedule(task)
                until = self.wake_at = heap[0][0] if heap else _INF
                with trio.CancelScope(deadline=until) as self.scope:
                    await trio.sleep_forever()
                self.wake_at = -_INF
        finally:
            # The run is ending (its main task has returned); a sleeper still parked here
            # would never wake, so it is woken with an error.
            left = [entry for entry in heap if entry[2] is not None]
            heap.clear()
            for entry in left:
                task, entry[2] = entry[2], None
                if entry[4] is not None:
                    entry[4].discard(entry)
                reschedule(task, _error(RuntimeError("the trio run ended during a sleep")))


def _error(exc: BaseException) -> Any:
    import outcome

    return outcome.Error(exc)


_RUN_TIMERS: Any = None


def _timers() -> _Timers:
    """This trio run's timers, their task started on first use."""
    global _RUN_TIMERS
    import trio

    if _RUN_TIMERS is None:
        _RUN_TIMERS = trio.lowlevel.RunVar("limelight_timers")
    timers: _Timers | None = _RUN_TIMERS.get(None)
    if timers is None:
        timers = _Timers()
        _RUN_TIMERS.set(timers)
        trio.lowlevel.spawn_system_task(timers.run, name="limelight timers")
    return timers


def sleep_until(deadline: float, waiting: set[Any] | None = None) -> Awaitable[Any]:
    """Sleep until ``deadline`` on trio's clock, as ``trio.sleep_until`` does (a checkpoint;
    cancellable), without a cancel scope of its own. ``waiting``, when given, holds the
    sleep while it lasts, for :func:`wake_with_error`. (A plain function that returns trio's
    own wait: no coroutine of ours stays alive while it sleeps.)"""
    import trio

    if deadline <= trio.current_time():
        # Passed already (a zero delay, say): a checkpoint, as trio.sleep_until makes it,
        # without a round trip through the timer task.
        passed: Awaitable[Any] = trio.lowlevel.checkpoint()  # noqa: ASYNC105
        return passed
    timers = _timers()
    timers.seq += 1
    entry = _Timer((deadline, timers.seq, trio.lowlevel.current_task(), timers, waiting))
    heappush(timers.heap, entry)
    if deadline < timers.wake_at:
        timers.wake_at = deadline
        timers.scope.deadline = deadline
    if waiting is not None:
        waiting.add(entry)
    wait: Awaitable[Any] = trio.lowlevel.wait_task_rescheduled(entry.abort)  # noqa: ASYNC105
    return wait


def wake_with_error(waiting: Iterable[Any], error: Callable[[], BaseException]) -> None:
    """End the sleeps held in ``waiting`` now: each raises an exception ``error()`` makes."""
    import trio

    for entry in list(waiting):
        task = entry[2]
        if task is not None:
            entry[2] = None
            entry[3].forgotten()
            entry[4].discard(entry)
            trio.lowlevel.reschedule(task, _error(error()))
