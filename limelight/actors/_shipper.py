"""The AnalyticsShipper: events from any thread, to a write-ahead log, then to every sink.

It takes events from any thread or task without ever blocking or raising, writes them to a
write-ahead log on local disk by group commit, and delivers them from there to every sink,
deleting them only once every sink confirmed them.

The hot path (:meth:`AnalyticsShipper.log_event`) takes a slot token (``list.pop``) and does
a ``deque.append``, both atomic, so no lock and no I/O. The tokens make the queue bound exact:
however many threads log at once, memory never holds more than ``max_queue_size`` events
waiting for the disk. Every ``commit_interval`` the shipper's committer takes what is queued
and appends it to the open segment of the log in one write (a group commit, in a worker
thread); from then on the events survive the process being killed (and, with
``fsync="always"``, a power cut). A reader per sink then delivers them in batches from memory
(or, for events of an earlier process, from disk), and records how far each sink has
confirmed; a segment is deleted once every sink it was meant for has confirmed all of it. On
the next start, whatever a dead process left unconfirmed is adopted and re-sent: sinks that
dedupe by ``event_id`` (SQLite, the HTTP ingestion protocol) store each event once.

One module: one state machine. The hot path, the committer thread, the readers per sink and
the flush/shutdown waiters all read and advance the same counters and segment bookkeeping, on
one event loop. The disk format and its blocking I/O
(the pure part) are in :mod:`limelight._spool`.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import math
import os
import random
import threading
import time
import weakref
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import anyio
import msgspec
import structlog

from .._spool import (
    DEFAULT_MAX_SEGMENT_BYTES,
    AdoptResult,
    Chunk,
    ReadResult,
    Segment,
    Spool,
    encode_lines,
    spool_key,
)
from ..errors import ConfigError, SinkRejected, SinkUnavailable
from ..runtime import Actor, Context
from ..runtime._retry import RetryPolicy
from ..schemas._events import Event, encode_event

if TYPE_CHECKING:
    from ..runtime import Runtime
    from ..sinks._base import Sink

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_COMMIT_INTERVAL",
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_MAX_BATCH_BYTES",
    "DEFAULT_MAX_QUEUE_SIZE",
    "DEFAULT_MAX_RETRIES",
    "AnalyticsShipper",
    "ShipperStatistics",
    "default_spool_dir",
]

DEFAULT_BATCH_SIZE: Final = 1000
DEFAULT_MAX_BATCH_BYTES: Final = 4 * 1024 * 1024
DEFAULT_FLUSH_INTERVAL: Final = 1.0
#: Seconds between group commits: an accepted event is on disk within about this long.
DEFAULT_COMMIT_INTERVAL: Final = 0.05
DEFAULT_MAX_RETRIES: Final = 3
DEFAULT_MAX_QUEUE_SIZE: Final = 100_000
DEFAULT_RETRY_INITIAL_DELAY: Final = 0.2
DEFAULT_RETRY_MAX_DELAY: Final = 10.0
DEFAULT_SINK_TIMEOUT: Final = 10.0
DEFAULT_STOP_TIMEOUT: Final = 5.0
#: Seconds between looks for segments of processes that died (besides the one at start).
DEFAULT_RECOVER_INTERVAL: Final = 10.0
#: The longest a sink that failed past its retries is skipped (its events wait on disk).
MAX_COOLDOWN: Final = 30.0
#: Events encoded and written at a time by a group commit (bounded buffers, not one huge one).
_PIECE: Final = 2048
#: How long the committer waits for a producer writing past the queue bound.
_OVERFLOW_LOCK_WAIT: Final = 0.2
#: Loss and encoding errors are logged at once, then at most this often (with counts).
_LOG_EVERY: Final = 1.0


def default_spool_dir() -> Path:
    """``$LIMELIGHT_HOME/spool``, or ``~/.limelight/spool``."""
    home = os.environ.get("LIMELIGHT_HOME")
    base = Path(home) if home else Path.home() / ".limelight"
    return base / "spool"


class ShipperStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a shipper's counters. ``sent``, ``failed``, ``replayed`` and ``pending``
    count deliveries per sink (one event to two sinks counts twice); the others count events.

    :ivar queued: events accepted into the in-memory queue since start.
    :ivar spooled: events written to the durable spool (the write-ahead log): every accepted
        event is, within the commit window.
    :ivar sent: deliveries that a sink confirmed (replays included).
    :ivar failed: deliveries a sink rejected (dead-lettered), or events that could not be
        encoded at all.
    :ivar retried: batch retries after a retryable sink failure.
    :ivar dropped: events that found the queue full: written straight to the spool (so also
        in ``spooled``), not lost.
    :ivar replayed: deliveries read back from disk (events of an earlier process, events past
        the queue bound, or events a lagging sink needed after memory let them go).
    :ivar lost: accepted events neither delivered nor kept (the disk refused them, or a
        segment was unreadable): every one is also logged.
    :ivar batches: batches a sink confirmed.
    :ivar success_rate: ``sent / (sent + failed)`` (1.0 before any delivery).
    :ivar queue_depth: events in memory waiting for the disk now.
    :ivar pending: deliveries not yet confirmed (in memory or in the spool).
    :ivar quarantined: spool segments set aside because they could not be read.
    """

    queued: int
    spooled: int
    sent: int
    failed: int
    retried: int
    dropped: int
    replayed: int
    lost: int
    batches: int
    success_rate: float
    queue_depth: int
    pending: int
    quarantined: int


class _Pump(msgspec.Struct, frozen=True):
    """Starts the shipper's work (its committer and its sink readers) on its event loop."""


@dataclass(slots=True, eq=False)
class _Cache:
    """Events of one segment read back from disk for one sink."""

    seg: Segment
    indices: list[int]
    events: list[Event]
    sizes: array[int]
    end: int


@dataclass(slots=True, eq=False)
class _SinkState:
    sink: Sink
    key: str
    down_until: float = 0.0
    failures: int = 0
    sent: int = 0
    #: Commit number up to which this sink confirmed the live stream.
    live_done: int = 0
    last_ship: float = 0.0
    wake: anyio.Event | None = None
    cache: _Cache | None = None


@dataclass(slots=True, eq=False)
class _Batch:
    seg: Segment
    events: list[Event]
    ack_to: int
    from_disk: bool


@dataclass(slots=True, eq=False)
class _NeedDisk:
    seg: Segment
    start: int


@dataclass(slots=True, eq=False)
class _Waiter:
    """A flush, a commit barrier or the shutdown, waiting for the loop."""

    kind: Literal["flush", "commit", "close"]
    deadline: float  # time.monotonic()
    failures_at_start: int
    failed_before: bool
    #: The commit cycles begun when it arrived on the loop: a later cycle serves it.
    registered: int = -1
    #: The commit number every sink must confirm (set by the cycle that serves it).
    target: int | None = None
    #: Events past the queue bound written before it arrived: they must be delivered too.
    overflow_target: int = 0
    commit_failed: bool = False
    ok: bool = False
    settled: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    #: For a waiter on the shipper's own loop.
    ready: anyio.Event | None = None

    def finish(self, ok: bool) -> None:
        self.ok = ok
        self.done.set()
        if self.ready is not None:
            self.ready.set()


