"""``limelight events`` over several stores: two real SQLite files written through the
analytics API (as two hosts write theirs), read as one with ``--db`` repeated or a
directory; the union's summary is the sum of the parts, and equals the summary of one store
holding every event."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import msgspec
import pytest

from limelight import analytics
from limelight.analytics import AnalyticsConfig
from limelight.cli import main
from limelight.errors import ConfigError
from limelight.schemas import Event
from limelight.sinks import EventsSummary, SQLiteSink, read_events, summarize


@pytest.fixture(autouse=True)
def _no_client_left() -> Iterator[None]:
    yield
    analytics.shutdown(5)


def host_events(host: int) -> list[Event]:
    """A host's events: a run of its own, and its part of a run shared by both hosts."""
    events: list[Event] = []
    for run, model, role in (
        (f"own-{host}", f"gpt-{host}", "executor"),
        ("shared", "gpt-s", "optimizer"),
    ):
        events.append(Event.create_user_input("hi", run_id=run, user_id=f"user-{host}"))
        events.append(Event.create_llm_request(model, role=role, run_id=run))
        events.append(
            Event.create_llm_response(
                model,
                role=role,
                input_tokens=10 + host,
                output_tokens=2 + host,
                cost=0.25 * (host + 1),
                run_id=run,
            )
        )
    events.append(Event.create_error(RuntimeError(f"host {host} failed"), run_id=f"own-{host}"))
    events.append(Event.create_performance_metric("qps", 1.0 + host))  # no run
    return events


def record(path: Path, events: list[Event], tmp_path: Path) -> None:
    """Record ``events`` into the SQLite store at ``path`` through the analytics client."""
    config = AnalyticsConfig(
        db_path=str(path), spool_dir=str(tmp_path / f"spool-{path.stem}"), flush_interval=0.02
    )
    client = analytics.initialize(config=config, handle_signals=False)
    for event in events:
        client.log_event(event)
    assert client.flush(10)
    assert analytics.shutdown(5)


@pytest.fixture
def hosts(tmp_path: Path) -> tuple[Path, Path, Path]:
    """``hosts/host-0.db`` and ``hosts/host-1.db``, and ``all.db`` holding both hosts'
    events."""
    directory = tmp_path / "hosts"
    directory.mkdir()
    events = [host_events(0), host_events(1)]
    for host in (0, 1):
        record(directory / f"host-{host}.db", events[host], tmp_path)
    both = tmp_path / "all.db"

    async def write_all() -> None:
        sink = SQLiteSink(both)
        await sink.write(events[0] + events[1])
        await sink.aclose()

    anyio.run(write_all)
    return directory / "host-0.db", directory / "host-1.db", both


def test_the_union_is_the_sum_of_the_stores(hosts: tuple[Path, Path, Path]) -> None:
    a, b, _ = hosts
    assert len(read_events(a)) == len(read_events(b)) == 8
    one, two = summarize(a), summarize(b)
    union = summarize([a, b])
    assert union.stores == [str(a), str(b)]
    assert union.db == f"{a}, {b}"
    assert union.total_events == one.total_events + two.total_events == 16
    for field in ("input_tokens", "output_tokens", "error_count"):
        assert getattr(union, field) == getattr(one, field) + getattr(two, field)
    assert union.cost == pytest.approx((one.cost or 0) + (two.cost or 0))
    assert union.cost == pytest.approx(1.5)
    assert union.by_type == {
        t: one.by_type.get(t, 0) + two.by_type.get(t, 0) for t in one.by_type | two.by_type
    }
    assert union.first == min(one.first or 0, two.first or 0)
    assert union.last == max(one.last or 0, two.last or 0)
    # The run both hosts wrote is one run: its events, tokens and cost summed.
    assert union.run_count == 3
    runs = {run.run_id: run for run in union.runs}
    assert set(runs) == {"own-0", "own-1", "shared"}
    parts = [r for s in (one, two) for r in s.runs if r.run_id == "shared"]
    shared = runs["shared"]
    assert shared.events == sum(r.events for r in parts) == 6
    assert shared.input_tokens == 21
    assert shared.cost == pytest.approx(0.75)
    assert (shared.first, shared.last) == (min(r.first for r in parts), max(r.last for r in parts))
    models = {row.name: (row.calls, row.input_tokens, row.cost) for row in union.by_model}
    assert models == {
        "gpt-s": (2, 21, pytest.approx(0.75)),
        "gpt-1": (1, 11, 0.5),
        "gpt-0": (1, 10, 0.25),
    }
    assert [row.name for row in union.by_model] == ["gpt-s", "gpt-1", "gpt-0"]  # by cost
    assert {row.name: row.calls for row in union.by_role} == {"optimizer": 2, "executor": 2}
    assert sorted(e.message or "" for e in union.errors) == ["host 0 failed", "host 1 failed"]


def test_the_union_equals_one_store_of_every_event(hosts: tuple[Path, Path, Path]) -> None:
    a, b, both = hosts
    whole = summarize(both)
    for run_id in (None, "shared", "own-1"):
        union = summarize([a, b], run_id=run_id, runs=2, errors=1)
        alone = summarize(both, run_id=run_id, runs=2, errors=1)
        assert msgspec.structs.replace(union, db=alone.db, stores=alone.stores) == alone
    # A directory reads every *.db in it, in name order.
    directory = summarize(a.parent)
    assert directory.stores == [str(a), str(b)]
    assert directory.db == str(a.parent)
    assert msgspec.structs.replace(directory, db=whole.db, stores=whole.stores) == whole


def test_missing_and_unreadable_stores_are_refused(
    hosts: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    a, _, _ = hosts
    with pytest.raises(ConfigError, match="no events database at"):
        summarize([a, tmp_path / "missing.db"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=r"holds no \*\.db file"):
        summarize([a, empty])
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all, " * 100)
    with pytest.raises(ConfigError, match="not a limelight events database"):
        summarize([a, junk])


def _events(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "limelight", "events", *args],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )


def test_the_command_reads_repeated_dbs_and_directories(
    hosts: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, _ = hosts
    assert main(["events", "--db", str(a), "--db", str(b)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"limelight events: {a}, {b} (2 stores)" in out
    assert "16 events in 3 runs" in out
    assert "cost $1.5000" in out
    done = _events("--db", str(a.parent), "--json")
    assert done.returncode == 0, done.stderr
    assert msgspec.json.decode(done.stdout, type=EventsSummary) == summarize(a.parent)


@pytest.mark.parametrize("bad", ["missing.db", "junk.db", "empty"])
def test_the_command_says_what_it_cannot_read_in_one_line(
    hosts: tuple[Path, Path, Path], tmp_path: Path, bad: str
) -> None:
    a, _, _ = hosts
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all, " * 100)
    (tmp_path / "empty").mkdir()
    done = _events("--db", str(a), "--db", str(tmp_path / bad))
    assert done.returncode == 1
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("limelight events: ")
    assert str(tmp_path / bad) in done.stderr


def test_an_unknown_run_names_every_store(hosts: tuple[Path, Path, Path]) -> None:
    a, b, _ = hosts
    done = _events("--db", str(a), "--db", str(b), "--run", "nosuch")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"limelight events: no run 'nosuch' in {a}, {b} (latest: own-1, shared, own-0): "
        f"`limelight events --db {a} --db {b}` lists the runs"
    ]
