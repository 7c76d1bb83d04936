"""The local sinks: SQLite (the default), JSON lines, memory and null, on asyncio and trio,
writing real files."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from limelight.errors import EventDecodeError, SinkRejected, SinkUnavailable
from limelight.schemas import Event
from limelight.sinks import (
    JSONLSink,
    MemorySink,
    NullSink,
    Sink,
    SQLiteSink,
    default_db_path,
    read_events,
    read_jsonl,
)

pytestmark = pytest.mark.anyio


def a_run(run_id: str = "run-1", *, user_id: str = "u1") -> list[Event]:
    """A small agent run: a request, a response, a tool call and its error, an agent answer."""
    common = {"run_id": run_id, "user_id": user_id, "session_id": "s1"}
    start = Event.create_session_start(**common)
    request = Event.create_llm_request(
        "gpt-x", provider="openai", role="executor", parent_event_id=start.event_id, **common
    )
    response = Event.create_llm_response(
        "gpt-x",
        provider="openai",
        role="executor",
        input_tokens=12,
        output_tokens=5,
        cost=0.25,
        latency=0.5,
        parent_event_id=request.event_id,
        **common,
    )
    tool = Event.create_tool_response(
        "search", "no index", is_error=True, duration=0.1, parent_event_id=start.event_id, **common
    )
    error = Event.create_error(ValueError("bad plan"), **common)
    answer = Event.create_agent_response("planner", "done", turns=2, **common)
    return [start, request, response, tool, error, answer]


async def test_every_sink_satisfies_the_protocol(tmp_path: Path) -> None:
    sinks: list[object] = [
        NullSink(),
        MemorySink(),
        SQLiteSink(tmp_path / "e.db"),
        JSONLSink(tmp_path / "e.jsonl"),
    ]
    for sink in sinks:
        assert isinstance(sink, Sink)
        assert sink.name
        assert isinstance(sink.dedupes, bool)


# --- SQLite ------------------------------------------------------------------------------------


async def test_sqlite_stores_each_event_once_and_reads_it_back(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "events.db"
    sink = SQLiteSink(path)
    batch = a_run()
    await sink.write(batch)
    await sink.write(batch[:3])  # a retried part of the batch
    assert sink.inserted == len(batch)
    assert sink.duplicates == 3
    assert await sink.count() == len(batch)
    assert await sink.events() == sorted(batch, key=lambda e: e.timestamp)
    await sink.aclose()
    assert read_events(path, run_id="run-1") == await SQLiteSink(path).events(run_id="run-1")
    assert read_events(path, run_id="other") == []


async def test_sqlite_columns_indexes_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    sink = SQLiteSink(path)
    batch = a_run()
    await sink.write(batch)
    await sink.aclose()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(events)")}
        assert {"events_run", "events_type", "events_session", "events_time"} <= indexes
        row = conn.execute(
            "SELECT model, provider, role, input_tokens, output_tokens, cost, latency, "
            "parent_event_id FROM events WHERE event_type = 'llm_response'"
        ).fetchone()
        assert row == ("gpt-x", "openai", "executor", 12, 5, 0.25, 0.5, str(batch[1].event_id))
        errors = conn.execute(
            "SELECT event_type, error_type, message FROM events WHERE is_error = 1 "
            "ORDER BY timestamp"
        ).fetchall()
        assert errors == [("tool_response", None, "no index"), ("error", "ValueError", "bad plan")]
        assert conn.execute("SELECT count(DISTINCT run_id) FROM events").fetchone()[0] == 1
    finally:
        conn.close()


async def test_two_sinks_on_one_file_dedupe_between_them(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    first, second = SQLiteSink(path), SQLiteSink(path)
    batch = a_run()
    async with anyio.create_task_group() as tg:
        tg.start_soon(first.write, batch)
        tg.start_soon(second.write, batch)
    assert first.inserted + second.inserted == len(batch)
    assert first.duplicates + second.duplicates == len(batch)
    assert await first.count() == len(batch)
    await first.aclose()
    await second.aclose()


async def test_a_locked_database_is_unavailable_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    sink = SQLiteSink(path, timeout=0.05)
    await sink.write(a_run("a"))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(SinkUnavailable, match="database is locked") as info:
            await sink.write(a_run("b"))
        assert info.value.sink == "sqlite"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    batch = a_run("b")
    await sink.write(batch)
    assert [e.event_id for e in await sink.events(run_id="b")] == [e.event_id for e in batch]
    await sink.aclose()


async def test_a_file_that_is_no_database_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    path.write_bytes(b"this is not sqlite" * 100)
    sink = SQLiteSink(path)
    with pytest.raises(SinkRejected, match="not an events database"):
        await sink.write(a_run())


async def test_a_newer_schema_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(SinkRejected, match="schema version 99"):
        await SQLiteSink(path).write(a_run())


async def test_an_unusable_folder_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(SinkUnavailable, match="cannot open the events database"):
        await SQLiteSink(blocker / "events.db").write(a_run())


def test_default_path_follows_limelight_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIMELIGHT_HOME", str(tmp_path))
    assert default_db_path() == tmp_path / "events.db"
    assert SQLiteSink().path == tmp_path / "events.db"
    monkeypatch.delenv("LIMELIGHT_HOME")
    assert default_db_path() == Path.home() / ".limelight" / "events.db"


async def test_a_cancelled_write_leaves_no_partial_batch(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    sink = SQLiteSink(path)
    batch = a_run()
    with anyio.CancelScope() as scope:
        scope.cancel()
        await sink.write(batch)
    # Either the whole batch is stored or none of it (the thread finishes its transaction).
    assert await sink.count() in (0, len(batch))
    await sink.aclose()


# --- JSON lines --------------------------------------------------------------------------------


async def test_jsonl_appends_lines_that_read_back(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "events.jsonl"
    sink = JSONLSink(path)
    first, second = a_run("a"), a_run("b")
    await sink.write(first)
    await sink.aclose()
    again = JSONLSink(path)  # a later process appends
    await again.write(second)
    await again.aclose()
    assert read_jsonl(path) == first + second
    assert len(path.read_bytes().splitlines()) == len(first + second)
    assert again.written == len(second)


async def test_jsonl_bad_line_names_its_number(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = JSONLSink(path)
    await sink.write(a_run())
    await sink.aclose()
    with path.open("ab") as file:
        file.write(b"{broken\n")
    with pytest.raises(EventDecodeError, match=r"line 7"):
        read_jsonl(path)


async def test_jsonl_unwritable_path_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(SinkUnavailable, match="could not append"):
        await JSONLSink(blocker / "events.jsonl").write(a_run())


# --- memory and null ---------------------------------------------------------------------------


async def test_memory_sink_dedupes_fails_on_demand_and_recovers() -> None:
    sink = MemorySink()
    batch = a_run()
    await sink.write(batch)
    await sink.write(batch)
    assert sink.events == batch
    assert sink.duplicates == len(batch)
    sink.fail(SinkUnavailable("down", retry_after=0.5), times=2)
    more = a_run("b")
    for _ in range(2):
        with pytest.raises(SinkUnavailable) as info:
            await sink.write(more)
        assert info.value.retry_after == 0.5
    await sink.write(more)
    assert sink.events == batch + more
    assert sink.attempts == 5
    sink.fail(SinkRejected("bad", status=400))
    with pytest.raises(SinkRejected):
        await sink.write(more)
    sink.recover()
    await sink.aclose()
    assert sink.closed
    with pytest.raises(SinkRejected, match="closed"):
        await sink.write(more)


async def test_memory_sink_pause_hangs_until_cancelled_or_resumed() -> None:
    sink = MemorySink()
    sink.pause()
    with anyio.move_on_after(0.05) as scope:
        await sink.write(a_run())
    assert scope.cancelled_caught
    assert sink.events == []
    async with anyio.create_task_group() as tg:
        tg.start_soon(sink.write, a_run("b"))
        await anyio.sleep(0.02)
        sink.resume()
    assert {e.run_id for e in sink.events} == {"b"}


async def test_null_sink_counts() -> None:
    sink = NullSink()
    await sink.write(a_run())
    await sink.write(a_run()[:2])
    assert (sink.events, sink.batches) == (8, 2)
    await sink.aclose()


def test_readme_sinks_example_runs_as_printed(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    example = next(b for b in blocks if "SQLiteSink(" in b)
    env = {**os.environ, "LIMELIGHT_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", example],
        capture_output=True,
        text=True,
        timeout=50,
        check=True,
        cwd=tmp_path,
        env=env,
    ).stdout
    assert out.strip() == "1 {'api_key': '[redacted]'}"
    summary = subprocess.run(
        [sys.executable, "-m", "limelight", "events", "--db", "events.db", "--json"],
        capture_output=True,
        text=True,
        timeout=50,
        check=True,
        cwd=tmp_path,
    ).stdout
    data = json.loads(summary)
    assert data["total_events"] == 1
    assert data["by_role"] == [
        {"name": "executor", "calls": 1, "input_tokens": 12, "output_tokens": 30, "cost": 0.0002}
    ]


def test_local_sinks_load_no_optional_dependency() -> None:
    code = (
        "import sys, json\n"
        "from limelight.sinks import SQLiteSink, JSONLSink, MemorySink, NullSink, summarize\n"
        "from limelight.schemas import Event\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=50
    ).stdout
    loaded = set(json.loads(out))
    heavy = {"httpx", "aiohttp", "opentelemetry", "rich", "structlog", "requests", "trio"}
    assert not loaded & heavy, f"the local sinks loaded {sorted(loaded & heavy)}"


def test_a_missing_otel_extra_is_named() -> None:
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from limelight.errors import MissingExtra\n"
        "try:\n"
        "    from limelight.sinks import OTLPSink\n"
        "except MissingExtra as exc:\n"
        "    print(exc.extra, '|', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=50
    ).stdout
    assert out.startswith("otel |")
    assert "pip install 'limelight[otel]'" in out


def test_sinks_exports_every_public_name_once() -> None:
    import limelight.sinks as sinks

    assert len(sinks.__all__) == len(set(sinks.__all__))
    for name in sinks.__all__:
        assert getattr(sinks, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = sinks.Nope  # type: ignore[attr-defined]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_opens_its_own_sqlite_connection(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    sink = SQLiteSink(path)
    parent_batch, child_batch = a_run("parent"), a_run("child")
    anyio.run(sink.write, parent_batch)
    pid = os.fork()
    if pid == 0:  # the child inherits the open connection and must not use it
        code = 1
        try:
            anyio.run(sink.write, child_batch)
            anyio.run(sink.aclose)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    anyio.run(sink.write, parent_batch)  # the parent's connection still works
    assert sink.duplicates == len(parent_batch)
    assert {e.run_id for e in read_events(path)} == {"parent", "child"}
    anyio.run(sink.aclose)
