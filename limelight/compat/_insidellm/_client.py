"""The SDK's client, configuration and module functions over limelight's analytics client.

An :class:`InsideLLMClient` owns a limelight :class:`~limelight.analytics.AnalyticsClient`: the
same shipper actor, durable spool and sinks as ``limelight.analytics``. The one that
:func:`initialize` makes is limelight's process-wide client too (what
``limelight.analytics.initialize`` makes), so limelight's own agents, provider calls and
decorators record into it; one built directly runs its own shipper on its own background
loop, registered nowhere.
"""

from __future__ import annotations

import atexit
import math
import os
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import msgspec
import structlog

from ... import _analytics
from ...actors._shipper import DEFAULT_COMMIT_INTERVAL, AnalyticsShipper
from ...errors import ConfigError
from ...schemas import _events as native
from ._events import Event
from ._payloads import generate_uuid

if TYPE_CHECKING:
    from ...sinks._base import Sink

__all__ = [
    "InsideLLMClient",
    "InsideLLMConfig",
    "QueueManager",
    "end_run",
    "flush",
    "get_client",
    "initialize",
    "log_event",
    "shutdown",
    "start_run",
]

_log = structlog.get_logger("limelight.compat.insidellm")

#: The SDK's default API; used only when given (``base_url=`` or ``INSIDELLM_BASE_URL``).
INGEST_PATH: Final = "/v1/runs/ingest"
#: Seconds a flush without a timeout waits (the SDK waited for ever).
DEFAULT_FLUSH_TIMEOUT: Final = 30.0
_LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class InsideLLMConfig(msgspec.Struct):
    """The SDK's configuration, with its defaults. It maps onto
    :class:`~limelight.analytics.AnalyticsConfig` (:meth:`to_analytics_config`):

    - ``max_queue_size`` → ``max_queue_size`` (beyond it events go to the spool, not lost);
    - ``batch_size`` → ``batch_size``;
    - ``auto_flush_interval`` → ``flush_interval`` (0, "as soon as possible", becomes the
      commit interval, 0.05 s);
    - ``request_timeout`` → ``sink_timeout`` (and the HTTP sink's timeout);
    - ``max_retries`` → ``max_retries`` (per batch and sink; then the events wait in the
      spool and are sent again later);
    - ``strict_validation``: an event whose payload does not fit its type raises
      :class:`~limelight.errors.ConfigError` from ``log_event`` (True) or is logged with a
      warning and recorded with the whole payload in its metadata (False);
    - ``backoff_factor``, ``raise_on_error``, ``log_level``, ``enable_debug_logging``:
      checked and kept, without effect: limelight backs off exponentially from 0.2 s (with
      jitter) up to 10 s, never raises into the code that logs (a full queue or a failing
      sink loses nothing), and logs through structlog (configure it there).

    :raises ConfigError: a value is out of range (a ``ValueError``, as the SDK's).
    """

    max_queue_size: int = 10000
    batch_size: int = 50
    auto_flush_interval: float = 30.0
    request_timeout: float = 30.0
    max_retries: int = 3
    backoff_factor: float = 2.0
    raise_on_error: bool = False
    strict_validation: bool = True
    log_level: str = "INFO"
    enable_debug_logging: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every value (the SDK's rules).

        :raises ConfigError: the first bad value, named.
        """
        for name in ("max_queue_size", "batch_size", "max_retries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"InsideLLMConfig.{name} must be an integer, got {value!r}")
        for name in ("auto_flush_interval", "request_timeout", "backoff_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"InsideLLMConfig.{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ConfigError(f"InsideLLMConfig.{name} must be finite, got {value!r}")
        if self.max_queue_size <= 0:
            raise ConfigError("max_queue_size must be positive")
        if self.batch_size <= 0:
            raise ConfigError("batch_size must be positive")
        if self.batch_size > self.max_queue_size:
            raise ConfigError("batch_size cannot exceed max_queue_size")
        if self.auto_flush_interval < 0:
            raise ConfigError("auto_flush_interval must be non-negative")
        if self.request_timeout <= 0:
            raise ConfigError("request_timeout must be positive")
        if self.max_retries < 0:
            raise ConfigError("max_retries must be non-negative")
        if self.backoff_factor <= 0:
            raise ConfigError("backoff_factor must be positive")
        if not isinstance(self.log_level, str) or self.log_level.upper() not in _LOG_LEVELS:
            raise ConfigError(f"log_level must be one of: {list(_LOG_LEVELS)}")
        for name in ("raise_on_error", "strict_validation", "enable_debug_logging"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"InsideLLMConfig.{name} must be True or False")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> InsideLLMConfig:
        """The configuration from ``INSIDELLM_*`` variables (unset ones keep their defaults):
        ``INSIDELLM_MAX_QUEUE_SIZE``, ``_BATCH_SIZE``, ``_AUTO_FLUSH_INTERVAL``,
        ``_REQUEST_TIMEOUT``, ``_MAX_RETRIES``, ``_BACKOFF_FACTOR``, ``_RAISE_ON_ERROR``,
        ``_STRICT_VALIDATION``, ``_LOG_LEVEL``, ``_ENABLE_DEBUG_LOGGING`` (booleans:
        true/false, 1/0, yes/no, on/off).

        :raises ConfigError: a variable holds a bad value (the SDK silently used the
            default); the message names it.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in msgspec.structs.fields(cls):
            var = f"INSIDELLM_{field.name.upper()}"
            raw = env.get(var, "").strip()
            if not raw:
                continue
            kind = type(field.default)
            try:
                values[field.name] = _parse(raw, kind)
            except ValueError:
                what = {bool: "true or false", int: "a whole number", float: "a number"}
                raise ConfigError(
                    f"{var}={raw!r} is not {what.get(kind, 'valid')}: fix it or unset it"
                ) from None
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (from the INSIDELLM_* environment variables)") from None

    def to_dict(self) -> dict[str, Any]:
        return msgspec.structs.asdict(self)

    def to_analytics_config(self, **overrides: Any) -> _analytics.AnalyticsConfig:
        """limelight's configuration for this one: ``LIMELIGHT_*`` variables (the spool, the
        SQLite file, ...) with this configuration's values over them, then ``overrides``."""
        values: dict[str, Any] = {
            "batch_size": self.batch_size,
            "max_queue_size": self.max_queue_size,
            "flush_interval": self.auto_flush_interval or DEFAULT_COMMIT_INTERVAL,
            "max_retries": self.max_retries,
            "sink_timeout": float(self.request_timeout),
        }
        values.update(overrides)
        return _analytics.AnalyticsConfig.from_env(**values)


def _parse(raw: str, kind: type) -> Any:
    if kind is bool:
        lowered = raw.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError(raw)
    return kind(raw)


class QueueManager:
    """The SDK's ``client.queue_manager``: statistics, queue size, flush and shutdown, read
    from and done by limelight's shipper."""

    def __init__(self, client: InsideLLMClient) -> None:
        self._client = client

    def get_statistics(self) -> dict[str, Any]:
        """The SDK's statistics, from limelight's ``statistics()``:

        - ``events_queued``: events accepted (``queued`` + ``dropped``: past the queue bound
          they went to the spool, not away);
        - ``events_sent``: deliveries a sink confirmed (``sent``; with several sinks, one
          event counts once per sink; replays of an earlier process's events count too);
        - ``events_failed``: deliveries a sink refused, plus events lost (``failed`` +
          ``lost``);
        - ``queue_size``: deliveries not confirmed yet, in memory or in the spool
          (``pending``);
        - ``success_rate``: ``events_sent / (events_sent + events_failed)`` in percent, 0.0
          before any delivery (as the SDK).
        """
        stats = self._client.analytics.statistics()
        failed = stats.failed + stats.lost
        return {
            "events_queued": stats.queued + stats.dropped,
            "events_sent": stats.sent,
            "events_failed": failed,
            "queue_size": stats.pending,
            "success_rate": stats.sent / max(1, stats.sent + failed) * 100,
        }

    def get_queue_size(self) -> int:
        return self._client.analytics.statistics().pending

    def flush(self, timeout: float | None = None) -> bool:
        return self._client.flush(timeout)

    def shutdown(self, timeout: float | None = None) -> None:
        self._client.shutdown(timeout)


#: Clients built directly (not by initialize()): shut down at exit, so their queue is
#: delivered (the spool keeps it anyway).
_live: weakref.WeakSet[InsideLLMClient] = weakref.WeakSet()


class InsideLLMClient:
    """The SDK's client, recording into a limelight analytics client.

    Where events go, first match:

    - ``sinks=[...]``: those limelight sinks;
    - ``local_testing=True``: a :class:`~limelight.sinks.JSONLSink` at
      ``<log_directory>/events.jsonl`` (the SDK's local JSON-lines files; ``log_format``
      must be ``"json"``);
    - ``base_url=`` or ``INSIDELLM_BASE_URL``: an :class:`~limelight.sinks.HTTPSink`
      POSTing batches (JSON arrays of limelight events, each with its ``event_id`` for
      dedupe) to ``<base_url>/v1/runs/ingest`` with ``Authorization: Bearer <api_key>``;
    - otherwise limelight's default sinks: SQLite at ``LIMELIGHT_DB_PATH``
      (``~/.limelight/events.db``), plus HTTP to ``LIMELIGHT_ENDPOINT`` when set.

    :param api_key: default ``INSIDELLM_API_KEY``; needed only for ``base_url`` (the SDK
        always asked for one); never logged or shown.
    :param config: default :meth:`InsideLLMConfig.from_env`; keyword arguments that name a
        configuration field (``batch_size=...``) override it.
    :param register: make it limelight's process-wide analytics client (what
        :func:`initialize` does).
    :param analytics_config: limelight's configuration as a whole, instead of the one
        derived from ``config`` and the ``LIMELIGHT_*`` variables.
    :raises ConfigError: a bad option, or ``base_url`` without an API key.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        config: InsideLLMConfig | None = None,
        *,
        sinks: Sequence[Sink] | None = None,
        local_testing: bool = False,
        log_directory: str | os.PathLike[str] = "insidellm_logs",
        log_format: str = "json",
        register: bool = False,
        analytics_config: _analytics.AnalyticsConfig | None = None,
        **kwargs: Any,
    ) -> None:
        self.api_key = api_key or os.environ.get("INSIDELLM_API_KEY") or None
        base_url = base_url or os.environ.get("INSIDELLM_BASE_URL") or None
        self.base_url = base_url.rstrip("/") if base_url else None
        self.config = _config(config, kwargs)
        acfg = analytics_config or self.config.to_analytics_config()
        chosen = self._sinks(sinks, local_testing, Path(log_directory), log_format)
        self._lock = threading.Lock()
        self._current_run_id: str | None = None
        self._current_user_id: str | None = None
        self._run_metadata: dict[str, Any] = {}
        self._registered = register
        if register:
            self.analytics = _analytics.initialize(config=acfg, sinks=chosen)
        else:
            self.analytics = _private_client(acfg, chosen)
            _live.add(self)
        self.queue_manager = QueueManager(self)

    def _sinks(
        self, sinks: Sequence[Sink] | None, local: bool, folder: Path, log_format: str
    ) -> list[Sink] | None:
        """The sinks chosen (``None``: limelight's defaults)."""
        if sinks is not None:
            return list(sinks)
        if local:
            if log_format != "json":
                raise ConfigError(
                    f"log_format={log_format!r} is not supported: local testing writes JSON "
                    "lines (log_format='json'); read them with limelight.sinks.read_jsonl"
                )
            from ...sinks._jsonl import JSONLSink

            return [JSONLSink(folder / "events.jsonl")]
        if self.base_url:
            if not self.api_key:
                raise ConfigError(
                    "API key is required. Provide it as parameter or set INSIDELLM_API_KEY "
                    "environment variable."
                )
            from ...sinks._http import HTTPSink

            return [
                HTTPSink(
                    self.base_url + INGEST_PATH,
                    api_key=self.api_key,
                    timeout=float(self.config.request_timeout),
                )
            ]
        return None

    def __repr__(self) -> str:
        where = [repr(s.sink) for s in self.analytics.shipper._sinks]
        return f"<InsideLLMClient sinks=[{', '.join(where)}] closed={self.closed}>"

    @property
    def closed(self) -> bool:
        return self.analytics.closed

    # -- runs ----------------------------------------------------------------------------

    def start_run(
        self,
        run_id: str | None = None,
        user_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Start a run (a ``session_start`` event) and make it current: events without a
        run, user or metadata of their own get this run's. Returns its id."""
        with self._lock:
            self._current_run_id = run_id = str(run_id) if run_id else generate_uuid()
            self._current_user_id = user_id
            self._run_metadata = dict(metadata or {})
        self.analytics.start_run(user_id, metadata, run_id=run_id)
        return run_id

    def end_run(self, run_id: str | None = None) -> None:
        """End ``run_id`` (default: the current run) with a ``session_end`` event."""
        with self._lock:
            target = run_id or self._current_run_id
            user, metadata = self._current_user_id, self._run_metadata
            if target is not None and target == self._current_run_id:
                self._current_run_id = self._current_user_id = None
                self._run_metadata = {}
        if not target:
            _log.warning("no active run to end")
            return
        self.analytics.end_run(target, user_id=user, metadata=metadata or None)

    def get_current_run_id(self) -> str | None:
        return self._current_run_id

    def get_current_user_id(self) -> str | None:
        return self._current_user_id

    # -- events --------------------------------------------------------------------------

    def log_event(self, event: Event | native.Event) -> None:
        """Queue an event (it never blocks). An SDK :class:`Event` gets the current run's
        ids and metadata where it has none, as in the SDK, and is converted to limelight's
        typed event; a limelight event is queued as it is (with the same defaults).

        :raises ConfigError: ``strict_validation`` and the payload does not fit its type.
        """
        if isinstance(event, native.Event):
            self.log_native(event)
            return
        if not isinstance(event, Event):
            raise ConfigError(
                f"log_event() takes an Event, not {type(event).__name__}: build one with "
                "Event(...) or Event.create_*(...)"
            )
        with self._lock:
            run, user, metadata = self._current_run_id, self._current_user_id, self._run_metadata
        if not event.run_id and run:
            event.run_id = run
        if not event.user_id and user:
            event.user_id = user
        if metadata:
            event.metadata = {**metadata, **(event.metadata or {})}
        if self.config.strict_validation:
            event.validate()
        else:
            try:
                event.validate()
            except ConfigError as exc:
                _log.warning(
                    "event does not fit its type; recorded with its payload in the metadata",
                    error=str(exc),
                )
        self.analytics.log_event(event.to_native(strict=False))

    def log_native(self, event: native.Event) -> None:
        """Queue a limelight event, with the current run's ids and metadata where it has
        none (the integrations record through this)."""
        with self._lock:
            run, user, metadata = self._current_run_id, self._current_user_id, self._run_metadata
        changes: dict[str, Any] = {}
        if event.run_id is None and run:
            changes["run_id"] = run
        if event.user_id is None and user:
            changes["user_id"] = user
        if metadata:
            changes["metadata"] = {**metadata, **event.metadata}
        self.analytics.log_event(msgspec.structs.replace(event, **changes) if changes else event)

    def send_events(self, events: Iterable[Event | native.Event]) -> bool:
        """Queue ``events`` and wait until they are delivered (True) or the flush timeout
        passes (False: they wait in the spool)."""
        for event in events:
            self.log_event(event)
        return self.flush()

    # -- delivery ------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything logged so far is delivered (True), or ``timeout`` seconds
        pass (default 30; False: the rest is in the spool, sent later). Blocking; from async
        code use :meth:`aflush`."""
        return self.analytics.flush(DEFAULT_FLUSH_TIMEOUT if timeout is None else timeout)

    async def aflush(self, timeout: float | None = None) -> bool:
        """:meth:`flush` for async code (asyncio or trio)."""
        return await self.analytics.aflush(DEFAULT_FLUSH_TIMEOUT if timeout is None else timeout)

    def get_queue_size(self) -> int:
        """Deliveries not confirmed yet (limelight's ``statistics().pending``)."""
        return self.queue_manager.get_queue_size()

    def is_healthy(self) -> bool:
        """limelight's shipper health: running, not over its queue bound, and no sink failing
        (the SDK asked its API's ``/health``)."""
        return self.analytics.is_healthy()

    def shutdown(self, timeout: float | None = None) -> bool:
        """Deliver what is queued (within ``timeout`` seconds, default the shutdown timeout),
        keep the rest in the spool, stop. Idempotent; True if everything was delivered."""
        _live.discard(self)
        if self._registered and _analytics.current() is self.analytics:
            return _analytics.shutdown(timeout)
        return self.analytics.shutdown(timeout)

    def __enter__(self) -> InsideLLMClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()


def _config(config: InsideLLMConfig | None, options: dict[str, Any]) -> InsideLLMConfig:
    known = set(InsideLLMConfig.__struct_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(map(repr, unknown))}: InsideLLMClient takes "
            f"api_key, base_url, config, sinks, local_testing, log_directory, log_format, "
            f"analytics_config and the InsideLLMConfig fields ({', '.join(sorted(known))})"
        )
    base = config if config is not None else InsideLLMConfig.from_env()
    if not isinstance(base, InsideLLMConfig):
        raise ConfigError(f"config must be an InsideLLMConfig, got {type(base).__name__}")
    if not options:
        return base
    merged = msgspec.structs.replace(base, **options)
    merged.validate()
    return merged


def _private_client(
    config: _analytics.AnalyticsConfig, sinks: list[Sink] | None
) -> _analytics.AnalyticsClient:
    """A limelight analytics client of its own: a shipper on its own background loop,
    registered nowhere."""
    factory = None
    if sinks is None:

        def factory() -> list[Sink]:
            return _analytics.default_sinks(config)

        sinks = factory()
    shipper = AnalyticsShipper(sinks, **config.shipper_options())
    background = _analytics._Background(shipper, config.backend)
    background.start()
    return _analytics.AnalyticsClient(shipper, config, background=background, sink_factory=factory)


def _shutdown_live() -> None:
    for client in list(_live):
        client.shutdown()


atexit.register(_shutdown_live)


# -- the module functions ------------------------------------------------------------------

_default_client: InsideLLMClient | None = None
_default_lock = threading.Lock()


def initialize(
    api_key: str | None = None, local_testing: bool = False, **kwargs: Any
) -> InsideLLMClient:
    """Make the default client (and limelight's process-wide analytics client), shutting
    down the one made before. Keywords are :class:`InsideLLMClient`'s (``base_url``,
    ``config``, ``batch_size``, ..., ``log_directory`` for ``local_testing``)."""
    global _default_client
    with _default_lock:
        client = InsideLLMClient(
            api_key=api_key, local_testing=local_testing, register=True, **kwargs
        )
        old, _default_client = _default_client, client
    if old is not None:
        old.shutdown()  # already done by limelight's initialize() if it was still current
    return client


def get_client() -> InsideLLMClient:
    """The default client.

    :raises ConfigError: :func:`initialize` was not called (the SDK's ConfigurationError).
    """
    client = _default_client
    if client is None:
        raise ConfigError("InsideLLM client not initialized. Call initialize() first.")
    return client


def log_event(event: Event | native.Event) -> None:
    get_client().log_event(event)


def start_run(
    run_id: str | None = None,
    user_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    return get_client().start_run(run_id=run_id, user_id=user_id, metadata=metadata)


def end_run(run_id: str | None = None) -> None:
    get_client().end_run(run_id)


def flush() -> bool:
    return get_client().flush()


def shutdown() -> None:
    """Shut the default client down (it stays the default, closed, as in the SDK)."""
    client = _default_client
    if client is not None:
        client.shutdown()
