"""Files that hold prompts, answers or events are created 0600 and the folders limelight
creates for them 0700, even under a umask of 0 (which would otherwise leave them 0666 /
0777): the SQLite event store with its ``-wal`` and ``-shm``, the JSONL sink, the response
cache, batch checkpoints and bench results. Folders that existed already are left as they
are, except limelight's own ``~/.limelight``."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from limelight.batch import run_batch
from limelight.cache import CachingProvider, SQLiteCache
from limelight.schemas import CompletionRequest, Event, Message, Usage
from limelight.sinks import JSONLSink, SQLiteSink
from limelight.testing import Reply, Scripted


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """A umask of 0: without an explicit mode, files would be 0666 and folders 0777."""
    before = os.umask(0)
    try:
        yield
    finally:
        os.umask(before)


@pytest.fixture
def users_folder(tmp_path: Path) -> Path:
    """A folder of the user's, open to others (0755): limelight must not change it."""
    folder = tmp_path / "users"
    folder.mkdir(mode=0o755)
    return folder


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def assert_private(files: list[Path], folders: list[Path]) -> None:
    for path in files:
        assert path.is_file(), f"{path} was not written"
        assert mode(path) == 0o600, f"{path} is {oct(mode(path))}"
    for path in folders:
        assert mode(path) == 0o700, f"{path} is {oct(mode(path))}"


def events(count: int = 3) -> list[Event]:
    return [Event.create_user_input(f"prompt {i}") for i in range(count)]


@pytest.mark.anyio
async def test_the_sqlite_event_store_and_its_wal_and_shm_are_0600(users_folder: Path) -> None:
    path = users_folder / "new" / "deeper" / "events.db"
    sink = SQLiteSink(path)
    try:
        await sink.write(events())
        # SQLite gives -wal and -shm the database's mode: both exist while it is open.
        wal, shm = path.with_name("events.db-wal"), path.with_name("events.db-shm")
        assert_private([path, wal, shm], [path.parent, path.parent.parent])
        assert await sink.count() == 3
    finally:
        await sink.aclose()
    assert mode(users_folder) == 0o755  # the user's folder, untouched


@pytest.mark.anyio
async def test_the_jsonl_sink_file_is_0600(users_folder: Path) -> None:
    path = users_folder / "logs" / "events.jsonl"
    sink = JSONLSink(path)
    try:
        await sink.write(events())
    finally:
        await sink.aclose()
    assert_private([path], [path.parent])
    assert len(path.read_bytes().splitlines()) == 3
    assert mode(users_folder) == 0o755


@pytest.mark.anyio
async def test_an_existing_file_keeps_the_mode_its_owner_gave_it(users_folder: Path) -> None:
    path = users_folder / "shared.jsonl"
    path.touch(mode=0o640)
    sink = JSONLSink(path)
    try:
        await sink.write(events(1))
    finally:
        await sink.aclose()
    assert mode(path) == 0o640
    assert path.read_bytes().count(b"\n") == 1


@pytest.mark.anyio
async def test_the_response_cache_and_its_wal_and_shm_are_0600(users_folder: Path) -> None:
    path = users_folder / "cache" / "responses.db"
    cache = SQLiteCache(path)
    try:
        backend = Scripted([Reply(text="an answer", usage=Usage.of(3, 4))])
        request = CompletionRequest(messages=[Message.user("a prompt")])
        assert (await CachingProvider(backend, cache).complete(request)).content == "an answer"
        wal, shm = path.with_name("responses.db-wal"), path.with_name("responses.db-shm")
        assert_private([path, wal, shm], [path.parent])
    finally:
        cache.close()


@pytest.mark.anyio
async def test_batch_checkpoints_are_0600(users_folder: Path) -> None:
    path = users_folder / "runs" / "batch.jsonl"

    async def answer(prompt: str) -> str:
        return prompt.upper()

    report = await run_batch(["a", "b"], answer, checkpoint=path)
    assert [item.value for item in report.items] == ["A", "B"]
    assert_private([path], [path.parent])


def test_bench_results_and_reports_are_0600(users_folder: Path) -> None:
    base = users_folder / "bench" / "stream"
    command = [sys.executable, "-m", "limelight", "bench"]
    fast = ["--sim-ttft", "0.01", "--sim-tps", "2000", "--output-tokens", "4"]
    run = subprocess.run(
        [*command, "run", "--requests", "3", "--rate", "50", *fast, "-o", str(base)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        umask=0,
    )
    assert run.returncode == 0, run.stderr
    results = [
        base.with_suffix(".json"),
        base.with_suffix(".html"),
        base.parent / "stream.records.jsonl",
    ]
    report = users_folder / "reports" / "again.html"
    again = subprocess.run(
        [*command, "report", str(results[0]), "-o", str(report)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        umask=0,
    )
    assert again.returncode == 0, again.stderr
    assert_private([*results, report], [base.parent, report.parent])
    assert mode(users_folder) == 0o755


@pytest.mark.anyio
async def test_limelights_own_home_is_narrowed_but_limelight_home_is_the_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    (home / ".limelight").mkdir(mode=0o755)  # made by an earlier version
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("LIMELIGHT_HOME", raising=False)
    sink = SQLiteSink()
    try:
        await sink.write(events(1))
    finally:
        await sink.aclose()
    assert sink.path == home / ".limelight" / "events.db"
    assert_private([sink.path], [home / ".limelight"])
    assert mode(home) == 0o755  # the home folder itself is the user's
    chosen = tmp_path / "chosen"
    chosen.mkdir(mode=0o755)
    monkeypatch.setenv("LIMELIGHT_HOME", str(chosen))
    other = SQLiteSink()
    try:
        await other.write(events(1))
    finally:
        await other.aclose()
    assert_private([chosen / "events.db"], [])
    assert mode(chosen) == 0o755  # a folder the user named is theirs


def test_the_analytics_spool_its_segments_and_its_folders_are_private(
    users_folder: Path,
) -> None:
    from limelight._spool import Spool

    spool = Spool(users_folder / "spool")
    seg = spool.create(["sqlite"], "live")
    spool.append(seg, b'{"not": "read here"}\n')
    spool.seal(seg)
    spool.dead_letter("sqlite", events(1), "rejected by the test")
    spool.release()
    wal = users_folder / "spool" / "wal"
    segments = sorted(wal.glob("*.log"))
    assert len(segments) == 1
    dead = users_folder / "spool" / "dead-letter"
    assert_private(
        [*segments, dead / "sqlite.jsonl"], [users_folder / "spool", wal, wal / "owners", dead]
    )
    assert mode(users_folder) == 0o755
