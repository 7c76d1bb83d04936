"""Accepted means durable: real processes killed with SIGKILL or stopped by SIGTERM / SIGINT,
flush only true once everything before it arrived, losses counted and logged, a full disk, a
segment that cannot be read, and a segment whose writer is alive or dead (flock, not pids).

The only mock in this file is the spool's ``os.write`` made to fail like a full disk (a short
write, then ENOSPC): a real full filesystem cannot be made here."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from limelight import _spool
from limelight._spool import QUARANTINE, Spool
from limelight.actors._shipper import AnalyticsShipper
from limelight.runtime import Runtime
from limelight.schemas import Event, encode_event
from limelight.sinks import HTTPSink, MemorySink, SQLiteSink, read_events

from ._procs import event_id
from ._servers import IngestServer, ingest_server

REPO = Path(__file__).resolve().parents[2]
FAST: dict[str, Any] = {
    "flush_interval": 0.02,
    "retry_initial_delay": 0.01,
    "retry_max_delay": 0.1,
}


def make_events(n: int, prefix: str = "e") -> list[Event]:
    return [Event.create_user_input(f"{prefix}{i}") for i in range(n)]


def ids(events: list[Event]) -> set[uuid.UUID]:
    return {e.event_id for e in events}


@contextlib.contextmanager
def spawn(*args: object) -> Iterator[subprocess.Popen[str]]:
    """A child running ``tests/analytics/_procs.py``; killed (if still running) at the end."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.analytics._procs", *map(str, args)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=30)  # closes the pipes


def first_line(child: subprocess.Popen[str]) -> str:
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line:  # it died: say why
        child.wait(10)
        raise AssertionError(f"the child exited ({child.returncode}): {child.stderr.read()}")  # type: ignore[union-attr]
    return line.strip()


