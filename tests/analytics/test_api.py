"""The analytics API: configuration (from the environment too), initialize / get_client /
current / shutdown, runs, and the client from sync code, asyncio, trio and a user's own
Runtime."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from limelight import _analytics, analytics
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


def test_config_from_env_reads_every_variable(tmp_path: Path) -> None:
    env = {
        "LIMELIGHT_API_KEY": "sk-secret-0123456789abcdef",
        "LIMELIGHT_ENDPOINT": "https://ingest.example/v1/events",
        "LIMELIGHT_BATCH_SIZE": "250",
        "LIMELIGHT_MAX_BATCH_BYTES": "65536",
        "LIMELIGHT_FLUSH_INTERVAL": "0.5",
        "LIMELIGHT_COMMIT_INTERVAL": "0.02",
        "LIMELIGHT_SPOOL_FSYNC": "Always",
        "LIMELIGHT_MAX_RETRIES": "7",
        "LIMELIGHT_MAX_QUEUE_SIZE": "5000",
        "LIMELIGHT_SPOOL_DIR": str(tmp_path / "spool-here"),
        "LIMELIGHT_DB_PATH": str(tmp_path / "here.db"),
        "LIMELIGHT_SINK_TIMEOUT": "2.5",
        "LIMELIGHT_SHUTDOWN_TIMEOUT": "12",
        "LIMELIGHT_ANALYTICS_LOOP": "trio",
    }
    # Every variable analytics reads is in this test (a new one must be added here).
    assert set(env) == set(_analytics._ENV)
    cfg = AnalyticsConfig.from_env(env)
    assert cfg == AnalyticsConfig(
        api_key="sk-secret-0123456789abcdef",
        endpoint="https://ingest.example/v1/events",
        batch_size=250,
        max_batch_bytes=65536,
        flush_interval=0.5,
        commit_interval=0.02,
        fsync="always",
        max_retries=7,
        max_queue_size=5000,
        spool_dir=str(tmp_path / "spool-here"),
        db_path=str(tmp_path / "here.db"),
        sink_timeout=2.5,
        shutdown_timeout=12.0,
        backend="trio",
    )
    assert cfg.shipper_options()["stop_timeout"] == 12.0
    assert cfg.shipper_options()["commit_interval"] == 0.02
    assert cfg.shipper_options()["fsync"] == "always"
    # Unset (or blank) variables keep the defaults; overrides win.
    assert AnalyticsConfig.from_env({}) == AnalyticsConfig()
    assert AnalyticsConfig.from_env(dict.fromkeys(env, " ")) == AnalyticsConfig()
    assert AnalyticsConfig.from_env(env, batch_size=3).batch_size == 3
    # The key never shows.
    assert "sk-secret" not in repr(cfg)
    assert "sk-secret" not in str(cfg)


@pytest.mark.parametrize(
    ("legacy", "loop", "expected"),
    [
        ("trio", None, "trio"),  # the old name still works when it names an event loop
        (" Asyncio ", None, "asyncio"),
        ("litellm", None, "asyncio"),  # a model backend: not ours, ignored without an error
        ("mlx", "trio", "trio"),
        ("trio", "asyncio", "asyncio"),  # the new name wins
    ],
)
def test_the_event_loop_variable_and_its_old_name(
    legacy: str, loop: str | None, expected: str
) -> None:
    env = {"LIMELIGHT_BACKEND": legacy}
    if loop is not None:
        env["LIMELIGHT_ANALYTICS_LOOP"] = loop
    assert AnalyticsConfig.from_env(env).backend == expected


def test_initialize_ignores_a_model_backend_in_limelight_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LIMELIGHT_BACKEND=litellm is meant for model backends: analytics starts anyway."""
    monkeypatch.setenv("LIMELIGHT_HOME", str(tmp_path))
    monkeypatch.setenv("LIMELIGHT_BACKEND", "litellm")
    monkeypatch.setenv("LIMELIGHT_FLUSH_INTERVAL", "0.02")
    client = analytics.initialize()
    assert client.config.backend == "asyncio"
    client.log_event(Event.create_user_input("stored"))
    assert analytics.shutdown(10)
    assert len(read_events(tmp_path / "events.db")) == 1


def test_initialize_runs_its_loop_on_trio_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sniffio

    monkeypatch.setenv("LIMELIGHT_ANALYTICS_LOOP", "trio")
    client = analytics.initialize(config=AnalyticsConfig.from_env(spool_dir=str(tmp_path)))
    assert client.config.backend == "trio"
    assert client.shipper._call_soon is not None
    libraries: list[str] = []
    client.shipper._call_soon(lambda: libraries.append(sniffio.current_async_library()))
    assert client.flush(10)
    assert libraries == ["trio"]


