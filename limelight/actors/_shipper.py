"""The AnalyticsShipper: takes events from any thread or task without ever blocking or
raising, batches them (count, bytes, interval), delivers each batch to every sink with retries,
and keeps what it cannot deliver in a durable local spool that is replayed later.

The hot path (:meth:`AnalyticsShipper.log_event`) takes a slot token (``list.pop``) and
does a ``deque.append``, both atomic, so no lock; plus a wake-up of the shipper only when it is
parked and a batch is full: one cross-thread call per batch, not per event. The tokens make
the queue bound exact: an event is queued only with a token, and the shipper gives tokens
back as it takes events out, so however many threads log at once the queue never holds more
than ``max_queue_size``. Everything else (encoding, retries, disk) happens on the shipper's
own event loop.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import anyio
import msgspec

from ..errors import ConfigError, SinkRejected, SinkUnavailable
from ..runtime import Actor, Context
from ..schemas._events import Event, encode_events
from ._spool import ALL_SINKS, Spool, spool_key

if TYPE_CHECKING:
    from ..runtime import ActorRef, Runtime
    from ..sinks._base import Sink

__all__ = [
    "DEFAULT_BATCH_SIZE",
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
DEFAULT_MAX_RETRIES: Final = 3
DEFAULT_MAX_QUEUE_SIZE: Final = 100_000
DEFAULT_RETRY_INITIAL_DELAY: Final = 0.2
DEFAULT_RETRY_MAX_DELAY: Final = 10.0
DEFAULT_SINK_TIMEOUT: Final = 10.0
DEFAULT_STOP_TIMEOUT: Final = 5.0
#: The longest a sink that failed past its retries is skipped (its batches spooled).
MAX_COOLDOWN: Final = 30.0


def default_spool_dir() -> Path:
    """``$LIMELIGHT_HOME/spool``, or ``~/.limelight/spool``."""
    home = os.environ.get("LIMELIGHT_HOME")
    base = Path(home) if home else Path.home() / ".limelight"
    return base / "spool"


class ShipperStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a shipper's counters. ``sent``, ``failed``, ``spooled`` and ``retried``
    count event deliveries per sink (one event to two sinks counts twice).

    :ivar queued: events accepted into the in-memory queue since start.
    :ivar sent: deliveries that a sink accepted (replays from the spool included).
    :ivar failed: deliveries a sink rejected (dead-lettered), or events that could not be
        encoded at all.
    :ivar retried: batch retries after a retryable sink failure.
    :ivar spooled: deliveries written to the durable spool for a later replay.
    :ivar dropped: events refused by the full queue (spooled, not lost: also in ``spooled``).
    :ivar replayed: deliveries re-sent from the spool.
    :ivar lost: events neither delivered nor stored (the spool itself failed): should be 0.
    :ivar batches: batches shipped.
    :ivar success_rate: ``sent / (sent + failed + spooled - replayed)`` (1.0 before any
        delivery).
    :ivar queue_depth: events waiting in memory now.
    """

    queued: int
    sent: int
    failed: int
    retried: int
    spooled: int
    dropped: int
    replayed: int
    lost: int
    batches: int
    success_rate: float
    queue_depth: int


class _Pump(msgspec.Struct, frozen=True):
    """The shipper's own tick: one round of waiting, shipping and replaying."""


@dataclass(slots=True)
class _SinkState:
    sink: Sink
    key: str
    down_until: float = 0.0
    failures: int = 0
    sent: int = 0


@dataclass(slots=True)
class _Waiter:
    """A flush or shutdown waiting until every event up to ``target`` is handled."""

    target: int
    deadline: float  # time.monotonic()
    spooled: int = 0  # the shipper's spool count when it began: more means not all delivered
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = True
    #: For a waiter on the shipper's own loop (set there, by the shipper).
    ready: anyio.Event | None = None

    def set(self) -> None:
        self.done.set()
        if self.ready is not None:
            self.ready.set()


