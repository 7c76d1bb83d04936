"""The tasks the actors run in: one per incarnation, started bare on the event loop.

anyio (>= 4.14) makes a ``TaskHandle`` for every task its task groups start: a cancel scope
with two sets, an ``Event`` (on asyncio an ``asyncio.Event`` and its deque), a wrapper
coroutine and a done callback, about 2 KB a task, a third of what an idle actor cost
(``bench/kernel.py``). An actor's task needs none of it: it never returns a value nor raises
(a crash is a report to its supervisor), and it is cancelled through the cancel scope it
enters itself (:meth:`~._cell.Cell.run`). So a runtime starts them here: on asyncio with the
loop's ``create_task``, keeping each task until it ends (anyio's cancel scopes work in a task
anyio did not start: it gives such a task its state at the first scope entered); on trio in a
nursery of its own, with trio's own scopes. Either way the runtime cancels whatever still runs
when it is torn down, and waits for it. Memory per idle actor, measured: 6.5 KB on asyncio and
6.7 KB on trio through anyio's task group, 3.3 KB and 3.8 KB this way (with the lazy parts of
``_mailbox`` and ``_signal``).
"""

from __future__ import annotations

import contextvars
import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from anyio import CancelScope

from ._signal import Signal, new_signal

if TYPE_CHECKING:
    from asyncio import Task

    from ._cell import Cell

__all__ = ["ActorTasks", "TaskScope", "open_actor_tasks"]


class TaskScope(Protocol):
    """The cancel scope an incarnation runs in (anyio's on asyncio, trio's own on trio)."""

    def cancel(self) -> None: ...

    def __enter__(self) -> object: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...


class ActorTasks(Protocol):
    def scope(self) -> TaskScope:
        """A cancel scope for an incarnation to run in."""

    def start(self, cell: Cell, initial: bool) -> None:
        """Run ``cell.run(initial)`` in a task of its own (from the next loop iteration)."""

    def cancel(self) -> None:
        """Cancel every actor task, those started from now on included."""

    async def aclose(self) -> None:
        """Cancel every actor task and wait until all have ended."""


async def open_actor_tasks() -> ActorTasks:
    """The actor tasks of a runtime entered in the calling task (which must close them)."""
    trio = sys.modules.get("trio")
    if trio is not None and trio.lowlevel.in_trio_run():
        tasks = _TrioTasks()
        await tasks.open()
        return tasks
    return _AsyncioTasks()


class _AsyncioTasks:
    __slots__ = ("_cancelled", "_context", "_create", "_ended", "_error", "_running")

    def __init__(self) -> None:
        import asyncio

        self._create = asyncio.get_running_loop().create_task
        #: The running tasks and their cells. (asyncio keeps only weak references to tasks.)
        self._running: dict[Task[None], Cell] = {}
        #: Where the done callbacks run: one context for all, not a copy per task.
        self._context = contextvars.Context()
        self._ended: Signal | None = None
        self._error: BaseException | None = None
        self._cancelled = False

    def scope(self) -> TaskScope:
        return CancelScope()

    def start(self, cell: Cell, initial: bool) -> None:
        task = self._create(cell.run(initial), name=cell.path)
        self._running[task] = cell
        task.add_done_callback(self._done, context=self._context)
        if self._cancelled:
            cell.interrupt()

    def cancel(self) -> None:
        self._cancelled = True
        for cell in list(self._running.values()):
            cell.interrupt()

    def _done(self, task: Task[None]) -> None:
        del self._running[task]
        if not task.cancelled() and self._error is None:
            # Cell.run never raises; whatever did must not pass unseen.
            self._error = task.exception()
        if not self._running and self._ended is not None:
            self._ended.set()

    async def aclose(self) -> None:
        self.cancel()
        with CancelScope(shield=True):
            while self._running:
                ended = self._ended = new_signal()
                await ended.wait()
        if self._error is not None:
            raise self._error


class _TrioTasks:
    __slots__ = ("_manager", "_nursery", "_scope")

    def __init__(self) -> None:
        import trio

        self._manager = trio.open_nursery()
        self._nursery: Any = None
        #: trio's own scope, not anyio's wrapper of it (~100 bytes an actor).
        self._scope = trio.CancelScope

    def scope(self) -> TaskScope:
        scope: TaskScope = self._scope()
        return scope

    async def open(self) -> None:
        self._nursery = await self._manager.__aenter__()

    def start(self, cell: Cell, initial: bool) -> None:
        # The name is the path itself, so that no string is made for it.
        self._nursery.start_soon(cell.run, initial, name=cell.path)

    def cancel(self) -> None:
        self._nursery.cancel_scope.cancel()

    async def aclose(self) -> None:
        scope = self._nursery.cancel_scope
        # Shielded, as the asyncio wait is (and anyio's task groups wait once cancelled): the
        # tasks are waited for even if the runtime's block is cancelled from outside, and the
        # nursery then absorbs its own cancellation rather than handing it on.
        scope.shield = True
        scope.cancel()
        await self._manager.__aexit__(None, None, None)
