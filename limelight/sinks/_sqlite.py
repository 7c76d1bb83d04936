"""The default sink: a local SQLite file, one row per event, queryable with plain SQL.

Rows are keyed by ``event_id`` (``INSERT OR IGNORE``), so a batch retried after a failure
stores each event once. The columns people filter and sum by (run, type, model, role, tokens,
cost, errors) are columns; the whole event is kept as JSON in ``data``. All sqlite3 work runs
in worker threads; the file is in WAL mode, so readers (``limelight events``) never block it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio.to_thread

from .._files import create_private_sqlite
from ..errors import SinkRejected, SinkUnavailable
from ..schemas._events import (
    AgentPlanningPayload,
    AgentReasoningPayload,
    AgentResponsePayload,
    APIRequestPayload,
    APIResponsePayload,
    ErrorPayload,
    Event,
    FunctionExecutionPayload,
    LLMRequestPayload,
    LLMResponsePayload,
    LLMStreamingChunkPayload,
    PerformanceMetricPayload,
    TimeoutErrorPayload,
    ToolCallPayload,
    ToolResponsePayload,
    ValidationErrorPayload,
    decode_event,
    encode_event,
)

__all__ = ["DEFAULT_DB_NAME", "SQLiteSink", "default_db_path", "read_events"]

DEFAULT_DB_NAME = "events.db"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id        TEXT PRIMARY KEY,
    run_id          TEXT,
    user_id         TEXT,
    session_id      TEXT,
    parent_event_id TEXT,
    event_type      TEXT NOT NULL,
    timestamp       REAL NOT NULL,
    model           TEXT,
    provider        TEXT,
    role            TEXT,
    name            TEXT,
    input_tokens    INTEGER,
    output_tokens   INTEGER,
    cached_tokens   INTEGER,
    cost            REAL,
    latency         REAL,
    is_error        INTEGER NOT NULL DEFAULT 0,
    error_type      TEXT,
    message         TEXT,
    data            TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id, timestamp);
CREATE INDEX IF NOT EXISTS events_type ON events (event_type, timestamp);
CREATE INDEX IF NOT EXISTS events_session ON events (session_id, timestamp);
CREATE INDEX IF NOT EXISTS events_time ON events (timestamp);
CREATE INDEX IF NOT EXISTS events_model ON events (model) WHERE model IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_errors ON events (timestamp) WHERE is_error = 1;
"""