BAD_VALUES = [
    ("LIMELIGHT_API_KEY", "sk-abc def", "printable ASCII"),
    ("LIMELIGHT_API_KEY", "sk-abc\r\nX-Evil: 1", "printable ASCII"),
    ("LIMELIGHT_ENDPOINT", "ftp://x", "must be an http:// or https:// URL"),
    ("LIMELIGHT_BATCH_SIZE", "many", "='many' is not a whole number"),
    ("LIMELIGHT_BATCH_SIZE", "0", "batch_size must be an integer >= 1"),
    ("LIMELIGHT_MAX_BATCH_BYTES", "4MB", "='4MB' is not a whole number of bytes"),
    ("LIMELIGHT_MAX_BATCH_BYTES", "-1", "max_batch_bytes must be an integer >= 1"),
    ("LIMELIGHT_FLUSH_INTERVAL", "-1", "flush_interval must be a finite number > 0"),
    ("LIMELIGHT_FLUSH_INTERVAL", "soon", "='soon' is not a number of seconds"),
    ("LIMELIGHT_FLUSH_INTERVAL", "nan", "flush_interval must be a finite number > 0"),
    ("LIMELIGHT_COMMIT_INTERVAL", "0", "commit_interval must be a finite number > 0"),
    ("LIMELIGHT_COMMIT_INTERVAL", "60", "commit_interval must be at most 10 seconds"),
    ("LIMELIGHT_SPOOL_FSYNC", "sometimes", "fsync must be 'never' or 'always'"),
    ("LIMELIGHT_MAX_RETRIES", "1.5", "='1.5' is not a whole number"),
    ("LIMELIGHT_MAX_RETRIES", "-1", "max_retries must be an integer >= 0"),
    ("LIMELIGHT_MAX_QUEUE_SIZE", "-3", "max_queue_size must be an integer >= 1"),
    ("LIMELIGHT_SPOOL_DIR", "{file}", "is a file; it must be a folder"),
    ("LIMELIGHT_SPOOL_DIR", "spool\0here", "spool_dir must be a path"),
    ("LIMELIGHT_DB_PATH", "{folder}", "is a folder; it must be the SQLite file's path"),
    ("LIMELIGHT_DB_PATH", "events\0.db", "db_path must be a path"),
    ("LIMELIGHT_SINK_TIMEOUT", "0", "sink_timeout must be a finite number > 0"),
    ("LIMELIGHT_SINK_TIMEOUT", "10s", "='10s' is not a number of seconds"),
    ("LIMELIGHT_SHUTDOWN_TIMEOUT", "inf", "shutdown_timeout must be a finite number > 0"),
    ("LIMELIGHT_SHUTDOWN_TIMEOUT", "forever", "='forever' is not a number of seconds"),
    ("LIMELIGHT_ANALYTICS_LOOP", "curio", "'asyncio' or 'trio'"),
]


@pytest.mark.parametrize(("var", "value", "match"), BAD_VALUES)
def test_bad_environment_values_raise_config_error_naming_the_variable(
    var: str, value: str, match: str, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    value = value.format(file=tmp_path / "a-file", folder=tmp_path)
    with pytest.raises(ConfigError, match=match) as caught:
        AnalyticsConfig.from_env({var: value})
    message = str(caught.value)
    assert message.startswith(f"{var}=")
    if var == "LIMELIGHT_API_KEY":
        assert "sk-abc" not in message  # not even a malformed key is shown


def test_every_variable_has_a_bad_value_tested() -> None:
    assert {var for var, _, _ in BAD_VALUES} == set(_analytics._ENV)


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


def test_initialize_installs_a_sigterm_handler_and_shutdown_takes_it_off(tmp_path: Path) -> None:
    import signal

    term, interrupt = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    analytics.initialize(config=config(tmp_path), sinks=[MemorySink()])
    assert signal.getsignal(signal.SIGTERM) is _analytics._on_signal
    assert signal.getsignal(signal.SIGINT) is interrupt  # left to Python and the event loops
    assert analytics.shutdown(5)
    assert signal.getsignal(signal.SIGTERM) == term
    analytics.initialize(config=config(tmp_path), sinks=[MemorySink()], handle_signals=False)
    assert signal.getsignal(signal.SIGTERM) == term
    # From another thread none is installed (Python runs handlers in the main thread only).
    analytics.shutdown(5)
    errors: list[BaseException] = []

    def from_a_thread() -> None:
        analytics.initialize(config=config(tmp_path), sinks=[MemorySink()])
        try:
            analytics.install_signal_handlers()
        except ConfigError as exc:
            errors.append(exc)

    thread = threading.Thread(target=from_a_thread)
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGTERM) == term
    assert len(errors) == 1
    assert "main thread" in str(errors[0])


def test_a_signal_handler_commits_then_calls_the_handler_it_replaced(tmp_path: Path) -> None:
    """With a Python handler already there (an app's own), the process is not ended: the
    events accepted so far are made durable, then that handler runs."""
    import os
    import signal

    seen: list[tuple[int, int]] = []
    client = analytics.initialize(
        config=AnalyticsConfig(
            spool_dir=str(tmp_path / "spool"), commit_interval=10.0, flush_interval=60.0
        ),
        sinks=[MemorySink()],
        handle_signals=False,
    )

    def previous(signum: int, frame: object) -> None:
        seen.append((signum, client.statistics().spooled))

    old = signal.signal(signal.SIGUSR1, previous)
    try:
        assert client.flush(5)  # the first commit cycle is behind us: the next is in 10 s
        for i in range(5):
            client.log_event(Event.create_user_input(f"s{i}"))
        assert client.statistics().spooled == 0  # still in memory
        assert analytics.install_signal_handlers((signal.SIGUSR1,))
        assert not analytics.install_signal_handlers((signal.SIGUSR1,))  # once
        os.kill(os.getpid(), signal.SIGUSR1)
        assert seen == [(signal.SIGUSR1, 5)]  # on disk before the app's handler ran
        analytics.uninstall_signal_handlers()
        assert signal.getsignal(signal.SIGUSR1) is previous
    finally:
        signal.signal(signal.SIGUSR1, old)
