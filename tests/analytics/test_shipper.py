"""The AnalyticsShipper actor: batching, retries, dead letters, the write-ahead spool (a sink
down, a lagging sink read back from disk, the shutdown deadline, overflow), replay without
duplicates, producers on threads and tasks.

Sinks here are the real MemorySink (which can be told to fail or hang) and SQLiteSink; the
HTTP kill-the-sink tests are in test_shipper_http.py, the process-kill and disk tests in
test_durability.py."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from limelight._spool import DEAD_LETTER, Spool
from limelight.actors._shipper import AnalyticsShipper, ShipperStatistics
from limelight.errors import ConfigError, SinkRejected, SinkUnavailable
from limelight.runtime import Runtime
from limelight.schemas import Event
from limelight.sinks import MemorySink, SQLiteSink

pytestmark = pytest.mark.anyio

FAST: dict[str, Any] = {
    "flush_interval": 0.02,
    "retry_initial_delay": 0.005,
    "retry_max_delay": 0.05,
}


def make_events(n: int, prefix: str = "e") -> list[Event]:
    return [Event.create_user_input(f"{prefix}{i}", run_id="r") for i in range(n)]


def ids(events: list[Event]) -> set[uuid.UUID]:
    return {e.event_id for e in events}


def spooled_events(directory: Path) -> list[Event]:
    """Every event in the spool's segment files (any owner; repeats kept)."""
    spool = Spool(directory)
    return [e for path in spool.segment_files() for e in spool.read_file(path)]


class CountingSink(MemorySink):
    """A MemorySink that also records the size of every batch it was given."""

    def __init__(self, name: str = "memory") -> None:
        super().__init__(name=name)
        self.sizes: list[int] = []

    async def write(self, batch: Any) -> None:
        self.sizes.append(len(batch))
        await super().write(batch)


async def test_delivers_every_event_in_batches_of_at_most_batch_size(tmp_path: Path) -> None:
    sink = CountingSink()
    events = make_events(1050)
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(
            rt, [sink], spool_dir=tmp_path, batch_size=100, **FAST
        )
        for event in events:
            shipper.log_event(event)
        assert await shipper.flush(10)
        stats = shipper.statistics()
    assert [e.event_id for e in sink.events] == [e.event_id for e in events]  # in order
    assert max(sink.sizes) <= 100
    assert sum(sink.sizes) == 1050
    assert stats.queued == stats.sent == stats.spooled == 1050  # every one went to disk first
    assert (stats.failed, stats.dropped, stats.lost, stats.pending) == (0, 0, 0, 0)
    assert stats.batches == len(sink.sizes)
    assert stats.success_rate == 1.0
    assert stats.queue_depth == 0


async def test_batches_are_split_by_bytes(tmp_path: Path) -> None:
    sink = CountingSink()
    big = [Event.create_user_input("x" * 1000) for _ in range(40)]
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(
            rt, [sink], spool_dir=tmp_path, batch_size=1000, max_batch_bytes=5000, **FAST
        )
        for event in big:
            shipper.log_event(event)
        assert await shipper.flush(10)
    assert ids(sink.events) == ids(big)
    assert max(sink.sizes) <= 4  # ~1.1 KB each: at most 4 fit in 5,000 bytes
    assert len(sink.sizes) >= 10


async def test_an_incomplete_batch_goes_after_the_interval(tmp_path: Path) -> None:
    sink = MemorySink()
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(
            rt, [sink], spool_dir=tmp_path, batch_size=1000, flush_interval=0.05
        )
        shipper.log_event(Event.create_user_input("lonely"))
        with anyio.fail_after(10):
            while not sink.events:
                await anyio.sleep(0.01)
        await shipper.shutdown(5)
    assert [e.payload.text for e in sink.events] == ["lonely"]  # type: ignore[union-attr]