@dataclass(slots=True, eq=False)
class _Cycle:
    """What one commit cycle did on disk (filled in a worker thread)."""

    #: What was written, in order: (the segment, the events at their index there).
    pieces: list[tuple[Segment, Chunk]] = field(default_factory=list)
    #: Encodable events that could not be written (the disk refused): they wait in memory.
    unwritten: list[Event] = field(default_factory=list)
    bad: list[Event] = field(default_factory=list)
    created: list[Segment] = field(default_factory=list)
    sealed: list[Segment] = field(default_factory=list)
    error: OSError | None = None
    overflow: Segment | None = None
    adopted: AdoptResult | None = None
    warnings: list[str] = field(default_factory=list)


class _RateLog:
    """Logs a kind of trouble at once, then at most every ``_LOG_EVERY`` seconds with the
    count since the last line, so that a flood never floods the log but nothing goes unsaid."""

    def __init__(self, message: str) -> None:
        self.message = message
        self._lock = threading.Lock()
        self._count = 0
        self._last = -math.inf
        self._detail: dict[str, Any] = {}

    def note(self, log: Any, n: int, **detail: Any) -> None:
        now = time.monotonic()
        with self._lock:
            self._count += n
            self._detail = detail
            if now - self._last < _LOG_EVERY:
                return
            count, self._count, self._last = self._count, 0, now
        log.error(self.message, events=count, **detail)

    def flush(self, log: Any, *, force: bool = False) -> None:
        """Log what was counted since the last line (now if ``force``). Never waits for a
        producer holding the lock (it may be the main thread, stopped in a signal handler)."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            if not self._count or (not force and time.monotonic() - self._last < _LOG_EVERY):
                return
            count, self._count, self._last = self._count, 0, time.monotonic()
            detail = self._detail
        finally:
            self._lock.release()
        log.error(self.message, events=count, **detail)


class _ProducerTally:
    """Counts that producer threads change, under a lock of their own that the event loop
    never waits for (a producer may be the main thread, stopped inside it by a signal
    handler that waits for the loop)."""

    __slots__ = (
        "dropped",
        "failed",
        "failures",
        "lock",
        "losses",
        "lost",
        "spooled",
        "unencodable",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.dropped = 0
        self.spooled = 0
        self.failed = 0
        self.lost = 0
        self.failures = 0
        self.losses = _RateLog("analytics events lost")
        self.unencodable = _RateLog("analytics events could not be encoded; dropped")


_live: weakref.WeakSet[AnalyticsShipper] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for shipper in list(_live):
        shipper._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

_DELIVERED: Final = 0
_REJECTED: Final = 1
_GAVE_UP: Final = 2


class AnalyticsShipper(Actor):
    """Ships analytics events to sinks through a write-ahead log. An actor: spawn it in a
    runtime (or use :meth:`start`); its ``log_event`` may be called from any thread or task.

    :param sinks: where events go; each event is delivered to every one.
    :param batch_size: most events per batch.
    :param max_batch_bytes: most JSON bytes per batch (a larger batch is cut).
    :param flush_interval: seconds an incomplete batch may wait before it is shipped.
    :param commit_interval: seconds between group commits to the spool: an event accepted
        more than about this long ago (plus the time of one commit) survives the process
        being killed.
    :param fsync: ``"never"`` (default: commits reach the OS page cache, which survives the
        process being killed but not a power cut) or ``"always"`` (each group commit is
        fsync'd: it survives a power cut too, at the cost of one fsync per commit).
    :param max_retries: retries of a batch after a retryable failure, per sink, before the
        sink is skipped for a while (its events wait in the spool).
    :param max_queue_size: events held in memory waiting for the disk, exactly (from any
        number of threads); beyond it, an event is written to the spool by the producer
        itself (counted in ``dropped``), so memory stays bounded and nothing is lost. The
        events committed but not yet delivered that memory keeps are bounded by it too (a
        lagging sink reads the rest back from disk).
    :param spool_dir: the spool's folder (default :func:`default_spool_dir`).
    :param sink_timeout: seconds one write to a sink may take before it counts as failed.
    :param stop_timeout: seconds the final delivery may take when the actor is stopped
        without :meth:`shutdown` (the runtime exiting); the rest stays in the spool.
    :param close_sinks: close the sinks (``aclose``) at shutdown: the shipper owns them.
    :param recover_interval: seconds between looks for segments that a process which died
        left behind (besides the look at start).
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batch_bytes: int | None = DEFAULT_MAX_BATCH_BYTES,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        commit_interval: float = DEFAULT_COMMIT_INTERVAL,
        fsync: str = "never",
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
        spool_dir: str | os.PathLike[str] | None = None,
        retry_initial_delay: float = DEFAULT_RETRY_INITIAL_DELAY,
        retry_max_delay: float = DEFAULT_RETRY_MAX_DELAY,
        sink_timeout: float = DEFAULT_SINK_TIMEOUT,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        close_sinks: bool = False,
        max_segment_bytes: int = DEFAULT_MAX_SEGMENT_BYTES,
        recover_interval: float = DEFAULT_RECOVER_INTERVAL,
        rng: random.Random | None = None,
    ) -> None:
        if not sinks:
            raise ConfigError("an AnalyticsShipper needs at least one sink (NullSink keeps none)")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if max_batch_bytes is not None and max_batch_bytes < 1:
            raise ConfigError(f"max_batch_bytes must be >= 1 or None, got {max_batch_bytes}")
        if not flush_interval > 0:
            raise ConfigError(f"flush_interval must be > 0 seconds, got {flush_interval}")
        if not 0 < commit_interval <= 10:
            raise ConfigError(
                f"commit_interval must be > 0 and <= 10 seconds, got {commit_interval}"
            )
        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
        if max_queue_size < 1:
            raise ConfigError(f"max_queue_size must be >= 1, got {max_queue_size}")
        if not sink_timeout > 0 or not stop_timeout > 0:
            raise ConfigError("sink_timeout and stop_timeout must be > 0 seconds")
        if not recover_interval > 0:
            raise ConfigError(f"recover_interval must be > 0 seconds, got {recover_interval}")
        if retry_initial_delay < 0 or retry_max_delay < 0:
            raise ConfigError("retry_initial_delay and retry_max_delay must be >= 0 seconds")
        self.batch_size = batch_size
        self.max_batch_bytes = max_batch_bytes
        self.flush_interval = flush_interval
        self.commit_interval = commit_interval
        self.max_retries = max_retries
        self.max_queue_size = max_queue_size
        self.retry_initial_delay = retry_initial_delay
        self.retry_max_delay = retry_max_delay
        self.sink_timeout = sink_timeout
        self.stop_timeout = stop_timeout
        self.close_sinks = close_sinks
        self.recover_interval = recover_interval
        self.spool = Spool(
            spool_dir if spool_dir is not None else default_spool_dir(),
            fsync=fsync,
            max_segment_bytes=max_segment_bytes,
        )
        # A batch's retries; then, once they are spent, how long the sink is skipped.
        self._retry = RetryPolicy(
            attempts=max_retries + 1,
            initial_delay=retry_initial_delay,
            max_delay=retry_max_delay,
            multiplier=2.0,
            jitter=0.5,
            rng=rng or random.Random(),
        )
        self._cooldown = RetryPolicy(
            initial_delay=retry_initial_delay, max_delay=MAX_COOLDOWN, multiplier=2.0, jitter=0.0
        )
        keys: set[str] = set()
        self._sinks: list[_SinkState] = []
        for sink in sinks:
            key = base = spool_key(getattr(sink, "name", type(sink).__name__))
            n = 1
            while key in keys:
                n += 1
                key = f"{base}-{n}"
            keys.add(key)
            self._sinks.append(_SinkState(sink, key))
        self._keys = tuple(s.key for s in self._sinks)
        self._log: Any = structlog.get_logger("limelight").bind(actor="analytics")
        self._reset_state()
        _live.add(self)

    def _reset_state(self) -> None:
        self._buf: deque[Event] = deque()
        #: One token per free slot of the queue: log_event queues an event only when it can
        #: pop one (atomic); they come back once the events are on disk. Empty for good
        #: once closed, so that every later event goes to the spool directly.
        self._tokens: list[None] = [None] * self.max_queue_size
        self._taking = True
        self._closed = False
        self._started = False
        self._call_soon: Callable[..., Any] | None = None
        #: The event loop's clock, readable from a callback (where anyio's is not).
        self._loop_time: Callable[[], float] | None = None
        self._loop_thread: int | None = None
        #: Guards the tokens against a concurrent close; producers never take it.
        self._lock = threading.Lock()
        self._p = _ProducerTally()
        # Owned by the event loop from here on.
        self._live: list[Segment] = []  # segments of the live stream, in commit order
        self._backlog: list[Segment] = []  # read back from disk: adopted and overflow
        self._known: set[str] = set()
        self._writer: Segment | None = None
        self._aside: set[str] = set()
        self._dirty: dict[tuple[str, str], Segment] = {}
        self._seq = 0
        self._mem_events = 0
        #: Commit cycles the committer thread has begun (it alone increments it).
        self._cycle = 0
        self._commit_now = threading.Event()
        self._commit_stop = False
        self._committer: threading.Thread | None = None
        self._committer_gone: anyio.Event | None = None
        self._waiters: list[_Waiter] = []
        self._closing: _Waiter | None = None
        self._followers: list[_Waiter] = []
        self._settled_event: anyio.Event | None = None
        self._housekeeping_due: anyio.Event | None = None
        self._close_requested: anyio.Event | None = None
        self._next_adopt = 0.0
        self._overflow_taken = 0
        self._overflow_done = 0
        self._commit_error: str | None = None
        self._missing_noted: set[str] = set()
        self._failures = 0
        self._failures_reported = 0
        self._taken = 0
        self._committed = 0
        self._sent = 0
        self._failed = 0
        self._retried = 0
        self._replayed = 0
        self._lost = 0
        self._batches = 0
        self._quarantined = 0
        self._losses = _RateLog("analytics events lost")
        self._unencodable = _RateLog("analytics events could not be encoded; dropped")
        for state in self._sinks:
            state.down_until = 0.0
            state.failures = 0
            state.live_done = 0
            state.cache = None
            state.wake = None

    # -- producers: any thread, never blocks, never raises -------------------------------

    def log_event(self, event: Event) -> None:
        """Accept ``event``: it reaches the spool within the commit window, then every sink.
        Never blocks and never raises: beyond ``max_queue_size`` (or after shutdown) the
        event is written to the spool right away instead, counted in ``dropped``."""
        try:
            self._tokens.pop()
        except IndexError:
            self._overflow(event)
            return
        self._buf.append(event)
        if self._closed:  # closed between the token and the append: nobody will commit it
            self._spool_buffer_sync()

    def _give_back(self, n: int) -> None:
        """``n`` events left the queue: their slots are free again (unless closed)."""
        with self._lock:
            if self._taking:
                self._tokens.extend(itertools.repeat(None, n))

    def _stop_taking(self) -> None:
        """From now on every event goes to the spool directly."""
        with self._lock:
            self._taking = False
            self._tokens.clear()

    def _overflow(self, event: Event) -> None:
        p = self._p
        with p.lock:
            p.dropped += 1
        self._overflow_direct(event, "the spool refused an event past the queue bound")

    def _overflow_direct(self, event: Event, reason: str) -> None:
        """Write one event straight to the spool, from any thread; counted, never raises."""
        p = self._p
        try:
            stored = self.spool.append_overflow(event, self._keys)
        except Exception as exc:  # the disk refused it (full?): count it, never bother the caller
            with p.lock:
                p.lost += 1
                p.failures += 1
            p.losses.note(self._log, 1, reason=reason, **self._where(exc))
            return
        with p.lock:
            if stored:
                p.spooled += 1
            else:
                p.failed += 1
                p.failures += 1
        if not stored:
            p.unencodable.note(self._log, 1)

    def _where(self, exc: BaseException | None) -> dict[str, str]:
        detail = {"spool": str(self.spool.directory)}
        if exc is not None:
            detail["error"] = f"{type(exc).__name__}: {exc}"
        return detail

    def _note_lost(self, n: int, reason: str, exc: BaseException | None = None) -> None:
        """On the loop: ``n`` accepted events are gone; counted and logged."""
        self._lost += n
        self._failures += 1
        self._losses.note(self._log, n, reason=reason, **self._where(exc))

    def _note_failure(self) -> None:
        self._failures += 1

    def _all_failures(self) -> int:
        return self._failures + self._p.failures

    def _spool_buffer_sync(self) -> int:
        """Write every queued event to the spool now (blocking), past the loop. Returns how
        many there were."""
        n = 0
        while True:
            try:
                event = self._buf.popleft()
            except IndexError:
                return n
            n += 1
            self._overflow_direct(event, "the spool refused an event after shutdown")

    # -- statistics ----------------------------------------------------------------------

    def statistics(self) -> ShipperStatistics:
        p = self._p
        sent, failed = self._sent, self._failed + p.failed
        depth = len(self._buf)
        return ShipperStatistics(
            queued=self._taken + depth,
            spooled=self._committed + p.spooled,
            sent=sent,
            failed=failed,
            retried=self._retried,
            dropped=p.dropped,
            replayed=self._replayed,
            lost=self._lost + p.lost,
            batches=self._batches,
            success_rate=1.0 if sent + failed == 0 else sent / (sent + failed),
            queue_depth=depth,
            pending=self._pending(depth),
            quarantined=self._quarantined,
        )

    def _pending(self, depth: int) -> int:
        keys = set(self._keys)
        total = depth * len(keys)
        for seg in [*self._live, *self._backlog]:
            acked = seg.acked
            for key in seg.sinks:
                if key in keys:
                    total += max(0, seg.count - acked.get(key, 0))
        return total

    def is_healthy(self) -> bool:
        """Running, writing to its spool, not over its queue bound, and every sink took its
        last batch (none is failing past its retries)."""
        if self._closed or self._call_soon is None or self._commit_error is not None:
            return False
        if any(s.failures for s in self._sinks):
            return False
        return len(self._buf) < self.max_queue_size

    @property
    def closed(self) -> bool:
        return self._closed

    # -- flush, commit and shutdown ------------------------------------------------------

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self._loop_thread

    def _not_running(self) -> bool:
        return self._call_soon is None or self._closed

    def _new_waiter(
        self, kind: Literal["flush", "commit", "close"], timeout: float, ready: anyio.Event | None
    ) -> _Waiter:
        failures = self._all_failures()
        return _Waiter(
            kind=kind,
            deadline=time.monotonic() + max(0.0, timeout),
            failures_at_start=failures,
            failed_before=failures > self._failures_reported,
            ready=ready,
        )

    def _register(
        self, kind: Literal["flush", "commit", "close"], timeout: float
    ) -> _Waiter | None:
        """From another thread: hand a waiter to the loop (None when the loop is gone)."""
        waiter = self._new_waiter(kind, timeout, None)
        call_soon = self._call_soon
        if call_soon is None:
            return None
        try:
            call_soon(self._on_register, waiter)
        except RuntimeError:  # the loop is closed
            return None
        return waiter

    def _on_register(self, waiter: _Waiter) -> None:
        """On the loop: the next commit cycle serves ``waiter``."""
        if self._closed:
            waiter.finish(False)
            return
        waiter.registered = self._cycle
        waiter.overflow_target = self.spool.overflow_written
        if waiter.kind == "close":
            if self._closing is not None:  # a second shutdown: it gets the first one's answer
                self._followers.append(waiter)
                return
            self._closing = waiter
            self._stop_taking()
            if self._close_requested is not None:
                self._close_requested.set()
        else:
            self._waiters.append(waiter)
        self._commit_now.set()
        if self._housekeeping_due is not None:
            self._housekeeping_due.set()

    def flush_threadsafe(self, timeout: float = 10.0) -> bool:
        """Blocking flush, from any thread but the shipper's own event loop thread: wait
        until every event accepted before the call has been confirmed by every sink (True),
        or until ``timeout`` seconds have passed or a sink gave up for now (False; the
        events are in the spool and are delivered later)."""
        if self.on_loop_thread():
            raise ConfigError(
                "flush_threadsafe() called from the shipper's event loop: use flush()"
            )
        if self._not_running():
            return self._flush_offline()
        waiter = self._register("flush", timeout)
        if waiter is None:
            return self._flush_offline()
        return self._await_waiter(waiter, timeout)

    def commit_threadsafe(self, timeout: float = 5.0) -> bool:
        """Blocking: make every event accepted so far durable (on disk) now, without waiting
        for the sinks. True when it is."""
        if self.on_loop_thread():
            raise ConfigError("commit_threadsafe() called from the shipper's event loop")
        if self._not_running():
            self._flush_offline()
            return not self._buf
        waiter = self._register("commit", timeout)
        if waiter is None:
            self._flush_offline()
            return not self._buf
        return self._await_waiter(waiter, timeout)

    def _await_waiter(self, waiter: _Waiter, timeout: float) -> bool:
        if not waiter.done.wait(max(0.0, timeout)):
            return False
        return waiter.ok

    async def flush(self, timeout: float = 10.0) -> bool:
        """:meth:`flush_threadsafe` for async code; from another event loop (or thread) it
        waits in a worker thread."""
        if not self.on_loop_thread():
            return await anyio.to_thread.run_sync(self.flush_threadsafe, timeout)
        if self._not_running():
            return self._flush_offline()
        waiter = self._new_waiter("flush", timeout, anyio.Event())
        self._on_register(waiter)
        assert waiter.ready is not None
        with anyio.move_on_after(max(0.0, timeout)):
            await waiter.ready.wait()
        return waiter.done.is_set() and waiter.ok

    def _flush_offline(self) -> bool:
        """Not running (before start, after shutdown, in a forked child): what is queued goes
        to the spool (delivered by a later start), so this is True only if nothing was."""
        return self._spool_buffer_sync() == 0

    def shutdown_threadsafe(self, timeout: float = 10.0) -> bool:
        """Commit what is queued, deliver within ``timeout`` seconds what can be, leave the
        rest in the spool (for the next start), and stop taking events into memory (later ones
        go to the spool directly). True if everything accepted was delivered."""
        if self.on_loop_thread():
            raise ConfigError("shutdown_threadsafe() called from the shipper's event loop")
        if self._closed or self._call_soon is None:
            self._close_offline()
            return False
        waiter = self._register("close", timeout)
        if waiter is None:
            self._close_offline()
            return False
        # A little grace past the deadline: the time to close the spool and the sinks.
        if not waiter.done.wait(timeout + min(5.0, 1.0 + timeout)):
            return False
        return waiter.ok

    async def shutdown(self, timeout: float = 10.0) -> bool:
        """:meth:`shutdown_threadsafe` for async code."""
        if not self.on_loop_thread():
            return await anyio.to_thread.run_sync(self.shutdown_threadsafe, timeout)
        if self._closed or self._call_soon is None:
            self._close_offline()
            return False
        waiter = self._new_waiter("close", timeout, anyio.Event())
        self._on_register(waiter)
        assert waiter.ready is not None
        with anyio.move_on_after(timeout + min(5.0, 1.0 + timeout)):
            await waiter.ready.wait()
        return waiter.done.is_set() and waiter.ok

    def _close_offline(self) -> None:
        self._stop_taking()
        self._closed = True
        self._spool_buffer_sync()
        self._release_spool()
        self._p.losses.flush(self._log, force=True)
        self._p.unencodable.flush(self._log, force=True)

    def _release_spool(self) -> None:
        """Give the spool's segments up for adoption (the next start, or another process)."""
        try:
            self.spool.release()
        except OSError as exc:
            self._log.warning(
                "could not release the analytics spool", error=f"{type(exc).__name__}: {exc}"
            )

    # -- the actor -----------------------------------------------------------------------

    @classmethod
    async def start(
        cls, runtime: Runtime, sinks: Sequence[Sink], *, name: str = "analytics", **options: Any
    ) -> AnalyticsShipper:
        """Make a shipper and spawn it in ``runtime`` at ``/<name>``."""
        shipper = cls(sinks, **options)
        await runtime.spawn(shipper, name=name)
        return shipper

    async def on_start(self, ctx: Context) -> None:
        import sniffio

        library = sniffio.current_async_library()
        if library == "trio":
            import trio

            self._call_soon = trio.lowlevel.current_trio_token().run_sync_soon
            self._loop_time = trio.current_time
        else:
            import asyncio

            loop = asyncio.get_running_loop()
            self._call_soon = loop.call_soon_threadsafe
            self._loop_time = loop.time
        self._loop_thread = threading.get_ident()
        self._log = ctx.log
        if not self._started:  # not after a restart: the segments are known already
            self._started = True
            await self._adopt()
        ctx.self.tell_nowait(_Pump())

    async def handle(self, message: Any, ctx: Context) -> Any:
        match message:
            case _Pump():
                if not self._closed:
                    await self._serve()
                return None
        raise TypeError(f"AnalyticsShipper got an unexpected message {message!r}")

    async def on_stop(self, ctx: Context) -> None:
        """Stopped without a shutdown (the runtime is exiting): commit, a last bounded
        delivery, and the rest stays in the spool. A restart after a crash keeps everything."""
        if self._closed or ctx.runtime.running:
            return
        if self._closing is None:
            waiter = self._new_waiter("close", self.stop_timeout, None)
            self._on_register(waiter)
        await self._serve()

    async def _serve(self) -> None:
        """The committer thread, the housekeeper and one reader per sink, until a shutdown
        has been served."""
        self._housekeeping_due = anyio.Event()
        self._close_requested = anyio.Event()
        if self._closing is not None:
            self._close_requested.set()
        if self._committer is None or not self._committer.is_alive():
            # A thread of its own: commits keep their pace whatever blocks the event loop
            # (a sink's first import, a long batch conversion, user code on the loop).
            self._commit_stop = False
            self._committer_gone = anyio.Event()
            self._committer = threading.Thread(
                target=self._commit_loop,
                args=(self._call_soon, self._committer_gone),
                name="limelight-analytics-commit",
                daemon=True,
            )
            self._committer.start()
        expired = False
        closing: _Waiter | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._housekeeper)
            for state in self._sinks:
                tg.start_soon(self._reader, state)
            await self._close_requested.wait()
            closing = self._closing
            assert closing is not None
            with anyio.CancelScope(deadline=_to_loop_clock(closing.deadline)) as scope:
                while not closing.settled:
                    self._settled_event = anyio.Event()
                    await self._settled_event.wait()
            expired = scope.cancelled_caught
            tg.cancel_scope.cancel()
        assert closing is not None
        with anyio.CancelScope(shield=True):
            await self._finish(closing, expired)

    async def _finish(self, closing: _Waiter, expired: bool) -> None:
        self._closed = True
        await self._stop_committer()
        leftovers: list[Event] = []
        while self._buf:
            leftovers.append(self._buf.popleft())
        dirty = self._take_dirty()
        try:
            problems: list[str] = await self._to_thread(self._final_disk, leftovers, dirty)
        except Exception as exc:  # the spool's files stay as they are: adopted next start
            problems = [f"{type(exc).__name__}: {exc}"]
        for problem in problems:
            self._log.warning(
                "could not close the analytics spool cleanly; what is on disk is adopted by "
                "the next start",
                spool=str(self.spool.directory),
                error=problem,
            )
        for seg in [*self._live, *self._backlog]:
            seg.chunks.clear()
        self._mem_events = 0
        if self.close_sinks:
            await self._close_sinks()
        for rate_log in (self._losses, self._unencodable, self._p.losses, self._p.unencodable):
            rate_log.flush(self._log, force=True)
        ok = (
            closing.ok
            and not expired
            and not closing.commit_failed
            and not closing.failed_before
            and self._all_failures() == closing.failures_at_start
        )
        self._failures_reported = max(self._failures_reported, self._all_failures())
        for waiter in self._waiters:
            waiter.finish(False)
        self._waiters = []
        self._closing = None
        closing.finish(ok)
        for waiter in self._followers:
            waiter.finish(ok)
        self._followers = []

    def _final_disk(
        self, leftovers: list[Event], dirty: list[tuple[Segment, str, int]]
    ) -> list[str]:
        """Blocking, at shutdown: events that raced in go to the spool; the live segment is
        sealed; acks are written; what every sink has is deleted; the rest is released.
        Returns what went wrong (nothing is lost by it: the files stay for the next start)."""
        problems: list[str] = []
        for event in leftovers:
            self._overflow_direct(event, "the spool refused an event at shutdown")
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.sealed = True
            try:
                self.spool.seal(writer)
            except OSError as exc:
                problems.append(f"sealing {writer.path.name}: {exc}")
        try:
            self.spool.write_acks(dirty)
        except OSError as exc:
            problems.append(f"recording deliveries: {exc}")
        for seg in [*self._live, *self._backlog]:
            if seg.sealed and seg.complete_for(seg.sinks):
                try:
                    self.spool.remove(seg)
                except OSError as exc:
                    problems.append(f"deleting {seg.path.name}: {exc}")
        self._release_spool()
        return problems

    async def _close_sinks(self) -> None:
        for state in self._sinks:
            with anyio.move_on_after(2.0, shield=True):
                try:
                    await state.sink.aclose()
                except Exception as exc:
                    self._log.warning(
                        "closing a sink failed",
                        sink=state.key,
                        error=f"{type(exc).__name__}: {exc}",
                    )

    # -- the committer (a thread) and the housekeeper (a task) -----------------------------

    def _commit_loop(self, call_soon: Callable[..., Any], gone: anyio.Event) -> None:
        """The committer thread: a group commit every ``commit_interval`` (at once when a
        flush or the shutdown asks), each handed to the event loop afterwards."""
        next_tick = time.monotonic()
        try:
            while True:
                wait = next_tick - time.monotonic()
                if wait > 0:
                    self._commit_now.wait(wait)
                self._commit_now.clear()
                if self._commit_stop:
                    break
                next_tick = time.monotonic() + self.commit_interval
                self._cycle += 1
                cycle = self._cycle
                buf = self._buf
                events = [buf.popleft() for _ in range(len(buf))]
                result = self._write(events)
                try:
                    call_soon(self._on_committed, cycle, events, result)
                except RuntimeError:  # the loop is gone: what was written stays on disk
                    self._buf.extendleft(reversed(result.unwritten))
                    return
        finally:
            with contextlib.suppress(RuntimeError):
                call_soon(gone.set)

    async def _stop_committer(self) -> None:
        thread, gone = self._committer, self._committer_gone
        if thread is None or gone is None:
            return
        self._commit_stop = True
        self._commit_now.set()
        # Its last results reach the loop before ``gone`` is set (callbacks run in order).
        with anyio.move_on_after(max(5.0, 4 * self.commit_interval)):
            await gone.wait()
        self._committer = None

    def _write(self, events: list[Event]) -> _Cycle:
        """In the committer thread: encode and append ``events``, a piece at a time."""
        result = _Cycle()
        for i in range(0, len(events), _PIECE):
            piece = events[i : i + _PIECE]
            if result.error is not None:
                result.unwritten += piece
                continue
            kept, data, bad = encode_lines(piece)
            result.bad += bad
            if not kept:
                continue
            try:
                self._commit(result, kept, data)
            except OSError as exc:
                result.error = exc
                result.unwritten += kept
        return result

    async def _housekeeper(self) -> None:
        """Every commit interval (sooner when a flush waits): record the sinks' progress on
        disk, delete what every sink has, hand over what overflowed, adopt orphans."""
        while True:
            dirty = self._take_dirty()
            done = [
                s for s in [*self._live, *self._backlog] if s.sealed and s.complete_for(s.sinks)
            ]
            adopt = time.monotonic() >= self._next_adopt
            if adopt:
                self._next_adopt = time.monotonic() + self.recover_interval
            result = await self._to_thread(self._housekeeping, dirty, done, adopt)
            self._tidy(result, done)
            for rate_log in (self._losses, self._unencodable, self._p.losses, self._p.unencodable):
                rate_log.flush(self._log)
            due = self._housekeeping_due = anyio.Event()
            if not any(w.overflow_target > self._overflow_taken for w in self._live_waiters()):
                with anyio.move_on_after(self.commit_interval):
                    await due.wait()
            else:
                await anyio.sleep(_OVERFLOW_LOCK_WAIT / 4)  # a producer holds it: soon again

    def _live_waiters(self) -> list[_Waiter]:
        return [w for w in (*self._waiters, self._closing) if w is not None and not w.settled]

    def _take_dirty(self) -> list[tuple[Segment, str, int]]:
        dirty = [(seg, key, seg.acked.get(key, 0)) for (_, key), seg in self._dirty.items()]
        self._dirty = {}
        return dirty

    def _housekeeping(
        self, dirty: list[tuple[Segment, str, int]], done: list[Segment], adopt: bool
    ) -> _Cycle:
        """Blocking, in a worker thread."""
        result = _Cycle()
        if dirty:
            try:
                self.spool.write_acks(dirty)
            except OSError as exc:
                result.warnings.append(f"could not record deliveries: {exc}")
        for seg in done:
            try:
                self.spool.remove(seg)
            except OSError as exc:
                result.warnings.append(f"could not delete a delivered segment: {exc}")
        try:
            result.overflow = self.spool.take_overflow(_OVERFLOW_LOCK_WAIT)
        except OSError as exc:
            result.warnings.append(f"could not seal the overflow segment: {exc}")
        if adopt:
            try:
                result.adopted = self.spool.adopt(self._known, self._keys)
            except OSError as exc:
                result.warnings.append(f"could not look for segments to adopt: {exc}")
        return result

    def _commit(self, result: _Cycle, kept: list[Event], data: bytes) -> None:
        seg = self._writer
        if seg is not None and (seg.broken or seg.size >= self.spool.max_segment_bytes):
            self._writer = None
            result.sealed.append(seg)
            try:
                self.spool.seal(seg)
            except OSError as exc:  # it stays under its open name: still read, adopted later
                result.warnings.append(f"could not seal {seg.path.name}: {exc}")
            seg = None
        if seg is None:
            seg = self._writer = self.spool.create(self._keys, "live")
            result.created.append(seg)
        self.spool.append(seg, data)
        result.pieces.append((seg, Chunk(seg.written, kept, len(data))))
        seg.written += len(kept)

    def _on_committed(self, cycle: int, events: list[Event], result: _Cycle) -> None:
        """On the loop: take a commit cycle's results into the shipper's state."""
        log = self._log
        if result.bad:
            self._failed += len(result.bad)
            self._failures += 1
            self._unencodable.note(log, len(result.bad))
        for seg in result.sealed:
            seg.sealed = True
        created = {id(seg) for seg in result.created}
        unwritten = result.unwritten
        committed = 0
        for seg, chunk in result.pieces:
            if id(seg) in created and seg.first_seq is None:
                seg.first_seq = self._seq
                self._live.append(seg)
            elif seg.id in self._aside:  # set aside (unreadable) meanwhile: write them again
                unwritten = [*chunk.events, *unwritten]
                continue
            n = len(chunk.events)
            seg.chunks.append(chunk)
            seg.count += n
            self._seq += n
            self._mem_events += n
            committed += n
        for seg in result.created:
            if seg.first_seq is None:  # made, but nothing could be written to it yet
                seg.first_seq = self._seq
                self._live.append(seg)
        self._committed += committed
        if committed:
            self._bound_memory()
        if unwritten:
            # Not on disk: back to the front of the queue, their slots still taken.
            self._buf.extendleft(reversed(unwritten))
        self._taken += len(events) - len(unwritten)
        self._give_back(len(events) - len(unwritten))
        if result.error is None:
            if self._commit_error is not None:
                log.info("the analytics spool is writable again")
                self._commit_error = None
        else:
            error = f"{type(result.error).__name__}: {result.error}"
            if self._commit_error is None:
                log.error(
                    "could not write the analytics spool; events wait in memory and are "
                    "written when it can be (past max_queue_size they are lost, and logged)",
                    spool=str(self.spool.directory),
                    waiting=len(self._buf),
                    error=error,
                )
            self._commit_error = error
        for warning in result.warnings:
            log.warning(warning, spool=str(self.spool.directory))
        served = False
        for waiter in [*self._waiters, self._closing]:
            if waiter is None or waiter.target is not None or waiter.registered >= cycle:
                continue
            served = True
            waiter.target = self._seq
            if unwritten:
                waiter.commit_failed = True
            if waiter.kind == "commit":
                waiter.finish(not waiter.commit_failed)
        self._waiters = [w for w in self._waiters if not w.done.is_set()]
        if committed or served:  # new events, or someone now waits for those there are
            self._wake_readers()
        self._settle()

    def _tidy(self, result: _Cycle, done: list[Segment]) -> None:
        """On the loop: take the housekeeping's results into the shipper's state."""
        if done:
            gone = set(map(id, done))
            self._live = [s for s in self._live if id(s) not in gone]
            self._backlog = [s for s in self._backlog if id(s) not in gone]
            for seg in done:
                self._known.discard(seg.id)
        if result.overflow is not None:
            seg = result.overflow
            seg.sealed = True
            self._known.add(seg.id)
            self._overflow_taken += seg.count
            self._backlog.append(seg)
        if result.adopted is not None:
            self._take_adopted(result.adopted)
        for warning in result.warnings:
            self._log.warning(warning, spool=str(self.spool.directory))
        if result.overflow is not None or (result.adopted and result.adopted.segments):
            self._wake_readers()
        self._settle()

    def _bound_memory(self) -> None:
        """Keep at most ``max_queue_size`` committed events in memory: a lagging sink reads
        the oldest back from disk."""
        for seg in self._live:
            while self._mem_events > self.max_queue_size and seg.chunks:
                self._mem_events -= len(seg.chunks.popleft().events)
            if self._mem_events <= self.max_queue_size:
                return

    async def _adopt(self) -> None:
        self._next_adopt = time.monotonic() + self.recover_interval
        try:
            result = await self._to_thread(self.spool.adopt, self._known, self._keys)
        except OSError as exc:
            self._log.warning(
                "could not look for analytics events left by earlier processes",
                spool=str(self.spool.directory),
                error=f"{type(exc).__name__}: {exc}",
            )
            return
        self._take_adopted(result)

    def _take_adopted(self, result: AdoptResult) -> None:
        log = self._log
        for path, reason in result.quarantined:
            self._quarantined += 1
            self._note_failure()
            log.error(
                "an analytics spool segment could not be read; set aside",
                path=str(path),
                reason=reason,
            )
        if not result.segments:
            return
        events = 0
        for seg in result.segments:
            self._known.add(seg.id)
            events += seg.count - min((seg.acked.get(k, 0) for k in seg.sinks), default=0)
            for key in seg.sinks:
                if key not in self._keys and key not in self._missing_noted:
                    self._missing_noted.add(key)
                    log.warning(
                        "spooled analytics events are meant for a sink this process does not "
                        "have; they are kept for one that has it",
                        sink=key,
                    )
        self._backlog.extend(result.segments)
        self._backlog.sort(key=lambda s: s.id)
        log.info(
            "adopted analytics events left by a process that stopped",
            segments=len(result.segments),
            events=events,
        )
        self._wake_readers()

    # -- waiters -------------------------------------------------------------------------

    def _settle(self) -> None:
        """Finish the flushes (and mark the shutdown settled) whose events every sink has
        confirmed, or that cannot complete now (a sink is skipped for a while)."""
        closing = self._closing
        if not self._waiters and (closing is None or closing.settled):
            return
        now = time.monotonic()
        cooling = [s.down_until > now for s in self._sinks]
        still: list[_Waiter] = []
        for waiter in [*self._waiters, closing]:
            if waiter is None or waiter.settled:
                continue
            if waiter.target is None:
                if waiter.kind != "close" and waiter.deadline <= now:
                    self._finish_waiter(waiter, False)
                else:
                    still.append(waiter)
                continue
            # A sink skipped for a while holds nothing up: its events wait in the spool.
            lagging = [
                c for s, c in zip(self._sinks, cooling, strict=True) if s.live_done < waiter.target
            ]
            overflow_due = self._overflow_done < waiter.overflow_target
            reached = not lagging and not overflow_due
            stuck = all(lagging) and (not overflow_due or any(cooling))
            if stuck or (waiter.kind != "close" and waiter.deadline <= now):
                ok = (
                    reached
                    and not waiter.commit_failed
                    and not waiter.failed_before
                    and self._all_failures() == waiter.failures_at_start
                )
                self._finish_waiter(waiter, ok)
            else:
                still.append(waiter)
        self._waiters = [w for w in still if w.kind != "close"]

    def _finish_waiter(self, waiter: _Waiter, ok: bool) -> None:
        self._failures_reported = max(self._failures_reported, self._all_failures())
        if waiter.kind == "close":
            waiter.settled = True
            waiter.ok = ok
            if self._settled_event is not None:
                self._settled_event.set()
        else:
            waiter.finish(ok)

    def _expire_waiters(self) -> None:
        if self._waiters:
            self._settle()

    def _urgent_for(self, state: _SinkState) -> bool:
        """Someone waits for this sink to confirm what it has now."""
        if self._closing is not None:
            return True
        return any(w.target is None or state.live_done < w.target for w in self._waiters)

    # -- the readers ---------------------------------------------------------------------

    def _wake_readers(self) -> None:
        for state in self._sinks:
            if state.wake is not None:
                state.wake.set()

    async def _idle(self, state: _SinkState, timeout: float | None) -> None:
        wake = state.wake = anyio.Event()
        if timeout is None:
            await wake.wait()
        else:
            with anyio.move_on_after(timeout):
                await wake.wait()

    async def _reader(self, state: _SinkState) -> None:
        """Deliver to one sink, in order: the live stream first, then the backlog."""
        while True:
            now = time.monotonic()
            if state.down_until > now:
                await self._idle(state, state.down_until - now)
                if state.down_until <= time.monotonic():
                    state.down_until = 0.0
                    self._log.info("retrying a sink that failed", sink=state.key)
                continue
            work = self._next_batch(state)
            if work is None:
                self._expire_waiters()
                await self._idle(state, None)
                continue
            if isinstance(work, _NeedDisk):
                await self._load(state, work)
                continue
            if (
                len(work.events) < self.batch_size
                and not work.from_disk
                and not self._urgent_for(state)
            ):
                wait = state.last_ship + self.flush_interval - now
                if wait > 0:
                    await self._idle(state, wait)
                    continue
            await self._ship(state, work)

    def _next_batch(self, state: _SinkState) -> _Batch | _NeedDisk | None:
        key = state.key
        for seg in self._live:
            done = seg.acked.get(key, 0)
            if done < seg.count:
                return self._batch_from(state, seg, done)
        for seg in self._backlog:
            if key in seg.sinks:
                done = seg.acked.get(key, 0)
                if done < seg.count:
                    return self._batch_from(state, seg, done)
        return None

    def _batch_from(self, state: _SinkState, seg: Segment, start: int) -> _Batch | _NeedDisk:
        chunks = seg.chunks
        if chunks and chunks[0].start <= start:
            stop = min(seg.count, start + self.batch_size)
            events: list[Event] = []
            bound = 1  # the batch as a JSON array is at most this long
            pos = start
            for chunk in chunks:
                if chunk.end <= pos:
                    continue
                lo, hi = pos - chunk.start, min(len(chunk.events), stop - chunk.start)
                events += chunk.events[lo:hi]
                bound += chunk.nbytes
                pos = chunk.start + hi
                if pos >= stop:
                    break
            limit = self.max_batch_bytes
            if limit is not None and bound > limit and len(events) > 1:
                # Possibly too big: measure it (large events only come here).
                del events[self._fit(array("I", map(len, map(encode_event, events)))) :]
            return _Batch(seg, events, start + len(events), from_disk=False)
        cache = state.cache
        if cache is not None and cache.seg is seg and start < cache.end:
            i = bisect.bisect_left(cache.indices, start)
            j = min(i + self.batch_size, len(cache.indices))
            n = self._fit(cache.sizes[i:j]) if j > i else 0
            end = i + n
            ack_to = cache.indices[end] if end < len(cache.indices) else cache.end
            return _Batch(seg, cache.events[i:end], ack_to, from_disk=True)
        return _NeedDisk(seg, start)

    def _fit(self, sizes: array[int]) -> int:
        """How many of the events (their JSON sizes) fit in ``max_batch_bytes`` as a JSON
        array (at least one: a larger event goes alone, for the sink to take or refuse)."""
        n = len(sizes)
        limit = self.max_batch_bytes
        if limit is None or n <= 1 or sum(sizes) + n + 1 <= limit:
            return n
        total = 1
        for i, size in enumerate(sizes):
            total += size + 1
            if total > limit:
                return max(1, i)
        return n

    async def _load(self, state: _SinkState, need: _NeedDisk) -> None:
        """Read a segment back from disk for one sink (from where it stands to the end)."""
        seg = need.seg
        try:
            read: ReadResult = await self._to_thread(self.spool.read, seg, need.start)
        except Exception as exc:  # unreadable: set aside, never retried in a loop
            if self._holds(seg):
                await self._set_aside(seg, exc)
            return
        if not self._holds(seg):
            return  # set aside meanwhile by another sink's reader
        end = seg.count
        fresh = [i for i in read.corrupt if i < end and i not in seg.corrupt]
        if read.total < end:  # lines the disk no longer has
            fresh += [i for i in range(max(read.total, need.start), end) if i not in seg.corrupt]
        if fresh:
            seg.corrupt.update(fresh)
            self._note_lost(len(fresh), f"lines of spool segment {seg.path.name} could not be read")
        cut = bisect.bisect_left(read.indices, end)
        state.cache = _Cache(
            seg, read.indices[:cut], read.events[:cut], read.sizes[:cut], min(end, seg.count)
        )

    def _holds(self, seg: Segment) -> bool:
        return any(s is seg for s in self._live) or any(s is seg for s in self._backlog)

    async def _set_aside(self, seg: Segment, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        self._aside.add(seg.id)
        self._live = [s for s in self._live if s is not seg]
        self._backlog = [s for s in self._backlog if s is not seg]
        if seg is self._writer:
            self._writer = None
        undelivered = seg.count - min((seg.acked.get(k, 0) for k in seg.sinks), default=0)
        self._quarantined += 1
        try:
            where: Path | None = await self._to_thread(
                self.spool.quarantine, seg.path, seg.id, reason
            )
        except OSError as move:
            where = None
            reason += f"; could not be moved aside: {move}"
        self._log.error(
            "an analytics spool segment could not be read; set aside",
            path=str(where or seg.path),
            reason=reason,
        )
        if undelivered > 0:
            self._note_lost(undelivered, f"spool segment {seg.path.name} could not be read", exc)
        else:
            self._note_failure()
        self._settle()

    async def _ship(self, state: _SinkState, batch: _Batch) -> None:
        outcome = await self._deliver(state, batch.events, replay=batch.from_disk)
        state.last_ship = time.monotonic()
        if outcome == _GAVE_UP:
            self._settle()
            return
        seg = batch.seg
        seg.acked[state.key] = batch.ack_to
        self._dirty[(seg.id, state.key)] = seg
        if seg.origin == "live" and seg.first_seq is not None:
            state.live_done = seg.first_seq + batch.ack_to
        if seg.chunks:
            low = min(seg.acked.get(k, 0) for k in seg.sinks)
            while seg.chunks and seg.chunks[0].end <= low:
                self._mem_events -= len(seg.chunks.popleft().events)
        if batch.ack_to >= seg.count and state.cache is not None and state.cache.seg is seg:
            state.cache = None
        if seg.origin == "overflow" and seg.complete_for(seg.sinks):
            self._overflow_done += seg.count
        self._settle()

    async def _deliver(self, state: _SinkState, batch: list[Event], *, replay: bool) -> int:
        """One batch to one sink, retried with backoff (a server's ``Retry-After`` may only
        lengthen a wait); on giving up, the sink is skipped for a while."""
        n = len(batch)
        if n == 0:
            return _DELIVERED
        retries = 0
        while True:
            server: float | None = None
            try:
                with anyio.fail_after(self.sink_timeout):
                    await state.sink.write(batch)
            except SinkRejected as exc:
                self._log.error(
                    "sink rejected a batch; dead-lettered", sink=state.key, events=n, error=str(exc)
                )
                await self._dead_letter(state.key, batch, str(exc))
                return _REJECTED  # settled: retrying will not help, and it is kept on disk
            except Exception as exc:  # SinkUnavailable, a timeout, or a bug in the sink
                if isinstance(exc, SinkUnavailable):
                    server = exc.retry_after
                error = exc
            else:
                state.sent += n
                self._sent += n
                self._batches += 1
                if replay:
                    self._replayed += n
                if state.failures:
                    state.failures = 0
                    self._log.info("a sink took a batch again", sink=state.key)
                return _DELIVERED
            retries += 1
            delay = self._retry.delay(retries, server)
            if retries > self.max_retries or delay > self.retry_max_delay:
                state.failures += 1
                cooldown = self._cooldown.backoff(state.failures + retries + 1)
                state.down_until = time.monotonic() + max(cooldown, server or 0.0)
                self._log.warning(
                    "sink failed after retries; its events wait in the spool",
                    sink=state.key,
                    events=n,
                    error=f"{type(error).__name__}: {error}",
                    skipped_for=round(state.down_until - time.monotonic(), 3),
                )
                return _GAVE_UP
            self._retried += 1
            await anyio.sleep(delay)

    async def _dead_letter(self, key: str, batch: list[Event], reason: str) -> None:
        try:
            await self._to_thread(self.spool.dead_letter, key, batch, reason)
        except OSError as exc:
            self._note_lost(len(batch), "a rejected batch could not be dead-lettered", exc)
            return
        self._failed += len(batch)
        self._note_failure()

    async def _to_thread(self, func: Callable[..., Any], *args: Any) -> Any:
        with anyio.CancelScope(shield=True):
            return await anyio.to_thread.run_sync(func, *args)

    # -- fork ----------------------------------------------------------------------------

    def _after_fork(self) -> None:
        """In a forked child: the parent's queue, loop, thread and files are not ours. Start
        empty and closed (events logged here go to the spool) until a new shipper is started;
        :mod:`limelight.analytics` starts one for its client."""
        writer = self._writer
        if writer is not None and writer.fd is not None:
            with contextlib.suppress(OSError):  # our copy only: the parent keeps writing
                os.close(writer.fd)
        self._reset_state()
        self.spool.forget_after_fork()
        self._closed = True
        self._stop_taking()

    def __repr__(self) -> str:
        sinks = ", ".join(s.key for s in self._sinks)
        return f"<AnalyticsShipper sinks=[{sinks}] queued={len(self._buf)}>"


def _to_loop_clock(deadline: float) -> float:
    """A ``time.monotonic()`` deadline on the event loop's clock (they may differ: trio's)."""
    if deadline == math.inf:
        return math.inf
    return anyio.current_time() + (deadline - time.monotonic())
