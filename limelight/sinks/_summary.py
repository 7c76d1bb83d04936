"""A summary of an events database (the SQLite sink's file), or of several read as one.

It gives runs, events by type, tokens and cost by model and by role, and the latest errors,
of one file or of the union of several (such as a cluster's per-host files). ``limelight
events`` prints it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from ..errors import ConfigError
from ._sqlite import default_db_path

__all__ = ["ErrorRow", "EventsSummary", "RunRow", "StorePaths", "UsageRow", "stores", "summarize"]

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

    :ivar db: the store, or the stores, as given (files, directories), comma-separated.
    :ivar runs: the latest runs, newest first (``run_count`` in all).
    :ivar by_type: events per event type, most frequent first.
    :ivar errors: the latest failures, newest first (``error_count`` in all).
    :ivar stores: every file read.
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
    stores: list[str] = []


S = TypeVar("S", bound=msgspec.Struct)

StorePaths = Path | str | Iterable[Path | str]


def _structs(cls: type[S], rows: list[Any]) -> list[S]:
    """Query rows as Structs; the SELECT lists the columns in the Struct's field order."""
    fields = cls.__struct_fields__
    return [cls(**dict(zip(fields, row, strict=True))) for row in rows]


def _given(db_path: StorePaths | None) -> list[Path]:
    if db_path is None:
        return [default_db_path()]
    if isinstance(db_path, (str, Path)):
        return [Path(db_path)]
    return [Path(p) for p in db_path]


def stores(db_path: StorePaths | None = None) -> list[Path]:
    """The events databases ``db_path`` names: a file, a directory (every ``*.db`` file in
    it, such as the per-host ``host-0.db``, ``host-1.db``...), or several of these; default:
    the SQLite sink's default file. Each file once, in the order given (a directory's in name
    order).

    :raises ConfigError: a path does not exist, or a directory holds no ``*.db`` file.
    """
    given = _given(db_path)
    if not given:
        raise ConfigError("no events database given: pass --db PATH")
    found: dict[Path, None] = {}
    for path in given:
        if path.is_dir():
            files = sorted(p for p in path.glob("*.db") if p.is_file())
            if not files:
                raise ConfigError(
                    f"no events database in {path}: the directory holds no *.db file; pass "
                    "the files the SQLite sink writes (--db PATH, repeatable)"
                )
            found.update(dict.fromkeys(files))
        else:
            found[path] = None
    return list(found)


def _connect_readonly(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise ConfigError(
            f"no events database at {path}: record events with the SQLite sink first, "
            "or pass --db PATH"
        )
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise ConfigError(f"could not open {path}: {exc}") from exc
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


def _last(rows: list[Any]) -> list[int]:
    """The last column of query rows (the rowid the query added)."""
    return [row[-1] for row in rows]


def _add(a: float | None, b: float | None) -> float | None:
    """A sum of costs: ``None`` (no price known) only when both are."""
    return a if b is None else b if a is None else a + b


class _Part(msgspec.Struct, kw_only=True):
    """What one store holds: its totals, and its groups to merge with other stores'.

    :ivar runs: every run's row, with the rowid of its first event (to order ties).
    :ivar errors: its latest errors (as many as the summary lists), with their rowids.
    """

    total: int
    first: float | None
    last: float | None
    input_tokens: int
    output_tokens: int
    cost: float | None
    runs: list[tuple[RunRow, int]]
    by_type: dict[str, int]
    by_model: list[UsageRow]
    by_role: list[UsageRow]
    error_count: int
    errors: list[tuple[ErrorRow, int]]


def _read(path: Path, run_id: str | None, errors: int) -> _Part:
    conn = _connect_readonly(path)
    where, params = ("AND run_id = ?", (run_id,)) if run_id is not None else ("", ())
    try:
        total, first, last, inp, out, cost = conn.execute(
            "SELECT count(*), min(timestamp), max(timestamp), coalesce(sum(input_tokens), 0), "
            f"coalesce(sum(output_tokens), 0), sum(cost) FROM events WHERE 1 {where}",
            params,
        ).fetchone()
        run_rows = conn.execute(
            "SELECT run_id, max(user_id), count(*), min(timestamp), max(timestamp), "
            "coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), sum(cost), "
            f"sum(is_error), min(rowid) FROM events WHERE run_id IS NOT NULL {where} "
            "GROUP BY run_id",
            params,
        ).fetchall()
        by_type = dict(
            conn.execute(
                f"SELECT event_type, count(*) FROM events WHERE 1 {where} GROUP BY event_type",
                params,
            ).fetchall()
        )
        error_count = conn.execute(
            f"SELECT count(*) FROM events WHERE is_error = 1 {where}", params
        ).fetchone()[0]
        error_rows = conn.execute(
            "SELECT timestamp, event_type, error_type, message, run_id, name, rowid FROM events "
            f"WHERE is_error = 1 {where} ORDER BY timestamp DESC, rowid DESC LIMIT ?",
            (*params, errors),
        ).fetchall()
        by_model = _usage(conn, "model", where, params)
        by_role = _usage(conn, "role", where, params)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"could not read {path}: {exc}") from exc
    finally:
        conn.close()
    return _Part(
        total=total,
        first=first,
        last=last,
        input_tokens=inp,
        output_tokens=out,
        cost=cost,
        runs=list(zip(_structs(RunRow, [r[:-1] for r in run_rows]), _last(run_rows), strict=True)),
        by_type=by_type,
        by_model=by_model,
        by_role=by_role,
        error_count=error_count,
        errors=list(
            zip(_structs(ErrorRow, [r[:-1] for r in error_rows]), _last(error_rows), strict=True)
        ),
    )


