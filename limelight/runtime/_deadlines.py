"""The runtime's deadline scheduler: one task that times a runtime's timed asks (and scopes).

A timed ask waits on its reply signal alone and registers its deadline here, in a heap. One
task per runtime sleeps until the earliest pending deadline (woken early when an earlier one
comes) and expires the asks whose deadline has passed: each is abandoned (the actor drops it
unhandled, or its handler is cancelled) and its asker woken, to raise ``AskTimeout``. A cancel
scope per ask (anyio's ``move_on_at`` around the wait) cost more than the rest of the round
trip on asyncio (``bench/kernel.py``).

An ask answered in time cancels its timer in place (lazy deletion, as asyncio's own timer heap
does); the heap is compacted when cancelled entries outnumber live ones. When the scheduler
stops (the runtime is torn down, or cancelled from outside), each asker still waiting is woken
with its request pending, and goes on waiting under a cancel scope of its own.

On asyncio, a cancel scope with a deadline (a tool batch's, whose calls share the tool timeout)
can be timed here too (:func:`time_scope`): anyio arms a loop timer per such scope (a
``TimerHandle`` with a bound method and a copy of the context, kept in the loop's heap, whose
entries compare in Python, until a later pass drops it), alive and tracked by the collector for
as long as the calls run. Here it is one heap entry. The scope's deadline is still its own, as
``current_effective_deadline()`` reads it (a nested ask in a tool inherits it); when the
deadline passes, the scope is cancelled, as anyio's timer would. Should the scheduler stop
first, anyio's own timer takes the scope over.
"""

from __future__ import annotations

import functools
import math
from heapq import heappop, heappush
from typing import TYPE_CHECKING, Any, TypeAlias

from anyio import TASK_STATUS_IGNORED, current_time, move_on_at

from ._clock import asyncio_cancel_scope, running_asyncio_loop
from ._envelopes import Ask
from ._signal import Signal, new_signal
from ._timers import one_more_cancelled, pop_due

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

__all__ = ["Deadlines", "Timer", "time_scope"]

_INF = math.inf

#: A heap entry: ``[deadline, sequence number, ask or cancel scope]``, the third ``None`` once
#: the timer is cancelled or fired. (A list, not an object: it is made for every timed ask. The
#: sequence number breaks ties, so that asks are never compared.)
Timer: TypeAlias = list[Any]


class Deadlines:
    """The pending deadlines of one runtime's timed asks, and the task that enforces them.

    :meth:`run` is that task; it lives in the runtime's task group. :meth:`add` refuses (returns
    ``None``) while it is not running, and the asker then times itself with a cancel scope.
    """

    __slots__ = ("_cancelled", "_heap", "_running", "_seq", "_sleep_until", "_wake")

    def __init__(self) -> None:
        self._heap: list[Timer] = []
        self._cancelled = 0  # entries of _heap whose ask is None
        self._seq = 0
        self._running = False
        #: The deadline the task sleeps until; -inf while it is awake (or not running), so
        #: that an add wakes it at most once.
        self._sleep_until = -_INF
        self._wake: Signal | None = None

    def __len__(self) -> int:
        """How many timers are pending (neither cancelled nor fired)."""
        return len(self._heap) - self._cancelled

    @property
    def running(self) -> bool:
        return self._running

    def add(self, deadline: float, item: Any) -> Timer | None:
        """Expire ``item`` at ``deadline`` unless the timer is cancelled first (an :class:`Ask`
        is expired, a cancel scope cancelled); ``None`` when the scheduler is not running (then
        nothing was registered)."""
        if not self._running:
            return None
        self._seq += 1
        timer = [deadline, self._seq, item]
        heappush(self._heap, timer)
        if deadline < self._sleep_until:
            self._sleep_until = -_INF
            wake = self._wake
            if wake is not None:
                wake.set()
        return timer

    def cancel(self, timer: Timer) -> None:
        """Forget ``timer`` (its ask got an answer, or its asker left); idempotent."""
        if timer[2] is None:
            return
        timer[2] = None
        heap = self._heap
        if heap[0] is timer:  # the usual case for a lone asker: no garbage left behind
            heappop(heap)
            return
        self._cancelled = one_more_cancelled(heap, self._cancelled)

    async def run(self, *, task_status: TaskStatus[None] = TASK_STATUS_IGNORED) -> None:
        """Expire asks as their deadlines pass, until cancelled (with the runtime's task group)."""
        heap = self._heap
        self._running = True
        try:
            task_status.started()
            while True:
                due, dropped = pop_due(heap, current_time())
                self._cancelled -= dropped
                for timer in due:
                    item, timer[2] = timer[2], None
                    if isinstance(item, Ask):
                        item.expire()
                    else:
                        item.cancel()
                wake = self._wake = new_signal()
                until = self._sleep_until = heap[0][0] if heap else _INF
                # One cancel scope per wake-up of this task, not per ask.
                with move_on_at(until):
                    await wake.wait()
                self._wake = None
                self._sleep_until = -_INF
        finally:
            self._running = False
            self._wake = None
            self._sleep_until = -_INF
            orphans = []
            for timer in heap:
                if timer[2] is not None:
                    orphans.append((timer[0], timer[2]))
                    timer[2] = None
            heap.clear()
            self._cancelled = 0
            for deadline, item in orphans:
                if isinstance(item, Ask):
                    item.orphan()
                else:
                    item.deadline = deadline  # anyio's own timer, from now on


def time_scope(deadlines: Deadlines | None, scope: Any, deadline: float) -> Timer | None:
    """Give ``scope``, entered just now and without a deadline, ``deadline``: timed by
    ``deadlines`` when it is an anyio scope on asyncio (see the module's documentation; the
    timer is returned, to cancel when the scope is left), else by the scope itself (``None``).
    """
    if deadline == _INF:
        return None
    if (
        deadlines is not None
        and running_asyncio_loop() is not None
        and type(scope) is _plain_deadline_scope()
    ):
        timer = deadlines.add(deadline, scope)
        if timer is not None:
            # What the scope's deadline setter stores, without arming anyio's timer.
            anyio_scope: Any = scope
            anyio_scope._deadline = deadline
            return timer
    scope.deadline = deadline
    return None


@functools.cache
def _plain_deadline_scope() -> Any:
    """anyio's asyncio cancel scope class, when its deadline is the ``_deadline`` slot that
    ``current_effective_deadline()`` reads and its timer ``_timeout_handle`` (so that storing
    the deadline arms nothing); ``None`` for another anyio (then anyio times every scope)."""
    cls = asyncio_cancel_scope()
    slots = getattr(cls, "__slots__", ())
    return cls if "_deadline" in slots and "_timeout_handle" in slots else None
