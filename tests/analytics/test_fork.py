"""The analytics client survives ``os.fork``: a child gets its own queue, thread and event
loop, the parent's queued events are not shipped twice, and both processes deliver theirs.

Delivery goes over real HTTP to one ingestion server in this process, which counts every
event it receives from either process, duplicates included."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from limelight import analytics
from limelight.analytics import AnalyticsConfig
from limelight.schemas import Event
from limelight.sinks import HTTPSink

from ._servers import ingest_server

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _child(n: int) -> int:
    """Runs in the forked child; its exit status tells the parent what it saw."""
    client = analytics.current()
    if client is None:
        return 10
    stats = client.statistics()
    if stats.queued != 0 or stats.queue_depth != 0:
        return 11  # the parent's queue leaked into the child
    for i in range(n):
        client.log_event(Event.create_user_input(f"child-{i}"))
    if not client.flush(20):
        return 12
    if client.statistics().sent != n:
        return 13
    return 0 if analytics.shutdown(10) else 14


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_parent_and_child_each_deliver_their_own_events_once(tmp_path: Path, backend: str) -> None:
    with ingest_server() as server:
        cfg = AnalyticsConfig(
            spool_dir=str(tmp_path / "spool"), flush_interval=60.0, backend=backend
        )
        client = analytics.initialize(config=cfg, sinks=[HTTPSink(server.url)])
        try:
            # Queued but not shipped at the moment of the fork (the interval is long).
            before = [Event.create_user_input(f"before-{i}") for i in range(50)]
            for event in before:
                client.log_event(event)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child process
                status = 1
                try:
                    status = _child(70)
                finally:
                    os._exit(status)
            after = [Event.create_user_input(f"after-{i}") for i in range(30)]
            for event in after:
                client.log_event(event)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            assert client.flush(20)
            stats = client.statistics()
        finally:
            assert analytics.shutdown(10)
        texts = sorted(e.payload.text for e in server.events)  # type: ignore[union-attr]
        assert server.received == 150  # 50 + 30 from the parent, 70 from the child: none twice
        assert len(texts) == 150
        assert sum(t.startswith("child-") for t in texts) == 70
        assert sum(t.startswith("before-") for t in texts) == 50
        assert stats.queued == stats.sent == 80
