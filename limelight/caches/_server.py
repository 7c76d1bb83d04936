"""What the caches on servers share: settings, server health, worker-thread limiters.

Settings come from arguments or the environment; a server's failure is a logged, counted
miss, then a pause before the server is tried again; the limiters of worker threads belong
to the running event loop."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.lowlevel
import structlog

from .._secrets import redact_text
from ..errors import ConfigError
from ._base import Counts

_T = TypeVar("_T")

__all__ = [
    "ServerHealth",
    "check_settings",
    "loop_identity",
    "redact_url",
    "setting",
]

_log = structlog.get_logger("limelight.caches")


def setting(value: str | None, env: str, *, owner: str, param: str, example: str) -> str:
    """``value``, or the environment variable ``env`` when ``value`` is ``None``."""
    if value is not None:
        return value
    found = os.environ.get(env, "").strip()
    if not found:
        raise ConfigError(
            f"{owner} needs {param}= or the environment variable {env} (e.g. {example})"
        )
    return found


def check_settings(owner: str, **values: float | None) -> None:
    """Refuse settings that must be positive numbers (``None`` passes)."""
    for name, value in values.items():
        if value is not None and not value > 0:
            raise ConfigError(f"{owner}: {name} must be > 0, got {value!r}")


def redact_url(url: str) -> str:
    """``url`` without its password, fit for a log line or an error message."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return redact_text(url)
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:[redacted]@{netloc}"))
    except ValueError:
        return "[unparseable URL]"


def loop_identity() -> object:
    """The running event loop (asyncio) or trio run, as an object compared by identity."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return anyio.lowlevel.current_token().native_token  # the wrapper is new each call


class ServerHealth:
    """One server's failures, as a cache sees them.

    A failure is logged as a warning (without secrets) and counted in the cache's
    ``errors``; the server is then left alone for ``retry_interval`` seconds, during which
    operations are skipped at once (a lookup answers as a miss, a store is not made, each
    counted as an error) rather than waiting on a server that is down. The first success
    afterwards is logged too.

    :param cache: the cache's class name, for the log.
    :param server: the server's address, without secrets.
    """

    __slots__ = ("_clock", "_counts", "cache", "down_until", "retry_interval", "server")

    def __init__(
        self,
        cache: str,
        server: str,
        counts: Counts,
        *,
        retry_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cache = cache
        self.server = server
        self.retry_interval = retry_interval
        self.down_until = 0.0
        self._counts = counts
        self._clock = clock

    def skip(self) -> bool:
        """Whether to skip an operation now (counted as an error) because the server failed
        less than ``retry_interval`` seconds ago."""
        if self.down_until and self._clock() < self.down_until:
            self._counts.errors += 1
            return True
        return False

    def failed(
        self, operation: str, exc: BaseException, outcome: str, *, pause: bool = True
    ) -> None:
        """The server failed ``operation``; ``outcome`` says what the caller got instead.
        ``pause=False`` for a failure of one entry, not of the server."""
        self._counts.errors += 1
        if pause:
            self.down_until = self._clock() + self.retry_interval
        _log.warning(
            "cache server failed",
            cache=self.cache,
            server=self.server,
            operation=operation,
            outcome=outcome,
            error=describe(exc),
            retry_in=self.retry_interval if pause else 0,
        )

    async def call(
        self, operation: str, outcome: str, timeout: float, fn: Callable[[], Awaitable[_T]]
    ) -> _T | None:
        """``await fn()`` within ``timeout``; None when the server is paused or the call failed
        (logged and counted as :meth:`failed` says, ``outcome`` naming what the caller gets)."""
        if self.down_until and self.skip():
            return None
        try:
            with anyio.fail_after(timeout):
                value = await fn()
        except Exception as exc:
            self.failed(operation, exc, outcome)
            return None
        if self.down_until:
            self.succeeded()
        return value

    def succeeded(self) -> None:
        """An operation worked: after a failure, say the server is back."""
        if self.down_until:
            self.down_until = 0.0
            _log.info("cache server reachable again", cache=self.cache, server=self.server)

    def unreadable(self, key: str, exc: BaseException) -> None:
        """A stored entry could not be decoded: a miss, counted and logged (the server is
        fine, so no pause)."""
        self._counts.errors += 1
        _log.warning(
            "cache entry unreadable, answered as a miss",
            cache=self.cache,
            server=self.server,
            key=key,
            error=describe(exc),
        )


def describe(exc: BaseException) -> str:
    """An exception as one line without secrets."""
    text = str(exc)
    return f"{type(exc).__name__}: {redact_text(text)}" if text else type(exc).__name__


class LoopLimiter:
    """A :class:`anyio.CapacityLimiter` for the running event loop: a new one when the cache
    is used from another loop (a limiter belongs to the loop it was made on)."""

    __slots__ = ("_limiter", "_loop", "total")

    def __init__(self, total: int) -> None:
        self.total = total
        self._loop: object | None = None
        self._limiter: Any = None

    def get(self) -> anyio.CapacityLimiter:
        loop = loop_identity()
        if loop is not self._loop:
            self._loop = loop
            self._limiter = anyio.CapacityLimiter(self.total)
        limiter: anyio.CapacityLimiter = self._limiter
        return limiter
