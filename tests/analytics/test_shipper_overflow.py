"""The shipper's queue bound under load: it is exact (never more than ``max_queue_size``
events waiting in memory for the disk, however many threads log at once), and what comes past
it is written to the spool at once, without losing or duplicating anything.

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

from limelight._spool import Spool
from limelight.actors._shipper import AnalyticsShipper
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
    """Every event id stored in the spool's segment files (repeats kept)."""
    spool = Spool(directory)
    return [e.event_id for path in spool.segment_files() for e in spool.read_file(path)]


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
    shipper.spool.release()
    logged = {e.event_id for b in batches for e in b}
    on_disk = spooled_ids(tmp_path)
    in_memory = [e.event_id for e in shipper._buf]
    # Each event is in exactly one place.
    assert Counter(on_disk + in_memory) == Counter(logged)


@pytest.mark.anyio
@pytest.mark.parametrize("outage", ["slow", "down"])
async def test_a_running_shipper_overflows_to_the_spool_and_delivers_exactly_once(
    tmp_path: Path, outage: str
) -> None:
    """8 threads and 20 tasks log far more than the queue holds within one commit window
    (the window is long here) while the sink hangs (``slow``: later it answers) or fails
    (``down``: later it comes back). Every event is accounted for (queued, or written to the
    spool at once; none lost), and once the sink is back every one arrives exactly once."""
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
            commit_interval=10.0,
            **FAST,
        )
        # A flush commits the probe at once; its delivery hangs in the sink's write.
        shipper.log_event(probe)
        assert not await shipper.flush(0.05)
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
        assert stats.dropped == produced - bound
        assert stats.spooled == 1 + stats.dropped  # the probe, and what came past the bound
        assert (stats.sent, stats.failed, stats.lost) == (0, 0, 0)
        on_disk = spooled_ids(tmp_path)
        in_memory = [e.event_id for e in shipper._buf]
        assert Counter(on_disk + in_memory) == Counter(logged)  # each in exactly one place

        if outage == "down":
            sink.resume()  # the hanging write fails now, and so does every later one
            assert not await shipper.flush(20)
            stats = shipper.statistics()
            assert stats.queue_depth == 0
            assert stats.spooled == len(logged)
            assert (stats.sent, stats.failed, stats.lost) == (0, 0, 0)
            assert not shipper.is_healthy()
        sink.recover()
        with anyio.fail_after(30):  # a flush commits what is queued; false while skipped
            while not await shipper.flush(5):
                await anyio.sleep(0.02)
        assert len(sink.events) == len(logged)

        # Every slot of the queue came back: it takes exactly `bound` events again.
        dropped = shipper.statistics().dropped
        more = [Event.create_user_input(f"more{i}") for i in range(bound + 1)]
        for event in more:  # no checkpoint: the shipper cannot commit any meanwhile
            shipper.log_event(event)
        assert shipper.statistics().dropped == dropped + 1
        logged += [e.event_id for e in more]
        assert await shipper.flush(10)
        assert await shipper.shutdown(10)
        stats = shipper.statistics()

    received = [e.event_id for e in sink.events]
    assert Counter(received) == Counter(logged)
    assert sink.duplicates == 0
    assert stats.lost == 0
    assert spooled_ids(tmp_path) == []
