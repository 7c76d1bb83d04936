"""The automatic analytics of agents and tool executors: which run an event belongs to, and
which event is its parent, so that a run's events form its agent tree.

Nothing here costs more than a dictionary lookup while analytics is not initialized: the
analytics module is looked up in ``sys.modules`` (never imported from here), and its client
asked for only when the module is loaded.
"""

from __future__ import annotations

import sys
from contextvars import ContextVar
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import uuid

    from ..analytics import AnalyticsClient

__all__ = ["Trace", "analytics_client", "current_trace", "parse_event_id"]


class Trace(NamedTuple):
    """Where new events go and hang: the client, the run, the parent event."""

    client: AnalyticsClient
    run_id: str
    parent: uuid.UUID


#: Set by a tool executor while a call runs, so a child agent called as a tool hangs its
#: run under that call.
current_trace: ContextVar[Trace | None] = ContextVar("limelight_trace", default=None)


def analytics_client() -> AnalyticsClient | None:
    """The initialized analytics client, or None."""
    analytics = sys.modules.get("limelight.analytics")
    if analytics is None:
        return None
    client: AnalyticsClient | None = analytics.current()
    return client


def parse_event_id(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    import uuid

    try:
        return uuid.UUID(value)
    except ValueError:
        return None
