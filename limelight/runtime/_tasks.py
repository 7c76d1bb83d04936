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

A *non-resident* actor (``Actor.resident = False``) holds no task while idle: when its message
loop would park, its task ends and its incarnation is left *dormant* here (:meth:`park`): its
mailbox's receiver is a :class:`Waker`, which the first sender sets as it would set the signal
of a parked loop (the senders' fast path is unchanged), and whose ``set()`` starts a task that
goes on with the incarnation (:meth:`resume`, :meth:`~._cell.Cell.resume`), in a fresh cancel
scope. The tasks keep the dormant cells too, so that cancelling the tasks (the runtime's
teardown) ends them as well: each is woken already cancelled, and runs its orderly end. Once
the tasks are cancelled, no incarnation goes dormant any more, so none is left when they are
closed. Measured as ``bench/kernel.py`` measures an idle actor (100,000 of them): 1,061 B an
idle actor on asyncio and 1,067 B on trio, against 3,241 B and 3,730 B resident; a wake costs
~4.6 µs on asyncio and ~8 µs on trio (an ask to an idle actor, 14.4 and 21.4 µs).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import Context, copy_context
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from anyio import CancelScope

from ._clock import running_trio
from ._signal import Signal, new_signal

if TYPE_CHECKING:
    from asyncio import Task

    from ._cell import Cell

__all__ = ["ActorTasks", "TaskScope", "Waker", "open_actor_tasks"]


class TaskScope(Protocol):
    """The cancel scope an incarnation runs in (anyio's on asyncio, trio's own on trio)."""

    def cancel(self) -> None: ...

    @property
    def cancel_called(self) -> bool: ...

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

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called (no incarnation may go dormant from then on)."""

    def start(self, cell: Cell, initial: bool) -> None:
        """Run ``cell.run(initial)`` in a task of its own (from the next loop iteration)."""

    def park(self, cell: Cell) -> None:
        """Leave the incarnation of ``cell``, whose task is ending (it calls this last, outside
        its cancel scope), dormant until its mailbox's :class:`Waker` is set."""

    def resume(self, cell: Cell) -> None:
        """Run ``cell.resume()``, the dormant incarnation of ``cell``, in a task of its own, in
        ``cell._scope`` (made here unless the cell made it, cancelled, to end it)."""

    def cancel(self) -> None:
        """Cancel every actor task, those started from now on included, and end every
        dormant incarnation."""

    async def aclose(self) -> None:
        """Cancel every actor task and wait until all have ended."""


class Waker:
    """The receiver of a dormant actor's mailbox: what a sender sets (the loop's own signal,
    while it waits in a task), it starts a task for the incarnation. One object of one slot,
    made when the incarnation goes dormant; whoever sets it takes it from the mailbox first
    (as with a signal), so it starts one task at most."""

    __slots__ = ("_cell",)

    def __init__(self, cell: Cell) -> None:
        self._cell: Cell | None = cell

    def set(self) -> None:
        cell = self._cell
        if cell is not None:
            self._cell = None
            tasks = cell.runtime._actor_tasks
            assert tasks is not None  # it is closed only once nothing is dormant
            tasks.resume(cell)

    def is_set(self) -> bool:
        return self._cell is None

    def wait(self) -> Awaitable[Any]:
        # The Signal protocol's, for the mailbox's type; a dormant actor has no task to wait.
        raise RuntimeError("a dormant actor's waker has no waiter")


async def open_actor_tasks() -> ActorTasks:
    """The actor tasks of a runtime entered in the calling task (which must close them)."""
    trio = running_trio()
    if trio is not None:
        tasks = _TrioTasks()
        await tasks.open()
        return tasks
    return _AsyncioTasks()


class _Dormancy:
    """What both backends share: the dormant incarnations, and waking them."""

    __slots__ = ("_cancelled", "_dormant")

    def __init__(self) -> None:
        #: The cells whose incarnation is dormant (a set costs ~40 B a cell; the registry is
        #: not ours to walk).
        self._dormant: set[Cell] = set()
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def scope(self) -> TaskScope:
        raise NotImplementedError

    def park(self, cell: Cell) -> None:
        cell._scope = None  # no scope: interrupt() knows it is dormant (Cell.interrupt)
        self._dormant.add(cell)
        cell.mailbox._receiver = Waker(cell)

    def _wake(self, cell: Cell) -> None:
        """Take ``cell`` off the dormant ones and make the scope its task is to run in."""
        self._dormant.discard(cell)
        scope = cell._scope
        if scope is None:
            scope = cell._scope = self.scope()
        if self._cancelled:
            scope.cancel()

    def _end_dormant(self) -> None:
        # Each is woken as a stop wakes it (Cell.interrupt): already cancelled.
        while self._dormant:
            self._dormant.pop().interrupt()


class _AsyncioTasks(_Dormancy):
    __slots__ = ("_context", "_create", "_ended", "_error", "_new_scope", "_running")

    def __init__(self) -> None:
        import asyncio

        super().__init__()
        self._create = asyncio.get_running_loop().create_task
        #: The running tasks and their cells. (asyncio keeps only weak references to tasks.)
        self._running: dict[Task[None], Cell] = {}
        #: Where the done callbacks run: one context for all, not a copy per task.
        self._context = Context()
        self._ended: Signal | None = None
        self._error: BaseException | None = None
        #: anyio's asyncio scope class itself: ``anyio.CancelScope()`` looks the backend up,
        #: which fails outside a task (a dormant actor is woken by whoever sends, a loop
        #: callback calling ``tell_nowait`` included).
        self._new_scope: Callable[[], TaskScope] = type(CancelScope())

    def scope(self) -> TaskScope:
        return self._new_scope()

    def start(self, cell: Cell, initial: bool) -> None:
        # The context is made here (what create_task would do) and kept by the cell, so that
        # a non-resident incarnation goes on in the very context it started in.
        context = cell._context = copy_context()
        task = self._create(cell.run(initial), name=cell.path, context=context)
        self._running[task] = cell
        task.add_done_callback(self._done, context=self._context)
        if self._cancelled:
            cell.interrupt()

    def resume(self, cell: Cell) -> None:
        self._wake(cell)
        task = self._create(cell.resume(), name=cell.path, context=cell._context)
        self._running[task] = cell
        task.add_done_callback(self._done, context=self._context)

    def cancel(self) -> None:
        self._cancelled = True
        for cell in list(self._running.values()):
            cell.interrupt()
        self._end_dormant()

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


class _TrioTasks(_Dormancy):
    __slots__ = ("_current_task", "_manager", "_nursery", "_scope")

    def __init__(self) -> None:
        import trio

        super().__init__()
        self._manager = trio.open_nursery()
        self._nursery: Any = None
        #: trio's own scope, not anyio's wrapper of it (~100 bytes an actor).
        self._scope = trio.CancelScope
        self._current_task = trio.lowlevel.current_task

    def scope(self) -> TaskScope:
        scope: TaskScope = self._scope()
        return scope

    async def open(self) -> None:
        self._nursery = await self._manager.__aenter__()

    def start(self, cell: Cell, initial: bool) -> None:
        # The name is the path itself, so that no string is made for it.
        self._nursery.start_soon(cell.run, initial, name=cell.path)

    def park(self, cell: Cell) -> None:
        # trio starts a task in a copy of the starter's context (start_soon takes none): the
        # task that resumes the incarnation is started from within the context this one ends
        # in, so that it goes on with the same variables (a copy, not the same object).
        cell._context = self._current_task().context
        super().park(cell)

    def resume(self, cell: Cell) -> None:
        self._wake(cell)
        context = cell._context
        assert context is not None
        context.run(self._nursery.start_soon, cell.resume, name=cell.path)

    def cancel(self) -> None:
        self._cancelled = True
        self._nursery.cancel_scope.cancel()
        self._end_dormant()

    async def aclose(self) -> None:
        self._cancelled = True
        self._end_dormant()  # their tasks start now, in the nursery cancelled below
        scope = self._nursery.cancel_scope
        # Shielded, as the asyncio wait is (and anyio's task groups wait once cancelled): the
        # tasks are waited for even if the runtime's block is cancelled from outside, and the
        # nursery then absorbs its own cancellation rather than handing it on.
        scope.shield = True
        scope.cancel()
        await self._manager.__aexit__(None, None, None)
