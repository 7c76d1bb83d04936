"""The analytics API: configuration (from the environment too), initialize / get_client /
current / shutdown, runs, and the client from sync code, asyncio, trio and a user's own
Runtime."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from limelight import analytics
from limelight.analytics import AnalyticsConfig
from limelight.errors import ConfigError, RuntimeNotRunning
from limelight.runtime import Runtime
from limelight.schemas import Event, EventType
from limelight.sinks import MemorySink, SQLiteSink, read_events


@pytest.fixture(autouse=True)
def _no_client_left() -> Iterator[None]:
    yield
    analytics.shutdown(5)
    assert analytics.current() is None


def config(tmp_path: Path, **overrides: object) -> AnalyticsConfig:
    return AnalyticsConfig(spool_dir=str(tmp_path / "spool"), flush_interval=0.02, **overrides)  # type: ignore[arg-type]


def test_config_from_env_reads_every_variable() -> None:
    env = {
        "LIMELIGHT_API_KEY": "sk-secret-0123456789abcdef",
        "LIMELIGHT_BATCH_SIZE": "250",
        "LIMELIGHT_FLUSH_INTERVAL": "0.5",
        "LIMELIGHT_MAX_RETRIES": "7",
        "LIMELIGHT_MAX_QUEUE_SIZE": "5000",
        "LIMELIGHT_ENDPOINT": "https://ingest.example/v1/events",
        "LIMELIGHT_SPOOL_DIR": "/tmp/spool-here",
        "LIMELIGHT_BACKEND": "trio",
    }
    cfg = AnalyticsConfig.from_env(env)
    assert cfg.api_key == "sk-secret-0123456789abcdef"
    assert (cfg.batch_size, cfg.flush_interval, cfg.max_retries) == (250, 0.5, 7)
    assert cfg.max_queue_size == 5000
    assert cfg.endpoint == "https://ingest.example/v1/events"
    assert cfg.spool_dir == "/tmp/spool-here"
    assert cfg.backend == "trio"
    # Unset variables keep the defaults; overrides win.
    assert AnalyticsConfig.from_env({}) == AnalyticsConfig()
    assert AnalyticsConfig.from_env(env, batch_size=3).batch_size == 3
    # The key never shows.
    assert "sk-secret" not in repr(cfg)
    assert "sk-secret" not in str(cfg)


@pytest.mark.parametrize(
    ("var", "value", "match"),
    [
        ("LIMELIGHT_BATCH_SIZE", "many", "LIMELIGHT_BATCH_SIZE='many' is not a valid int"),
        ("LIMELIGHT_BATCH_SIZE", "0", "batch_size must be an integer >= 1"),
        ("LIMELIGHT_FLUSH_INTERVAL", "-1", "flush_interval must be > 0"),
        ("LIMELIGHT_MAX_RETRIES", "1.5", "LIMELIGHT_MAX_RETRIES='1.5' is not a valid int"),
        ("LIMELIGHT_MAX_QUEUE_SIZE", "-3", "max_queue_size"),
        ("LIMELIGHT_ENDPOINT", "ftp://x", "must be an http:// or https:// URL"),
        ("LIMELIGHT_BACKEND", "curio", "'asyncio' or 'trio'"),
    ],
)
def test_bad_environment_values_raise_config_error(var: str, value: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        AnalyticsConfig.from_env({var: value})


def test_get_client_before_initialize_says_what_to_do() -> None:
    assert analytics.current() is None
    with pytest.raises(RuntimeNotRunning, match=r"initialize\(\)"):
        analytics.get_client()


def test_initialize_runs_log_flush_statistics_shutdown(tmp_path: Path) -> None:
    sink = MemorySink()
    client = analytics.initialize(api_key="sk-abc", config=config(tmp_path), sinks=[sink])
    assert analytics.get_client() is client
    assert analytics.current() is client
    assert client.config.api_key == "sk-abc"
    run_id = client.start_run(user_id="u-1", metadata={"app": "demo", "password": "hunter2"})
    for i in range(10):
        client.log_event(Event.create_user_input(f"q{i}", run_id=run_id))
    client.end_run(run_id)
    assert client.flush(10)
    assert client.is_healthy()
    stats = client.statistics()
    assert (stats.queued, stats.sent) == (12, 12)
    events = sink.events
    assert events[0].event_type is EventType.SESSION_START
    assert events[0].user_id == "u-1"
    assert events[0].payload.attributes == {"app": "demo", "password": "[redacted]"}  # type: ignore[union-attr]
    assert events[-1].event_type is EventType.SESSION_END
    assert events[-1].payload.duration is not None  # type: ignore[union-attr]
    assert {e.run_id for e in events} == {run_id}
    assert analytics.shutdown(5)
    assert analytics.current() is None
    assert client.closed
    # After shutdown, logging still never raises: the event goes to the spool.
    client.log_event(Event.create_user_input("late"))
    assert client.statistics().dropped == 1


def test_default_sink_is_sqlite_under_limelight_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIMELIGHT_HOME", str(tmp_path))
    monkeypatch.setenv("LIMELIGHT_FLUSH_INTERVAL", "0.02")
    client = analytics.initialize()
    assert [type(s.sink) for s in client.shipper._sinks] == [SQLiteSink]
    client.log_event(Event.create_user_input("stored"))
    assert analytics.shutdown(10)
    stored = read_events(tmp_path / "events.db")
    assert [e.payload.text for e in stored] == ["stored"]  # type: ignore[union-attr]
    assert client.shipper.spool.directory == tmp_path / "spool"


def test_an_endpoint_adds_an_http_sink(tmp_path: Path) -> None:
    from limelight.sinks import HTTPSink

    from ._servers import ingest_server

    with ingest_server(api_key="key-1") as server:
        cfg = config(tmp_path, endpoint=server.url, db_path=str(tmp_path / "e.db"))
        client = analytics.initialize(api_key="key-1", config=cfg)
        assert [type(s.sink) for s in client.shipper._sinks] == [SQLiteSink, HTTPSink]
        client.log_event(Event.create_user_input("both"))
        assert analytics.shutdown(10)
        assert [e.payload.text for e in server.events] == ["both"]  # type: ignore[union-attr]
    assert len(read_events(tmp_path / "e.db")) == 1


def test_initialize_again_replaces_and_shuts_down_the_old_client(tmp_path: Path) -> None:
    first_sink, second_sink = MemorySink(), MemorySink()
    first = analytics.initialize(config=config(tmp_path), sinks=[first_sink])
    first.log_event(Event.create_user_input("one"))
    second = analytics.initialize(config=config(tmp_path), sinks=[second_sink])
    assert first.closed
    assert not second.closed
    assert analytics.current() is second
    assert len(first_sink.events) == 1


def test_many_threads_log_through_the_client_without_loss(tmp_path: Path) -> None:
    sink = MemorySink()
    client = analytics.initialize(config=config(tmp_path, batch_size=200), sinks=[sink])

    def produce(t: int) -> None:
        for i in range(1000):
            client.log_event(Event.create_user_input(f"{t}-{i}"))

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.flush(20)
    assert len(sink.events) == 8000
    assert sink.duplicates == 0


@pytest.mark.anyio
async def test_the_client_from_async_code(tmp_path: Path, anyio_backend: str) -> None:
    sink = MemorySink()
    client = analytics.initialize(config=config(tmp_path), sinks=[sink])
    for i in range(100):
        client.log_event(Event.create_user_input(f"a{i}"))
    assert await client.aflush(10)  # does not block this event loop
    assert len(sink.events) == 100
    assert await client.ashutdown(5)
    assert analytics.current() is None


@pytest.mark.anyio
async def test_background_loop_on_trio(tmp_path: Path) -> None:
    sink = MemorySink()
    client = analytics.initialize(config=config(tmp_path, backend="trio"), sinks=[sink])
    client.log_event(Event.create_user_input("on trio"))
    assert await client.aflush(10)
    assert len(sink.events) == 1


@pytest.mark.anyio
async def test_initialize_in_a_users_own_runtime(tmp_path: Path) -> None:
    sink = MemorySink()
    async with Runtime() as rt:
        client = await analytics.initialize_in(rt, config=config(tmp_path), sinks=[sink])
        assert analytics.current() is client
        assert rt.lookup("/analytics") is not None  # a supervised actor of this runtime
        run_id = client.start_run(user_id="me")
        client.log_event(Event.create_user_input("inside", run_id=run_id))
        client.end_run(run_id)
        assert await client.aflush(10)
        with pytest.raises(ConfigError, match="aflush"):
            client.flush()  # would block the very loop the shipper runs on
        assert await client.ashutdown(5)
    assert [e.event_type for e in sink.events] == [
        EventType.SESSION_START,
        EventType.USER_INPUT,
        EventType.SESSION_END,
    ]
    await anyio.lowlevel.checkpoint()


def test_readme_analytics_example_runs_as_printed(tmp_path: Path) -> None:
    import os
    import re
    import subprocess
    import sys

    readme = Path(__file__).parent.parent.parent / "README.md"
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), re.S)
    example = next(b for b in blocks if "analytics.initialize()" in b)
    env = {**os.environ, "LIMELIGHT_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", example],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    ).stdout
    assert out.strip() == "True 11"
    assert len(read_events(tmp_path / "events.db")) == 11
