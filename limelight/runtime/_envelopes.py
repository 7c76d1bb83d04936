"""Envelopes: requests that want an answer (an ask, a stream), as an actor's loop reads them.

Plain tells travel bare. An envelope carries its deadline; the cell's loop drops one whose
deadline passed, and answers (or fails) the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._signal import Signal, new_signal

if TYPE_CHECKING:
    from anyio import CancelScope
    from anyio.streams.memory import MemoryObjectSendStream

#: An ask's states: waiting for its answer; answered (a reply or an error); given up by its
#: asker (cancelled, or timed out) before it was answered.
PENDING, DONE, ABANDONED = 0, 1, 2


class Envelope:
    """A request that wants an answer: an ask or a stream."""

    __slots__ = ("deadline", "message")

    def __init__(self, message: Any, deadline: float) -> None:
        self.message = message
        self.deadline = deadline

    def fail(self, error: BaseException) -> bool:
        raise NotImplementedError

    def abandoned(self) -> bool:
        raise NotImplementedError


class Ask(Envelope):
    """An ask: the reply goes into a one-shot slot the asker waits on."""

    __slots__ = ("_error", "_signal", "_state", "_value", "scope")

    def __init__(self, message: Any, deadline: float, signal: Signal | None = None) -> None:
        self.message = message
        self.deadline = deadline
        # A signal of the running loop's, unless given one (another thread's waiter: an ask
        # made off the loop, where no signal of the loop's can be made).
        self._signal = new_signal() if signal is None else signal
        self._state = PENDING
        self._value: Any = None
        self._error: BaseException | None = None
        #: The scope the handler runs in (asks with a deadline only, while handled): cancelled
        #: if the asker gives up, so nobody works on what nobody waits for.
        self.scope: CancelScope | None = None

    def resolve(self, value: Any) -> bool:
        """Deliver the reply; False when the asker has already gone (a late reply)."""
        if self._state != PENDING:
            return False
        self._state = DONE
        self._value = value
        self._signal.set()
        return True

    def fail(self, error: BaseException) -> bool:
        if self._state != PENDING:
            return False
        self._state = DONE
        self._error = error
        self._signal.set()
        return True

    def abandon(self) -> None:
        if self._state == PENDING:
            self._state = ABANDONED
            if self.scope is not None:
                self.scope.cancel()

    def expire(self) -> None:
        """The asker's own deadline passed (the runtime's deadline scheduler says so): abandon
        the request, and wake the asker, which then raises ``AskTimeout``."""
        if self._state == PENDING:
            self.abandon()
            self._signal.set()

    def orphan(self) -> None:
        """Nobody times this ask any more (the deadline scheduler stopped): wake the asker with
        the request still pending, to go on waiting under a cancel scope of its own."""
        if self._state == PENDING:
            self._signal.set()

    def abandoned(self) -> bool:
        return self._state == ABANDONED

    @property
    def pending(self) -> bool:
        return self._state == PENDING

    @property
    def resolved(self) -> bool:
        return self._state == DONE

    def outcome(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


class StreamRequest(Envelope):
    """A stream: replies go into a bounded memory stream the caller iterates. An error (crash,
    stop, expiry) is stored here before the stream is closed, so the caller raises it at the end
    instead of seeing a clean finish."""

    __slots__ = ("closed", "error", "send")

    def __init__(self, message: Any, deadline: float, send: MemoryObjectSendStream[Any]) -> None:
        self.message = message
        self.deadline = deadline
        self.send = send
        self.closed = False
        self.error: BaseException | None = None

    def close(self) -> None:
        self.closed = True
        self.send.close()

    def fail(self, error: BaseException) -> bool:
        if self.closed:
            return False
        self.error = error
        self.close()
        return True

    def abandoned(self) -> bool:
        return self.closed or self.send.statistics().open_receive_streams == 0
