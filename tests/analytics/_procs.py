"""Child processes for the durability tests, run as ``python -m tests.analytics._procs``.

Each logs events with known ids (:func:`event_id`), says where it is on stdout, then waits to
be killed or signalled by the test."""

from __future__ import annotations

import sys
import time
import uuid

import msgspec

from limelight.schemas import Event


def event_id(i: int) -> uuid.UUID:
    """The id of the ``i``-th event a child logs (the test knows it too)."""
    return uuid.UUID(int=(0xA11CE << 64) + i)


def make_event(i: int) -> Event:
    return msgspec.structs.replace(Event.create_user_input(f"event {i}"), event_id=event_id(i))


def log_to_sqlite_and_http(spool: str, db: str, url: str, n: int) -> None:
    """Log ``n`` events to SQLite and an HTTP sink (down), say so, then wait to be killed:
    no flush, no shutdown; only the periodic group commit (every 50 ms) writes them."""
    from limelight import analytics
    from limelight.sinks import HTTPSink, SQLiteSink

    config = analytics.AnalyticsConfig(
        spool_dir=spool, db_path=db, flush_interval=60.0, commit_interval=0.05, max_retries=0
    )
    client = analytics.initialize(
        config=config, sinks=[SQLiteSink(db), HTTPSink(url, timeout=1.0)], handle_signals=False
    )
    for i in range(n):
        client.log_event(make_event(i))
    print("logged", flush=True)
    time.sleep(600)


def log_then_wait(spool: str, db: str, n: int, handle: str, backend: str) -> None:
    """Log ``n`` events (the commit interval is long: they stay in memory), then wait for a
    signal."""
    from limelight import analytics
    from limelight.sinks import SQLiteSink

    config = analytics.AnalyticsConfig(
        spool_dir=spool, db_path=db, flush_interval=60.0, commit_interval=10.0, backend=backend
    )
    client = analytics.initialize(
        config=config, sinks=[SQLiteSink(db)], handle_signals=handle == "1"
    )
    for i in range(n):
        client.log_event(make_event(i))
    print("logged", flush=True)
    time.sleep(600)


def hold_segment(spool: str, n: int) -> None:
    """Write ``n`` events into an open segment for the sink ``memory`` and keep it open."""
    from limelight._spool import Spool
    from limelight.schemas import encode_event

    writer = Spool(spool)
    seg = writer.create(["memory"], "live")
    writer.append(seg, b"".join(encode_event(make_event(i)) + b"\n" for i in range(n)))
    print("ready", writer.owner, flush=True)
    time.sleep(600)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "log_to_sqlite_and_http":
        log_to_sqlite_and_http(args[0], args[1], args[2], int(args[3]))
    elif command == "log_then_wait":
        log_then_wait(args[0], args[1], int(args[2]), args[3], args[4])
    elif command == "hold_segment":
        hold_segment(args[0], int(args[1]))
    else:
        raise SystemExit(f"unknown command {command!r}")
