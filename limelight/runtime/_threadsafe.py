"""Tell and ask from another thread with one hop to the loop and a lock to wait on.

A blocking portal (anyio's ``BlockingPortal.call``) runs each call as a task on the loop and
waits on a ``concurrent.futures.Future``: measured in a cluster host, 330 µs a call against
53 µs for the same ask awaited on the loop. Here the calling thread makes the request, hands
it to the loop with the loop's own thread-safe call-soon (``loop.call_soon_threadsafe`` on
asyncio, ``TrioToken.run_sync_soon`` on trio), and waits on a plain lock. On the loop, a
callback puts it into the actor's mailbox as any send does, and the reply releases the lock:
the request's reply signal is a :class:`_ThreadWaiter`, set on the loop like any other. No
task is made, unless the mailbox is full and the actor's overflow policy waits for room: the
callback cannot wait, so it hands the request back, and the thread sends it through the
portal (a task on the loop waits for room, within the request's deadline).

The semantics are a local tell's and ask's: a deadline travels with the request (computed on
the loop's clock from what is left of ``timeout``), a request whose deadline passed is
dropped unhandled, the handler runs under it. The asking thread stops waiting at it on its own
clock and tells the loop to abandon the request (its handler is cancelled), then raises
``AskTimeout``.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from ._envelopes import DONE, Ask
from ._errors import AskTimeout, RuntimeNotRunning

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

    from ._cell import Cell
    from ._ref import ActorRef
    from ._runtime import Runtime

__all__ = ["ask_from_thread", "tell_from_thread"]

_INF = math.inf
#: How often a thread waiting without a deadline checks that the runtime still runs (a request
#: handed to a loop that ended before running the callback would otherwise be waited for
#: forever).
_LIVENESS_CHECK: Final = 1.0


class _ThreadWaiter:
    """A reply signal set on the loop, waited on by a plain thread: ``set()`` releases a lock
    the thread blocks on. Also carries what the loop's callback failed with, if it did."""

    __slots__ = ("_lock", "_set", "delivered", "error", "full")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._set = False
        #: The loop ran the callback (the request reached the actor, or failed to).
        self.delivered = False
        self.error: BaseException | None = None
        #: The mailbox was full and its policy waits for room: send it through the portal.
        self.full = False

    def set(self) -> None:
        if not self._set:
            self._set = True
            self._lock.release()

    def is_set(self) -> bool:
        return self._set

    def wait(self) -> Awaitable[Any]:
        raise RuntimeError("a thread's waiter is waited on with wait_blocking(), not awaited")

    def wait_blocking(self, runtime: Runtime, until: float) -> bool:
        """Wait until set (True) or until ``until`` on ``time.monotonic()`` (False).

        :raises RuntimeNotRunning: the runtime ended before the loop ran the callback.
        """
        lock = self._lock
        while True:
            left = until - time.monotonic() if until != _INF else _LIVENESS_CHECK
            if left <= 0:
                return lock.acquire(blocking=False)
            if lock.acquire(timeout=min(left, _LIVENESS_CHECK)):
                return True
            if not self.delivered and not runtime._running:
                raise RuntimeNotRunning("the runtime stopped before it took the request")


def _hand_over(runtime: Runtime, callback: Callable[..., None], *args: Any) -> None:
    if runtime._loop_thread == threading.get_ident():
        raise RuntimeError(
            "a blocking call cannot be made from the event loop thread (it would wait for "
            "itself): await the actor's ref there instead"
        )
    call_soon = runtime._call_soon_threadsafe
    if call_soon is None or not runtime._running:
        raise RuntimeNotRunning("the runtime is not running")
    try:
        call_soon(callback, *args)
    except RuntimeError as exc:  # asyncio's closed loop; trio's RunFinishedError
        raise RuntimeNotRunning(f"the runtime's event loop has ended ({exc})") from None


def _cell_of(runtime: Runtime, target: ActorRef | str) -> Cell:
    if isinstance(target, str):
        return runtime.lookup(target)._cell
    return target._cell


# -- tell ------------------------------------------------------------------------------


