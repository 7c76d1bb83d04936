"""Sinks that keep events in memory (for tests) or count and drop them (for benchmarks)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence

import anyio
import anyio.lowlevel

from ..errors import ConfigError, SinkError, SinkRejected
from ..schemas._events import Event

__all__ = ["MemorySink", "NullSink"]


class NullSink:
    """Counts what it is given and keeps nothing: the sink for benchmarks.

    :ivar events: events written so far (duplicates included).
    :ivar batches: batches written so far.
    """

    dedupes = False

    def __init__(self, *, name: str = "null") -> None:
        self.name = name
        self.events = 0
        self.batches = 0

    async def write(self, batch: Sequence[Event]) -> None:
        await anyio.lowlevel.checkpoint()
        self.events += len(batch)
        self.batches += 1

    async def aclose(self) -> None:
        await anyio.lowlevel.checkpoint()


class MemorySink:
    """Keeps every event once, in arrival order (it dedupes by ``event_id``): the sink for
    tests. It can be made to fail or to hang, to test what a shipper does then.

    :ivar writes: ``write`` calls that stored their batch.
    :ivar duplicates: events written again after they were stored (dropped here).
    :ivar attempts: every ``write`` call, failed ones included.
    """

    dedupes = True

    def __init__(self, *, name: str = "memory") -> None:
        self.name = name
        self.writes = 0
        self.duplicates = 0
        self.attempts = 0
        self._events: dict[uuid.UUID, Event] = {}
        self._lock = threading.Lock()
        self._failure: SinkError | None = None
        self._fail_count = 0
        self._paused = False
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    @property
    def events(self) -> list[Event]:
        """The stored events, in the order they first arrived."""
        with self._lock:
            return list(self._events.values())

    def fail(self, error: SinkError, *, times: int | None = None) -> None:
        """Make the next ``times`` writes (every write when ``None``) raise ``error`` and store
        nothing, until :meth:`recover`."""
        if times is not None and times < 1:
            raise ConfigError(f"times must be at least 1 (or None for every write), not {times}")
        with self._lock:
            self._failure = error
            self._fail_count = -1 if times is None else times

    def recover(self) -> None:
        """Writes succeed again (and a :meth:`pause` ends)."""
        with self._lock:
            self._failure = None
            self._fail_count = 0
            self._paused = False

    def pause(self) -> None:
        """Make writes hang (checking every 10 ms, cancellable) until :meth:`resume`."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    async def write(self, batch: Sequence[Event]) -> None:
        await anyio.lowlevel.checkpoint()
        self.attempts += 1
        # Polled: pause()/resume() come from any thread, where no anyio.Event can be set.
        while self._paused:  # noqa: ASYNC110
            await anyio.sleep(0.01)
        if self._closed:
            raise SinkRejected(f"{self.name} sink is closed; create a new one", sink=self.name)
        with self._lock:
            failure = self._failure
            if failure is not None:
                if self._fail_count > 0:
                    self._fail_count -= 1
                    if self._fail_count == 0:
                        self._failure = None
                raise failure.with_traceback(None)
            stored = self._events
            for event in batch:
                if event.event_id in stored:
                    self.duplicates += 1
                else:
                    stored[event.event_id] = event
            self.writes += 1

    async def aclose(self) -> None:
        await anyio.lowlevel.checkpoint()
        self._closed = True
