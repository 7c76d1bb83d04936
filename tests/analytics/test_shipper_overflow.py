"""The shipper's queue bound under load: it is exact (never more than ``max_queue_size``
events in memory, however many threads log at once), and a running shipper whose sink is
slow or down overflows into the spool without losing or duplicating anything.

GIL switches are made very frequent here (``sys.setswitchinterval``) so that a bound that
only holds while no thread is interrupted mid-``log_event`` would be seen to break."""

from __future__ import annotations

import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from limelight.actors._shipper import AnalyticsShipper
from limelight.actors._spool import Spool
from limelight.errors import SinkUnavailable
from limelight.runtime import Runtime
from limelight.schemas import Event
from limelight.sinks import MemorySink

FAST: dict[str, Any] = {
    "flush_interval": 0.02,
    "retry_initial_delay": 0.005,
    "retry_max_delay": 0.05,
}
THREADS = 8


@pytest.fixture(autouse=True)
def _frequent_thread_switches() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def spooled_ids(directory: Path) -> list[uuid.UUID]:
    """Every event id stored in sealed segments under ``directory`` (repeats kept)."""
    spool = Spool(directory)
    return [
        e.event_id
        for key in spool.sink_keys()
        for path in spool.segments(key)
        for e in spool.read(path)
    ]


def log_from_threads(shipper: AnalyticsShipper, batches: list[list[Event]]) -> None:
    """Log each batch from its own thread, all starting together; blocking."""
    barrier = threading.Barrier(len(batches))

    def produce(events: list[Event]) -> None:
        barrier.wait()
        for event in events:
            shipper.log_event(event)

    threads = [threading.Thread(target=produce, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_the_queue_bound_is_exact_with_8_producer_threads(tmp_path: Path) -> None:
    """Nothing drains a shipper that has not started: exactly ``max_queue_size`` events are
    kept in memory and every other one is counted as dropped and spooled."""
    shipper = AnalyticsShipper([MemorySink()], spool_dir=tmp_path, max_queue_size=100)
    batches = [[Event.create_user_input(f"t{t}-{i}") for i in range(1000)] for t in range(8)]
    log_from_threads(shipper, batches)
    stats = shipper.statistics()
    assert stats.queue_depth == 100
    assert (stats.queued, stats.dropped, stats.spooled, stats.lost) == (100, 7900, 7900, 0)
    shipper.spool.seal()
    logged = {e.event_id for b in batches for e in b}
    on_disk = spooled_ids(tmp_path)
    in_memory = [e.event_id for e in shipper._buf]
    # Each event is in exactly one place.
    assert Counter(on_disk + in_memory) == Counter(logged)


@pytest.mark.anyio
@pytest.mark.parametrize("outage", ["slow", "down"])
async def test_a_running_shipper_overflows_to_the_spool_and_resends_exactly_once(
    tmp_path: Path, outage: str
) -> None:
    """The sink hangs (``slow``: later it answers; ``down``: later it fails, then comes back)
    while 8 threads and 20 tasks log far more than the queue holds. Every event is
    accounted for (queued, or dropped and spooled; none lost), and once the sink is back
    every one arrives exactly once."""
    bound = 300
    sink = MemorySink()
    sink.pause()  # the first write hangs until resume() or recover()
    if outage == "down":
        sink.fail(SinkUnavailable("connection refused"))
    threaded = [[Event.create_user_input(f"t{t}-{i}") for i in range(300)] for t in range(THREADS)]
    tasked = [[Event.create_user_input(f"k{k}-{i}") for i in range(30)] for k in range(20)]
    probe = Event.create_user_input("probe")
    logged = [probe.event_id] + [e.event_id for b in threaded + tasked for e in b]
    produced = len(logged) - 1
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(
            rt,
            [sink],
            spool_dir=tmp_path,
            batch_size=50,
            max_queue_size=bound,
            max_retries=1,
            sink_timeout=60,
            **FAST,
        )
        # The shipper takes the probe as its first batch and hangs in the sink's write:
        # from then on nothing leaves the queue until the sink is back.
        shipper.log_event(probe)
        with anyio.fail_after(10):
            while sink.attempts == 0:
                await anyio.sleep(0.005)

        async def task(events: list[Event]) -> None:
            for i, event in enumerate(events):
                shipper.log_event(event)
                if i % 5 == 0:
                    await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, log_from_threads, shipper, threaded)
            for events in tasked:
                tg.start_soon(task, events)

        stats = shipper.statistics()
        assert stats.queue_depth == bound  # full, and not one over
        assert stats.queued == 1 + bound  # the probe, in flight, and the queue
        assert stats.dropped == produced - bound
        assert stats.spooled == stats.dropped
        assert (stats.sent, stats.failed, stats.lost) == (0, 0, 0)
        shipper.spool.seal()
        on_disk = spooled_ids(tmp_path)
        assert len(on_disk) == len(set(on_disk)) == stats.dropped
        assert set(on_disk) <= set(logged) - {probe.event_id}

        if outage == "down":
            sink.resume()  # the hanging write fails now, and so does every later one
            assert not await shipper.flush(20)
            stats = shipper.statistics()
            assert stats.queue_depth == 0
            assert (stats.sent, stats.failed, stats.lost) == (0, 0, 0)
            assert not shipper.is_healthy()
        sink.recover()
        with anyio.fail_after(30):
            while len(sink.events) < len(logged):
                await anyio.sleep(0.02)
        assert await shipper.flush(10)

        # Every slot of the queue came back: it takes exactly `bound` events again.
        dropped = shipper.statistics().dropped
        more = [Event.create_user_input(f"more{i}") for i in range(bound + 1)]
        for event in more:  # no checkpoint: the shipper cannot take any meanwhile
            shipper.log_event(event)
        assert shipper.statistics().dropped == dropped + 1
        logged += [e.event_id for e in more]
        with anyio.fail_after(30):
            while len(sink.events) < len(logged):
                await anyio.sleep(0.02)
        assert await shipper.shutdown(10)
        stats = shipper.statistics()

    received = [e.event_id for e in sink.events]
    assert Counter(received) == Counter(logged)
    assert sink.duplicates == 0
    assert stats.lost == 0
    assert spooled_ids(tmp_path) == []