def tell_from_thread(
    runtime: Runtime, portal: BlockingPortal, target: ActorRef | str, message: Any
) -> None:
    """Send ``message`` to ``target`` (a ref, or an actor's path) from a thread other than
    the runtime's loop; returns once the actor's mailbox took it (waiting while it is full,
    under the BLOCK overflow policy).

    :raises ActorNotFound: no live actor at that path.
    :raises ActorStopped: the actor has stopped for good.
    :raises MailboxFull: the mailbox is full and its policy is FAIL.
    :raises RuntimeNotRunning: the runtime is not running.
    """
    waiter = _ThreadWaiter()
    _hand_over(runtime, _deliver_tell, runtime, target, message, waiter)
    waiter.wait_blocking(runtime, _INF)
    if waiter.error is not None:
        raise waiter.error
    if waiter.full:
        portal.call(_tell, runtime, target, message)


def _deliver_tell(runtime: Runtime, target: ActorRef | str, message: Any, w: _ThreadWaiter) -> None:
    w.delivered = True
    try:
        cell = _cell_of(runtime, target)
        if cell.waits_for_room():
            w.full = True
        else:
            cell.put_nowait(message)
    except Exception as exc:  # the waiting thread raises it
        w.error = exc
    w.set()


async def _tell(runtime: Runtime, target: ActorRef | str, message: Any) -> None:
    await _cell_of(runtime, target).ref.tell(message)


async def _ask(
    runtime: Runtime, target: ActorRef | str, message: Any, timeout: float | None
) -> Any:
    return await _cell_of(runtime, target).ref.ask(message, timeout=timeout)


# -- ask -------------------------------------------------------------------------------


def ask_from_thread(
    runtime: Runtime,
    portal: BlockingPortal,
    target: ActorRef | str,
    message: Any,
    timeout: float | None = None,
) -> Any:
    """:meth:`ActorRef.ask` from a thread other than the runtime's loop: send a request to
    ``target`` (a ref, or an actor's path) and wait for the reply, within ``timeout``.

    :raises AskTimeout: no reply within ``timeout``.
    :raises ActorCrashed: the actor raised while handling the request.
    :raises ActorStopped: the actor stopped before it could reply.
    :raises ActorNotFound: no live actor at that path.
    :raises RuntimeNotRunning: the runtime is not running.
    """
    if timeout is not None and not timeout > 0:
        raise _timed_out(target, message, timeout)
    waiter = _ThreadWaiter()
    envelope = Ask(message, _INF, waiter)  # its deadline is set on the loop's clock
    until = _INF if timeout is None else time.monotonic() + timeout
    _hand_over(runtime, _deliver_ask, runtime, target, envelope, timeout)
    if not waiter.wait_blocking(runtime, until):
        # Our deadline passed first: the loop abandons the request (its handler, if one runs,
        # is cancelled), as the deadline scheduler does for a local ask.
        with contextlib.suppress(RuntimeNotRunning):  # else nothing is left to abandon it in
            _hand_over(runtime, envelope.expire)
        raise _timed_out(target, message, timeout)
    if waiter.error is not None:
        raise waiter.error
    if waiter.full:
        left = None if until == _INF else until - time.monotonic()
        if left is not None and not left > 0:
            raise _timed_out(target, message, timeout)
        return portal.call(_ask, runtime, target, message, left)
    if envelope._state != DONE:
        # Not reached: every set() on the loop answers or fails the request. Kept so that a
        # request still pending is never read as a reply of None.
        raise _timed_out(target, message, timeout)
    return envelope.outcome()


def _deliver_ask(
    runtime: Runtime, target: ActorRef | str, envelope: Ask, timeout: float | None
) -> None:
    waiter: _ThreadWaiter = envelope._signal  # type: ignore[assignment]
    waiter.delivered = True
    try:
        cell = _cell_of(runtime, target)
        if timeout is not None:
            # On the loop's clock (trio's has an offset of its own).
            envelope.deadline = runtime._now() + timeout
        if cell.waits_for_room():
            waiter.full = True
            waiter.set()
        else:
            cell.put_nowait(envelope)  # the reply sets the waiter
    except Exception as exc:
        waiter.error = exc
        waiter.set()


def _timed_out(target: ActorRef | str, message: Any, timeout: float | None) -> AskTimeout:
    path = target if isinstance(target, str) else target.path
    what = type(message).__name__
    return AskTimeout(f"ask {what} to {path} timed out after {timeout} s", path=path)
