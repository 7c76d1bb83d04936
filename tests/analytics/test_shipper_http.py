"""Kill the sink: the shipper delivering to a real local HTTP ingestion server (the HTTPSink
over TCP) that goes down, answers 503 with Retry-After, rejects, or hangs."""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import pytest

from limelight._spool import Spool
from limelight.actors._shipper import AnalyticsShipper
from limelight.runtime import Runtime
from limelight.schemas import Event
from limelight.sinks import HTTPSink

from ._servers import Fail, IngestServer, ingest_server

pytestmark = pytest.mark.anyio

FAST = {"flush_interval": 0.02, "retry_initial_delay": 0.01, "retry_max_delay": 0.1}


def make_events(n: int, prefix: str) -> list[Event]:
    return [Event.create_user_input(f"{prefix}{i}") for i in range(n)]


def ids(events: list[Event]) -> set[uuid.UUID]:
    return {e.event_id for e in events}


async def wait_for(server: IngestServer, n: int, timeout: float = 30.0) -> None:
    with anyio.fail_after(timeout):
        while len(server.events) < n:
            await anyio.sleep(0.02)


async def test_sink_down_for_a_while_then_back_every_event_arrives_exactly_once(
    tmp_path: Path,
) -> None:
    with ingest_server(api_key="k-123") as server:
        sink = HTTPSink(server.url, api_key="k-123", timeout=2.0)
        async with Runtime() as rt:
            shipper = await AnalyticsShipper.start(
                rt, [sink], spool_dir=tmp_path, batch_size=50, max_retries=2, **FAST
            )
            before = make_events(100, "before")
            for event in before:
                shipper.log_event(event)
            assert await shipper.flush(10)
            server.stop()  # down: connections refused
            during = make_events(400, "during")
            for i, event in enumerate(during):
                shipper.log_event(event)
                if i % 50 == 0:
                    await anyio.sleep(0.01)
            await anyio.sleep(0.3)  # retries fail, batches are spooled
            assert shipper.statistics().spooled > 0
            server.start()  # back, on the same port
            after = make_events(100, "after")
            for event in after:
                shipper.log_event(event)
            await wait_for(server, 600)
            assert await shipper.shutdown(10)
            stats = shipper.statistics()
            await sink.aclose()
        expected = ids(before) | ids(during) | ids(after)
        assert ids(server.events) == expected
        assert server.received == 600  # nothing arrived twice
        assert stats.lost == 0
        assert stats.failed == 0
        assert set(server.authorizations) == {"Bearer k-123"}
    assert Spool(tmp_path).pending() == 0  # the spool is empty again


async def test_503_with_retry_after_is_retried_and_a_400_is_dead_lettered(
    tmp_path: Path,
) -> None:
    with ingest_server() as server:
        sink = HTTPSink(server.url, timeout=2.0)
        async with Runtime() as rt:
            shipper = await AnalyticsShipper.start(rt, [sink], spool_dir=tmp_path, **FAST)
            server.fail_next(Fail(503, retry_after=0.05), Fail(429, retry_after=0.01))
            retried = make_events(20, "retried")
            for event in retried:
                shipper.log_event(event)
            assert await shipper.flush(10)
            assert shipper.statistics().retried == 2
            server.fail_next(Fail(400, body="schema mismatch"))
            rejected = make_events(5, "rejected")
            for event in rejected:
                shipper.log_event(event)
            assert not await shipper.flush(10)
            stats = shipper.statistics()
            await shipper.shutdown(5)
            await sink.aclose()
        assert ids(server.events) == ids(retried)
        assert stats.failed == 5
        assert server.statuses.count(400) == 1  # not retried
    letter = (tmp_path / "dead-letter" / "http.jsonl").read_text()
    assert "schema mismatch" in letter


async def test_shutdown_while_the_endpoint_hangs_is_bounded_and_resent_next_start(
    tmp_path: Path,
) -> None:
    with ingest_server() as server:
        sink = HTTPSink(server.url, timeout=30.0)
        events = make_events(300, "hung")
        async with Runtime() as rt:
            shipper = await AnalyticsShipper.start(
                rt, [sink], spool_dir=tmp_path, batch_size=100, sink_timeout=30.0, **FAST
            )
            server.hang()
            for event in events:
                shipper.log_event(event)
            await anyio.sleep(0.1)
            with anyio.fail_after(10):  # bounded
                assert not await shipper.shutdown(0.5)
            assert shipper.statistics().spooled == 300
            await sink.aclose()
        server.release()
        # The next start (a new process, say) sends the spooled events.
        sink2 = HTTPSink(server.url, timeout=5.0)
        async with Runtime() as rt:
            again = await AnalyticsShipper.start(rt, [sink2], spool_dir=tmp_path, **FAST)
            await wait_for(server, 300)
            assert await again.shutdown(10)
            await sink2.aclose()
        # A request that hung may have been stored after its client gave up: the endpoint
        # dedupes by event_id, so each event is stored exactly once.
        assert ids(server.events) == ids(events)


async def test_retry_after_zero_gets_backed_off_retries_not_a_burst(tmp_path: Path) -> None:
    """An endpoint answering 503 with ``Retry-After: 0`` three times: each retry still waits
    at least its backoff (a server may lengthen the wait, never shorten it)."""
    with ingest_server() as server:
        sink = HTTPSink(server.url, timeout=2.0)
        async with Runtime() as rt:
            shipper = await AnalyticsShipper.start(
                rt,
                [sink],
                spool_dir=tmp_path,
                flush_interval=0.02,
                retry_initial_delay=0.1,
                retry_max_delay=5.0,
                max_retries=5,
            )
            server.fail_next(*[Fail(503, retry_after=0) for _ in range(3)])
            event = Event.create_user_input("once")
            shipper.log_event(event)
            assert await shipper.flush(20)
            assert await shipper.shutdown(5)
            await sink.aclose()
        assert server.statuses == [503, 503, 503, 200]
        gaps = [b - a for a, b in zip(server.times, server.times[1:], strict=False)]
        for n, gap in enumerate(gaps):
            assert gap >= 0.1 * 2**n * 0.5  # the backoff before retry n + 1, jitter included
        assert ids(server.events) == {event.event_id}
