"""The actor's mailbox: a bounded FIFO queue with one receiver and any number of senders.

The one receiver is the actor.

It keeps the semantics of an anyio memory object stream (``*_nowait`` raising ``WouldBlock``,
``ClosedResourceError`` once closed, ``EndOfStream`` once closed and drained) but not its
cost: measured in bench/kernel.py, the stream's bookkeeping for several receivers made
``tell`` 1.14x asyncio.Queue's throughput, a deque 2x. Waiting uses signals (``_signal``),
made only while someone actually waits, and the deque itself is made by the first put: an
empty deque costs ~700 bytes, a tenth of what an idle actor was allowed (``bench/kernel.py``).
"""

from __future__ import annotations

import math
import sys
from collections import deque
from collections.abc import Awaitable
from typing import Any, Final, cast

from anyio import ClosedResourceError, EndOfStream, WouldBlock
from anyio.lowlevel import checkpoint

from ._signal import Signal, new_signal

#: A hot sender or receiver on the nowait fast path yields to the loop this often.
CHECKPOINT_INTERVAL: Final = 256
#: A sender yields when its message makes the queue a multiple of CHECKPOINT_INTERVAL long
#: (a power of two): ``len(queue) & YIELD_MASK == 0``.
YIELD_MASK: Final = CHECKPOINT_INTERVAL - 1
#: What :meth:`Mailbox.poll` returns when there is nothing to take.
EMPTY: Final[Any] = object()
#: The items of every mailbox nothing was put into yet. Readers see an empty queue; nothing is
#: ever put into it (a put makes the mailbox's own deque first), and a bug that tried would
#: fail loudly (a tuple has no ``append``) instead of handing messages to other actors.
_NO_ITEMS: Final = cast("deque[Any]", ())


class Mailbox:
    """Bounded FIFO queue. ``capacity`` may be ``math.inf``.

    Senders that find it full wait in FIFO order; a receiver waits for an item. Closing wakes
    everyone: senders then get ``ClosedResourceError``, the receiver drains what is left and
    then gets ``EndOfStream``.
    """

    __slots__ = ("_closed", "_items", "_receiver", "_room", "_senders", "capacity")

    def __init__(self, capacity: float) -> None:
        self.capacity = capacity
        self._items: deque[Any] = _NO_ITEMS  # the deque is made by the first put
        self._receiver: Signal | None = None
        self._senders: deque[Signal] | None = None  # made on the first wait
        self._closed = False
        #: A put may simply append while fewer items than this are queued: the capacity (an
        #: int, so that the senders' fast path compares two ints), or 0 while it cannot (the
        #: deque is not made yet, or the mailbox is closed). One test for all three.
        self._room = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put_nowait(self, item: Any) -> None:
        """Enqueue without waiting.

        :raises WouldBlock: it is full.
        :raises ClosedResourceError: it is closed.
        """
        items = self._items
        if len(items) >= self._room:
            if self._closed:
                raise ClosedResourceError
            if items is _NO_ITEMS:
                items = self._items = deque()
                capacity = self.capacity
                self._room = sys.maxsize if capacity == math.inf else int(capacity)
            if len(items) >= self.capacity:
                raise WouldBlock
        items.append(item)
        receiver = self._receiver
        if receiver is not None:
            self._receiver = None
            receiver.set()

    async def put(self, item: Any) -> None:
        """Enqueue, waiting (in FIFO order with other waiting senders) while it is full."""
        while True:
            try:
                self.put_nowait(item)
                return
            except WouldBlock:
                pass
            # Awaited outside the except block, so no exception is kept alive while waiting.
            senders = self._senders
            if senders is None:
                senders = self._senders = deque()
            waiter = new_signal()
            senders.append(waiter)
            try:
                await waiter.wait()
            except BaseException:
                if waiter.is_set():
                    self._wake_sender()  # we were given the room: pass it on
                else:
                    senders.remove(waiter)
                raise

    def poll(self) -> Any:
        """Dequeue without waiting; :data:`EMPTY` when there is nothing (no exception: this
        is the receiver's hot path, and an idle actor hits it at every message).

        :raises EndOfStream: it is empty and closed.
        """
        items = self._items
        if items:
            item = items.popleft()
            if self._senders:
                self._wake_sender()
            return item
        if self._closed:
            raise EndOfStream
        return EMPTY

    def get_nowait(self) -> Any:
        """Dequeue without waiting.

        :raises WouldBlock: it is empty.
        :raises EndOfStream: it is empty and closed.
        """
        item = self.poll()
        if item is EMPTY:
            raise WouldBlock
        return item

    async def get(self) -> Any:
        """Dequeue, waiting for an item. One receiver at a time.

        It yields to the loop once before it parks: in a request/reply exchange the other side
        usually sends its next message meanwhile, and parking (an Event, a future, a wake-up)
        costs several times a yield. (An actor's message loop does the same inline, so that
        an idle actor does not keep a frame of this method.)
        """
        await checkpoint()
        while (item := self.poll()) is EMPTY:
            await self.wait_for_item()
        return item

    def wait_for_item(self) -> Awaitable[Any]:
        """Park the receiver until an item is put or the mailbox closes (then poll again).

        A plain method returning what to await: it adds no coroutine frame to the waiting
        receiver's. If the wait is cancelled, the signal it leaves behind is harmless: a put
        sets it for nobody, and the next wait replaces it."""
        waiter = self._receiver = new_signal()
        return waiter.wait()

    def _wake_sender(self) -> None:
        senders = self._senders
        if senders:
            senders.popleft().set()

    def close(self) -> None:
        """No more puts; wake the receiver and every waiting sender."""
        self._closed = True
        self._room = 0
        receiver = self._receiver
        if receiver is not None:
            self._receiver = None
            receiver.set()
        senders = self._senders
        while senders:
            senders.popleft().set()
