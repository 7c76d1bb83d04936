"""ActorRef: the only handle to an actor. Users get one from spawn() or lookup()."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import anyio
from anyio import EndOfStream, WouldBlock, current_effective_deadline, current_time
from anyio.lowlevel import checkpoint

from ._envelopes import DONE, PENDING, Ask, StreamRequest
from ._errors import AskTimeout
from ._mailbox import YIELD_MASK as _YIELD_MASK
from ._signal import new_signal

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ._cell import Cell
    from ._runtime import Runtime
    from ._stats import ActorStatistics

_INF = math.inf
#: How many streamed replies may wait for a slow consumer before the actor waits.
STREAM_BUFFER: Final = 32


class ActorRef:
    """A reference to an actor, stable across its restarts.

    ``tell`` and ``ask`` take the fast path when the mailbox has room: they enqueue without
    waiting. ``tell`` yields to the event loop whenever the queue reaches a multiple of
    :data:`CHECKPOINT_INTERVAL` messages, so a hot sender cannot starve the loop (an ask
    always waits for its reply). When the mailbox is full, the actor's overflow policy
    applies (BLOCK waits: that is backpressure).
    """

    __slots__ = ("_cell", "_finished", "_mailbox")

    def __init__(self, cell: Cell) -> None:
        self._cell = cell
        # What tell reads at every message, kept here: the cell's mailbox (its own for good)
        # and what a send that did not wait returns (its runtime's, made on entry).
        self._mailbox = cell.mailbox
        self._finished = cell.runtime._finished

    @property
    def path(self) -> str:
        return self._cell.path

    @property
    def name(self) -> str:
        return self._cell.name

    @property
    def runtime(self) -> Runtime:
        """The runtime the actor lives in (to run work on its event loop, e.g. through its
        portal from another thread)."""
        return self._cell.runtime

    @property
    def alive(self) -> bool:
        """False once the actor has stopped for good."""
        return self._cell.state.value != "stopped"

    def tell(self, message: Any) -> Awaitable[None]:
        """Send without waiting for an answer: ``await ref.tell(message)``.

        A plain method returning what to await: when the mailbox has room, the message is
        enqueued by the call itself and what it returns is already done (awaiting it is one
        C-level step, where a coroutine of ours would be made and run per message). It is not
        a coroutine function, but what it returns also reads as a coroutine: whatever takes
        one (``asyncio.create_task``, a task group's ``start_soon``) takes ``ref.tell``.

        :raises ActorStopped: the actor has stopped for good.
        :raises MailboxFull: the mailbox is full and the overflow policy is FAIL.
        """
        mailbox = self._mailbox
        # Mailbox.put_nowait inlined: this is the hottest line of the runtime.
        items = mailbox._items
        queued = len(items)
        if queued >= mailbox._room:  # full, closed, or nothing was put into it yet
            return self._cell.put(message)
        items.append(message)
        receiver = mailbox._receiver
        if receiver is not None:
            mailbox._receiver = None
            receiver.set()
        if queued & _YIELD_MASK == _YIELD_MASK:
            # Every CHECKPOINT_INTERVAL-th message queued: while a sender does not yield its
            # receiver cannot take any, so a hot sender yields this often (a counter of its
            # own per actor, as before, cost a fifth of this fast path).
            return self._cell.runtime._checkpoint()
        return self._finished

    def tell_nowait(self, message: Any) -> None:
        """Send without waiting, from async code or a callback on the event loop thread.

        :raises MailboxFull: the mailbox is full (under the drop policies the message is
            dropped and counted instead).
        :raises ActorStopped: the actor has stopped for good.
        """
        self._cell.put_nowait(message)

    async def ask(self, message: Any, *, timeout: float | None = None) -> Any:
        """Send a request and wait for the reply (what ``handle`` returned).

        The request carries its deadline: the earlier of ``timeout`` and the caller's own
        (enclosing cancel scopes). A request whose deadline passes before it is handled is
        dropped unhandled; the handler itself runs under that deadline, so nested asks inherit
        what is left of it. ``timeout`` also covers waiting for room in a full mailbox.

        :raises AskTimeout: no reply within ``timeout``.
        :raises ActorCrashed: the actor raised while handling this request (the cause is
            attached).
        :raises ActorStopped: the actor stopped before it could reply.
        """
        cell = self._cell
        runtime = cell.runtime
        deadline = runtime._effective_deadline()
        if timeout is not None:
            own_deadline = runtime._now() + timeout
            if own_deadline != _INF and not own_deadline > deadline:
                # Our own timeout binds (a tie included). The runtime's deadline scheduler
                # times the wait, so that it needs no cancel scope of its own (which cost more
                # than the rest of the round trip), unless it waits for room in a full mailbox.
                envelope = Ask(message, own_deadline)
                mailbox = cell.mailbox
                items = mailbox._items
                if len(items) < mailbox._room and timeout > 0:
                    # Mailbox.put_nowait inlined, as in tell.
                    items.append(envelope)
                    receiver = mailbox._receiver
                    if receiver is not None:
                        mailbox._receiver = None
                        receiver.set()
                elif not timeout > 0 or cell.waits_for_room():
                    return await self._ask_in_scope(envelope, timeout)
                else:
                    # Nothing was put yet, or an overflow policy that won't wait.
                    cell.put_nowait(envelope)
                deadlines = runtime._deadlines
                timer = deadlines.add(own_deadline, envelope)
                try:
                    if timer is not None:
                        await envelope._signal.wait()
                    if envelope._state == PENDING:
                        # Nobody times it: the scheduler is not running (the runtime is being
                        # torn down), or it stopped while we waited.
                        envelope._signal = new_signal()
                        with anyio.move_on_at(own_deadline):
                            await envelope._signal.wait()
                except BaseException:
                    envelope.abandon()
                    if timer is not None:
                        deadlines.cancel(timer)
                    raise
                if envelope._state == DONE:
                    if timer is not None:
                        deadlines.cancel(timer)
                    # Ask.outcome inlined.
                    if envelope._error is not None:
                        raise envelope._error
                    return envelope._value
                envelope.abandon()  # timed out by the scope (the scheduler abandoned it itself)
                raise self._timed_out(message, timeout, queued=True)
        # No deadline, or only an enclosing scope's, and that scope cancels us itself.
        envelope = Ask(message, deadline)
        try:
            await cell.put(envelope)
            await envelope._signal.wait()
        except BaseException:
            envelope.abandon()
            raise
        return envelope.outcome()

    async def _ask_in_scope(self, envelope: Ask, timeout: float) -> Any:
        """An ask timed by a cancel scope of its own, waiting for room in a full mailbox too."""
        queued = False
        try:
            with anyio.move_on_at(envelope.deadline):
                await self._cell.put(envelope)
                queued = True
                await envelope._signal.wait()
        except BaseException:
            envelope.abandon()
            raise
        if not envelope.resolved:
            envelope.abandon()
            raise self._timed_out(envelope.message, timeout, queued=queued)
        return envelope.outcome()

    def _timed_out(self, message: Any, timeout: float, *, queued: bool) -> AskTimeout:
        cell = self._cell
        where = "" if queued else " waiting for room in a full mailbox"
        return AskTimeout(
            f"ask {type(message).__name__} to {cell.path} timed out after {timeout} s"
            f"{where} (mailbox depth {len(cell.mailbox)})",
            path=cell.path,
        )

    def stream(self, message: Any, *, timeout: float | None = None) -> ReplyStream:
        """Send a request whose replies are streamed: iterate the result with ``async for``.

        The handler returns an async iterable; each item it yields arrives here, with
        backpressure (a slow consumer makes the actor wait). Use it as an async context
        manager, or iterate it to the end, so that leaving early tells the actor to stop.

        :raises AskTimeout: the whole stream did not finish within ``timeout``.
        :raises ActorCrashed: the actor raised while producing the stream.
        """
        return ReplyStream(self._cell, message, timeout)

    async def stop(self) -> None:
        """Stop this actor for good, after its children (reverse start order). Queued asks
        fail with ActorStopped; queued tells are counted as undelivered."""
        await self._cell.stop()

    def statistics(self) -> ActorStatistics:
        return self._cell.statistics()

    def __repr__(self) -> str:
        return f"<ActorRef {self._cell.path}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorRef) and other._cell is self._cell

    def __hash__(self) -> int:
        return id(self._cell)


class ReplyStream(AsyncIterator[Any]):
    """The replies of one :meth:`ActorRef.stream` request."""

    __slots__ = ("_cell", "_deadline", "_message", "_queued", "_receive", "_request", "_timeout")

    def __init__(self, cell: Cell, message: Any, timeout: float | None) -> None:
        self._cell = cell
        self._message = message
        self._timeout = timeout
        self._deadline = _INF
        self._receive: MemoryObjectReceiveStream[Any] | None = None
        self._request: StreamRequest | None = None
        self._queued = False

    def _prepare(self) -> MemoryObjectReceiveStream[Any]:
        deadline = current_effective_deadline()
        if self._timeout is not None:
            self._deadline = current_time() + self._timeout
            deadline = min(deadline, self._deadline)
        send: MemoryObjectSendStream[Any]
        receive: MemoryObjectReceiveStream[Any]
        send, receive = anyio.create_memory_object_stream(STREAM_BUFFER)
        self._receive = receive
        self._request = StreamRequest(self._message, deadline, send)
        return receive

    async def _put(self) -> None:
        assert self._request is not None
        try:
            await self._cell.put(self._request)
        except BaseException:
            # Refused (full, stopped), cancelled or timed out: nothing was queued, so both
            # ends are ours to close.
            self._request.close()
            self.close()
            raise
        self._queued = True

    async def __anext__(self) -> Any:
        receive = self._receive
        opening = receive is None
        if receive is None:
            if self._request is not None:  # already finished
                raise StopAsyncIteration
            receive = self._prepare()
        try:
            if not opening:
                try:
                    return receive.receive_nowait()
                except WouldBlock:
                    pass
            if self._deadline == _INF:
                if opening:
                    await self._put()
                return await receive.receive()
            # The timeout covers waiting for room in a full mailbox too.
            with anyio.move_on_at(self._deadline):
                if opening:
                    await self._put()
                return await receive.receive()
        except EndOfStream:
            self.close()
            assert self._request is not None
            if self._request.error is not None:
                raise self._request.error from self._request.error.__cause__
            raise StopAsyncIteration from None
        except anyio.ClosedResourceError:
            raise StopAsyncIteration from None
        self.close()
        where = "" if self._queued else " waiting for room in a full mailbox"
        raise AskTimeout(
            f"stream {type(self._message).__name__} from {self._cell.path} timed out after "
            f"{self._timeout} s{where}",
            path=self._cell.path,
        )

    def close(self) -> None:
        """Stop listening; the actor stops producing at its next item."""
        if self._receive is not None:
            self._receive.close()
            self._receive = None

    async def aclose(self) -> None:
        self.close()
        await checkpoint()

    async def __aenter__(self) -> ReplyStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # The receive end is a plain in-memory object: closing it needs no event loop.
        receive = getattr(self, "_receive", None)
        if receive is not None:
            receive.close()
