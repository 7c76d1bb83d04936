"""The analytics API's implementation: config, client and the process-wide client.

:class:`AnalyticsConfig`, the :class:`AnalyticsClient` running a shipper on a background loop,
and the process-wide client with its signal, exit and fork handling (see
:mod:`limelight.analytics`). The process-wide state lives here.

One module: the process-wide client and its signal, exit and fork handlers all read and
replace one piece of global state (the current client, under one lock), and the client's
background loop is what they flush, shut down and restart.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

import anyio
import msgspec

from . import _instrument
from ._analytics_hook import AnalyticsHook
from .actors._shipper import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_COMMIT_INTERVAL,
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_QUEUE_SIZE,
    DEFAULT_MAX_RETRIES,
    DEFAULT_SINK_TIMEOUT,
    AnalyticsShipper,
    ShipperStatistics,
)
from .errors import ConfigError, RuntimeNotRunning
from .schemas._events import Event

if TYPE_CHECKING:
    from .runtime import Runtime
    from .sinks._base import Sink


DEFAULT_SHUTDOWN_TIMEOUT: Final = 5.0


class AnalyticsConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How events are batched, retried and stored. Every field can also come from the
    environment (:meth:`from_env`).

    :ivar api_key: sent to ``endpoint`` (``LIMELIGHT_API_KEY``); never logged or shown.
    :ivar endpoint: an HTTP ingestion URL; when set, an :class:`~limelight.sinks.HTTPSink`
        is added to the default SQLite sink (``LIMELIGHT_ENDPOINT``).
    :ivar batch_size: most events per batch (``LIMELIGHT_BATCH_SIZE``).
    :ivar max_batch_bytes: most JSON bytes per batch (``LIMELIGHT_MAX_BATCH_BYTES``).
    :ivar flush_interval: seconds an incomplete batch may wait (``LIMELIGHT_FLUSH_INTERVAL``).
    :ivar commit_interval: seconds between group commits to the spool
        (``LIMELIGHT_COMMIT_INTERVAL``, default 0.05): an event accepted more than this long
        ago (plus the few milliseconds one commit takes) is on disk and survives the process
        being killed.
    :ivar fsync: ``"never"`` (default: commits reach the OS page cache, which survives the
        process being killed but not a power cut or a kernel crash) or ``"always"`` (each
        group commit is fsync'd, so it survives those too; one fsync per commit)
        (``LIMELIGHT_SPOOL_FSYNC``).
    :ivar max_retries: retries per batch and sink before it is spooled
        (``LIMELIGHT_MAX_RETRIES``).
    :ivar max_queue_size: events held in memory; beyond, they go to the spool
        (``LIMELIGHT_MAX_QUEUE_SIZE``).
    :ivar spool_dir: the durable spool (``LIMELIGHT_SPOOL_DIR``; default
        ``~/.limelight/spool``).
    :ivar db_path: the SQLite file of the default sink (``LIMELIGHT_DB_PATH``; default
        ``~/.limelight/events.db``).
    :ivar sink_timeout: seconds one write may take (``LIMELIGHT_SINK_TIMEOUT``).
    :ivar shutdown_timeout: seconds :func:`shutdown` and the exit hook allow
        (``LIMELIGHT_SHUTDOWN_TIMEOUT``).
    :ivar backend: the background thread's event loop, ``"asyncio"`` or ``"trio"``
        (``LIMELIGHT_ANALYTICS_LOOP``). The older ``LIMELIGHT_BACKEND`` is read too when it
        says ``asyncio`` or ``trio`` and the new one is unset; any other value of it is left
        alone (it is not ours: people set it meaning a model backend).
    """

    api_key: str | None = None
    endpoint: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
    flush_interval: float = DEFAULT_FLUSH_INTERVAL
    commit_interval: float = DEFAULT_COMMIT_INTERVAL
    fsync: str = "never"
    max_retries: int = DEFAULT_MAX_RETRIES
    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE
    spool_dir: str | None = None
    db_path: str | None = None
    sink_timeout: float = DEFAULT_SINK_TIMEOUT
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    backend: str = "asyncio"

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_batch_bytes", "max_queue_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"AnalyticsConfig.{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ConfigError(
                f"AnalyticsConfig.max_retries must be an integer >= 0, got {self.max_retries!r}"
            )
        for name in ("flush_interval", "commit_interval", "sink_timeout", "shutdown_timeout"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not value > 0
                or not math.isfinite(value)
            ):
                raise ConfigError(
                    f"AnalyticsConfig.{name} must be a finite number > 0 seconds, got {value!r}"
                )
        if self.commit_interval > 10:
            raise ConfigError(
                f"AnalyticsConfig.commit_interval must be at most 10 seconds, got "
                f"{self.commit_interval!r}"
            )
        if self.fsync not in _FSYNC:
            raise ConfigError(
                f"AnalyticsConfig.fsync must be 'never' or 'always', got {self.fsync!r}"
            )
        if self.backend not in _LOOPS:
            raise ConfigError(
                f"AnalyticsConfig.backend must be 'asyncio' or 'trio', got {self.backend!r}"
            )
        if self.api_key is not None and (
            not self.api_key or any(not 0x21 <= ord(c) <= 0x7E for c in self.api_key)
        ):
            # Never shown: even a malformed key is a secret.
            raise ConfigError(
                "AnalyticsConfig.api_key must be the key alone: printable ASCII without "
                "spaces, newlines or other control characters (it is sent in an HTTP header)"
            )
        for name, kind in (("spool_dir", "folder"), ("db_path", "file")):
            _check_path(name, getattr(self, name), kind)
        if self.endpoint is not None and not self.endpoint.startswith(("http://", "https://")):
            raise ConfigError(
                f"AnalyticsConfig.endpoint must be an http:// or https:// URL, got "
                f"{self.endpoint!r}"
            )

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={'[redacted]' if name == 'api_key' and value else repr(value)}"
            for name, value in msgspec.structs.asdict(self).items()
        )
        return f"AnalyticsConfig({fields})"

    __str__ = __repr__

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> AnalyticsConfig:
        """The configuration from ``LIMELIGHT_*`` variables (unset ones keep their defaults),
        then ``overrides``.

        :raises ConfigError: a variable holds a bad value (the message names it).
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for var, (name, parse, what) in _ENV.items():
            raw = env.get(var)
            if raw is None or raw.strip() == "":
                continue
            shown = "[redacted]" if name == "api_key" else repr(raw)
            try:
                value = parse(raw.strip())
            except ValueError:
                raise ConfigError(
                    f"{var}={shown} is not {what}: set it to {what}, or unset it"
                ) from None
            try:
                cls(**{name: value})  # checked alone, so that the error names the variable
            except ConfigError as exc:
                raise ConfigError(f"{var}={shown} is not valid: {exc}") from None
            values[name] = value
        if "backend" not in values:
            legacy = env.get(_LEGACY_LOOP_VAR, "").strip().lower()
            if legacy in _LOOPS:
                values["backend"] = legacy
        values.update(overrides)
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (from the environment or arguments)") from None

    def shipper_options(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "max_batch_bytes": self.max_batch_bytes,
            "flush_interval": self.flush_interval,
            "commit_interval": self.commit_interval,
            "fsync": self.fsync,
            "max_retries": self.max_retries,
            "max_queue_size": self.max_queue_size,
            "spool_dir": self.spool_dir,
            "sink_timeout": self.sink_timeout,
            "stop_timeout": self.shutdown_timeout,
            "close_sinks": True,
        }


_LOOPS: Final = ("asyncio", "trio")
_FSYNC: Final = ("never", "always")
#: Read for ``backend`` only when it names an event loop (see :class:`AnalyticsConfig`).
_LEGACY_LOOP_VAR: Final = "LIMELIGHT_BACKEND"


def _check_path(name: str, value: str | None, kind: str) -> None:
    if value is None:
        return
    if not value or "\0" in value:
        raise ConfigError(f"AnalyticsConfig.{name} must be a path, got {value!r}")
    path = os.path.expanduser(value)
    if kind == "folder" and os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(
            f"AnalyticsConfig.{name}={value!r} is a file; it must be a folder (or not exist yet)"
        )
    if kind == "file" and os.path.isdir(path):
        raise ConfigError(
            f"AnalyticsConfig.{name}={value!r} is a folder; it must be the SQLite file's path"
        )


def _str(raw: str) -> str:
    return raw


def _lower(raw: str) -> str:
    return raw.lower()


_ENV: Final[dict[str, tuple[str, Callable[[str], Any], str]]] = {
    "LIMELIGHT_API_KEY": ("api_key", _str, "an API key"),
    "LIMELIGHT_ENDPOINT": ("endpoint", _str, "an http:// or https:// URL"),
    "LIMELIGHT_BATCH_SIZE": ("batch_size", int, "a whole number"),
    "LIMELIGHT_MAX_BATCH_BYTES": ("max_batch_bytes", int, "a whole number of bytes"),
    "LIMELIGHT_FLUSH_INTERVAL": ("flush_interval", float, "a number of seconds"),
    "LIMELIGHT_COMMIT_INTERVAL": ("commit_interval", float, "a number of seconds"),
    "LIMELIGHT_SPOOL_FSYNC": ("fsync", _lower, "'never' or 'always'"),
    "LIMELIGHT_MAX_RETRIES": ("max_retries", int, "a whole number"),
    "LIMELIGHT_MAX_QUEUE_SIZE": ("max_queue_size", int, "a whole number"),
    "LIMELIGHT_SPOOL_DIR": ("spool_dir", _str, "a folder"),
    "LIMELIGHT_DB_PATH": ("db_path", _str, "a file path"),
    "LIMELIGHT_SINK_TIMEOUT": ("sink_timeout", float, "a number of seconds"),
    "LIMELIGHT_SHUTDOWN_TIMEOUT": ("shutdown_timeout", float, "a number of seconds"),
    "LIMELIGHT_ANALYTICS_LOOP": ("backend", _lower, "'asyncio' or 'trio'"),
}


def default_sinks(config: AnalyticsConfig) -> list[Sink]:
    """SQLite, plus HTTP when an endpoint is configured."""
    from .sinks._sqlite import SQLiteSink

    sinks: list[Sink] = [SQLiteSink(config.db_path)]
    if config.endpoint:
        from .sinks._http import HTTPSink

        sinks.append(HTTPSink(config.endpoint, api_key=config.api_key))
    return sinks


class _Background:
    """The shipper's own runtime, on an event loop in a daemon thread (so that the exit hook
    can still flush at interpreter exit)."""

    def __init__(self, shipper: AnalyticsShipper, backend: str) -> None:
        self.shipper = shipper
        self.backend = backend
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: anyio.Event | None = None
        self._runtime: Runtime | None = None
        self._thread = threading.Thread(target=self._run, name="limelight-analytics", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            anyio.run(self._main, backend=self.backend)
        except BaseException as exc:
            if self._ready.is_set():  # after a good start: nobody waits for it, so log it
                import structlog

                structlog.get_logger("limelight").error(
                    "the analytics runtime stopped with an error; events go to the spool",
                    error=f"{type(exc).__name__}: {exc}",
                )
            self._error = exc  # before a good start: start() raises it
            self._ready.set()

    async def _main(self) -> None:
        from .runtime import Runtime

        self._stop = anyio.Event()
        async with Runtime() as runtime:
            self._runtime = runtime
            await runtime.spawn(self.shipper, name="analytics")
            self._ready.set()
            await self._stop.wait()

    def stop(self, timeout: float) -> None:
        """Stop the runtime (the shipper has shut down already) and join the thread."""
        runtime, stop = self._runtime, self._stop
        if runtime is not None and stop is not None and self._thread.is_alive():
            # Already stopped on its own (a failure): nothing left to signal.
            with contextlib.suppress(RuntimeNotRunning, RuntimeError):
                runtime.blocking.call(stop.set)
        self._thread.join(timeout)


class AnalyticsClient:
    """Records events. Get the process-wide one with :func:`initialize` /
    :func:`get_client`; every method is safe from any thread, task or event loop.

    ``log_event`` never blocks and never raises (it is the shipper's own method).
    """

    def __init__(
        self,
        shipper: AnalyticsShipper,
        config: AnalyticsConfig,
        *,
        background: _Background | None = None,
        sink_factory: Callable[[], Sequence[Sink]] | None = None,
    ) -> None:
        self.shipper = shipper
        self.config = config
        self._background = background
        self._sink_factory = sink_factory
        self._runs: dict[str, float] = {}
        self._closed = False
        #: Queue an event (the shipper's hot path, bound directly: no extra call).
        self.log_event: Callable[[Event], None] = shipper.log_event

    # -- runs ----------------------------------------------------------------------------

    def start_run(
        self,
        user_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        session_id: str | None = None,
    ) -> str:
        """Begin a run (emits ``session_start``); returns its id for the events of the run."""
        run_id = run_id or uuid.uuid4().hex
        self._runs[run_id] = time.monotonic()
        self.log_event(
            Event.create_session_start(
                attributes=metadata,
                run_id=run_id,
                user_id=user_id,
                session_id=session_id,
            )
        )
        return run_id

    def end_run(
        self,
        run_id: str,
        *,
        status: str = "ok",
        user_id: str | None = None,
        session_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """End a run (emits ``session_end`` with its duration)."""
        started = self._runs.pop(run_id, None)
        duration = None if started is None else time.monotonic() - started
        self.log_event(
            Event.create_session_end(
                duration=duration,
                status=status,
                run_id=run_id,
                user_id=user_id,
                session_id=session_id,
                metadata=metadata,
            )
        )

    # -- delivery ------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event logged so far is delivered (True) or ``timeout`` seconds
        pass (False: the rest is in the spool). Blocking: from async code use
        :meth:`aflush`."""
        if self.shipper.on_loop_thread():
            raise ConfigError(
                "AnalyticsClient.flush() would block the shipper's own event loop: use "
                "`await client.aflush()` there"
            )
        return self.shipper.flush_threadsafe(timeout)

    async def aflush(self, timeout: float = 10.0) -> bool:
        """:meth:`flush` for async code (asyncio or trio), without blocking the loop."""
        return await self.shipper.flush(timeout)

    def statistics(self) -> ShipperStatistics:
        return self.shipper.statistics()

    def is_healthy(self) -> bool:
        return self.shipper.is_healthy()

    def shutdown(self, timeout: float | None = None) -> bool:
        """Deliver what is queued within ``timeout`` seconds (default the config's
        ``shutdown_timeout``), spool the rest, stop. Idempotent. True if all was delivered."""
        if self._closed:
            return True
        self._closed = True
        self._forget()
        timeout = self.config.shutdown_timeout if timeout is None else timeout
        started = time.monotonic()
        ok = self.shipper.shutdown_threadsafe(timeout)
        if self._background is not None:
            self._background.stop(max(0.5, timeout - (time.monotonic() - started)) + 1.0)
        return ok

    async def ashutdown(self, timeout: float | None = None) -> bool:
        """:meth:`shutdown` for async code; for a client made by :func:`initialize_in` this
        shuts the shipper down and stops its actor."""
        if self._closed:
            return True
        if self._background is not None:
            return await anyio.to_thread.run_sync(self.shutdown, timeout)
        self._closed = True
        self._forget()
        timeout = self.config.shutdown_timeout if timeout is None else timeout
        return await self.shipper.shutdown(timeout)

    def _forget(self) -> None:
        if _client is self:
            _set_client(None)

    @property
    def closed(self) -> bool:
        return self._closed

    def _restart_after_fork(self) -> None:
        """In a forked child: a fresh shipper (empty queue) on a fresh background thread."""
        sinks = list(self._sink_factory()) if self._sink_factory else list(self._sinks())
        shipper = AnalyticsShipper(sinks, **self.config.shipper_options())
        # Always asyncio here: trio's worker-thread cache is inherited from the parent with
        # threads that do not exist in the child, so the first worker-thread job would hang.
        background = _Background(shipper, "asyncio")
        self.shipper = shipper
        self.log_event = shipper.log_event
        self._background = background
        self._runs = {}
        background.start()

    def _sinks(self) -> list[Sink]:
        return [s.sink for s in self.shipper._sinks]

    def __repr__(self) -> str:
        return f"<AnalyticsClient {self.shipper!r} closed={self._closed}>"


_client: AnalyticsClient | None = None
_lock = threading.Lock()
#: Records every provider attempt on the client registered at the time of the attempt.
_ATTEMPT_HOOK: Final = AnalyticsHook()


def _set_client(client: AnalyticsClient | None) -> AnalyticsClient | None:
    """Make ``client`` the process-wide client and register it, with the attempt hook, as the
    instrumentation the lower layers record to (``None``: unregister). Returns the client it
    replaced."""
    global _client
    old, _client = _client, client
    if client is None:
        _instrument.unregister()
    else:
        _instrument.register(_instrument.Instrumentation(client, (_ATTEMPT_HOOK,)))
    return old


def current() -> AnalyticsClient | None:
    """The process-wide client, or None when analytics is not initialized (cheap: for code
    that emits events automatically)."""
    return _client


def get_client() -> AnalyticsClient:
    """The process-wide client.

    :raises RuntimeNotRunning: :func:`initialize` has not been called (or shutdown was).
    """
    client = _client
    if client is None:
        raise RuntimeNotRunning(
            "analytics is not initialized: call limelight.analytics.initialize() first"
        )
    return client


def initialize(
    api_key: str | None = None,
    config: AnalyticsConfig | None = None,
    sinks: Sequence[Sink] | None = None,
    *,
    handle_signals: bool = True,
) -> AnalyticsClient:
    """Start recording: a shipper on a background event loop, delivering to ``sinks``
    (default: SQLite, plus HTTP when ``config.endpoint`` is set) and the process-wide client
    that :func:`current` returns. A client already initialized is shut down first.

    :param api_key: overrides ``config.api_key``.
    :param config: default :meth:`AnalyticsConfig.from_env`.
    :param handle_signals: when called from the main thread, install
        :func:`install_signal_handlers` for SIGTERM, so that a ``docker stop`` or a
        Kubernetes pod's end loses nothing (Python's default SIGTERM ends the process
        without running the exit hook); :func:`shutdown` puts the previous handler back.
        SIGINT needs none: Python's ``KeyboardInterrupt`` ends the program through the exit
        hook, which delivers; and leaving it alone lets ``asyncio.run`` and ``trio.run``
        install their own Ctrl-C handling.
    """
    config = config if config is not None else AnalyticsConfig.from_env()
    if api_key is not None:
        config = msgspec.structs.replace(config, api_key=api_key)
    factory: Callable[[], Sequence[Sink]] | None = None
    if sinks is None:

        def factory() -> Sequence[Sink]:
            return default_sinks(config)

        chosen: Sequence[Sink] = factory()
    else:
        chosen = list(sinks)
    shipper = AnalyticsShipper(chosen, **config.shipper_options())
    background = _Background(shipper, config.backend)
    with _lock:
        old = _set_client(None)
        if old is not None:
            old.shutdown()
        background.start()
        client = AnalyticsClient(shipper, config, background=background, sink_factory=factory)
        _set_client(client)
    if handle_signals and threading.current_thread() is threading.main_thread():
        global _handlers_from_initialize
        installed = install_signal_handlers((signal.SIGTERM,))
        _handlers_from_initialize = installed or _handlers_from_initialize
    return client


async def initialize_in(
    runtime: Runtime,
    *,
    api_key: str | None = None,
    config: AnalyticsConfig | None = None,
    sinks: Sequence[Sink] | None = None,
    name: str = "analytics",
) -> AnalyticsClient:
    """Like :func:`initialize`, but the shipper is an actor of your own ``runtime`` (at
    ``/<name>``, supervised there, on its event loop). Shut it down with
    ``await client.ashutdown()`` before the runtime exits (or let the runtime's exit deliver
    what it can within ``config.shutdown_timeout`` and spool the rest)."""
    config = config if config is not None else AnalyticsConfig.from_env()
    if api_key is not None:
        config = msgspec.structs.replace(config, api_key=api_key)
    chosen = list(sinks) if sinks is not None else default_sinks(config)
    shipper = await AnalyticsShipper.start(runtime, chosen, name=name, **config.shipper_options())
    client = AnalyticsClient(shipper, config)
    old = _set_client(client)
    if old is not None:
        await old.ashutdown()
    return client


def shutdown(timeout: float | None = None) -> bool:
    """Shut the process-wide client down (see :meth:`AnalyticsClient.shutdown`); True if
    everything was delivered. Does nothing when not initialized. Signal handlers that
    :func:`initialize` installed are removed (from the main thread)."""
    global _handlers_from_initialize
    with _lock:
        client = _set_client(None)
    if _handlers_from_initialize and threading.current_thread() is threading.main_thread():
        _handlers_from_initialize = False
        uninstall_signal_handlers()
    if client is None:
        return True
    return client.shutdown(timeout)


# -- signals ---------------------------------------------------------------------------

#: The handlers ours replaced, by signal number.
_previous: dict[int, Any] = {}
_handlers_from_initialize = False


def install_signal_handlers(
    signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
) -> bool:
    """Make SIGTERM and SIGINT (``docker stop``, Kubernetes, Ctrl-C) lose no analytics event.

    On such a signal, the handler first commits every accepted event to the spool (a few
    milliseconds). Then, if the signal would have ended the process (its previous disposition
    was the default), it shuts analytics down (delivering within ``shutdown_timeout``; what
    is left stays in the spool for the next start) and ends the process by the same signal,
    as it would have ended, so its exit status is unchanged. Otherwise it calls the previous
    handler (Python's SIGINT handler raises ``KeyboardInterrupt``; the exit hook then
    delivers as usual). A signal someone chose to ignore is left alone. It acts for the
    client of :func:`initialize`; with :func:`initialize_in` the events of the last commit
    window stay in the spool and are sent by the next start.

    Install them once the event loop runs (inside ``asyncio.run`` / ``trio.run``): then the
    loop's own SIGINT handling (cancelling the main task, trio's ``KeyboardInterrupt`` at a
    checkpoint) is the previous handler, and it still runs. Installed before, the loop sees a
    handler that is not Python's default and does not install its own.

    Idempotent. Call it from the main thread (Python only runs signal handlers there).
    Returns True if it installed a handler now.

    :raises ConfigError: called from another thread.
    """
    if threading.current_thread() is not threading.main_thread():
        raise ConfigError(
            "install_signal_handlers() must be called from the main thread (Python runs "
            "signal handlers there only)"
        )
    installed = False
    for sig in signals:
        current = signal.getsignal(sig)
        if current is _on_signal or current == signal.SIG_IGN:
            continue
        _previous[int(sig)] = current
        signal.signal(sig, _on_signal)
        installed = True
    return installed


def uninstall_signal_handlers() -> None:
    """Put back the handlers :func:`install_signal_handlers` replaced (where ours is still
    the one installed). From the main thread."""
    for signum, previous in list(_previous.items()):
        if signal.getsignal(signum) is _on_signal:
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        del _previous[signum]


def _on_signal(signum: int, frame: FrameType | None) -> None:
    previous = _previous.get(signum, signal.SIG_DFL)
    terminates = previous is None or previous == signal.SIG_DFL
    client = _client
    if client is not None and not client.closed and client._background is not None:
        try:
            if terminates:
                client.shutdown()
            else:
                client.shipper.commit_threadsafe(client.config.shutdown_timeout)
        except Exception as exc:  # never stand between the process and its signal
            import structlog

            structlog.get_logger("limelight").error(
                "analytics could not flush on a signal; what is not on disk is lost",
                signal=signal.Signals(signum).name,
                error=f"{type(exc).__name__}: {exc}",
            )
    if callable(previous):
        previous(signum, frame)
    elif terminates:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _at_exit() -> None:
    client = _client
    if client is not None and client._background is not None and not client.closed:
        shutdown()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    client = _client
    if client is not None and client._background is not None and not client.closed:
        try:
            client._restart_after_fork()
        except Exception as exc:  # the child keeps a closed shipper: events go to the spool
            import structlog

            structlog.get_logger("limelight").error(
                "analytics could not restart in the forked child; its events are spooled",
                error=f"{type(exc).__name__}: {exc}",
            )


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