def _merge_runs(parts: list[_Part]) -> list[tuple[RunRow, tuple[int, int]]]:
    """Every run over the stores (a run may have events in several), with the place of its
    first event (store, rowid)."""
    merged: dict[str | None, tuple[RunRow, tuple[int, int]]] = {}
    for store, part in enumerate(parts):
        for row, rowid in part.runs:
            seen = merged.get(row.run_id)
            if seen is None:
                merged[row.run_id] = (row, (store, rowid))
                continue
            old, place = seen
            users = [u for u in (old.user_id, row.user_id) if u is not None]
            merged[row.run_id] = (
                RunRow(
                    run_id=row.run_id,
                    user_id=max(users) if users else None,
                    events=old.events + row.events,
                    first=min(old.first, row.first),
                    last=max(old.last, row.last),
                    input_tokens=old.input_tokens + row.input_tokens,
                    output_tokens=old.output_tokens + row.output_tokens,
                    cost=_add(old.cost, row.cost),
                    errors=old.errors + row.errors,
                ),
                place if old.first <= row.first else (store, rowid),
            )
    return list(merged.values())


def _merge_usage(parts: list[list[UsageRow]]) -> list[UsageRow]:
    merged: dict[str | None, UsageRow] = {}
    for rows in parts:
        for row in rows:
            old = merged.get(row.name)
            merged[row.name] = (
                row
                if old is None
                else UsageRow(
                    name=row.name,
                    calls=old.calls + row.calls,
                    input_tokens=old.input_tokens + row.input_tokens,
                    output_tokens=old.output_tokens + row.output_tokens,
                    cost=_add(old.cost, row.cost),
                )
            )
    return sorted(merged.values(), key=lambda r: (-(r.cost or 0.0), -r.calls))


def summarize(
    db_path: StorePaths | None = None,
    *,
    run_id: str | None = None,
    runs: int = DEFAULT_RUNS,
    errors: int = DEFAULT_ERRORS,
) -> EventsSummary:
    """Summarise the events database at ``db_path``, or the union of several (see
    :func:`stores`: files, directories of ``*.db`` files; default: the SQLite sink's default
    file). Counts, tokens and costs are summed over the stores; a run whose events are in
    several is one run; the latest runs and errors are the latest over all of them.

    :param run_id: only this run's events.
    :param runs: how many of the latest runs to list.
    :param errors: how many of the latest errors to list.
    :raises ConfigError: a file does not exist or is not an events database, or a directory
        holds none.
    """
    if runs < 0 or errors < 0:
        raise ConfigError("runs and errors must be 0 or more")
    paths = stores(db_path)
    parts = [_read(path, run_id, errors) for path in paths]
    by_type: dict[str, int] = {}
    for part in parts:
        for event_type, count in part.by_type.items():
            by_type[event_type] = by_type.get(event_type, 0) + count
    cost: float | None = None
    for part in parts:
        cost = _add(cost, part.cost)
    all_runs = _merge_runs(parts)
    # Newest first; ties by the place of the first event, latest first (as one store's rowids).
    all_runs.sort(key=lambda item: (item[0].first, item[1]), reverse=True)
    latest_errors = sorted(
        (
            (error, (error.timestamp, store, rowid))
            for store, part in enumerate(parts)
            for error, rowid in part.errors
        ),
        key=lambda item: item[1],
        reverse=True,
    )
    firsts = [p.first for p in parts if p.first is not None]
    lasts = [p.last for p in parts if p.last is not None]
    return EventsSummary(
        db=", ".join(str(p) for p in _given(db_path)),
        run_id=run_id,
        total_events=sum(p.total for p in parts),
        first=min(firsts) if firsts else None,
        last=max(lasts) if lasts else None,
        run_count=len(all_runs),
        runs=[row for row, _ in all_runs[:runs]],
        by_type=dict(sorted(by_type.items(), key=lambda item: (-item[1], item[0]))),
        by_model=_merge_usage([p.by_model for p in parts]),
        by_role=_merge_usage([p.by_role for p in parts]),
        input_tokens=sum(p.input_tokens for p in parts),
        output_tokens=sum(p.output_tokens for p in parts),
        cost=cost,
        error_count=sum(p.error_count for p in parts),
        errors=[error for error, _ in latest_errors[:errors]],
        stores=[str(p) for p in paths],
    )