_live: weakref.WeakSet[AnalyticsShipper] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for shipper in list(_live):
        shipper._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class AnalyticsShipper(Actor):
    """Ships analytics events to sinks. An actor: spawn it in a runtime (or use
    :meth:`start`); its ``log_event`` may be called from any thread or task.

    :param sinks: where events go; each batch is delivered to every one.
    :param batch_size: most events per batch.
    :param max_batch_bytes: most JSON bytes per batch (a larger batch is split).
    :param flush_interval: seconds an incomplete batch may wait before it is shipped.
    :param max_retries: retries of a batch after a retryable failure, per sink, before the
        batch is spooled and the sink is skipped for a while (its batches spooled directly).
    :param max_queue_size: events held in memory, exactly (from any number of threads);
        beyond it, events go straight to the spool (counted in ``dropped``), so a producer
        never blocks and memory stays bounded.
    :param spool_dir: the durable spool's folder (default :func:`default_spool_dir`).
    :param sink_timeout: seconds one write to a sink may take before it counts as failed.
    :param stop_timeout: seconds the final delivery may take when the actor is stopped
        without :meth:`shutdown` (the runtime exiting); the rest is spooled.
    :param close_sinks: close the sinks (``aclose``) at shutdown: the shipper owns them.
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batch_bytes: int | None = DEFAULT_MAX_BATCH_BYTES,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
        spool_dir: str | os.PathLike[str] | None = None,
        retry_initial_delay: float = DEFAULT_RETRY_INITIAL_DELAY,
        retry_max_delay: float = DEFAULT_RETRY_MAX_DELAY,
        sink_timeout: float = DEFAULT_SINK_TIMEOUT,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        close_sinks: bool = False,
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
        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
        if max_queue_size < 1:
            raise ConfigError(f"max_queue_size must be >= 1, got {max_queue_size}")
        if not sink_timeout > 0 or not stop_timeout > 0:
            raise ConfigError("sink_timeout and stop_timeout must be > 0 seconds")
        self.batch_size = batch_size
        self.max_batch_bytes = max_batch_bytes
        self.flush_interval = flush_interval
        self.max_retries = max_retries
        self.max_queue_size = max_queue_size
        self.retry_initial_delay = retry_initial_delay
        self.retry_max_delay = retry_max_delay
        self.sink_timeout = sink_timeout
        self.stop_timeout = stop_timeout
        self.close_sinks = close_sinks
        self.spool = Spool(spool_dir if spool_dir is not None else default_spool_dir())
        self._rng = rng or random.Random()
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
        self._reset_state()
        _live.add(self)

    def _reset_state(self) -> None:
        self._buf: deque[Event] = deque()
        #: One token per free slot of the queue: log_event queues an event only when it can
        #: pop one (atomic), the shipper gives them back as it takes events out. Empty for
        #: good once closed, so that every later event goes to the spool.
        self._tokens: list[None] = [None] * self.max_queue_size
        self._taking = True
        self._parked = False
        self._wake_event: anyio.Event | None = None
        self._call_soon: Callable[[Callable[[], Any]], Any] | None = None
        #: The event loop's clock, readable from a callback (where anyio's is not).
        self._loop_time: Callable[[], float] | None = None
        self._loop_thread: int | None = None
        self._waiters: list[_Waiter] = []
        self._closing: _Waiter | None = None
        self._closed = False
        self._inflight: tuple[list[Event], set[str]] | None = None
        #: The scope of the delivery in progress (its deadline is brought forward by flushes).
        self._scope: anyio.CancelScope | None = None
        self._replay_due = True
        self._last_drain = 0.0
        self._popped = 0
        self._done_seq = 0
        self._dropped = 0
        self._sent = 0
        self._failed = 0
        self._retried = 0
        self._spooled = 0
        self._replayed = 0
        self._lost = 0
        self._batches = 0
        self._overflow_lock = threading.Lock()
        self._pid = os.getpid()

    # -- producers: any thread, never blocks, never raises -------------------------------

    def log_event(self, event: Event) -> None:
        """Queue ``event`` for shipping. Never blocks and never raises: beyond
        ``max_queue_size`` (or after shutdown) the event goes to the durable spool instead,
        counted in ``dropped``."""
        try:
            self._tokens.pop()
        except IndexError:
            self._overflow(event)
            return
        buf = self._buf
        buf.append(event)
        if self._parked and len(buf) >= self.batch_size:
            self._wake()

    def _give_back(self, n: int) -> None:
        """``n`` events left the queue: their slots are free again (unless closed)."""
        with self._overflow_lock:
            if self._taking:
                self._tokens.extend(itertools.repeat(None, n))

    def _stop_taking(self) -> None:
        """From now on every event goes to the spool."""
        with self._overflow_lock:
            self._taking = False
            self._tokens.clear()

    def _wake(self) -> None:
        self._parked = False
        call_soon, event = self._call_soon, self._wake_event
        if call_soon is not None and event is not None:
            # A closed loop (after shutdown) refuses: shutdown has spooled what was left.
            with contextlib.suppress(RuntimeError):
                call_soon(event.set)

    def _overflow(self, event: Event) -> None:
        try:
            with self._overflow_lock:
                self._dropped += 1
            if self.spool.append(ALL_SINKS, event):
                with self._overflow_lock:
                    self._spooled += len(self._sinks)
            else:
                with self._overflow_lock:
                    self._failed += 1
        except Exception:  # the disk failed: count it, never bother the producer
            with self._overflow_lock:
                self._lost += 1

    # -- statistics ----------------------------------------------------------------------

    def statistics(self) -> ShipperStatistics:
        sent, failed, spooled = self._sent, self._failed, self._spooled
        # A replayed event was counted as spooled first: count it once.
        total = sent + failed + max(0, spooled - self._replayed)
        depth = len(self._buf)
        return ShipperStatistics(
            queued=self._popped + depth,
            sent=sent,
            failed=failed,
            retried=self._retried,
            spooled=spooled,
            dropped=self._dropped,
            replayed=self._replayed,
            lost=self._lost,
            batches=self._batches,
            success_rate=1.0 if total == 0 else sent / total,
            queue_depth=depth,
        )

    def is_healthy(self) -> bool:
        """Running, not over its queue bound, and every sink took its last batch (none is
        failing past its retries)."""
        if self._closed or self._call_soon is None:
            return False
        if any(s.failures for s in self._sinks):
            return False
        return len(self._buf) < self.max_queue_size

    @property
    def closed(self) -> bool:
        return self._closed

    # -- flush and shutdown --------------------------------------------------------------

    def _register(
        self, timeout: float, *, closing: bool, ready: anyio.Event | None = None
    ) -> _Waiter:
        waiter = _Waiter(
            ready=ready,
            target=self._popped + len(self._buf),
            deadline=time.monotonic() + max(0.0, timeout),
            spooled=self._spooled + self._failed,
        )
        if closing:
            self._closing = waiter
        else:
            self._waiters.append(waiter)
        self._poke()
        return waiter

    def _poke(self) -> None:
        self._parked = False
        call_soon = self._call_soon
        if call_soon is not None:
            with contextlib.suppress(RuntimeError):
                call_soon(self._on_poke)

    def _on_poke(self) -> None:
        """On the loop: wake the shipper, and bring the deadline of the work in progress
        forward to that of a flush or shutdown that just arrived."""
        if self._wake_event is not None:
            self._wake_event.set()
        scope, clock = self._scope, self._loop_time
        if scope is not None and clock is not None:
            deadline = self._deadline()
            if deadline != math.inf:
                scope.deadline = min(scope.deadline, clock() + (deadline - time.monotonic()))

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self._loop_thread

    def _not_running(self) -> bool:
        return self._call_soon is None or self._closed

    def flush_threadsafe(self, timeout: float = 10.0) -> bool:
        """Blocking flush, from any thread but the shipper's own event loop thread: wait
        until every event queued before the call is delivered to every sink (True), or
        until ``timeout`` seconds have passed (False: what is left is spooled)."""
        if self.on_loop_thread():
            raise ConfigError(
                "flush_threadsafe() called from the shipper's event loop: use flush()"
            )
        if self._not_running():
            return self._flush_offline()
        waiter = self._register(timeout, closing=False)
        # A little grace past the deadline: the time to write the rest to the spool.
        if not waiter.done.wait(timeout + min(5.0, 1.0 + timeout)):
            return False
        return waiter.ok

    async def flush(self, timeout: float = 10.0) -> bool:
        """:meth:`flush_threadsafe` for async code; from another event loop (or thread) it
        waits in a worker thread."""
        if not self.on_loop_thread():
            return await anyio.to_thread.run_sync(self.flush_threadsafe, timeout)
        if self._not_running():
            return self._flush_offline()
        waiter = self._register(timeout, closing=False, ready=anyio.Event())
        assert waiter.ready is not None
        with anyio.move_on_after(timeout + min(5.0, 1.0 + timeout)):
            await waiter.ready.wait()
        return waiter.done.is_set() and waiter.ok

    def _flush_offline(self) -> bool:
        """Not running (before start, after shutdown, in a forked child): spool the queue."""
        self._spool_queue_sync()
        return not self._buf

    def shutdown_threadsafe(self, timeout: float = 10.0) -> bool:
        """Deliver what is queued within ``timeout`` seconds, spool the rest, and stop taking
        events into memory (later ones go to the spool). True if everything was delivered."""
        if self.on_loop_thread():
            raise ConfigError("shutdown_threadsafe() called from the shipper's event loop")
        if self._closed or self._call_soon is None:
            self._close_offline()
            return False
        waiter = self._register(timeout, closing=True)
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
        waiter = self._register(timeout, closing=True, ready=anyio.Event())
        assert waiter.ready is not None
        with anyio.move_on_after(timeout + min(5.0, 1.0 + timeout)):
            await waiter.ready.wait()
        return waiter.done.is_set() and waiter.ok

    def _close_offline(self) -> None:
        self._stop_taking()
        self._closed = True
        self._spool_queue_sync()

    def _spool_queue_sync(self) -> None:
        """Write every queued event to the spool now (blocking), for every sink."""
        events: list[Event] = []
        buf = self._buf
        while buf:
            events.append(buf.popleft())
        self._popped += len(events)
        self._give_back(len(events))
        if events:
            self._spool_sync(ALL_SINKS, events, len(self._sinks))
        self._done_seq = self._popped
        try:
            self.spool.seal()
        except OSError as exc:
            self._lost_note(exc)

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
        self._self_ref: ActorRef = ctx.self
        self._replay_due = True
        self._last_drain = time.monotonic()
        try:
            await anyio.to_thread.run_sync(self.spool.recover)
        except OSError as exc:
            self._log.warning("could not recover the analytics spool", error=str(exc))
        ctx.self.tell_nowait(_Pump())

    async def handle(self, message: Any, ctx: Context) -> Any:
        match message:
            case _Pump():
                await self._round()
                if not self._closed:
                    ctx.self.tell_nowait(_Pump())
                return None
        raise TypeError(f"AnalyticsShipper got an unexpected message {message!r}")

    async def on_stop(self, ctx: Context) -> None:
        """Stopped without a shutdown (the runtime is exiting): a last bounded delivery,
        then the rest goes to the spool. A restart after a crash keeps the queue instead."""
        if self._closed or ctx.runtime.running:
            return
        self._closing = _Waiter(
            target=self._popped + len(self._buf), deadline=time.monotonic() + self.stop_timeout
        )
        await self._round()

    # -- one round -----------------------------------------------------------------------

    def _urgent(self) -> bool:
        return (
            len(self._buf) >= self.batch_size
            or bool(self._waiters)
            or self._closing is not None
            or self._inflight is not None
        )

    async def _park(self) -> None:
        wait = self.flush_interval - (time.monotonic() - self._last_drain)
        if wait <= 0 or self._urgent():
            return
        event = self._wake_event = anyio.Event()
        self._parked = True
        if self._urgent():  # an event or a flush slipped in before the flag was up
            self._parked = False
            return
        with anyio.move_on_after(wait):
            await event.wait()
        self._parked = False

    def _deadline(self) -> float:
        """The earliest deadline of the flushes and the shutdown waiting now."""
        deadlines = [w.deadline for w in self._waiters]
        if self._closing is not None:
            deadlines.append(self._closing.deadline)
        return min(deadlines, default=math.inf)

    async def _round(self) -> None:
        await self._park()
        closing = self._closing
        if closing is not None:
            self._stop_taking()  # from now on, producers' events go to the spool
        deadline = self._deadline()
        interval_due = time.monotonic() - self._last_drain >= self.flush_interval
        drain_all = interval_due or deadline != math.inf
        expired = False
        if self._inflight is not None:  # left by a crash or a cancelled round
            batch, pending = self._inflight
            expired = not await self._ship(batch, pending, deadline)
        while not expired and self._buf:
            if len(self._buf) < self.batch_size and not drain_all:
                break
            batch = self._take(self.batch_size)
            expired = not await self._ship(batch, {s.key for s in self._sinks}, deadline)
            if not expired:
                self._settle(False)
                # A flush served is no deadline for what producers added since.
                deadline = self._deadline()
        if drain_all:
            self._last_drain = time.monotonic()
        if expired:
            # The deadline passed with a sink still hanging: what it was waiting for is
            # spooled (for a flush: what was queued before it; for shutdown: everything).
            target = (
                self._popped + len(self._buf)
                if closing is not None
                else max((w.target for w in self._waiters), default=self._popped)
            )
            await self._spool_upto(target)
        if self.spool.has_open():  # overflow: once sealed, it is sent when there is time
            await self._to_thread(self.spool.seal)
            self._replay_due = True
        self._settle(expired)
        if not expired and not self._urgent() and self._replay_due:
            with anyio.CancelScope(deadline=_to_loop_clock(deadline)) as scope:
                self._scope = scope
                try:
                    await self._replay()
                finally:
                    self._scope = None
        if closing is not None and self._done_seq >= closing.target:
            self._closed = True
            self._spool_queue_sync()  # events that raced in before the limit dropped
            if self.close_sinks:
                await self._close_sinks()
            closing.ok = (
                closing.ok and not expired and self._spooled + self._failed == closing.spooled
            )
            closing.set()
            self._closing = None

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

    def _settle(self, expired: bool) -> None:
        still: list[_Waiter] = []
        for waiter in self._waiters:
            if self._done_seq >= waiter.target:
                waiter.ok = not expired and self._spooled + self._failed == waiter.spooled
                waiter.set()
            else:
                still.append(waiter)
        self._waiters = still
        if expired and self._closing is not None:
            self._closing.ok = False

    def _take(self, n: int) -> list[Event]:
        buf = self._buf
        n = min(n, len(buf))
        popleft = buf.popleft
        batch = [popleft() for _ in range(n)]
        self._popped += n
        self._give_back(n)
        return batch

    async def _spool_upto(self, target: int) -> None:
        n = target - self._popped
        if n > 0:
            batch = self._take(n)
            await self._to_thread(self._spool_sync, ALL_SINKS, batch, len(self._sinks))
        self._done_seq = max(self._done_seq, self._popped)

    # -- delivery ------------------------------------------------------------------------

    def _parts(self, events: list[Event]) -> list[list[Event]]:
        """``events`` (a replayed segment) in batches of ``batch_size`` and ``max_batch_bytes``."""
        size = self.batch_size
        return [
            part for i in range(0, len(events), size) for part in self._split(events[i : i + size])
        ]

    def _split(self, batch: list[Event]) -> list[list[Event]]:
        """``batch`` in parts of at most ``max_batch_bytes`` JSON bytes."""
        limit = self.max_batch_bytes
        if limit is None or len(batch) == 1:
            return [batch]
        try:
            size = len(encode_events(batch))
        except (TypeError, ValueError):
            size = limit + 1  # something unencodable inside: split down to find it
        if size <= limit:
            return [batch]
        half = len(batch) // 2
        return self._split(batch[:half]) + self._split(batch[half:])

    async def _ship(self, batch: list[Event], pending: set[str], deadline: float) -> bool:
        """Deliver ``batch`` to the sinks in ``pending``; spool it for the ones that fail.
        False if the deadline cut it short (then it was spooled for the sinks left)."""
        self._inflight = (batch, pending)
        parts = self._split(batch)
        states = [s for s in self._sinks if s.key in pending]
        with anyio.CancelScope(deadline=_to_loop_clock(deadline)) as scope:
            self._scope = scope
            try:
                if len(states) == 1:
                    await self._deliver_parts(states[0], parts, pending)
                else:
                    async with anyio.create_task_group() as tg:
                        for state in states:
                            tg.start_soon(self._deliver_parts, state, parts, pending)
            finally:
                self._scope = None
        self._batches += 1
        if pending:  # cut short by the deadline
            with anyio.CancelScope(shield=True):
                for key in sorted(pending):
                    await self._to_thread(self._spool_sync, key, batch, 1)
            pending.clear()
        self._inflight = None
        self._done_seq = max(self._done_seq, self._popped)
        return not scope.cancelled_caught

    async def _deliver_parts(
        self, state: _SinkState, parts: list[list[Event]], pending: set[str]
    ) -> None:
        for part in parts:
            await self._deliver(state, part)
        pending.discard(state.key)

    async def _deliver(
        self, state: _SinkState, batch: list[Event], *, spool: bool = True, replay: bool = False
    ) -> bool:
        """One batch to one sink, retried; on giving up it is spooled (``spool``) and the
        sink is skipped for a while. True when the sink took it."""
        n = len(batch)
        if state.down_until > time.monotonic():
            if spool:
                await self._to_thread(self._spool_sync, state.key, batch, 1)
            return False
        retries = 0
        while True:
            delay: float | None = None
            try:
                with anyio.fail_after(self.sink_timeout):
                    await state.sink.write(batch)
            except SinkRejected as exc:
                self._log.error(
                    "sink rejected a batch; dead-lettered", sink=state.key, events=n, error=str(exc)
                )
                await self._to_thread(self._dead_letter, state.key, batch, str(exc))
                return True  # settled: retrying will not help, and it is kept on disk
            except Exception as exc:  # SinkUnavailable, a timeout, or a bug in the sink
                if isinstance(exc, SinkUnavailable) and exc.retry_after is not None:
                    delay = exc.retry_after
                error = exc
            else:
                state.sent += n
                self._sent += n
                if replay:
                    self._replayed += n
                if state.failures or state.down_until:
                    state.failures = 0
                    state.down_until = 0.0
                    self._replay_due = True  # it is back: what was spooled for it can go
                return True
            retries += 1
            if retries > self.max_retries or (delay is not None and delay > self.retry_max_delay):
                state.failures += 1
                cooldown = min(
                    MAX_COOLDOWN, self.retry_initial_delay * 2 ** (state.failures + retries)
                )
                state.down_until = time.monotonic() + max(cooldown, delay or 0.0)
                self._log.warning(
                    "sink failed after retries; its batches are spooled for now",
                    sink=state.key,
                    events=n,
                    error=f"{type(error).__name__}: {error}",
                    skipped_for=round(state.down_until - time.monotonic(), 3),
                )
                if spool:
                    await self._to_thread(self._spool_sync, state.key, batch, 1)
                self._replay_due = True  # probe again once the cooldown is over
                return False
            if delay is None:
                base = min(self.retry_max_delay, self.retry_initial_delay * 2 ** (retries - 1))
                delay = base * (1.0 - 0.5 * self._rng.random())
            self._retried += 1
            await anyio.sleep(delay)

    def _dead_letter(self, key: str, batch: list[Event], reason: str) -> None:
        try:
            self.spool.dead_letter(key, batch, reason)
            self._failed += len(batch)
        except OSError:
            self._lost += len(batch)

    def _spool_sync(self, key: str, batch: list[Event], deliveries: int) -> None:
        """Blocking: ``batch`` into ``key``'s spool, counted (``deliveries`` per event)."""
        try:
            stored = self.spool.write_segment(key, batch)
        except OSError as exc:
            self._lost += len(batch)
            self._lost_note(exc)
            return
        self._spooled += stored * deliveries
        self._failed += len(batch) - stored  # unencodable: could be neither sent nor stored

    def _lost_note(self, exc: BaseException) -> None:
        log = getattr(self, "_log", None)
        if log is not None:
            log.error("could not write the analytics spool", error=f"{type(exc).__name__}: {exc}")

    async def _to_thread(self, func: Callable[..., Any], *args: Any) -> Any:
        with anyio.CancelScope(shield=True):
            return await anyio.to_thread.run_sync(func, *args)

    # -- replay --------------------------------------------------------------------------

    async def _replay(self) -> None:
        """Re-send spooled segments to the sinks that are up, oldest first, a segment at a
        time, yielding to live traffic (a full batch or a flush) between segments."""
        self._replay_due = False
        by_key = {s.key: s for s in self._sinks}
        now = time.monotonic()
        for key in await self._to_thread(self.spool.sink_keys):
            if key == ALL_SINKS:
                targets = list(self._sinks)
            elif key in by_key:
                targets = [by_key[key]]
            else:
                continue  # a sink this process does not have: left for one that does
            if any(s.down_until > now for s in targets) and key != ALL_SINKS:
                self._replay_due = True
                continue
            for path in await self._to_thread(self.spool.segments, key):
                if self._urgent():
                    self._replay_due = True
                    return
                claimed = await self._to_thread(self.spool.claim, path)
                if claimed is None:
                    continue
                try:
                    done = await self._replay_segment(key, claimed, targets)
                except BaseException:
                    # Cancelled (a deadline, a stop): the segment stays for a later replay.
                    await self._to_thread(self.spool.release, claimed)
                    self._replay_due = True
                    raise
                if not done:
                    self._replay_due = True
                    break

    async def _replay_segment(self, key: str, claimed: Path, targets: list[_SinkState]) -> bool:
        """Deliver one claimed segment; False (and the segment released) when the sink failed."""
        events = await self._to_thread(self.spool.read, claimed)
        if key == ALL_SINKS:
            # Delivered where it can be; spooled under each failing sink's own key.
            for state in targets:
                for part in self._parts(events):
                    await self._deliver(state, part, replay=True)
            await self._to_thread(self.spool.remove, claimed)
            return True
        for part in self._parts(events):
            if not await self._deliver(targets[0], part, spool=False, replay=True):
                # Parts already delivered go again later: a deduping sink keeps them once.
                await self._to_thread(self.spool.release, claimed)
                return False
        await self._to_thread(self.spool.remove, claimed)
        return True

    # -- fork ----------------------------------------------------------------------------

    def _after_fork(self) -> None:
        """In a forked child: the parent's queue, loop and thread are not ours. Start empty
        and closed (events logged here go to the spool) until a new shipper is started;
        :mod:`limelight.analytics` starts one for its client."""
        self._reset_state()
        self.spool.forget_open_after_fork()
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
