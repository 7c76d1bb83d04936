"""The analytics API: one call to start recording, then events from anywhere.

::

    from limelight import analytics

    client = analytics.initialize()  # SQLite at ~/.limelight/events.db
    run_id = client.start_run(user_id="u-1")
    client.log_event(Event.create_user_input("hello", run_id=run_id))
    client.end_run(run_id)
    analytics.shutdown()

The client runs an :class:`~limelight.actors.AnalyticsShipper` on its own event loop in a
background thread, so it works the same from plain threads, asyncio and trio. Inside your own
:class:`~limelight.runtime.Runtime`, :func:`initialize_in` spawns the shipper there instead.
While a client is initialized it is registered, with its attempt hook, in
:mod:`limelight._instrument`: that is how agents, tool executors and provider workers record
events without importing this module.
"""

from __future__ import annotations

from ._analytics import AnalyticsClient as AnalyticsClient
from ._analytics import AnalyticsConfig as AnalyticsConfig
from ._analytics import current as current
from ._analytics import get_client as get_client
from ._analytics import initialize as initialize
from ._analytics import initialize_in as initialize_in
from ._analytics import install_signal_handlers as install_signal_handlers
from ._analytics import shutdown as shutdown
from ._analytics import uninstall_signal_handlers as uninstall_signal_handlers
from ._tracking import Tracker as Tracker
from ._tracking import track_agent_step as track_agent_step
from ._tracking import track_llm_call as track_llm_call
from ._tracking import track_tool_use as track_tool_use
from .actors._shipper import ShipperStatistics as ShipperStatistics

__all__ = [
    "AnalyticsClient",
    "AnalyticsConfig",
    "ShipperStatistics",
    "Tracker",
    "current",
    "get_client",
    "initialize",
    "initialize_in",
    "install_signal_handlers",
    "shutdown",
    "track_agent_step",
    "track_llm_call",
    "track_tool_use",
    "uninstall_signal_handlers",
]
