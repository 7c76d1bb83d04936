"""An actor's message loop: how a cell takes messages from its mailbox and handles them.

Requests with a deadline are handled under a cancel scope that the loop keeps between them,
moving its deadline to each request's own (see :meth:`MessageLoop._loop`); requests whose
deadline has passed, or whose asker has gone, are dropped unhandled and counted.
:class:`MessageLoop` is a part of :class:`~._cell.Cell` (its base class): the loop shares the
cell's state, and the cell's lifecycle runs it.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Any, Final

from anyio import BrokenResourceError, CancelScope, ClosedResourceError, EndOfStream, WouldBlock

from ._envelopes import ABANDONED, DONE, PENDING, Ask, Envelope, StreamRequest
from ._errors import ActorCrashed, ActorStopped, AskTimeout
from ._mailbox import CHECKPOINT_INTERVAL, EMPTY

if TYPE_CHECKING:
    from ._actor import Actor, Context
    from ._mailbox import Mailbox
    from ._runtime import Runtime
    from ._tasks import TaskScope

__all__ = ["DORMANT", "MessageLoop", "describe"]

_INF = math.inf
#: No item (messages may be anything, None included).
_NOTHING: Final[Any] = object()
#: A run of plain messages stops here, so that the next take counts to the checkpoint.
_LAST_BEFORE_CHECKPOINT: Final = CHECKPOINT_INTERVAL - 1


def describe(exc: BaseException) -> str:
    """``Type: message``, or the bare type when the message is empty."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _Dormant:
    """What the loop of a non-resident actor returns where it would wait for mail."""

    __slots__ = ()


#: The plain loop of a non-resident actor found the mailbox empty: its task is to end, and
#: the incarnation to go dormant (``_cell``, ``_tasks``).
DORMANT: Final = _Dormant()


class _Carry:
    """An item the scoped message loop took from the mailbox but left to the unscoped one."""

    __slots__ = ("item",)

    def __init__(self, item: Any) -> None:
        self.item = item


