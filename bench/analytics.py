"""Analytics benchmark: the cost of ``log_event`` on the producer's side (async code and
threads), the cost of building an event, and sustained events/s to a null sink and to
SQLite, side by side with a queue-thread shipper in the style of today's analytics clients
(``queue.Queue`` + a consumer thread + ``json.dumps`` per batch), in the same run. Every
limelight event goes through the write-ahead spool (group commit) before a sink sees it;
the null-sink run is repeated with ``fsync="always"``, and the commit latency (how long an
accepted event waits until it is on disk) is measured for both settings.

    python bench/analytics.py            # full run (medians of 5)
    python bench/analytics.py --quick    # CI smoke run: small counts, 1 repeat

Every sustained run checks zero loss: the sink's count must equal the events logged.
"""

from __future__ import annotations

import argparse
import json
import queue
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec
from anyio.lowlevel import checkpoint

from limelight import analytics
from limelight.actors._shipper import AnalyticsShipper
from limelight.runtime import Runtime
from limelight.schemas import Event
from limelight.sinks import NullSink, SQLiteSink

RESULTS = Path(__file__).parent / "results"
CHUNK = 1000


def build_events(n: int) -> list[Event]:
    return [
        Event.create_llm_response(
            "gpt-4o",
            provider="openai",
            input_tokens=120,
            output_tokens=48,
            cost=0.00123,
            latency=0.8,
            finish_reason="stop",
            role="executor",
            run_id="run-1",
            user_id="user-1",
        )
        for _ in range(n)
    ]


# -- the peer: a queue-thread shipper as analytics clients do it today ------------------


class QueueThreadShipper:
    """``queue.Queue`` + one consumer thread that takes up to ``batch_size`` events (or
    waits ``flush_interval``), turns them into dicts and ``json.dumps`` the batch, then
    hands the JSON to ``send`` (a POST in the real clients). A full queue drops the event
    (counted), as those clients do."""

    def __init__(
        self,
        send: Callable[[str, int], None],
        *,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        max_queue_size: int = 10_000_000,
    ) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue_size)
        self.send = send
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.dropped = 0
        self.sent = 0
        self._stop = object()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def log_event(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        get = self.queue.get
        while True:
            batch: list[Any] = []
            stop = False
            try:
                item = get(timeout=self.flush_interval)
                if item is self._stop:
                    stop = True
                else:
                    batch.append(item)
                    while len(batch) < self.batch_size:
                        item = self.queue.get_nowait()
                        if item is self._stop:
                            stop = True
                            break
                        batch.append(item)
            except queue.Empty:
                pass
            if batch:
                body = json.dumps([msgspec.to_builtins(e) for e in batch])
                self.send(body, len(batch))
                self.sent += len(batch)
            if stop:
                return

    def close(self) -> None:
        self.queue.put(self._stop)
        self._thread.join()


class NullSend:
    def __init__(self) -> None:
        self.events = 0

    def __call__(self, body: str, n: int) -> None:
        self.events += n


class SQLiteSend:
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, data TEXT)"
        )
        self.events = 0

    def __call__(self, body: str, n: int) -> None:
        rows = [(e["event_id"], json.dumps(e)) for e in json.loads(body)]
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT OR IGNORE INTO events VALUES (?, ?)", rows)
        self.conn.execute("COMMIT")
        self.events += n


def lost(label: str, expected: int, delivered: int, dropped: int = 0) -> None:
    """The zero-loss check of every run: a loss stops the benchmark."""
    if delivered != expected or dropped:
        raise SystemExit(f"{label}: {expected} logged, {delivered} delivered, {dropped} dropped")


# -- hot path ------------------------------------------------------------------------------


def _timed_chunks(log: Callable[[Event], None], events: list[Event]) -> float:
    t0 = time.perf_counter()
    for event in events:
        log(event)
    return time.perf_counter() - t0


async def hot_path_async(n: int, tmp: Path) -> dict[str, float]:
    """ns per log_event from async code; the shipper runs between chunks (not timed)."""
    events = build_events(n)
    sink = NullSink()
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(
            rt, [sink], spool_dir=tmp / "spool-hot", max_queue_size=10 * n
        )
        spent = 0.0
        for i in range(0, n, CHUNK):
            spent += _timed_chunks(shipper.log_event, events[i : i + CHUNK])
            await checkpoint()
        await shipper.shutdown(30)
        lost("limelight hot path", n, sink.events)
    peer = QueueThreadShipper(NullSend())
    peer_spent = 0.0
    for i in range(0, n, CHUNK):
        peer_spent += _timed_chunks(peer.log_event, events[i : i + CHUNK])
        await checkpoint()
    peer.close()
    lost("queue-thread hot path", n, peer.sent)
    return {"limelight_ns": spent / n * 1e9, "queue_thread_ns": peer_spent / n * 1e9}


