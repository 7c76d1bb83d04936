"""Analytics soak: accepted means durable.

Each trial runs a child process that records 50,000 events through ``analytics.initialize()``
(the default sinks: SQLite, plus HTTP to an ingestion endpoint that is *slow* (every request
held for ``--http-delay`` seconds) or *down* (nobody listening) in alternate trials), at a
steady pace, and writes down which events it has accepted and when (CLOCK_MONOTONIC, the
same clock for every process). At a random moment the child is killed with SIGKILL, or
sent SIGTERM (as ``docker stop`` and Kubernetes do). Then a second process starts on the same
spool (the endpoint up again), replays what is left, and the events are counted by id in the
SQLite file and at the endpoint.

Reported per trial and in total:
- **lost**: events accepted more than the commit window before the SIGKILL (every accepted
  event for SIGTERM) that are missing from SQLite or from the endpoint;
- **in window**: events accepted within the window before the kill, and how many of those
  survived anyway (not a loss: the promise is about older events);
- **duplicates stored**: event ids stored more than once (SQLite rows, endpoint store);
- **re-sent**: events the endpoint received more than once (an at-least-once delivery that
  a batch confirmed just before a kill causes; the endpoint dedupes by id).

    python bench/analytics_soak.py            # 20 SIGKILL + 10 SIGTERM trials of 50,000 events
    python bench/analytics_soak.py --quick    # CI: 2 + 2 trials of 5,000 events
    python bench/analytics_soak.py --trials 5 --sigterm-trials 2 --events 20000 --seed 7
"""

from __future__ import annotations

import argparse
import collections
import json
import mmap
import os
import random
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec

RESULTS = Path(__file__).parent / "results"
CHUNK = 100  # events logged between two progress notes
WINDOW = 0.1  # s: the commit window the promise is about (commit_interval 0.05 + the commit)
STRICT_WINDOW = 0.05  # s: the commit interval alone, reported beside it


def event_id(trial: int, i: int) -> uuid.UUID:
    return uuid.UUID(int=(0x50A4 << 96) | (trial << 32) | i)


# -- the ingestion endpoint -----------------------------------------------------------------


class _Id(msgspec.Struct):
    event_id: str


_ids = msgspec.json.Decoder(list[_Id])


class Endpoint:
    """``POST /v1/events``: counts every event id it receives (repeats too), stores each once,
    and holds every request for ``delay`` seconds first (a slow endpoint)."""

    def __init__(self, port: int, delay: float) -> None:
        self.port = port
        self.delay = delay
        self.received: collections.Counter[str] = collections.Counter()
        self.stored: set[str] = set()
        self.requests = 0
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/events"

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if owner.delay:
                    time.sleep(owner.delay)
                ids = [item.event_id for item in _ids.decode(body)]
                with owner.lock:
                    owner.requests += 1
                    owner.received.update(ids)
                    owner.stored.update(ids)
                payload = b'{"accepted": %d}' % len(ids)
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client killed in the middle of a request: expected here

        self._server = Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the child: records events and notes what it accepted, until it is killed ---------------


def child(args: argparse.Namespace) -> None:
    from limelight import analytics
    from limelight.schemas import Event

    config = analytics.AnalyticsConfig(
        spool_dir=args.spool, db_path=args.db, endpoint=args.url, sink_timeout=5.0
    )
    events = [
        msgspec.structs.replace(
            Event.create_llm_response(
                "gpt-4o",
                provider="openai",
                input_tokens=120,
                output_tokens=48,
                cost=0.00123,
                latency=0.8,
                role="executor",
                run_id=f"trial-{args.trial}",
            ),
            event_id=event_id(args.trial, i),
        )
        for i in range(args.events)
    ]
    with open(args.counter, "r+b") as f:
        counter = mmap.mmap(f.fileno(), 8)
    notes = os.open(args.notes, os.O_WRONLY | os.O_APPEND)
    client = analytics.initialize(config=config)  # SIGTERM handler included (the default)
    log = client.log_event
    print("ready", flush=True)
    start = time.monotonic()
    pack = struct.pack_into
    for first in range(0, args.events, CHUNK):
        for i in range(first, min(first + CHUNK, args.events)):
            log(events[i])
            pack("q", counter, 0, i + 1)  # accepted: i + 1 events
        # All events before `end` were accepted by this moment.
        end = min(first + CHUNK, args.events)
        os.write(notes, b"%d %d\n" % (end, time.monotonic_ns()))
        lag = start + end / args.rate - time.monotonic()
        if lag > 0:
            time.sleep(lag)
    print("done", flush=True)
    time.sleep(3600)  # until the signal


