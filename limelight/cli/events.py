"""``limelight events``: a summary of the local analytics store.

The store is the SQLite sink's file, or several read as one (``--db`` repeated, or a
directory of ``*.db`` files such as a cluster's per-host files). The summary gives runs,
events by type, tokens and cost by model and by role, and the latest errors.

:func:`limelight.sinks.summarize` returns the summary as an ``EventsSummary`` for programs
(the demo prints one at its end); the command prints it as rich tables, or as JSON with
``--json``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import IO

import msgspec

from ..errors import ConfigError
from ..sinks import EventsSummary, summarize
from ..sinks._summary import DEFAULT_ERRORS, DEFAULT_RUNS

__all__ = ["add_arguments", "print_summary", "run"]


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
    several = f" ({len(summary.stores)} stores)" if len(summary.stores) > 1 else ""
    console.print(f"[bold]limelight events[/bold]{scope}: {summary.db}{several}")
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


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number 0 or more, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``limelight events`` options to ``parser``."""
    parser.add_argument(
        "--db",
        type=Path,
        action="append",
        default=None,
        metavar="PATH",
        help="the events database, or a directory of them (every *.db file in it); repeat it "
        "to read several as one (default: $LIMELIGHT_HOME/events.db or "
        "~/.limelight/events.db)",
    )
    parser.add_argument("--run", metavar="RUN_ID", help="only this run's events")
    parser.add_argument(
        "--runs", type=_count, default=DEFAULT_RUNS, help="latest runs to list (%(default)s)"
    )
    parser.add_argument(
        "--errors", type=_count, default=DEFAULT_ERRORS, help="latest errors to list (%(default)s)"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def _unknown_run(args: argparse.Namespace, summary: EventsSummary) -> str:
    """What to say about ``--run`` naming a run the database does not hold."""
    latest = summarize(args.db, runs=3, errors=0)
    listed = ", ".join(run.run_id for run in latest.runs if run.run_id)
    holds = "it holds" if len(summary.stores) <= 1 else "they hold"
    known = f" (latest: {listed})" if listed else f" ({holds} no runs)"
    options = " ".join(f"--db {path}" for path in args.db or [summary.db])
    return (
        f"no run {args.run!r} in {summary.db}{known}: `limelight events {options}` lists the runs"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``limelight events``: 0 on success, 1 when a database cannot be read (or a
    directory holds none), 2 when ``--run`` names a run they do not hold."""
    try:
        summary = summarize(args.db, run_id=args.run, runs=args.runs, errors=args.errors)
        if args.run is not None and not summary.total_events:
            print(f"limelight events: {_unknown_run(args, summary)}", file=sys.stderr)
            return 2
    except ConfigError as exc:
        print(f"limelight events: {exc}", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(summary)).decode() + "\n")
    else:
        print_summary(summary)
    return 0
