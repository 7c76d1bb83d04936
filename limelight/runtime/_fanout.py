"""Fan-out: a few calls at once, the first in the calling task, the others in tasks of their own.

What an anyio task group does for a turn's parallel tool calls, without its per-task price:
since anyio 4.14 every task a task group starts gets a ``TaskHandle`` (a cancel scope with two
sets, an ``Event`` with its deque, a wrapper coroutine, a done callback), about 2 KB and a
dozen objects the garbage collector tracks, alive as long as the call runs; on top of the
group's own cancel scope and task set. In ``bench/agents.py`` (10,000 agents, two parallel
tool calls a turn) those were the largest item at the run's memory peak. Here, on asyncio,
each extra call is a bare task of the loop's with one done callback, put under the caller's
cancel scope as a task group's tasks are (anyio's own task state): every call sees the
caller's deadline and shields, and the scope's cancellation reaches each. On trio, a nursery
of trio's own. The structured-concurrency promise is the task group's: when :func:`fan_out`
returns or raises, every call has ended; if the caller is cancelled (or its first call
raises), the other calls are cancelled and waited for; the calls' errors reach the caller in
a ``BaseExceptionGroup``, as a task group's do (an error beats a cancellation). One
difference: a failed call cancels its sibling tasks, but not the first call, which runs in
the caller's own task (its callers' calls report their failures as results and never raise).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from anyio import CancelScope, current_effective_deadline

from ._clock import running_trio

if TYPE_CHECKING:
    import asyncio
    from asyncio import Task

__all__ = ["fan_out", "start_rest_in"]


def fan_out(
    fn: Callable[..., Coroutine[Any, Any, None]], calls: Sequence[tuple[Any, ...]]
) -> Coroutine[Any, Any, None]:
    """Run ``fn(*args)`` for every ``args`` of ``calls`` at once; return when all have ended:
    ``await fan_out(fn, calls)``.

    The first runs in the calling task (which would otherwise only wait). ``fn`` reports its
    outcome itself (its return value is dropped): an exception it raises ends the fan-out.
    A plain function returning what to await (on asyncio, the fan-out's own coroutine): no
    frame of its own stays alive while the calls run.
    """
    if not calls:
        return _nothing()
    if len(calls) == 1:
        return fn(*calls[0])
    trio = running_trio()
    if trio is not None:
        return _in_nursery(trio, fn, calls)
    anyio_states = _anyio_task_states()
    if anyio_states is None:  # pragma: no cover - another anyio's internals
        return _in_task_group(fn, calls)
    return _Fan(fn, calls).run(*anyio_states)


async def _nothing() -> None:
    pass


async def _in_nursery(
    trio: Any, fn: Callable[..., Coroutine[Any, Any, None]], calls: Sequence[tuple[Any, ...]]
) -> None:
    async with trio.open_nursery() as nursery:
        await start_rest_in(nursery, fn, calls)


async def _in_task_group(  # pragma: no cover - another anyio's internals
    fn: Callable[..., Coroutine[Any, Any, None]], calls: Sequence[tuple[Any, ...]]
) -> None:
    from anyio import create_task_group

    async with create_task_group() as group:
        await start_rest_in(group, fn, calls)


def start_rest_in(
    spawner: Any, fn: Callable[..., Coroutine[Any, Any, None]], calls: Sequence[tuple[Any, ...]]
) -> Coroutine[Any, Any, None]:
    """Start ``fn(*args)`` for every ``args`` of ``calls`` but the first in ``spawner`` (a trio
    nursery or an anyio task group: its ``start_soon``), and return the first call's coroutine,
    for the caller to await in its own task. A plain function: no frame of its own stays alive
    while the calls run."""
    for args in calls[1:]:
        spawner.start_soon(fn, *args)
    return fn(*calls[0])


@functools.cache
def _anyio_task_states() -> tuple[Any, Any] | None:
    """anyio's asyncio table of task states and the class of its entries, or ``None`` where
    this anyio has neither (then :func:`fan_out` uses an anyio task group on asyncio).

    A task spawned by an anyio task group gets a state whose cancel scope is the group's:
    that is how ``current_effective_deadline()`` in the task sees its spawner's deadlines (and
    shields), and how the scope's cancellation reaches the task. :class:`_Fan` gives each of
    its bare tasks the same state, the caller's scope at the fan-out, and takes it off when
    the task ends, as the task group does."""
    try:
        from anyio._backends._asyncio import TaskState, _task_states
    except ImportError:  # pragma: no cover - another anyio's internals
        return None
    fields = getattr(TaskState, "__slots__", ())
    if "cancel_scope" not in fields or "parent_id" not in fields:  # pragma: no cover
        return None
    return _task_states, TaskState


class _Fan:
    """One asyncio fan-out: its tasks, and the signal of the caller waiting for them."""

    __slots__ = ("_calls", "_fn", "_left", "_states", "_tasks", "_waiter")

    def __init__(
        self, fn: Callable[..., Coroutine[Any, Any, None]], calls: Sequence[tuple[Any, ...]]
    ):
        self._fn = fn
        self._calls = calls
        self._tasks: list[Task[None]] = []
        self._left = 0
        #: What the caller waits on for the tasks to end: a bare future of the loop's (this
        #: is asyncio's fan-out), set by the last task's done callback.
        self._waiter: asyncio.Future[None] | None = None
        self._states: Any = None

    def _ended(self, task: Task[None]) -> None:
        self._left -= 1
        states = self._states
        if states is not None:
            state = states.pop(task, None)
            if state is not None and state.cancel_scope is not None:
                state.cancel_scope._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            for other in self._tasks:
                other.cancel()  # a failed call ends its siblings, as in a task group
        waiter = self._waiter
        if not self._left and waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    #: The fan-out is its tasks' done callback itself: a bound method would be one more object
    #: alive (and tracked by the collector) for as long as each task runs.
    __call__ = _ended

    def _all_ended(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """What to await until every task has ended: a future of the loop's, which the last
        task's done callback sets (done already when none is left). A plain method: no
        coroutine of its own stays alive while the tasks run."""
        waiter = self._waiter = loop.create_future()
        if not self._left:
            waiter.set_result(None)
        return waiter

    async def run(self, states: Any, state_of: Any) -> None:
        import asyncio

        fn, calls = self._fn, self._calls
        loop = asyncio.get_running_loop()  # (not its bound create_task: kept alive here)
        tasks = self._tasks
        host = asyncio.current_task()
        caller = states.get(host)
        scope = None if caller is None else caller.cancel_scope
        if scope is not None:
            self._states = states
        for args in calls[1:]:
            task = loop.create_task(fn(*args))
            if scope is not None:
                # The caller's cancel scope is the task's, as in an anyio task group.
                states[task] = state_of(id(host), scope)
                scope._tasks.add(task)
            task.add_done_callback(self)
            tasks.append(task)
        self._left = len(tasks)
        try:
            await fn(*calls[0])
            await self._all_ended(loop)
        except BaseException as exc:
            # While the caller's scope is cancelled, anyio delivers that to the tasks it
            # holds, ours among them, honouring the shields they are in; a task's own
            # cancel() would not. Otherwise (a call raised, or the caller's task was
            # cancelled natively), they are cancelled here.
            if scope is None or current_effective_deadline() != -math.inf:
                for task in tasks:
                    task.cancel()
            with CancelScope(shield=True):
                await self._all_ended(loop)
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
