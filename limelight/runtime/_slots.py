"""Slots: a counting limiter for hot paths.

anyio's ``CapacityLimiter`` and ``Semaphore`` checkpoint on every acquire, even when a slot
is free; that checkpoint (a shielded cancel scope and a trip through the event loop) cost
about a tenth of an agent's turn in ``bench/agents.py``. ``Slots`` takes a free slot without
yielding and parks only when none is free. A caller that takes one without waiting must
reach a checkpoint soon after on its own (the work it guards always does: a call to an actor
or a tool).

Waiters are served in arrival order, and a released slot is handed straight to the first of
them, so a newcomer cannot overtake a waiter.
"""

from __future__ import annotations

from collections import deque
from types import TracebackType

from ._signal import Signal, new_signal

__all__ = ["Slots"]


class Slots:
    """``total`` slots; ``async with slots:`` holds one for the duration of the block."""

    __slots__ = ("_free", "_total", "_waiters")

    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError(f"Slots needs at least one slot, got {total}")
        self._total = total
        self._free = total
        #: Made by the first wait: an empty deque costs ~600 bytes, and most slots never see
        #: one (an agent's tool executor holds one, 10,000 agents in ``bench/agents.py``).
        self._waiters: deque[Signal] | None = None

    @property
    def total(self) -> int:
        return self._total

    @property
    def free(self) -> int:
        """Slots nobody holds or has been handed."""
        return self._free

    @property
    def waiting(self) -> int:
        return len(self._waiters) if self._waiters else 0

    def take(self) -> bool:
        """Take a slot if one is free and nobody waits for one (then ``True``): what
        :meth:`acquire` does without waiting. Give it back with :meth:`release`."""
        if self._free and not self._waiters:
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a slot: at once when one is free (no checkpoint), else wait in line."""
        if self._free and not self._waiters:
            self._free -= 1
            return
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = deque()
        handed = new_signal()
        waiters.append(handed)
        try:
            await handed.wait()
        except BaseException:
            if handed.is_set():
                self.release()  # handed a slot while being cancelled: pass it on
            else:
                waiters.remove(handed)
            raise

    def release(self) -> None:
        """Give a slot back: to the first waiter when there is one."""
        waiters = self._waiters
        if waiters:
            waiters.popleft().set()
        elif self._free < self._total:
            self._free += 1
        else:
            raise RuntimeError("Slots.release() without a matching acquire()")

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
