"""Running a blocking producer in a worker thread, read from async code.

The producer is a local model's token loop or a sync SDK's stream; the reader works on
asyncio and trio alike.

The thread appends to a buffer and wakes the event loop only when the reader waits, so the
cost per item stays a lock and a list append. Closing the reader (or cancelling it) sets a
flag the producer checks per item, then waits for the thread to end: no thread outlives it.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import AsyncGenerator, Callable
from typing import Any, Generic, TypeVar

import anyio
import anyio.lowlevel

__all__ = ["Stopped", "iterate_in_thread", "on_asyncio"]

T = TypeVar("T")


class Stopped(Exception):
    """Raised inside the producer by ``emit`` when the reader has gone: stop generating."""


def on_asyncio() -> bool:
    """Whether the running event loop is asyncio's (else trio's)."""
    import asyncio

    return isinstance(anyio.lowlevel.current_token().native_token, asyncio.AbstractEventLoop)


def _call_soon_threadsafe() -> Callable[[Callable[[], object]], object]:
    """A function that schedules a callback on the running event loop from any thread."""
    native: Any = anyio.lowlevel.current_token().native_token
    # asyncio's token is the loop itself; trio's is a TrioToken.
    call_soon: Callable[[Callable[[], object]], object] = (
        getattr(native, "call_soon_threadsafe", None) or native.run_sync_soon
    )
    return call_soon


class _Channel(Generic[T]):
    __slots__ = (
        "call_soon",
        "done",
        "error",
        "items",
        "lock",
        "started",
        "stop",
        "waiter",
        "wake_each",
    )

    def __init__(self, *, wake_each: bool) -> None:
        self.wake_each = wake_each
        self.items: collections.deque[T] = collections.deque()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.started = False
        self.done = False
        self.error: BaseException | None = None
        self.waiter: anyio.Event | None = None
        self.call_soon = _call_soon_threadsafe()

    def _wake(self, waiter: anyio.Event | None) -> None:
        if waiter is not None:
            # RuntimeError: the event loop has already closed, so nobody is waiting.
            with contextlib.suppress(RuntimeError):
                self.call_soon(waiter.set)

    def emit(self, item: T) -> None:
        if self.stop.is_set():
            raise Stopped
        with self.lock:
            self.items.append(item)
            if not self.wake_each:
                return
            waiter, self.waiter = self.waiter, None
        self._wake(waiter)

    def finish(self, error: BaseException | None) -> None:
        with self.lock:
            self.done = True
            self.error = error
            waiter, self.waiter = self.waiter, None
        self._wake(waiter)


async def iterate_in_thread(
    produce: Callable[[Callable[[T], None], threading.Event], None],
    *,
    name: str,
    wake_each: bool = True,
    start: Callable[[Callable[[], None]], None] | None = None,
) -> AsyncGenerator[T, None]:
    """Run ``produce(emit, stop)`` in a new daemon thread (or through ``start``) and yield
    what it emits.

    ``produce`` calls ``emit(item)`` for each item and should return when ``stop`` is set
    (``emit`` then raises :class:`Stopped`, which ends it quietly). An exception it raises is
    re-raised here after the items emitted before it. Closing this generator early, or
    cancelling the task reading it, stops the producer and waits for its thread to end.

    :param name: the thread's name, for debuggers and thread dumps.
    :param wake_each: wake the reader for each item (streaming); with ``False`` the reader
        wakes only when the producer ends, and gets every item then: no event-loop wake-up
        per item, for callers that want the whole answer.
    :param start: runs the job it is given on a thread of the caller's (a model's own
        thread, which takes jobs one after another) instead of a new thread. A job that has
        not begun when this generator closes is skipped when its turn comes, and the
        generator does not wait for it.
    """
    channel: _Channel[T] = _Channel(wake_each=wake_each)

    def main() -> None:
        with channel.lock:
            if channel.done:  # the reader left before this job's turn came
                return
            channel.started = True
        error: BaseException | None = None
        try:
            produce(channel.emit, channel.stop)
        except Stopped:
            pass
        except BaseException as exc:  # handed to the reader, which re-raises it
            error = exc
        channel.finish(error)

    thread: threading.Thread | None = None
    if start is None:
        thread = threading.Thread(target=main, name=name, daemon=True)
        thread.start()
    else:
        start(main)
    try:
        while True:
            with channel.lock:
                if channel.items:
                    batch = list(channel.items)
                    channel.items.clear()
                    waiter = None
                elif channel.done:
                    break
                else:
                    batch = []
                    waiter = channel.waiter = anyio.Event()
            if waiter is not None:
                await waiter.wait()
                continue
            await anyio.lowlevel.checkpoint()
            for item in batch:
                await anyio.lowlevel.checkpoint_if_cancelled()
                yield item
        if channel.error is not None:
            raise channel.error
    finally:
        channel.stop.set()
        with anyio.CancelScope(shield=True):
            while True:
                with channel.lock:
                    if not channel.started:
                        channel.done = True  # ``main`` sees this and skips the job
                    if channel.done:
                        break
                    waiter = channel.waiter = anyio.Event()
                await waiter.wait()
        if thread is not None:
            thread.join()