class ShortThenFull:
    """``os.write`` on a full disk: the first call of a write writes half and returns that
    (a short write), the next raises ENOSPC; and so on."""

    def __init__(self) -> None:
        self.short = False
        self.calls = 0

    def __call__(self, fd: int, data: Any) -> int:
        self.calls += 1
        if not self.short and len(data) > 1:
            self.short = True
            return os.write(fd, bytes(data[: len(data) // 2]))
        self.short = False
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# -- processes ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_events_committed_before_a_kill_9_are_delivered_after_a_restart(
    tmp_path: Path,
) -> None:
    """A child logs 500 events to SQLite and to an HTTP endpoint that is down (it never
    flushes) and is killed with SIGKILL well after the commit window (50 ms): a restart on
    the same spool delivers every one to both sinks, each stored once."""
    n = 500
    spool, db = tmp_path / "spool", tmp_path / "events.db"
    server = IngestServer()
    server.start()
    server.stop()  # its port, with nobody listening: the HTTP sink is down
    with spawn("log_to_sqlite_and_http", spool, db, server.url, n) as child:
        assert first_line(child) == "logged"
        await anyio.sleep(1.0)  # 20 commit windows
        child.kill()  # SIGKILL: no handler, no exit hook, no flush
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    expected = {event_id(i) for i in range(n)}
    server.start()
    try:
        sqlite, http = SQLiteSink(db), HTTPSink(server.url, timeout=5.0)
        async with Runtime() as rt:
            shipper = await AnalyticsShipper.start(rt, [sqlite, http], spool_dir=spool, **FAST)
            with anyio.fail_after(30):
                # Until the adopted segment is delivered to both sinks and deleted (by the
                # shipper's housekeeping, while it runs). Shutdown waits for what this process
                # logged, not for a backlog it adopted: a segment still unconfirmed then is
                # left for the next start, which sends it again.
                while len(server.events) < n or Spool(spool).pending():
                    await anyio.sleep(0.02)
            assert await shipper.shutdown(10)
            await sqlite.aclose()
            await http.aclose()
    finally:
        server.stop()
    assert ids(server.events) == expected
    assert server.received == n  # the HTTP sink had none of them before: none sent twice
    stored = [e.event_id for e in read_events(db)]
    assert len(stored) == n
    assert set(stored) == expected
    assert Spool(spool).pending() == 0


@pytest.mark.parametrize(
    ("sig", "backend", "status"),
    [
        (signal.SIGTERM, "asyncio", -signal.SIGTERM),
        (signal.SIGTERM, "trio", -signal.SIGTERM),
        # KeyboardInterrupt, then the exit hook; Python ends by SIGINT
        (signal.SIGINT, "asyncio", -signal.SIGINT),
    ],
)
def test_a_signal_to_an_initialize_user_delivers_everything_before_it_exits(
    tmp_path: Path, sig: signal.Signals, backend: str, status: int
) -> None:
    """The child logs 300 events that are still in memory (its commit interval is 10 s) and
    is sent SIGTERM (as ``docker stop`` does): the handler ``initialize()`` installed commits
    and delivers them, then the process ends by SIGTERM as it would have. On SIGINT, Python's
    KeyboardInterrupt ends it through the exit hook, which delivers them."""
    n = 300
    spool, db = tmp_path / "spool", tmp_path / "events.db"
    with spawn("log_then_wait", spool, db, n, "1", backend) as child:
        assert first_line(child) == "logged"
        child.send_signal(sig)
        child.wait(30)
    assert child.returncode == status
    assert {e.event_id for e in read_events(db)} == {event_id(i) for i in range(n)}
    assert Spool(spool).pending() == 0


def test_without_the_handlers_sigterm_loses_what_was_not_committed(tmp_path: Path) -> None:
    """The control for the test above: with ``handle_signals=False`` SIGTERM ends the
    process at once (Python's default: no exit hook), and the events of the commit window
    are gone. This is what the handlers prevent."""
    n = 300
    spool, db = tmp_path / "spool", tmp_path / "events.db"
    with spawn("log_then_wait", spool, db, n, "0", "asyncio") as child:
        assert first_line(child) == "logged"
        child.send_signal(signal.SIGTERM)
        child.wait(30)
    assert child.returncode == -signal.SIGTERM
    assert read_events(db) == []
    assert [e for p in Spool(spool).segment_files() for e in Spool(spool).read_file(p)] == []


@pytest.mark.anyio
async def test_a_segment_whose_writer_lives_is_not_taken_and_one_whose_writer_died_is(
    tmp_path: Path,
) -> None:
    """A child holds an open segment (its owner lock taken with flock). A shipper starting on
    the same spool leaves it alone, at start and at every later look; once the child is
    killed, the kernel drops its lock and the shipper adopts and delivers the segment. No
    process id is involved (one may be reused)."""
    n = 20
    spool = tmp_path / "spool"
    with spawn("hold_segment", spool, n) as child:
        word, owner = first_line(child).split()
        assert word == "ready"
        sink = MemorySink()
        async with Runtime() as rt:
            shipper = await AnalyticsShipper.start(
                rt, [sink], spool_dir=spool, recover_interval=0.05, **FAST
            )
            await anyio.sleep(0.3)  # several looks for orphans
            [held] = Spool(spool).segment_files()
            assert held.name.endswith(f"~{owner}.open")  # still the child's, still open
            assert sink.events == []
            child.kill()
            child.wait(10)
            with anyio.fail_after(20):
                while len(sink.events) < n:
                    await anyio.sleep(0.02)
            assert await shipper.shutdown(5)
    assert ids(sink.events) == {event_id(i) for i in range(n)}
    assert sink.duplicates == 0
    assert Spool(spool).pending() == 0


# -- flush ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_flush_is_false_while_a_sink_is_down_and_true_only_once_all_before_it_arrived(
    tmp_path: Path,
) -> None:
    with ingest_server() as server:
        server.stop()  # down: connections refused
        sink = HTTPSink(server.url, timeout=2.0)
        async with Runtime() as rt:
            shipper = await AnalyticsShipper.start(
                rt, [sink], spool_dir=tmp_path, max_retries=1, **FAST
            )
            events = make_events(50)
            for event in events:
                shipper.log_event(event)
            assert not await shipper.flush(5)
            assert server.events == []
            server.start()
            with anyio.fail_after(30):
                while not await shipper.flush(5):
                    await anyio.sleep(0.05)
            assert ids(events) <= ids(server.events)  # True only once all of them arrived
            later = make_events(10, "later")
            for event in later:
                shipper.log_event(event)
            assert await shipper.flush(10)
            assert ids(server.events) == ids(events) | ids(later)
            assert await shipper.shutdown(5)
            await sink.aclose()
        assert server.received == 60


# -- losses and a full disk ---------------------------------------------------------------


def test_lost_events_are_counted_and_every_one_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the queue bound an event goes straight to the spool; on a full disk it cannot,
    and it is counted in ``lost`` and logged (one line for the first, then a count at most
    every second, and the rest when the shipper closes)."""
    shipper = AnalyticsShipper([MemorySink()], spool_dir=tmp_path, max_queue_size=10)
    monkeypatch.setattr(_spool, "_write", ShortThenFull())
    with capture_logs() as logs:
        for event in make_events(25):
            shipper.log_event(event)  # never raises
        stats = shipper.statistics()
        assert (stats.queue_depth, stats.dropped, stats.spooled, stats.lost) == (10, 15, 0, 15)
        assert not shipper.shutdown_threadsafe(1)  # never started: the 10 queued cannot go
    assert shipper.statistics().lost == 25
    lines = [e for e in logs if e["event"] == "analytics events lost"]
    assert sum(e["events"] for e in lines) == 25
    assert all("No space left on device" in e["error"] for e in lines)
    assert all(e["log_level"] == "error" for e in lines)
    assert not [p for p in (tmp_path / "wal").glob("*") if p.is_file()]  # nothing half-made


@pytest.mark.anyio
async def test_a_full_disk_leaves_no_half_written_line_and_counts_nothing_as_spooled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = MemorySink()
    first, second = make_events(10, "first"), make_events(10, "second")
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(rt, [sink], spool_dir=tmp_path, **FAST)
        for event in first:
            shipper.log_event(event)
        assert await shipper.flush(10)
        [segment] = Spool(tmp_path).segment_files()
        size = segment.stat().st_size
        full = ShortThenFull()
        monkeypatch.setattr(_spool, "_write", full)
        with capture_logs() as logs:
            for event in second:
                shipper.log_event(event)
            assert not await shipper.flush(2)  # cannot be made durable, so not delivered
            assert full.calls >= 2
        stats = shipper.statistics()
        assert stats.spooled == 10  # the short write does not count
        assert (stats.queue_depth, stats.lost) == (10, 0)  # waiting in memory, not lost
        assert not shipper.is_healthy()
        assert segment.stat().st_size == size  # cut back: no half line on disk
        assert ids(Spool(tmp_path).read_file(segment)) == ids(first)
        assert ids(sink.events) == ids(first)  # nothing goes out that is not on disk
        assert [e for e in logs if e["event"].startswith("could not write the analytics spool")]
        monkeypatch.undo()  # room again: the next commit writes them
        assert await shipper.flush(10)
        assert shipper.statistics().spooled == 20
        assert await shipper.shutdown(5)
    assert ids(sink.events) == ids(first) | ids(second)
    assert Spool(tmp_path).pending() == 0


def test_a_segment_is_never_left_half_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path)
    monkeypatch.setattr(_spool, "_write", ShortThenFull())
    with pytest.raises(OSError, match="No space left"):
        spool.create(["memory"], "live")
    assert [p for p in (tmp_path / "wal").iterdir() if p.is_file()] == []


# -- unreadable segments ------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_unreadable_segment_is_set_aside_and_the_others_still_replay(
    tmp_path: Path,
) -> None:
    """Three segments of a writer that died: the second's header is garbage (set aside in
    ``quarantine/``, logged), the third has one garbled line (that event is counted lost and
    logged). Every other event is delivered; nothing loops or crashes."""
    dead = Spool(tmp_path)
    batches = [make_events(5, f"s{k}-") for k in range(3)]
    paths = []
    for batch in batches:
        seg = dead.create(["memory"], "live")
        dead.append(seg, b"".join(encode_event(e) + b"\n" for e in batch))
        dead.seal(seg)
        paths.append(seg.path)
    paths[1].write_bytes(b"\x00\xffnot a header\n" + paths[1].read_bytes())
    lines = paths[2].read_bytes().split(b"\n")
    lines[2] = b'{"event_type": garbled'  # the second event of the third segment
    paths[2].write_bytes(b"\n".join(lines))
    assert dead._owner_fd is not None
    os.close(dead._owner_fd)  # the writer dies: the kernel drops its lock
    sink = MemorySink()
    with capture_logs() as logs:
        async with Runtime() as rt:
            shipper = await AnalyticsShipper.start(rt, [sink], spool_dir=tmp_path, **FAST)
            with anyio.fail_after(20):
                while len(sink.events) < 9:
                    await anyio.sleep(0.02)
            assert not await shipper.shutdown(5)  # something was not delivered
            stats = shipper.statistics()
    assert ids(sink.events) == ids(batches[0]) | ids(batches[2]) - {batches[2][1].event_id}
    assert (stats.quarantined, stats.lost) == (1, 1)
    [aside] = [p for p in (tmp_path / QUARANTINE).iterdir() if p.suffix == ".log"]
    assert aside.read_bytes().startswith(b"\x00\xffnot a header")
    assert [e for e in logs if e["event"].endswith("could not be read; set aside")]
    [lost] = [e for e in logs if e["event"] == "analytics events lost"]
    assert lost["events"] == 1
    assert Spool(tmp_path).pending() == 0


@pytest.mark.anyio
async def test_a_segment_unreadable_when_replayed_is_set_aside_without_stopping_the_rest(
    tmp_path: Path,
) -> None:
    """A segment that read fine at adoption but not when its turn comes (replaced by a folder
    here, so reading it fails with an OSError) is set aside too; the one after it still
    goes."""
    dead = Spool(tmp_path)
    batches = [make_events(4, f"s{k}-") for k in range(3)]
    stems = []
    for batch in batches:
        seg = dead.create(["memory"], "live")
        dead.append(seg, b"".join(encode_event(e) + b"\n" for e in batch))
        dead.seal(seg)
        stems.append(seg.id)
    assert dead._owner_fd is not None
    os.close(dead._owner_fd)
    sink = MemorySink()
    sink.pause()  # the first segment's write hangs: the second is not read yet
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(rt, [sink], spool_dir=tmp_path, **FAST)
        with anyio.fail_after(10):
            while sink.attempts == 0:
                await anyio.sleep(0.01)
        [second] = [p for p in Spool(tmp_path).segment_files() if p.name.startswith(stems[1])]
        second.unlink()
        second.mkdir()  # reading it now fails
        sink.resume()
        with anyio.fail_after(20):
            while len(sink.events) < 8:
                await anyio.sleep(0.02)
        assert not await shipper.shutdown(5)
        stats = shipper.statistics()
    assert ids(sink.events) == ids(batches[0]) | ids(batches[2])
    assert (stats.quarantined, stats.lost) == (1, 4)
    assert (tmp_path / QUARANTINE / second.name).is_dir()