def drain(args: argparse.Namespace) -> None:
    """The restart: adopt what the killed child left in the spool, deliver it, report."""
    from limelight import analytics
    from limelight._spool import Spool

    config = analytics.AnalyticsConfig(
        spool_dir=args.spool, db_path=args.db, endpoint=args.url, sink_timeout=5.0
    )
    started = time.monotonic()
    client = analytics.initialize(config=config)
    spool = Spool(args.spool)
    deadline = started + 300
    while spool.pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    flushed = client.flush(30)
    stats = client.statistics()
    ok = analytics.shutdown(30)
    print(
        json.dumps(
            {
                "left": spool.pending(),
                "flushed": flushed,
                "shutdown": ok,
                "seconds": time.monotonic() - started,
                "replayed": stats.replayed,
                "lost": stats.lost,
                "quarantined": stats.quarantined,
            }
        ),
        flush=True,
    )


# -- one trial ------------------------------------------------------------------------------


def run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout
    )


def trial(
    n: int, kind: str, http: str, events: int, rate: float, delay: float, rng: random.Random
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="limelight-soak-") as folder:
        tmp = Path(folder)
        spool, db = tmp / "spool", tmp / "events.db"
        counter, notes = tmp / "counter", tmp / "notes"
        counter.write_bytes(b"\0" * 8)
        notes.write_bytes(b"")
        port = free_port()
        endpoint = Endpoint(port, delay)
        if http == "slow":
            endpoint.start()
        common = ["--spool", str(spool), "--db", str(db), "--url", endpoint.url]
        proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--child",
                *common,
                "--trial",
                str(n),
                "--events",
                str(events),
                "--rate",
                str(rate),
                "--counter",
                str(counter),
                "--notes",
                str(notes),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "ready":
            proc.kill()
            raise SystemExit(f"trial {n}: the child did not start: {proc.communicate()[1]}")
        after = rng.uniform(0.05, 1.1 * events / rate)
        time.sleep(after)
        killed_at = time.monotonic_ns()
        proc.send_signal(signal.SIGKILL if kind == "kill" else signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            raise SystemExit(f"trial {n}: the child did not end on {kind}") from None
        exit_seconds = (time.monotonic_ns() - killed_at) / 1e9
        accepted = struct.unpack("q", counter.read_bytes())[0]
        progress = [tuple(map(int, raw.split())) for raw in notes.read_text().split("\n") if raw]
        if http == "down":
            endpoint.start()  # back for the restart
        drained = run("--drain", *common, timeout=600)
        endpoint.stop()
        if drained.returncode != 0:
            raise SystemExit(f"trial {n}: the restart failed: {drained.stderr}")
        report = json.loads(drained.stdout.strip().splitlines()[-1])
        rows: list[tuple[str]] = []
        if db.exists():  # (nothing was ever written to it when the kill came very early)
            conn = sqlite3.connect(db)
            try:
                if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'events'").fetchone():
                    rows = conn.execute("SELECT event_id FROM events").fetchall()
            finally:
                conn.close()
        in_sqlite = [r[0] for r in rows]
        sqlite_ids, http_ids = set(in_sqlite), endpoint.stored

        def before(window: float) -> int:
            limit = killed_at - int(window * 1e9)
            return max((end for end, at in progress if at <= limit), default=0)

        if kind == "kill":
            required = before(WINDOW)
            strict = before(STRICT_WINDOW)
        else:
            required = strict = accepted  # everything accepted before SIGTERM
        wanted = [str(event_id(n, i)) for i in range(required)]
        window_ids = [str(event_id(n, i)) for i in range(required, accepted)]
        strict_ids = [str(event_id(n, i)) for i in range(strict)]
        return {
            "trial": n,
            "signal": "SIGKILL" if kind == "kill" else "SIGTERM",
            "http": http,
            "kill_after_s": round(after, 3),
            "exit_s": round(exit_seconds, 3),
            "exit_status": proc.returncode,
            "accepted": accepted,
            "required": required,
            "lost_sqlite": sum(1 for i in wanted if i not in sqlite_ids),
            "lost_http": sum(1 for i in wanted if i not in http_ids),
            "lost_strict_window": sum(
                1 for i in strict_ids if i not in sqlite_ids or i not in http_ids
            ),
            "in_window": len(window_ids),
            "in_window_kept": sum(1 for i in window_ids if i in sqlite_ids and i in http_ids),
            "duplicates_stored": len(in_sqlite) - len(sqlite_ids),
            "re_sent_http": sum(c - 1 for c in endpoint.received.values() if c > 1),
            "restart": report,
            "child_stderr": err[-2000:] if proc.returncode not in (-9, -15) else "",
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 + 2 trials of 5,000 events (CI)")
    parser.add_argument("--trials", type=int, default=20, help="SIGKILL trials")
    parser.add_argument("--sigterm-trials", type=int, default=10)
    parser.add_argument("--events", type=int, default=50_000, help="events per trial")
    parser.add_argument("--rate", type=float, default=25_000.0, help="events/s the child logs")
    parser.add_argument(
        "--http-delay", type=float, default=0.05, help="s a slow endpoint holds a request"
    )
    parser.add_argument("--seed", type=int, default=20261204)
    for name in ("child", "drain"):
        parser.add_argument(f"--{name}", action="store_true", help=argparse.SUPPRESS)
    for name in ("spool", "db", "url", "counter", "notes"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    parser.add_argument("--trial", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.drain:
        drain(args)
        return
    if args.quick:
        args.trials, args.sigterm_trials, args.events = 2, 2, 5_000
    rng = random.Random(args.seed)
    plan = [("kill", i) for i in range(args.trials)] + [
        ("term", i) for i in range(args.sigterm_trials)
    ]
    results = []
    started = time.monotonic()
    print(
        f"analytics soak: {args.trials} SIGKILL + {args.sigterm_trials} SIGTERM trials, "
        f"{args.events:,} events each at {args.rate:,.0f}/s; HTTP endpoint slow "
        f"({args.http_delay * 1000:.0f} ms a request) or down, alternately; "
        f"window {WINDOW * 1000:.0f} ms"
    )
    header = (
        f"{'#':>3} {'signal':<7} {'http':<4} {'at s':>5} {'accepted':>8} {'required':>8} "
        f"{'lost sql':>8} {'lost http':>9} {'in window':>9} {'kept':>5} {'dup':>4} {'re-sent':>7} "
        f"{'restart s':>9}"
    )
    print(header)
    for n, (kind, i) in enumerate(plan):
        http = "slow" if i % 2 == 0 else "down"
        r = trial(n, kind, http, args.events, args.rate, args.http_delay, rng)
        results.append(r)
        print(
            f"{n:>3} {r['signal']:<7} {http:<4} {r['kill_after_s']:>5.2f} {r['accepted']:>8,} "
            f"{r['required']:>8,} {r['lost_sqlite']:>8} {r['lost_http']:>9} {r['in_window']:>9,} "
            f"{r['in_window_kept']:>5,} {r['duplicates_stored']:>4} {r['re_sent_http']:>7,} "
            f"{r['restart']['seconds']:>9.2f}",
            flush=True,
        )
        if r["child_stderr"]:
            print(f"    child stderr: {r['child_stderr']}")

    def total(kind: str, key: str) -> int:
        return sum(r[key] for r in results if r["signal"] == kind)

    summary = {
        kind: {
            "trials": sum(1 for r in results if r["signal"] == kind),
            "accepted": total(kind, "accepted"),
            "required": total(kind, "required"),
            "lost_sqlite": total(kind, "lost_sqlite"),
            "lost_http": total(kind, "lost_http"),
            "lost_strict_window": total(kind, "lost_strict_window"),
            "in_window": total(kind, "in_window"),
            "in_window_kept": total(kind, "in_window_kept"),
            "duplicates_stored": total(kind, "duplicates_stored"),
            "re_sent_http": total(kind, "re_sent_http"),
            "restart_quarantined": sum(
                r["restart"]["quarantined"] for r in results if r["signal"] == kind
            ),
            "restart_left_in_spool": sum(
                r["restart"]["left"] for r in results if r["signal"] == kind
            ),
        }
        for kind in ("SIGKILL", "SIGTERM")
    }
    print()
    for kind, s in summary.items():
        print(
            f"{kind}: {s['trials']} trials, {s['accepted']:,} accepted, {s['required']:,} required "
            f"to survive; lost: SQLite {s['lost_sqlite']}, HTTP {s['lost_http']} "
            f"(with a {STRICT_WINDOW * 1000:.0f} ms window: {s['lost_strict_window']}); "
            f"in the window {s['in_window']:,} (kept {s['in_window_kept']:,}); duplicates stored "
            f"{s['duplicates_stored']}; re-sent to HTTP {s['re_sent_http']:,} (deduped by id); "
            f"left in spool {s['restart_left_in_spool']}"
        )
    print(f"({time.monotonic() - started:.0f} s)")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"analytics-soak{'-quick' if args.quick else ''}.json"
    out.write_text(
        json.dumps({"args": vars(args), "summary": summary, "trials": results}, indent=2)
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
