"""One-shot wake-ups for the kernel's hot paths (a reply, a parked mailbox, a slot).

On asyncio a signal is a bare future of the running loop: waiting on it awaits the future
itself, with no coroutine around it, and setting it resolves the future. anyio's ``Event``
costs an anyio object, an ``asyncio.Event``, a future and two coroutines per wait; the
agents benchmark (``bench/agents.py``) spends most of its garbage collector's time on such
short-lived objects held across a model call. On trio a signal parks its waiter with trio's
low-level ``wait_task_rescheduled`` and ``set()`` reschedules it: what ``trio.Event`` does,
without its parking lot (an ordered dict) and closure, ~900 bytes that every idle actor held
while it waited for mail. Elsewhere it is an ``anyio.Event``.

A signal has one waiter and fires once; every user of signals in the kernel makes a fresh one
per wait. Like an event, it reads as set once ``set()`` was called, even if its waiter was
cancelled first (the future is then cancelled, so the flag is kept apart from it): a waiter
cancelled just as it was handed something (a slot, room in a mailbox) sees that it was,
and passes it on.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import anyio

if TYPE_CHECKING:
    from asyncio import AbstractEventLoop, Future

__all__ = ["Signal", "new_signal"]


class Signal(Protocol):
    def set(self) -> None: ...

    def is_set(self) -> bool: ...

    def wait(self) -> Awaitable[Any]: ...


class _FutureSignal:
    __slots__ = ("_future", "_set")

    def __init__(self, loop: AbstractEventLoop) -> None:
        self._future: Future[None] = loop.create_future()
        self._set = False

    def set(self) -> None:
        self._set = True
        future = self._future
        if not future.done():
            future.set_result(None)

    def is_set(self) -> bool:
        return self._set

    def wait(self) -> Awaitable[Any]:
        return self._future


class _TrioSignal:
    __slots__ = ("_set", "_task")

    def __init__(self) -> None:
        self._set = False
        self._task: Any = None  # the waiting trio task, while it waits

    def set(self) -> None:
        if not self._set:
            self._set = True
            task = self._task
            if task is not None:
                self._task = None
                _trio_lowlevel.reschedule(task)

    def is_set(self) -> bool:
        return self._set

    def wait(self) -> Awaitable[Any]:
        # Returns trio's own awaitable (as the asyncio signal returns its future): no
        # coroutine frame of ours is kept while the waiter is parked.
        waiting: Awaitable[Any]
        if self._set:
            waiting = _trio_lowlevel.checkpoint()
        else:
            self._task = _trio_lowlevel.current_task()
            waiting = _trio_lowlevel.wait_task_rescheduled(self._abort)
        return waiting

    def _abort(self, raise_cancel: Any) -> Any:
        self._task = None  # cancelled: a set() from now on has nobody to wake
        return _trio_lowlevel.Abort.SUCCEEDED


#: ``trio.lowlevel``, once trio is imported (it is not imported from here).
_trio_lowlevel: Any = None

#: asyncio's running-loop lookup, once asyncio is imported (it is not imported from here:
#: ``import limelight`` stays cheap, and no asyncio loop runs before asyncio is imported).
_running_asyncio_loop: Callable[[], AbstractEventLoop | None] | None = None


def new_signal() -> Signal:
    """A fresh signal for the running event loop."""
    global _running_asyncio_loop, _trio_lowlevel
    running = _running_asyncio_loop
    if running is None:
        asyncio = sys.modules.get("asyncio")
        if asyncio is not None:
            running = _running_asyncio_loop = asyncio.events._get_running_loop
    if running is not None:
        loop = running()
        if loop is not None:
            return _FutureSignal(loop)
    trio = sys.modules.get("trio")
    if trio is not None and trio.lowlevel.in_trio_run():
        _trio_lowlevel = trio.lowlevel
        return _TrioSignal()
    return anyio.Event()
