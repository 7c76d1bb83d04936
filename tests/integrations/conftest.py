from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from limelight import analytics
from limelight.schemas._events import Event, EventType, decode_events, encode_events
from limelight.sinks import MemorySink


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[MemorySink]:
    """Analytics initialized for the test, delivering to a MemorySink."""
    memory = MemorySink()
    config = analytics.AnalyticsConfig(spool_dir=str(tmp_path / "spool"), flush_interval=0.05)
    analytics.initialize(config=config, sinks=[memory])
    try:
        yield memory
    finally:
        analytics.shutdown(timeout=10)
    # Whatever a hook recorded travels: it encodes to the wire and decodes back the same.
    events = memory.events
    assert decode_events(encode_events(events)) == events


def by_type(events: list[Event], kind: EventType) -> list[Event]:
    return [e for e in events if e.event_type == kind]
