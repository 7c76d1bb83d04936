"""``limelight events``: summaries of a real SQLite events file written by the SQLite sink,
read in-process (``summarize``, ``main``) and through ``python -m limelight events``."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import msgspec
import pytest

from limelight.cli import main
from limelight.errors import ConfigError
from limelight.schemas import Event
from limelight.sinks import EventsSummary, SQLiteSink, summarize


def write(path: Path, events: list[Event]) -> None:
    async def go() -> None:
        sink = SQLiteSink(path)
        await sink.write(events)
        await sink.aclose()

    anyio.run(go)


def recorded_runs() -> list[Event]:
    events: list[Event] = []
    for i, (model, role) in enumerate(
        [("gpt-a", "executor"), ("gpt-a", "optimizer"), ("gpt-b", "executor")]
    ):
        run = f"run-{i}"
        events.append(Event.create_user_input("hello", run_id=run, user_id=f"user-{i}"))
        events.append(Event.create_llm_request(model, role=role, run_id=run))
        events.append(
            Event.create_llm_response(
                model,
                role=role,
                input_tokens=10 * (i + 1),
                output_tokens=i + 1,
                cost=None if model == "gpt-b" else 0.5,
                run_id=run,
            )
        )
        events.append(Event.create_tool_call("search", {"q": "x"}, run_id=run))
    events.append(Event.create_error(RuntimeError("upstream 500"), run_id="run-2"))
    events.append(Event.create_timeout_error("ask /agents/a", timeout=5.0, run_id="run-1"))
    events.append(Event.create_performance_metric("qps", 3.0))  # no run
    return events


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "events.db"
    write(path, recorded_runs())
    return path


def test_summarize_counts_runs_types_tokens_cost_and_errors(db: Path) -> None:
    summary = summarize(db)
    assert summary.total_events == 15
    assert summary.run_count == 3
    assert [run.run_id for run in summary.runs] == ["run-2", "run-1", "run-0"]
    assert summary.runs[0].user_id == "user-2"
    assert (summary.runs[0].events, summary.runs[0].errors) == (5, 1)
    assert summary.by_type == {
        "llm_request": 3,
        "llm_response": 3,
        "tool_call": 3,
        "user_input": 3,
        "error": 1,
        "performance_metric": 1,
        "timeout_error": 1,
    }
    models = {row.name: row for row in summary.by_model}
    assert (models["gpt-a"].calls, models["gpt-a"].input_tokens, models["gpt-a"].cost) == (
        2,
        30,
        1.0,
    )
    assert models["gpt-b"].cost is None  # no price known: not zero
    roles = {row.name: (row.calls, row.output_tokens) for row in summary.by_role}
    assert roles == {"executor": (2, 4), "optimizer": (1, 2)}
    assert (summary.input_tokens, summary.output_tokens, summary.cost) == (60, 6, 1.0)
    assert summary.error_count == 2
    assert [(e.error_type, e.run_id) for e in summary.errors] == [
        ("TimeoutError", "run-1"),
        ("RuntimeError", "run-2"),
    ]
    assert summary.errors[1].message == "upstream 500"


def test_summarize_one_run_and_limits(db: Path) -> None:
    summary = summarize(db, run_id="run-1", runs=5, errors=5)
    assert summary.total_events == 5
    assert summary.run_count == 1
    assert [e.error_type for e in summary.errors] == ["TimeoutError"]
    assert [row.name for row in summary.by_role] == ["optimizer"]
    limited = summarize(db, runs=1, errors=1)
    assert len(limited.runs) == 1
    assert len(limited.errors) == 1
    assert limited.error_count == 2


def test_summarize_refuses_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no events database"):
        summarize(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists(), "summarize must not create the file"
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(ConfigError, match="not a limelight events database"):
        summarize(other)


def test_the_command_prints_tables(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "15 events in 3 runs" in out
    for text in ("Latest runs", "Events by type", "by model", "by role", "Latest errors"):
        assert text in out
    for text in ("run-2", "gpt-a", "optimizer", "upstream 500", "$1.0000"):
        assert text in out


def test_the_command_on_an_empty_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "events.db"
    write(path, [])
    assert main(["events", "--db", str(path)]) == 0
    assert "no events recorded yet" in capsys.readouterr().out


def test_the_command_reports_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["events", "--db", str(tmp_path / "nope.db")]) == 1
    assert "no events database at" in capsys.readouterr().err


def test_python_m_limelight_events_json(db: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "limelight", "events", "--db", str(db), "--json"],
        check=True,
        capture_output=True,
        text=True,
        timeout=50,
    ).stdout
    assert msgspec.json.decode(out, type=EventsSummary) == summarize(db)


def test_the_default_path_is_limelight_home(db: Path) -> None:
    env = {**os.environ, "LIMELIGHT_HOME": str(db.parent)}
    done = subprocess.run(
        [sys.executable, "-m", "limelight", "events", "--run", "run-0"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=50,
    )
    assert "(run run-0)" in done.stdout
    assert "4 events in 1 runs" in done.stdout


def test_an_unknown_run_is_said_to_be_unknown(db: Path) -> None:
    for extra in ([], ["--json"]):
        command = ["events", "--db", str(db), "--run", "nosuchrun", *extra]
        out = subprocess.run(
            [sys.executable, "-m", "limelight", *command],
            capture_output=True,
            text=True,
            timeout=50,
            check=False,
        )
        assert out.returncode == 2
        assert out.stdout == ""
        assert "Traceback" not in out.stderr
        assert out.stderr.splitlines() == [
            f"limelight events: no run 'nosuchrun' in {db} (latest: run-2, run-1, run-0): "
            f"`limelight events --db {db}` lists the runs"
        ]


def test_an_unknown_run_in_an_empty_store(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    write(path, [])
    out = subprocess.run(
        [sys.executable, "-m", "limelight", "events", "--db", str(path), "--run", "r"],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        f"limelight events: no run 'r' in {path} (it holds no runs): "
        f"`limelight events --db {path}` lists the runs"
    ]
