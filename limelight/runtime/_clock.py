"""The running event loop's clock, checkpoint and effective deadline, each looked up once.

``anyio.current_time()``, ``anyio.lowlevel.checkpoint()`` and
``anyio.current_effective_deadline()`` look the backend up at every call (sniffio, then the
backend class); the checkpoint adds two coroutines around the backend's own. The kernel's hot
paths (a timed ask, the expiry check before a handler, the yield of an actor's loop before it
parks) call what these functions return for the running loop instead: the same clock
(``loop.time`` on asyncio, ``trio.current_time`` on trio, a MockClock included), the same yield
(``asyncio.sleep(0)``, ``trio.lowlevel.checkpoint()``: what anyio's backends await), the same
deadline (``trio.current_effective_deadline``; anyio's own function on asyncio, where anyio's
scopes are anyio's to read).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel

__all__ = [
    "asyncio_cancel_scope",
    "loop_call_soon_threadsafe",
    "loop_cancel_scope",
    "loop_checkpoint",
    "loop_clock",
    "loop_deadline",
    "loop_finished",
    "running_asyncio_loop",
    "running_trio",
]


def running_asyncio_loop() -> Any:
    """The running asyncio loop, or None (on trio, or where asyncio was never imported: it is
    not imported from here)."""
    asyncio = sys.modules.get("asyncio")
    return None if asyncio is None else asyncio.events._get_running_loop()


def running_trio() -> Any:
    """The trio module when a trio run is running in this thread, else None."""
    trio = sys.modules.get("trio")
    return trio if trio is not None and trio.lowlevel.in_trio_run() else None


def loop_call_soon_threadsafe() -> Callable[..., Any]:
    """What another thread calls to run ``callback(*args)`` on the running loop soon:
    ``loop.call_soon_threadsafe`` on asyncio, ``TrioToken.run_sync_soon`` on trio (each raises
    RuntimeError once the loop has ended)."""
    loop = running_asyncio_loop()
    if loop is not None:
        call_soon: Callable[..., Any] = loop.call_soon_threadsafe
        return call_soon
    trio = running_trio()
    if trio is not None:
        run_sync_soon: Callable[..., Any] = trio.lowlevel.current_trio_token().run_sync_soon
        return run_sync_soon
    raise RuntimeError("no asyncio loop or trio run is running in this thread")


def loop_clock() -> Callable[[], float]:
    """The clock of the running event loop (``anyio.current_time`` on another backend)."""
    loop = running_asyncio_loop()
    if loop is not None:
        clock: Callable[[], float] = loop.time
        return clock
    trio = running_trio()
    if trio is not None:
        trio_clock: Callable[[], float] = trio.current_time
        return trio_clock
    return anyio.current_time


def loop_checkpoint() -> Callable[[], Awaitable[Any]]:
    """A checkpoint of the running event loop (``anyio.lowlevel.checkpoint`` elsewhere).

    An actor's loop yields once per request of a request/reply exchange (before it would
    park). Measured on asyncio, with the loop iteration it yields to: anyio's checkpoint
    4.6 µs, ``sleep(0)`` 3.7 µs (CPU time, on a loaded machine where an ask round trip took
    ~12 µs)."""
    if running_asyncio_loop() is not None:
        from asyncio import sleep

        def checkpoint() -> Awaitable[None]:
            # A plain function returning the coroutine: no frame of ours while it yields.
            yielding: Awaitable[None] = sleep(0)
            return yielding

        return checkpoint
    trio = running_trio()
    if trio is not None:
        trio_checkpoint: Callable[[], Awaitable[Any]] = trio.lowlevel.checkpoint
        return trio_checkpoint
    return anyio.lowlevel.checkpoint


def loop_deadline() -> Callable[[], float]:
    """The running loop's ``current_effective_deadline``: trio's own on trio (anyio's trio
    backend returns just that), anyio's elsewhere."""
    trio = running_trio()
    if trio is not None:
        trio_deadline: Callable[[], float] = trio.current_effective_deadline
        return trio_deadline
    return anyio.current_effective_deadline


def loop_cancel_scope() -> Callable[..., Any]:
    """The cancel scope class to open on the running loop: trio's own on trio (anyio's scope
    there is a wrapper around one: an object more per scope, and its calls go through it),
    anyio's asyncio backend's class on asyncio (what ``anyio.CancelScope(...)`` makes there,
    without looking the backend up for each scope). Both take ``deadline=`` and ``shield=``
    and have ``cancel()``, ``deadline``, ``cancel_called`` and ``cancelled_caught``."""
    trio = running_trio()
    if trio is not None:
        trio_scope: Callable[..., Any] = trio.CancelScope
        return trio_scope
    if running_asyncio_loop() is not None:
        return asyncio_cancel_scope()
    return anyio.CancelScope


@functools.cache
def asyncio_cancel_scope() -> Callable[..., Any]:
    """The class of anyio's cancel scopes on asyncio (called on an asyncio loop)."""
    scope: Callable[..., Any] = type(anyio.CancelScope())
    return scope


def loop_finished() -> Awaitable[None]:
    """An awaitable that is done already, for the running loop: what a send that did not have
    to wait returns (``ActorRef.tell``). Awaiting it is one C-level step, where a coroutine
    would be made and run.

    It is a future with its result set. On asyncio it belongs to the running loop, so
    asyncio's own helpers (``gather``, ``wait_for``, ``ensure_future``) take it as any
    future of their loop. Elsewhere (trio) it is made once on a loop of its own, closed at
    once: awaiting a finished future never yields and never touches its loop. It also reads
    as a coroutine that returns None at once (:func:`_finished_type`)."""
    loop = running_asyncio_loop()
    if loop is None:
        return _detached_finished()
    return _finished_on(loop)


def _finished_on(loop: Any) -> Awaitable[None]:
    future = _finished_type()(loop=loop)
    future.set_result(None)
    finished: Awaitable[None] = future
    return finished


@functools.cache
def _detached_finished() -> Awaitable[None]:
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        return _finished_on(loop)
    finally:
        loop.close()


@functools.cache
def _finished_type() -> Any:
    """The class of :func:`loop_finished`'s futures (made when first needed: asyncio is not
    imported with limelight). Besides a future, a coroutine that returns None at once, so
    that whatever takes a coroutine (``asyncio.create_task``, anyio's ``start_soon``, a
    trio nursery) takes ``ref.tell`` as it did when ``tell`` was a coroutine function."""
    import asyncio
    from collections.abc import Coroutine

    class Finished(asyncio.Future):  # type: ignore[type-arg]
        __slots__ = ()

        def send(self, value: object) -> None:
            raise StopIteration

        def throw(self, typ: Any, val: Any = None, tb: Any = None) -> None:
            raise typ if val is None else val

        def close(self) -> None:
            pass

    Coroutine.register(Finished)
    return Finished
