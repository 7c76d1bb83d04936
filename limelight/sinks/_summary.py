"""A summary of an events database (the SQLite sink's file).

It gives runs, events by type, tokens and cost by model and by role, and the latest errors.
``limelight events`` prints it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from ..errors import ConfigError
from ._sqlite import default_db_path

__all__ = ["ErrorRow", "EventsSummary", "RunRow", "UsageRow", "summarize"]

DEFAULT_RUNS = 10
DEFAULT_ERRORS = 10


class RunRow(msgspec.Struct, frozen=True, kw_only=True):
    """One run: its events, span of time (unix seconds), tokens, cost (USD) and errors."""

    run_id: str | None
    user_id: str | None
    events: int
    first: float
    last: float
    input_tokens: int
    output_tokens: int
    cost: float | None
    errors: int


class UsageRow(msgspec.Struct, frozen=True, kw_only=True):
    """LLM calls, tokens and cost (``None``: no price known) of one model or one role."""

    name: str | None
    calls: int
    input_tokens: int
    output_tokens: int
    cost: float | None


class ErrorRow(msgspec.Struct, frozen=True, kw_only=True):
    """One failure: an error event, a failed tool or function, an HTTP error status."""

    timestamp: float
    event_type: str
    error_type: str | None
    message: str | None
    run_id: str | None
    name: str | None


class EventsSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What an events database holds (of one run, when ``run_id`` is set).

    :ivar runs: the latest runs, newest first (``run_count`` in all).
    :ivar by_type: events per event type, most frequent first.
    :ivar errors: the latest failures, newest first (``error_count`` in all).
    """

    db: str
    run_id: str | None
    total_events: int
    first: float | None
    last: float | None
    run_count: int
    runs: list[RunRow]
    by_type: dict[str, int]
    by_model: list[UsageRow]
    by_role: list[UsageRow]
    input_tokens: int
    output_tokens: int
    cost: float | None
    error_count: int
    errors: list[ErrorRow]


S = TypeVar("S", bound=msgspec.Struct)


def _structs(cls: type[S], rows: list[Any]) -> list[S]:
    """Query rows as Structs; the SELECT lists the columns in the Struct's field order."""
    fields = cls.__struct_fields__
    return [cls(**dict(zip(fields, row, strict=True))) for row in rows]


def _connect_readonly(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise ConfigError(
            f"no events database at {path}: record events with the SQLite sink first, "
            "or pass --db PATH"
        )
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        conn.execute("SELECT event_id FROM events LIMIT 1").fetchall()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ConfigError(
            f"{path} is not a limelight events database ({exc}); pass the file the SQLite sink "
            "writes (--db PATH)"
        ) from exc
    return conn


def _usage(
    conn: sqlite3.Connection, column: str, where: str, params: tuple[Any, ...]
) -> list[UsageRow]:
    rows = conn.execute(
        f"SELECT {column}, count(*), coalesce(sum(input_tokens), 0), "
        f"coalesce(sum(output_tokens), 0), sum(cost) FROM events "
        f"WHERE event_type = 'llm_response' {where} GROUP BY {column} "
        "ORDER BY coalesce(sum(cost), 0) DESC, count(*) DESC",
        params,
    ).fetchall()
    return _structs(UsageRow, rows)


def summarize(
    db_path: Path | str | None = None,
    *,
    run_id: str | None = None,
    runs: int = DEFAULT_RUNS,
    errors: int = DEFAULT_ERRORS,
) -> EventsSummary:
    """Summarise the events database at ``db_path`` (default: the SQLite sink's default file).

    :param run_id: only this run's events.
    :param runs: how many of the latest runs to list.
    :param errors: how many of the latest errors to list.
    :raises ConfigError: the file does not exist or is not an events database.
    """
    path = Path(db_path) if db_path is not None else default_db_path()
    if runs < 0 or errors < 0:
        raise ConfigError("runs and errors must be 0 or more")
    conn = _connect_readonly(path)
    where, params = ("AND run_id = ?", (run_id,)) if run_id is not None else ("", ())
    try:
        total, first, last, inp, out, cost = conn.execute(
            "SELECT count(*), min(timestamp), max(timestamp), coalesce(sum(input_tokens), 0), "
            f"coalesce(sum(output_tokens), 0), sum(cost) FROM events WHERE 1 {where}",
            params,
        ).fetchone()
        run_count = conn.execute(
            f"SELECT count(DISTINCT run_id) FROM events WHERE run_id IS NOT NULL {where}", params
        ).fetchone()[0]
        run_rows = conn.execute(
            "SELECT run_id, max(user_id), count(*), min(timestamp), max(timestamp), "
            "coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), sum(cost), "
            f"sum(is_error) FROM events WHERE run_id IS NOT NULL {where} GROUP BY run_id "
            "ORDER BY min(timestamp) DESC, min(rowid) DESC LIMIT ?",
            (*params, runs),
        ).fetchall()
        by_type = dict(
            conn.execute(
                f"SELECT event_type, count(*) FROM events WHERE 1 {where} GROUP BY event_type "
                "ORDER BY count(*) DESC, event_type",
                params,
            ).fetchall()
        )
        error_count = conn.execute(
            f"SELECT count(*) FROM events WHERE is_error = 1 {where}", params
        ).fetchone()[0]
        error_rows = conn.execute(
            "SELECT timestamp, event_type, error_type, message, run_id, name FROM events "
            f"WHERE is_error = 1 {where} ORDER BY timestamp DESC, rowid DESC LIMIT ?",
            (*params, errors),
        ).fetchall()
        by_model = _usage(conn, "model", where, params)
        by_role = _usage(conn, "role", where, params)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"could not read {path}: {exc}") from exc
    finally:
        conn.close()
    return EventsSummary(
        db=str(path),
        run_id=run_id,
        total_events=total,
        first=first,
        last=last,
        run_count=run_count,
        runs=_structs(RunRow, run_rows),
        by_type=by_type,
        by_model=by_model,
        by_role=by_role,
        input_tokens=inp,
        output_tokens=out,
        cost=cost,
        error_count=error_count,
        errors=_structs(ErrorRow, error_rows),
    )