async def test_retryable_failures_are_retried_then_delivered_once(tmp_path: Path) -> None:
    sink = MemorySink()
    sink.fail(SinkUnavailable("503 from the sink", retry_after=0.01), times=2)
    events = make_events(50)
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(rt, [sink], spool_dir=tmp_path, **FAST)
        for event in events:
            shipper.log_event(event)
        assert await shipper.flush(10)
        stats = shipper.statistics()
    assert ids(sink.events) == ids(events)
    assert sink.duplicates == 0
    assert sink.attempts == 3
    assert stats.retried == 2
    assert stats.spooled == stats.sent == 50
    assert stats.pending == 0


async def test_a_rejected_batch_is_dead_lettered_not_retried(tmp_path: Path) -> None:
    sink = MemorySink()
    sink.fail(SinkRejected("400: bad data", status=400), times=1)
    events = make_events(10)
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(rt, [sink], spool_dir=tmp_path, **FAST)
        for event in events:
            shipper.log_event(event)
        assert not await shipper.flush(10)  # not all delivered
        stats = shipper.statistics()
        assert stats.pending == 0  # settled: kept as a dead letter, not retried
        assert await shipper.shutdown(5)  # nothing failed since that flush said so
    assert sink.attempts == 1
    assert sink.events == []
    assert stats.failed == 10
    assert stats.retried == 0
    letter = (tmp_path / DEAD_LETTER / "memory.jsonl").read_bytes().splitlines()
    assert b"400: bad data" in letter[0]
    assert len(letter) == 11  # a header line, then the events
    assert spooled_events(tmp_path) == []  # settled: deleted from the spool, never replayed


async def test_sink_down_past_retries_waits_in_the_spool_then_is_sent_when_back(
    tmp_path: Path,
) -> None:
    sink = MemorySink()
    sink.fail(SinkUnavailable("connection refused"))
    events = make_events(300)
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(
            rt, [sink], spool_dir=tmp_path, batch_size=100, max_retries=1, **FAST
        )
        for event in events:
            shipper.log_event(event)
        assert not await shipper.flush(10)  # the sink gave up for now: not delivered
        assert not shipper.is_healthy()
        stats = shipper.statistics()
        assert stats.spooled == stats.pending == 300
        assert stats.sent == 0
        assert ids(spooled_events(tmp_path)) == ids(events)
        sink.recover()
        later = make_events(5, "later")
        for event in later:
            shipper.log_event(event)
        with anyio.fail_after(20):
            while len(sink.events) < 305:
                await anyio.sleep(0.02)
        assert await shipper.shutdown(5)
        stats = shipper.statistics()
    assert ids(sink.events) == ids(events) | ids(later)
    assert sink.duplicates == 0
    assert stats.sent == 305
    assert stats.pending == 0
    assert spooled_events(tmp_path) == []  # every sink confirmed them: deleted


async def test_a_lagging_sink_reads_back_from_disk_what_memory_let_go(tmp_path: Path) -> None:
    """Memory keeps at most ``max_queue_size`` committed events; a sink that is down longer
    gets the older ones read back from the spool, once each."""
    sink = MemorySink()
    sink.fail(SinkUnavailable("connection refused"))
    events = make_events(300)
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(
            rt, [sink], spool_dir=tmp_path, max_queue_size=100, max_retries=0, **FAST
        )
        for step in range(3):  # at most the bound at a time: nothing overflows
            for event in events[step * 100 : (step + 1) * 100]:
                shipper.log_event(event)
            with anyio.fail_after(10):
                while shipper.statistics().spooled < (step + 1) * 100:
                    await anyio.sleep(0.01)
        assert shipper.statistics().dropped == 0
        sink.recover()
        with anyio.fail_after(20):
            while len(sink.events) < 300:
                await anyio.sleep(0.02)
        assert await shipper.shutdown(5)
        stats = shipper.statistics()
    assert [e.event_id for e in sink.events] == [e.event_id for e in events]  # in order
    assert sink.duplicates == 0
    assert stats.replayed >= 200  # at least the 200 that memory let go came from disk
    assert stats.sent == 300


