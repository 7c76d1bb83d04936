"""``limelight events``: a summary of the local analytics store (the SQLite sink's file):
runs, events by type, tokens and cost by model and by role, and the latest errors.

:func:`summarize` returns the summary as an :class:`EventsSummary` for programs (the demo
prints one at its end); the command prints it as rich tables, or as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import datetime
import sqlite3
import sys
from pathlib import Path
from typing import IO, Any

import msgspec

from .errors import ConfigError

__all__ = [
    "ErrorRow",
    "EventsSummary",
    "RunRow",
    "UsageRow",
    "add_arguments",
    "print_summary",
    "run_from_args",
    "summarize",
]

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
    return [
        UsageRow(name=key, calls=calls, input_tokens=inp, output_tokens=out, cost=cost)
        for key, calls, inp, out, cost in rows
    ]


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
    from .sinks._sqlite import default_db_path

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
        runs=[
            RunRow(
                run_id=r[0],
                user_id=r[1],
                events=r[2],
                first=r[3],
                last=r[4],
                input_tokens=r[5],
                output_tokens=r[6],
                cost=r[7],
                errors=r[8],
            )
            for r in run_rows
        ],
        by_type=by_type,
        by_model=by_model,
        by_role=by_role,
        input_tokens=inp,
        output_tokens=out,
        cost=cost,
        error_count=error_count,
        errors=[
            ErrorRow(
                timestamp=r[0],
                event_type=r[1],
                error_type=r[2],
                message=r[3],
                run_id=r[4],
                name=r[5],
            )
            for r in error_rows
        ],
    )


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _cost(cost: float | None) -> str:
    return "-" if cost is None else f"${cost:,.4f}"


def print_summary(summary: EventsSummary, *, file: IO[str] | None = None) -> None:
    """Print ``summary`` as rich tables (plain text when ``file`` is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file or sys.stdout, highlight=False)
    scope = f" (run {summary.run_id})" if summary.run_id is not None else ""
    console.print(f"[bold]limelight events[/bold]{scope}: {summary.db}")
    if not summary.total_events:
        console.print("no events recorded yet")
        return
    console.print(
        f"{summary.total_events} events in {summary.run_count} runs, "
        f"{_when(summary.first)} to {_when(summary.last)} UTC; "
        f"{summary.input_tokens} input + {summary.output_tokens} output tokens, "
        f"cost {_cost(summary.cost)}, {summary.error_count} errors"
    )

    if summary.runs:
        table = Table(title=f"Latest runs ({len(summary.runs)} of {summary.run_count})")
        table.add_column("run", overflow="fold")
        table.add_column("user", overflow="fold")
        table.add_column("events", justify="right")
        table.add_column("started (UTC)", no_wrap=True)
        table.add_column("tokens in/out", justify="right", no_wrap=True)
        table.add_column("cost", justify="right", no_wrap=True)
        table.add_column("errors", justify="right")
        for run in summary.runs:
            table.add_row(
                run.run_id or "-",
                run.user_id or "-",
                str(run.events),
                _when(run.first),
                f"{run.input_tokens}/{run.output_tokens}",
                _cost(run.cost),
                str(run.errors),
            )
        console.print(table)

    table = Table(title="Events by type")
    table.add_column("type")
    table.add_column("events", justify="right")
    for event_type, count in summary.by_type.items():
        table.add_row(event_type, str(count))
    console.print(table)

    for title, rows, label in (
        ("Tokens and cost by model", summary.by_model, "model"),
        ("Tokens and cost by role", summary.by_role, "role"),
    ):
        if not rows:
            continue
        table = Table(title=title)
        table.add_column(label)
        for name in ("calls", "input tokens", "output tokens", "cost"):
            table.add_column(name, justify="right")
        for row in rows:
            table.add_row(
                row.name or "-",
                str(row.calls),
                str(row.input_tokens),
                str(row.output_tokens),
                _cost(row.cost),
            )
        console.print(table)

    if summary.errors:
        table = Table(title=f"Latest errors ({len(summary.errors)} of {summary.error_count})")
        for name in ("when (UTC)", "run", "event", "error", "message"):
            table.add_column(name, overflow="fold")
        for error in summary.errors:
            table.add_row(
                _when(error.timestamp),
                error.run_id or "-",
                error.event_type + (f" {error.name}" if error.name else ""),
                error.error_type or "-",
                error.message or "",
            )
        console.print(table)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``limelight events`` options to ``parser``."""
    parser.add_argument(
        "--db",
        type=Path,
        default=None,
        metavar="PATH",
        help="the events database (default: $LIMELIGHT_HOME/events.db or ~/.limelight/events.db)",
    )
    parser.add_argument("--run", metavar="RUN_ID", help="only this run's events")
    parser.add_argument(
        "--runs", type=int, default=DEFAULT_RUNS, help="latest runs to list (%(default)s)"
    )
    parser.add_argument(
        "--errors", type=int, default=DEFAULT_ERRORS, help="latest errors to list (%(default)s)"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``limelight events``: 0 on success, 1 when the database cannot be read."""
    try:
        summary = summarize(args.db, run_id=args.run, runs=args.runs, errors=args.errors)
    except ConfigError as exc:
        print(f"limelight events: {exc}", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(summary)).decode() + "\n")
    else:
        print_summary(summary)
    return 0