class MessageLoop:
    """The message loop of a :class:`~._cell.Cell`, which holds the state declared here."""

    # The counters and state the loop writes (the cell initialises them).
    __slots__ = ("expired", "last_error", "late_replies", "processed", "serving")

    expired: int
    last_error: BaseException | None
    late_replies: int
    processed: int
    #: The request with a deadline being handled under the loop's cancel scope, if any.
    serving: Envelope | None
    # The cell's, read here.
    path: str
    runtime: Runtime
    mailbox: Mailbox
    ctx: Context
    stop_after_current: bool
    _scope: TaskScope | None

    def interrupted_error(self, envelope: Envelope) -> ActorStopped:
        return ActorStopped(
            f"actor {self.path} was stopped while handling {type(envelope.message).__name__}",
            path=self.path,
        )

    async def _loop(self, actor: Actor) -> BaseException | _Dormant | None:
        """Handle messages until stopped; returns the crash, or None for a normal exit, or
        :data:`DORMANT` for a non-resident actor with no mail.

        A request with a deadline is handled under a cancel scope carrying it: nested asks
        inherit what is left, and work nobody waits for any more is cancelled. The scope is
        entered at the first such request and then kept (:meth:`_under_deadlines`), its
        deadline moved to each request's own, so that a run of timed asks does not pay for a
        scope each: on asyncio, entering and leaving one costs about as much as the rest of a
        round trip. Between requests it keeps the last one's deadline (moving a deadline costs
        less than clearing it and setting it again). It is left once cancelled: a handler
        overran its deadline, its asker gave up, or the last deadline passed while the actor
        waited for mail (one wake-up); the next request with a deadline enters a fresh one.
        So an idle actor holds a scope (~1.3 KB) only until the deadline of the last request
        it handled, and one that never had one waits here, one frame deep.

        A non-resident actor (``Actor.resident``) does not wait here: where it would park, the
        loop returns :data:`DORMANT` (its task ends; the next message starts another, which
        enters the loop again). Only here: in the scoped loop it waits, in its task, until the
        scope is left (the last deadline passes), then comes here. It does not go dormant
        once its incarnation (or every actor task) is cancelled: it waits, and the
        cancellation ends it as it ends a resident one.
        """
        mailbox = self.mailbox
        items = mailbox._items  # until the first put, a shared empty one (see _mailbox)
        resident = actor.resident
        ctx = self.ctx
        checkpoint = self.runtime._checkpoint
        batch = 0
        item: Any = None
        carried: Any = _NOTHING  # an item taken from the mailbox but not handled yet
        while True:
            if carried is not _NOTHING:
                item, carried = carried, _NOTHING
            else:
                try:
                    # Mailbox.poll inlined for the common case (items queued, no sender
                    # waiting).
                    item = items.popleft() if items and not mailbox._senders else mailbox.poll()
                    if item is EMPTY:
                        # Mailbox.get inlined: an idle actor waits here, one frame deep.
                        await checkpoint()
                        while (item := mailbox.poll()) is EMPTY:
                            if not resident and self._may_go_dormant():
                                return DORMANT
                            await mailbox.wait_for_item()
                        items = mailbox._items
                        batch = 0
                    else:
                        batch += 1
                        if batch >= CHECKPOINT_INTERVAL:
                            batch = 0
                            await checkpoint()
                except (EndOfStream, ClosedResourceError):
                    return None
            try:
                if isinstance(item, Envelope):
                    if self._stale(item):
                        continue
                    if item.deadline != _INF:
                        outcome = await self._under_deadlines(actor, item)
                        if type(outcome) is _Carry:
                            carried = outcome.item
                        elif outcome is not _NOTHING:
                            return outcome  # type: ignore[no-any-return]
                        continue
                    await self._serve(item, actor, ctx)
                else:
                    handle = actor.handle
                    await handle(item, ctx)
                    self.processed += 1
                    # The plain messages queued behind it are handled here, one check each
                    # fewer than above (a hot sender's run), until a request comes (it is
                    # carried up), a sender waits for room, or it is time to yield.
                    popleft = items.popleft
                    last = _LAST_BEFORE_CHECKPOINT
                    # Counted as the run ends, however it ends (a count per message cost more).
                    first = batch
                    try:
                        while (
                            items
                            and not mailbox._senders
                            and batch < last
                            and not self.stop_after_current
                        ):
                            item = popleft()
                            # Each kind of Envelope by exact type: isinstance (or a set of
                            # the kinds) cost a tenth of a message.
                            kind = type(item)
                            if kind is Ask or kind is StreamRequest:
                                carried = item
                                break
                            await handle(item, ctx)
                            batch += 1
                    finally:
                        self.processed += batch - first
            except BaseException as exc:
                if not isinstance(exc, Exception):
                    # Cancelled (stopped, or halted for a restart): whoever waits for this
                    # request must not wait forever.
                    if isinstance(item, Envelope):
                        item.fail(self.interrupted_error(item))
                    raise
                return self._crashed(item, exc)
            if self.stop_after_current:
                return None

    def _may_go_dormant(self) -> bool:
        scope = self._scope
        tasks = self.runtime._actor_tasks
        return (
            scope is not None
            and not scope.cancel_called
            and tasks is not None
            and not tasks.cancelled
        )

    async def _under_deadlines(self, actor: Actor, first: Envelope) -> Any:
        """Handle ``first`` and what follows under a cancel scope carrying each request's
        deadline, until the scope is cancelled. Returns :data:`_NOTHING` to go on without a
        scope, a :class:`_Carry` of an item to handle first, or what ends the loop (the crash,
        or None)."""
        scope = CancelScope()
        try:
            with scope:
                outcome = await self._messages_under(scope, actor, first)
        except BaseException:
            # Stopped or halted (perhaps as the deadline passed, too): whoever waits for the
            # request being handled must not wait forever.
            serving, self.serving = self.serving, None
            if serving is not None:
                serving.fail(self.interrupted_error(serving))
            raise
        serving, self.serving = self.serving, None
        if scope.cancelled_caught:
            if serving is not None:
                self.expired += 1
                serving.fail(self._expired_error(serving, "while it was being handled"))
            return _NOTHING
        return outcome

    async def _messages_under(self, scope: CancelScope, actor: Actor, first: Envelope) -> Any:
        """The message loop inside ``scope``, starting with ``first`` (a live request to handle
        under its deadline). Returns the crash, None for a normal exit, or a :class:`_Carry`
        of an item taken once the scope was cancelled (to be handled outside it). A
        cancellation that ends the scope (a handler cut short, or the last deadline passing
        while it waited for mail) is for the caller to report, once it knows whether the scope
        caught it."""
        mailbox = self.mailbox
        items = mailbox._items
        ctx = self.ctx
        runtime = self.runtime
        now = runtime._now
        checkpoint = runtime._checkpoint
        batch = 0
        armed = _INF  # the scope's deadline
        item: Any = first
        fetch = False
        while True:
            if fetch:
                try:
                    item = items.popleft() if items and not mailbox._senders else mailbox.poll()
                    if item is EMPTY:
                        # The last request's deadline is left set: moving it to the next
                        # request's costs less than clearing it and setting it again. If it
                        # passes first, the scope is cancelled (and left) while nothing runs.
                        # (Mailbox.get inlined, as in _loop.)
                        await checkpoint()
                        while (item := mailbox.poll()) is EMPTY:
                            await mailbox.wait_for_item()
                        batch = 0
                    else:
                        batch += 1
                        if batch >= CHECKPOINT_INTERVAL:
                            batch = 0
                            await checkpoint()
                except (EndOfStream, ClosedResourceError):
                    return None
                if scope.cancel_called:
                    # The scope was cancelled (the last deadline passed as this item came, or
                    # a shielded handler finished after its asker gave up), and that may not
                    # have reached us yet: the item is handled outside it.
                    return _Carry(item)
                if type(item) is Ask:
                    # _stale inlined for an ask, the common request.
                    if item._state == ABANDONED:
                        self.expired += 1  # its asker has gone
                        continue
                    deadline = item.deadline
                    if deadline != _INF and now() >= deadline:
                        self.expired += 1
                        item.fail(self._expired_error(item, "before it was handled"))
                        continue
                elif isinstance(item, Envelope) and self._stale(item):
                    continue
            fetch = True
            try:
                if isinstance(item, Envelope):
                    deadline = item.deadline
                    if deadline == _INF:
                        if armed != _INF:
                            scope.deadline = armed = _INF
                        await self._serve(item, actor, ctx)
                    else:
                        # The handler runs under the request's deadline. If the scope is
                        # cancelled meanwhile, the cancellation ends it, and _under_deadlines
                        # fails the request (self.serving).
                        if deadline != armed:
                            scope.deadline = armed = deadline
                        self.serving = item
                        if type(item) is Ask:
                            item.scope = scope  # the asker cancels it if it gives up
                            result = await actor.handle(item.message, ctx)
                            self.processed += 1
                            item.scope = None
                            self.serving = None
                            # Ask.resolve inlined.
                            if item._state == PENDING:
                                item._state = DONE
                                item._value = result
                                item._signal.set()
                            else:
                                self.late_replies += 1
                        else:
                            assert isinstance(item, StreamRequest)
                            result = await actor.handle(item.message, ctx)
                            self.processed += 1
                            await self._stream_out(item, result)
                            self.serving = None
                else:
                    if armed != _INF:
                        scope.deadline = armed = _INF
                    await actor.handle(item, ctx)
                    self.processed += 1
            except BaseException as exc:
                if not isinstance(exc, Exception):
                    # If the scope was cancelled, whether it caught this tells whether the
                    # request expired or the actor was stopped: the caller knows once it ends.
                    if isinstance(item, Envelope) and not scope.cancel_called:
                        item.fail(self.interrupted_error(item))
                    raise
                return self._crashed(item, exc)
            if self.stop_after_current:
                return None
            # If the scope was cancelled and a handler finished all the same (shielded), the
            # next wait raises the cancellation (ending the scope), or the check after the
            # next take leaves it.

    def _crashed(self, item: Any, exc: Exception) -> Exception:
        """Record a crash while handling ``item``; its asker gets ActorCrashed."""
        self.last_error = exc
        if isinstance(item, Envelope):
            crashed = ActorCrashed(
                f"actor {self.path} crashed handling {type(item.message).__name__}: "
                f"{describe(exc)}",
                path=self.path,
                cause=exc,
            )
            crashed.__cause__ = exc
            item.fail(crashed)
        return exc

    def _stale(self, envelope: Envelope) -> bool:
        """Drop (and count) a request whose asker has gone or whose deadline has passed, so
        that nobody works on what nobody waits for."""
        if envelope.abandoned():
            self.expired += 1
            return True
        deadline = envelope.deadline
        if deadline != _INF and self.runtime._now() >= deadline:
            self.expired += 1
            envelope.fail(self._expired_error(envelope, "before it was handled"))
            return True
        return False

    async def _serve(self, envelope: Envelope, actor: Actor, ctx: Context) -> None:
        """Handle a request without a deadline and answer it."""
        result = await actor.handle(envelope.message, ctx)
        self.processed += 1
        if type(envelope) is Ask:
            if not envelope.resolve(result):
                self.late_replies += 1
        else:
            assert isinstance(envelope, StreamRequest)
            await self._stream_out(envelope, result)

    async def _stream_out(self, request: StreamRequest, result: Any) -> None:
        send = request.send
        if not isinstance(result, AsyncIterable):
            result = _single(result)
        iterator = aiter(result)
        send_nowait = send.send_nowait
        try:
            async for item in iterator:
                # Fast path first: the producer awaits its own source, so it yields anyway;
                # it waits here only when the consumer is STREAM_BUFFER items behind.
                try:
                    send_nowait(item)
                except WouldBlock:
                    try:
                        await send.send(item)
                    except (BrokenResourceError, ClosedResourceError):
                        self.late_replies += 1  # the caller stopped listening
                        break
                except (BrokenResourceError, ClosedResourceError):
                    self.late_replies += 1
                    break
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        # A crash or a cancellation skips this; the loop fails the request with the cause.
        request.close()

    def _expired_error(self, envelope: Envelope, when: str) -> AskTimeout:
        return AskTimeout(
            f"the deadline of request {type(envelope.message).__name__} to {self.path} passed "
            f"{when}",
            path=self.path,
        )


async def _single(value: Any) -> AsyncIterator[Any]:
    yield value