async def test_overflow_is_counted_written_to_disk_and_delivered(tmp_path: Path) -> None:
    sink = CountingSink()
    events = make_events(250)
    # Not started yet: nothing commits the queue, so 100 fit and 150 overflow to disk.
    first = AnalyticsShipper([sink], spool_dir=tmp_path, max_queue_size=100, batch_size=40, **FAST)
    for event in events:
        first.log_event(event)  # never blocks, never raises
    stats = first.statistics()
    assert (stats.queued, stats.dropped, stats.queue_depth) == (100, 150, 100)
    assert stats.spooled == 150  # on disk already
    assert ids(spooled_events(tmp_path)) == ids(events[100:])
    async with Runtime() as rt:
        await rt.spawn(first, name="first")
        assert await first.flush(10)  # the overflow included: it was accepted before
        stats = first.statistics()
        assert await first.shutdown(5)
    assert max(sink.sizes) <= 40
    assert ids(sink.events) == ids(events)
    assert sink.duplicates == 0
    assert stats.replayed == 150  # read back from disk
    assert stats.spooled == 250
    assert spooled_events(tmp_path) == []
    # The next start finds nothing left to send.
    async with Runtime() as rt:
        second = await AnalyticsShipper.start(rt, [sink], spool_dir=tmp_path, **FAST)
        assert await second.shutdown(5)
        assert second.statistics().replayed == 0
    assert sink.duplicates == 0


async def test_shutdown_is_bounded_while_the_sink_hangs_and_the_rest_is_resent(
    tmp_path: Path,
) -> None:
    sink = MemorySink()
    sink.pause()  # every write hangs
    events = make_events(500)
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(
            rt, [sink], spool_dir=tmp_path, batch_size=100, sink_timeout=30, **FAST
        )
        for event in events:
            shipper.log_event(event)
        await anyio.sleep(0.05)  # a write is hanging now
        with anyio.fail_after(10):  # bounded: the 0.3 s deadline plus closing the spool
            assert not await shipper.shutdown(0.3)
        assert shipper.closed
        stats = shipper.statistics()
        assert stats.spooled == stats.pending == 500
        assert stats.queue_depth == 0
        # Events logged after shutdown are not lost either: they go to the spool.
        extra = Event.create_user_input("after shutdown")
        shipper.log_event(extra)
        assert shipper.statistics().spooled == 501
        shipper.spool.release()  # as the process exiting would: the next start adopts it
    assert sink.events == []
    assert ids(spooled_events(tmp_path)) == ids(events) | {extra.event_id}
    sink.recover()
    async with Runtime() as rt:
        again = await AnalyticsShipper.start(rt, [sink], spool_dir=tmp_path, **FAST)
        with anyio.fail_after(20):
            while len(sink.events) < 501:
                await anyio.sleep(0.02)
        assert await again.shutdown(5)
    assert ids(sink.events) == ids(events) | {extra.event_id}
    assert sink.duplicates == 0


async def test_flush_is_bounded_while_the_sink_hangs(tmp_path: Path) -> None:
    sink = MemorySink()
    sink.pause()
    events = make_events(20)
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(
            rt, [sink], spool_dir=tmp_path, sink_timeout=30, **FAST
        )
        for event in events:
            shipper.log_event(event)
        with anyio.fail_after(10):
            assert not await shipper.flush(0.2)
        stats = shipper.statistics()
        assert stats.spooled == stats.pending == 20  # durable, not delivered
        assert Counter(e.event_id for e in spooled_events(tmp_path)) == Counter(
            e.event_id for e in events
        )
        sink.recover()  # the hanging write goes through now
        assert await shipper.flush(5)
        assert await shipper.shutdown(5)
    assert Counter(e.event_id for e in sink.events) == Counter(e.event_id for e in events)
    assert sink.duplicates == 0
    assert spooled_events(tmp_path) == []