_INSERT = (
    "INSERT OR IGNORE INTO events (event_id, run_id, user_id, session_id, parent_event_id, "
    "event_type, timestamp, model, provider, role, name, input_tokens, output_tokens, "
    "cached_tokens, cost, latency, is_error, error_type, message, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def default_db_path() -> Path:
    """``$LIMELIGHT_HOME/events.db``, or ``~/.limelight/events.db`` when it is not set."""
    home = os.environ.get("LIMELIGHT_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".limelight"
    return base / DEFAULT_DB_NAME


def _row(event: Event) -> tuple[Any, ...]:
    """The columns of one event (``data`` last)."""
    model = provider = role = name = error_type = message = None
    input_tokens = output_tokens = cached_tokens = None
    cost = latency = None
    is_error = False
    match event.payload:
        case LLMResponsePayload() as p:
            model, provider, role = p.model, p.provider, p.role
            input_tokens, output_tokens, cached_tokens = (
                p.input_tokens,
                p.output_tokens,
                p.cached_tokens,
            )
            cost, latency = p.cost, p.latency
        case LLMRequestPayload() as p:
            model, provider, role = p.model, p.provider, p.role
        case LLMStreamingChunkPayload() as p:
            model, provider = p.model, p.provider
        case ToolCallPayload() as p:
            name = p.tool_name
        case ToolResponsePayload() as p:
            name, latency, is_error = p.tool_name, p.duration, p.is_error
            if p.is_error:
                message = str(p.result)
        case FunctionExecutionPayload() as p:
            name, latency = p.function_name, p.duration
            is_error, message = p.error is not None, p.error
        case AgentReasoningPayload() | AgentPlanningPayload() | AgentResponsePayload() as p:
            name = p.agent_name
        case ErrorPayload() | ValidationErrorPayload() as p:
            is_error, error_type, message = True, p.error_type, p.message
        case TimeoutErrorPayload() as p:
            is_error, error_type, name = True, p.error_type, p.operation
            message = p.message or f"{p.operation} timed out after {p.timeout} s"
        case APIResponsePayload() as p:
            name, latency, is_error = f"{p.method} {p.url}", p.duration, p.status_code >= 400
        case APIRequestPayload() as p:
            name = f"{p.method} {p.url}"
        case PerformanceMetricPayload() as p:
            name = p.name
        case _:
            pass
    return (
        str(event.event_id),
        event.run_id,
        event.user_id,
        event.session_id,
        None if event.parent_event_id is None else str(event.parent_event_id),
        str(event.event_type),
        event.timestamp,
        model or None,
        provider or None,
        role,
        name,
        input_tokens,
        output_tokens,
        cached_tokens,
        cost,
        latency,
        int(is_error),
        error_type,
        message,
        encode_event(event).decode(),
    )


def _check_version(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version not in (0, SCHEMA_VERSION):
        raise SinkRejected(
            f"{path} holds events schema version {version}; this limelight writes version "
            f"{SCHEMA_VERSION}: use another file or upgrade limelight",
            sink="sqlite",
        )


def connect(path: Path | str, *, timeout: float = 5.0) -> sqlite3.Connection:
    """A connection to an events database, created (with its schema) when missing.

    :raises SinkUnavailable: the file cannot be opened or created now (permissions, a busy
        lock past ``timeout``, a full disk).
    :raises SinkRejected: the file is not an events database.
    """
    path = Path(path)
    try:
        create_private_sqlite(path)  # 0600, and so its -wal and -shm; its folder 0700
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise SinkUnavailable(
            f"cannot open the events database {path}: {exc}", sink="sqlite"
        ) from exc
    try:
        _enter_wal(conn, timeout)
        conn.execute("PRAGMA synchronous=NORMAL")
        _check_version(conn, path)
        conn.executescript(_SCHEMA)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise _translate(exc, path, "open") from exc
        raise
    return conn


def _enter_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """``PRAGMA journal_mode=WAL``, retried while another connection holds the file: SQLite
    answers "database is locked" to this pragma at once, without its busy handler, when two
    connections open a new database together."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _translate(exc: sqlite3.Error, path: Path, action: str) -> SinkUnavailable | SinkRejected:
    if isinstance(exc, sqlite3.OperationalError):  # locked, busy, I/O, disk full: transient
        return SinkUnavailable(
            f"could not {action} the events database {path}: {exc}", sink="sqlite"
        )
    return SinkRejected(
        f"could not {action} the events database {path}: {exc}; it is damaged or not an events "
        "database: move it aside or use another path",
        sink="sqlite",
    )


def read_events(path: Path | str, *, run_id: str | None = None) -> list[Event]:
    """Every event stored in the database at ``path`` (of one run, when ``run_id`` is given),
    oldest first. Blocking: from async code, call it in a worker thread."""
    conn = connect(path)
    try:
        if run_id is None:
            rows = conn.execute("SELECT data FROM events ORDER BY timestamp, rowid").fetchall()
        else:
            rows = conn.execute(
                "SELECT data FROM events WHERE run_id = ? ORDER BY timestamp, rowid", (run_id,)
            ).fetchall()
    finally:
        conn.close()
    return [decode_event(data) for (data,) in rows]


class SQLiteSink:
    """Stores events in a local SQLite file (the default sink); dedupes by ``event_id``.

    :param path: the database file; default :func:`default_db_path`. Created with its folder.
    :param timeout: seconds to wait for another writer's lock before the write fails with
        :class:`~limelight.errors.SinkUnavailable` (the shipper retries it).
    :ivar inserted: events stored so far by this sink.
    :ivar duplicates: events it was given that were already stored.
    """

    name = "sqlite"
    dedupes = True

    def __init__(self, path: Path | str | None = None, *, timeout: float = 5.0) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.timeout = timeout
        self.inserted = 0
        self.duplicates = 0
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SQLiteSink({str(self.path)!r})"

    def _connection(self) -> sqlite3.Connection:
        # A forked child must not use its parent's connection: it opens its own.
        if self._conn is None or self._pid != os.getpid():
            self._conn = connect(self.path, timeout=self.timeout)
            self._pid = os.getpid()
        return self._conn

    def _write_sync(self, rows: list[tuple[Any, ...]]) -> None:
        with self._lock:
            conn = self._connection()
            try:
                before = conn.total_changes
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(_INSERT, rows)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise _translate(exc, self.path, "write to") from exc
            stored = conn.total_changes - before
            self.inserted += stored
            self.duplicates += len(rows) - stored

    async def write(self, batch: Sequence[Event]) -> None:
        rows = [_row(event) for event in batch]
        await anyio.to_thread.run_sync(self._write_sync, rows)

    def _query_sync(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self._lock:
            try:
                return self._connection().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise _translate(exc, self.path, "read") from exc

    async def events(self, *, run_id: str | None = None) -> list[Event]:
        """The stored events (of one run, when ``run_id`` is given), oldest first."""
        params: tuple[Any, ...] = ()
        if run_id is None:
            sql = "SELECT data FROM events ORDER BY timestamp, rowid"
        else:
            sql = "SELECT data FROM events WHERE run_id = ? ORDER BY timestamp, rowid"
            params = (run_id,)
        rows = await anyio.to_thread.run_sync(self._query_sync, sql, params)
        return [decode_event(data) for (data,) in rows]

    async def count(self) -> int:
        """How many events the file holds."""
        rows = await anyio.to_thread.run_sync(self._query_sync, "SELECT count(*) FROM events", ())
        return int(rows[0][0])

    def _close_sync(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                conn.close()

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self._close_sync)