def hot_path_threads(n: int, threads: int, tmp: Path) -> dict[str, float]:
    """ns per log_event on each of ``threads`` producer threads (wall time of the producer
    loops, GIL contention with the shipper included)."""
    events = build_events(n)
    per = n // threads

    def run(log: Callable[[Event], None]) -> float:
        spent = [0.0] * threads

        def produce(t: int) -> None:
            part = events[t * per : (t + 1) * per]
            total = 0.0
            for i in range(0, per, CHUNK):
                total += _timed_chunks(log, part[i : i + CHUNK])
            spent[t] = total

        workers = [threading.Thread(target=produce, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return sum(spent) / (per * threads) * 1e9

    sink = NullSink()
    cfg = analytics.AnalyticsConfig(spool_dir=str(tmp / "spool-thr"), max_queue_size=10 * n)
    client = analytics.initialize(config=cfg, sinks=[sink])
    ours = run(client.log_event)
    analytics.shutdown(60)
    lost("limelight threads", per * threads, sink.events)
    peer = QueueThreadShipper(NullSend())
    theirs = run(peer.log_event)
    peer.close()
    lost("queue-thread threads", per * threads, peer.sent)
    return {"limelight_ns": ours, "queue_thread_ns": theirs}


def build_cost(n: int) -> dict[str, float]:
    """ns to build one event: limelight's factory (typed, redacted, uuid, timestamp) against
    the dict an SDK builds (uuid4, time, nested payload dict)."""
    import uuid

    t0 = time.perf_counter()
    build_events(n)
    ours = (time.perf_counter() - t0) / n * 1e9
    t0 = time.perf_counter()
    for _ in range(n):
        {
            "event_id": str(uuid.uuid4()),
            "event_type": "llm_response",
            "timestamp": time.time(),
            "run_id": "run-1",
            "user_id": "user-1",
            "payload": {
                "model": "gpt-4o",
                "provider": "openai",
                "input_tokens": 120,
                "output_tokens": 48,
                "cost": 0.00123,
                "latency": 0.8,
                "finish_reason": "stop",
                "role": "executor",
            },
        }
    theirs = (time.perf_counter() - t0) / n * 1e9
    return {"limelight_ns": ours, "dict_ns": theirs}


# -- sustained -------------------------------------------------------------------------------


async def sustained_limelight(n: int, sink_kind: str, tmp: Path, fsync: str = "never") -> float:
    """events/s from the first log_event to the end of the flush, producer and shipper on
    the same event loop (the producer yields every CHUNK events)."""
    events = build_events(n)
    sink: Any = NullSink() if sink_kind == "null" else SQLiteSink(tmp / f"ll-{time.time_ns()}.db")
    async with Runtime() as rt:
        shipper = await AnalyticsShipper.start(
            rt,
            [sink],
            spool_dir=tmp / f"spool-{time.time_ns()}",
            max_queue_size=10 * n,
            fsync=fsync,
        )
        t0 = time.perf_counter()
        log = shipper.log_event
        for i in range(0, n, CHUNK):
            for event in events[i : i + CHUNK]:
                log(event)
            await checkpoint()
        assert await shipper.flush(120)
        rate = n / (time.perf_counter() - t0)
        stats = shipper.statistics()
        await shipper.shutdown(30)
    stored = sink.events if sink_kind == "null" else sink.inserted
    lost(f"limelight to {sink_kind}", n, stored, stats.dropped)
    return rate


def sustained_peer(n: int, sink_kind: str, tmp: Path) -> float:
    events = build_events(n)
    send: Any = NullSend() if sink_kind == "null" else SQLiteSend(tmp / f"peer-{time.time_ns()}.db")
    peer = QueueThreadShipper(send)
    t0 = time.perf_counter()
    for event in events:
        peer.log_event(event)
    peer.close()
    rate = n / (time.perf_counter() - t0)
    lost(f"queue-thread to {sink_kind}", n, send.events, peer.dropped)
    return rate


def commit_latency(seconds: float, rate: float, tmp: Path, fsync: str) -> dict[str, float]:
    """How long an accepted event waits until it is on disk (the commit window): events
    logged at a steady ``rate`` from a plain thread through ``analytics.initialize()`` (null
    sink), the spooled count polled every 0.5 ms from another thread. Milliseconds from the
    moment a chunk of 50 was accepted to the first poll that saw it spooled (an upper bound:
    the count moves after the write, once the shipper's loop has taken it in)."""
    n = int(seconds * rate)
    events = build_events(n)
    sink = NullSink()
    cfg = analytics.AnalyticsConfig(spool_dir=str(tmp / f"spool-lat-{time.time_ns()}"), fsync=fsync)
    client = analytics.initialize(config=cfg, sinks=[sink], handle_signals=False)
    polls: list[tuple[float, int]] = []
    running = True

    def poll() -> None:
        last = -1
        while running:
            spooled = client.statistics().spooled
            if spooled != last:
                polls.append((time.perf_counter(), spooled))
                last = spooled
            time.sleep(0.0005)

    poller = threading.Thread(target=poll)
    poller.start()
    accepted: list[tuple[int, float]] = []
    step = 50
    start = time.perf_counter()
    for first in range(0, n, step):
        for event in events[first : first + step]:
            client.log_event(event)
        accepted.append((min(first + step, n), time.perf_counter()))
        lag = start + (first + step) / rate - time.perf_counter()
        if lag > 0:
            time.sleep(lag)
    deadline = time.perf_counter() + 30
    while client.statistics().spooled < n and time.perf_counter() < deadline:
        time.sleep(0.001)
    time.sleep(0.005)
    running = False
    poller.join()
    analytics.shutdown(30)
    lost("limelight commit latency", n, sink.events)
    latencies = []
    i = 0
    for end, at in accepted:
        while i < len(polls) and polls[i][1] < end:
            i += 1
        latencies.append((polls[i][0] - at) * 1000)
    latencies.sort()
    return {
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
        "max_ms": latencies[-1],
    }


# -- main ------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts, 1 repeat (CI)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    n_hot = 20_000 if args.quick else 300_000
    n_null = 20_000 if args.quick else 500_000
    n_sqlite = 5_000 if args.quick else 100_000
    results: dict[str, Any] = {
        "runs": runs,
        "backend": args.backend,
        "python": sys.version.split()[0],
    }
    rows: dict[str, list[dict[str, float]]] = {
        "hot_async": [],
        "hot_threads": [],
        "build": [],
        "null": [],
        "null_fsync": [],
        "sqlite": [],
        "commit_never": [],
        "commit_always": [],
    }
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for _ in range(runs):
            rows["hot_async"].append(anyio.run(hot_path_async, n_hot, tmp, backend=args.backend))
            rows["hot_threads"].append(hot_path_threads(n_hot, 4, tmp))
            rows["build"].append(build_cost(n_hot // 3))
            rows["null"].append(
                {
                    "limelight": anyio.run(
                        sustained_limelight, n_null, "null", tmp, backend=args.backend
                    ),
                    "queue_thread": sustained_peer(n_null, "null", tmp),
                }
            )
            rows["null_fsync"].append(
                {
                    "limelight": anyio.run(
                        sustained_limelight, n_null, "null", tmp, "always", backend=args.backend
                    )
                }
            )
            for fsync in ("never", "always"):
                rows[f"commit_{fsync}"].append(
                    commit_latency(1.0 if args.quick else 4.0, 20_000, tmp, fsync)
                )
            rows["sqlite"].append(
                {
                    "limelight": anyio.run(
                        sustained_limelight, n_sqlite, "sqlite", tmp, backend=args.backend
                    ),
                    "queue_thread": sustained_peer(n_sqlite, "sqlite", tmp),
                }
            )
    for name, runs_of in rows.items():
        results[name] = {key: median([r[key] for r in runs_of]) for key in runs_of[0]} | {
            "per_run": runs_of
        }

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}x"

    ha, ht, bc = results["hot_async"], results["hot_threads"], results["build"]
    nu, sq, nf = results["null"], results["sqlite"], results["null_fsync"]
    cn, ca = results["commit_never"], results["commit_always"]
    print(f"analytics benchmark ({args.backend}, medians of {runs}; zero loss checked)")
    print(f"{'measure':<44} {'limelight':>14} {'peer':>14} {'vs.':>8}")
    lines = [
        ("log_event, async code (ns/event)", ha["limelight_ns"], ha["queue_thread_ns"]),
        ("log_event, 4 threads (ns/event)", ht["limelight_ns"], ht["queue_thread_ns"]),
        ("build an event (ns; peer: a dict)", bc["limelight_ns"], bc["dict_ns"]),
        ("sustained to a null sink (events/s)", nu["limelight"], nu["queue_thread"]),
        ("sustained to SQLite (events/s)", sq["limelight"], sq["queue_thread"]),
    ]
    for label, ours, theirs in lines:
        print(f"{label:<44} {ours:>14,.0f} {theirs:>14,.0f} {ratio(ours, theirs):>8}")
    print(f"{'sustained to a null sink, fsync=always (ev/s)':<44} {nf['limelight']:>14,.0f}")
    for name, c in (("never", cn), ("always", ca)):
        label = f"commit latency fsync={name} (ms p50/p99/max)"
        figures = f"{c['p50_ms']:.1f} / {c['p99_ms']:.1f} / {c['max_ms']:.1f}"
        print(f"{label:<44} {figures:>14}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"analytics-{args.backend}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