async def test_a_failing_sink_does_not_hold_back_or_duplicate_into_the_healthy_one(
    tmp_path: Path,
) -> None:
    good, bad = MemorySink(name="good"), MemorySink(name="bad")
    bad.fail(SinkUnavailable("down"))
    events = make_events(200)
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(
            rt, [good, bad], spool_dir=tmp_path, batch_size=50, max_retries=1, **FAST
        )
        for event in events:
            shipper.log_event(event)
        assert not await shipper.flush(10)
        assert ids(good.events) == ids(events)
        bad.recover()
        with anyio.fail_after(20):
            while len(bad.events) < 200:
                await anyio.sleep(0.02)
        await shipper.shutdown(5)
    assert ids(bad.events) == ids(events)
    # Per-sink spool: the replay went to the failed sink only.
    assert good.duplicates == 0
    assert good.attempts == 4  # 200 / 50, and nothing replayed to it


async def test_producers_on_8_threads_and_many_tasks_lose_nothing(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path / "events.db")
    per_thread, tasks, per_task = 2000, 50, 40
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(
            rt, [sink], spool_dir=tmp_path / "spool", batch_size=500, **FAST
        )

        def produce(t: int) -> None:
            for i in range(per_thread):
                shipper.log_event(Event.create_user_input(f"t{t}-{i}"))

        async def task(k: int) -> None:
            for i in range(per_task):
                shipper.log_event(Event.create_user_input(f"k{k}-{i}"))
                if i % 10 == 0:
                    await anyio.lowlevel.checkpoint()

        threads = [threading.Thread(target=produce, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        async with anyio.create_task_group() as tg:
            for k in range(tasks):
                tg.start_soon(task, k)

        def join() -> None:
            for thread in threads:
                thread.join()

        await anyio.to_thread.run_sync(join)
        assert await shipper.shutdown(30)
        stats = shipper.statistics()
        count = await sink.count()
        await sink.aclose()
    total = 8 * per_thread + tasks * per_task
    assert stats.queued == total
    assert stats.sent == total
    assert (stats.dropped, stats.failed, stats.lost) == (0, 0, 0)
    assert count == total


async def test_statistics_is_a_frozen_record(tmp_path: Path) -> None:
    shipper = AnalyticsShipper([MemorySink()], spool_dir=tmp_path)
    stats = shipper.statistics()
    assert isinstance(stats, ShipperStatistics)
    with pytest.raises(AttributeError):
        stats.sent = 1  # type: ignore[misc]
    assert not shipper.is_healthy()  # not started


async def test_a_sink_that_raises_a_bug_is_treated_as_unavailable(tmp_path: Path) -> None:
    class Buggy(MemorySink):
        def __init__(self) -> None:
            super().__init__(name="buggy")
            self.broken = True

        async def write(self, batch: Any) -> None:
            if self.broken:
                raise KeyError("a bug in the sink")
            await super().write(batch)

    sink = Buggy()
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(
            rt, [sink], spool_dir=tmp_path, max_retries=1, **FAST
        )
        events = make_events(5)
        for event in events:
            shipper.log_event(event)
        assert not await shipper.flush(10)
        sink.broken = False
        with anyio.fail_after(20):
            while len(sink.events) < 5:
                await anyio.sleep(0.02)
        await shipper.shutdown(5)
    assert ids(sink.events) == ids(events)


async def test_runtime_exit_without_shutdown_delivers_what_it_can(tmp_path: Path) -> None:
    sink = MemorySink()
    events = make_events(30)
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(rt, [sink], spool_dir=tmp_path, flush_interval=60.0)
        for event in events:
            shipper.log_event(event)
    assert ids(sink.events) == ids(events)


def test_bad_options_raise_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least one sink"):
        AnalyticsShipper([], spool_dir=tmp_path)
    with pytest.raises(ConfigError, match="batch_size"):
        AnalyticsShipper([MemorySink()], spool_dir=tmp_path, batch_size=0)
    with pytest.raises(ConfigError, match="max_queue_size"):
        AnalyticsShipper([MemorySink()], spool_dir=tmp_path, max_queue_size=0)
    with pytest.raises(ConfigError, match="commit_interval"):
        AnalyticsShipper([MemorySink()], spool_dir=tmp_path, commit_interval=0)
    with pytest.raises(ConfigError, match="fsync"):
        AnalyticsShipper([MemorySink()], spool_dir=tmp_path, fsync="sometimes")
    with pytest.raises(ConfigError, match="retry_initial_delay"):
        AnalyticsShipper([MemorySink()], spool_dir=tmp_path, retry_initial_delay=-1.0)
    with pytest.raises(ConfigError, match="retry_max_delay"):
        AnalyticsShipper([MemorySink()], spool_dir=tmp_path, retry_max_delay=-0.5)


def test_two_sinks_with_one_name_get_their_own_spool_keys(tmp_path: Path) -> None:
    shipper = AnalyticsShipper([MemorySink(), MemorySink()], spool_dir=tmp_path)
    assert [s.key for s in shipper._sinks] == ["memory", "memory-2"]


async def test_a_crash_is_restarted_by_the_supervisor_and_the_batch_in_flight_kept(
    tmp_path: Path,
) -> None:
    """A bug inside the shipper is simulated by making its batch picking raise once (the
    only patched part): the actor crashes, its supervisor restarts it, and the events that
    were waiting are delivered after the restart."""
    sink = MemorySink()
    events = make_events(40)
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(rt, [sink], spool_dir=tmp_path, **FAST)
        real_next = shipper._next_batch
        calls = 0

        def next_once_broken(state: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("a bug in the shipper")
            return real_next(state)

        shipper._next_batch = next_once_broken  # type: ignore[method-assign]
        for event in events:
            shipper.log_event(event)
        assert await shipper.flush(10)
        [node] = rt.tree().children
        assert node.path == "/analytics"
        assert node.stats is not None
        assert node.stats.restarts == 1
        await shipper.shutdown(5)
    assert ids(sink.events) == ids(events)


async def test_an_old_layout_spool_file_is_adopted_and_delivered(tmp_path: Path) -> None:
    """Files of the spool before the write-ahead log (``<sink>/*.jsonl``, ``_all/*.jsonl``)
    are adopted at start: per-sink ones go to that sink only."""
    from limelight.schemas import encode_event

    one, both = make_events(3, "one"), make_events(2, "both")
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "00000000000000000001-1-1.jsonl").write_bytes(
        b"".join(encode_event(e) + b"\n" for e in one)
    )
    (tmp_path / "_all").mkdir()
    (tmp_path / "_all" / "00000000000000000002-1-1.jsonl").write_bytes(
        b"".join(encode_event(e) + b"\n" for e in both) + b'{"torn'
    )
    first, second = MemorySink(), MemorySink(name="other")
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(rt, [first, second], spool_dir=tmp_path, **FAST)
        with anyio.fail_after(20):
            while len(first.events) < 5 or len(second.events) < 2:
                await anyio.sleep(0.02)
        assert await shipper.shutdown(5)
    assert ids(first.events) == ids(one) | ids(both)
    assert ids(second.events) == ids(both)
    assert list((tmp_path / "memory").iterdir()) == []
    assert spooled_events(tmp_path) == []


class TimedSink(MemorySink):
    """Records the (virtual) time of every write attempt."""

    def __init__(self) -> None:
        super().__init__(name="timed")
        self.times: list[float] = []

    async def write(self, batch: Any) -> None:
        self.times.append(anyio.current_time())
        await super().write(batch)


def _mock_clock() -> Any:
    """Virtual time that jumps once the loop has been idle for 1 ms of real time, not at once:
    the shipper's committer and disk work run in threads on real time, and a clock that jumps
    whenever every task waits would race through the virtual deadlines while a thread works
    (each jump a busy turn of the loop, holding the GIL the thread needs), so that the test's
    timeout ran out before the first commit on a slow disk."""
    trio_testing = pytest.importorskip("trio.testing")
    return trio_testing.MockClock(autojump_threshold=0.001)


@pytest.mark.parametrize("anyio_backend", [pytest.param(("trio", {"clock": _mock_clock()}))])
async def test_retry_after_is_honoured_and_backoff_grows_with_jitter(tmp_path: Path) -> None:
    """On trio's MockClock (virtual time): the wait before a retry is the sink's Retry-After
    when it gives one, else exponential backoff with up to 50% jitter."""
    sink = TimedSink()
    sink.fail(SinkUnavailable("429", retry_after=30.0), times=1)
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(
            rt,
            [sink],
            spool_dir=tmp_path,
            flush_interval=0.01,
            retry_initial_delay=1.0,
            retry_max_delay=60.0,
            max_retries=5,
        )
        shipper.log_event(Event.create_user_input("a"))
        with anyio.fail_after(100):
            while not sink.events:
                await anyio.sleep(0.5)
        first, second = sink.times
        assert 29.999 <= second - first < 30.5
        sink.times.clear()
        sink.fail(SinkUnavailable("503"), times=3)
        shipper.log_event(Event.create_user_input("b"))
        with anyio.fail_after(100):
            while len(sink.events) < 2:
                await anyio.sleep(0.5)
        gaps = [b - a for a, b in zip(sink.times, sink.times[1:], strict=False)]
        assert len(gaps) == 3
        for n, gap in enumerate(gaps):
            base = 1.0 * 2**n
            assert base * 0.5 - 1e-6 <= gap <= base + 0.05
        assert shipper.statistics().retried == 4
        await shipper.shutdown(5)


@pytest.mark.parametrize("anyio_backend", [pytest.param(("trio", {"clock": _mock_clock()}))])
async def test_retry_after_zero_does_not_turn_backoff_off(tmp_path: Path) -> None:
    """On trio's MockClock: a sink that answers "retry after 0 s" each time still gets
    backed-off retries (a server may lengthen the wait, never shorten it), not a burst."""
    sink = TimedSink()
    sink.fail(SinkUnavailable("503", retry_after=0.0), times=3)
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(
            rt,
            [sink],
            spool_dir=tmp_path,
            flush_interval=0.01,
            retry_initial_delay=1.0,
            retry_max_delay=60.0,
            max_retries=5,
        )
        shipper.log_event(Event.create_user_input("a"))
        with anyio.fail_after(100):
            while not sink.events:
                await anyio.sleep(0.5)
        gaps = [b - a for a, b in zip(sink.times, sink.times[1:], strict=False)]
        assert len(gaps) == 3
        for n, gap in enumerate(gaps):
            assert gap >= 1.0 * 2**n * 0.5 - 1e-6  # the backoff, jitter included
        assert shipper.statistics().retried == 3
        await shipper.shutdown(5)


async def test_a_flush_does_not_wait_for_the_batch_interval(tmp_path: Path) -> None:
    """An incomplete batch may wait ``flush_interval`` (a minute here), but not when a
    flush asks for it: the flush ends as soon as the events are delivered."""
    sink = MemorySink()
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(
            rt, [sink], spool_dir=tmp_path, batch_size=1000, flush_interval=60.0
        )
        for n in range(3):
            event = Event.create_user_input(f"lonely {n}")
            shipper.log_event(event)
            with anyio.fail_after(10):  # committed by the timer, before the flush asks
                while shipper.statistics().spooled < n + 1:
                    await anyio.sleep(0.01)
            assert await shipper.flush(5)
            assert event.event_id in ids(sink.events)
        assert await shipper.shutdown(5)
