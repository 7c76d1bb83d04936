"""The :class:`Sink` protocol: where the analytics shipper delivers batches of events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..schemas._events import Event

__all__ = ["Sink"]


@runtime_checkable
class Sink(Protocol):
    """A destination for analytics events.

    ``write`` stores a whole batch or raises: :class:`~limelight.errors.SinkUnavailable` when
    a later attempt may succeed (the sink is down, timed out, or said 429 / 5xx; its
    ``retry_after`` says how long the sink asked to wait), :class:`~limelight.errors.SinkRejected`
    when it will not (the sink refused the data). Blocking I/O runs in worker threads, so a
    sink works on asyncio and trio alike.

    :ivar name: a short name for logs and statistics (``"sqlite"``, ``"http"``).
    :ivar dedupes: whether writing an event twice (same ``event_id``) stores it once; the
        shipper's retries then deliver exactly once.
    """

    name: str
    dedupes: bool

    async def write(self, batch: Sequence[Event]) -> None:
        """Store every event of ``batch``, or raise a :class:`~limelight.errors.SinkError`."""
        ...

    async def aclose(self) -> None:
        """Release the sink's resources (connections, files); idempotent."""
        ...
