"""The automatic analytics of agents and tool executors: each event's run and parent.

It tracks which run an event belongs to, and which event is its parent, so that a run's
events form its agent tree.

Events go to the recorder registered in :mod:`limelight._instrument` (the analytics client,
which ``analytics.initialize()`` registers); while none is, asking costs one attribute read.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, NamedTuple

from . import _instrument

if TYPE_CHECKING:
    import uuid

    from ._instrument import Recorder

__all__ = ["Trace", "analytics_client", "current_trace", "parse_event_id"]


class Trace(NamedTuple):
    """Where new events go and hang: the recorder, the run, the parent event."""

    client: Recorder
    run_id: str
    parent: uuid.UUID


#: Set by a tool executor while a call runs, so a child agent called as a tool hangs its
#: run under that call.
current_trace: ContextVar[Trace | None] = ContextVar("limelight_trace", default=None)


def analytics_client() -> Recorder | None:
    """The registered recorder (the initialized analytics client), or None."""
    active = _instrument.active
    return None if active is None else active.recorder


def parse_event_id(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    import uuid

    try:
        return uuid.UUID(value)
    except ValueError:
        return None
