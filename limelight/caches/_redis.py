"""A response cache in Redis: exact match by key, with a time to live and a namespace."""

from __future__ import annotations

import math
from typing import Final

import msgspec

from ..errors import CacheError, ConfigError
from ..schemas import CompletionResult
from ._base import CacheStatistics, Counts, check_bounds, encode_result, result_decoder
from ._resp import RedisClient, RedisReplyError, pack, parse_redis_url
from ._server import ServerHealth, check_settings, describe, setting

__all__ = ["RedisCache"]

_GET: Final = b"*2\r\n$3\r\nGET\r\n"
_SET: Final = b"SET"
_PX: Final = b"PX"
_GLOB: Final = str.maketrans({c: "\\" + c for c in "*?[]\\"})


class RedisCache:
    """A cache in Redis, shared by every process that reaches the server.

    An entry is the answer's JSON under ``namespace + key``, set with ``PX`` when ``ttl`` is
    given, so Redis expires it. A server that is down, slow or failing never fails a call: a
    lookup answers as a miss and a store is skipped, with a logged warning (structlog,
    ``limelight.caches``) and a counted error in :meth:`statistics`; the server is then left
    alone for ``retry_interval`` seconds before it is tried again.

    Runs on asyncio and trio (its own small client over the event loop's sockets; no
    third-party package needed). Use one instance per event loop.

    :param url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS; options
        ``?ssl_cert_reqs=none|optional|required&ssl_ca_certs=path``) or
        ``unix:///path/to/socket?db=N``; ``None`` reads ``REDIS_URL``.
    :param ttl: seconds an entry lives (``None``: until Redis evicts it).
    :param namespace: prefix of every key, so several caches share a server.
    :param timeout: seconds a command may take, connecting included, before it counts as a
        failure.
    :param max_connections: connections open at most.
    :param retry_interval: seconds a failed server is left alone.
    :raises ConfigError: no URL, a URL that is not Redis's, or a bad setting.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        ttl: float | None = None,
        namespace: str = "limelight:cache:",
        timeout: float = 1.0,
        max_connections: int = 32,
        retry_interval: float = 2.0,
    ) -> None:
        raw = setting(
            url, "REDIS_URL", owner="RedisCache", param="url", example="redis://localhost:6379/0"
        )
        address = parse_redis_url(raw, where="url" if url is not None else "REDIS_URL")
        check_bounds(None, ttl)
        check_settings("RedisCache", timeout=timeout, max_connections=max_connections)
        if retry_interval < 0:
            raise ConfigError(f"RedisCache: retry_interval must be >= 0, got {retry_interval!r}")
        if not isinstance(namespace, str):
            raise ConfigError(f"RedisCache: namespace must be a str, got {namespace!r}")
        self.url = address.display
        self.ttl = ttl
        self.namespace = namespace
        self._prefix = namespace.encode()
        self._px = None if ttl is None else b"%d" % max(1, math.ceil(ttl * 1000))
        self._client = RedisClient(address, max_connections=max_connections, timeout=timeout)
        self._counts = Counts()
        self._health = ServerHealth(
            "RedisCache", address.display, self._counts, retry_interval=retry_interval
        )

    async def get(self, key: str) -> CompletionResult | None:
        """The answer stored under ``key``; ``None`` when there is none, or when the server
        could not say (logged and counted)."""
        blob = await self._get_bytes(key)
        if blob is None:
            self._counts.misses += 1
            return None
        try:
            result = result_decoder.decode(blob)
        except (msgspec.DecodeError, ValueError) as exc:
            self._health.unreadable(key, exc)
            self._counts.misses += 1
            return None
        self._counts.hits += 1
        return result

    async def _get_bytes(self, key: str, *, operation: str = "get") -> bytes | None:
        """The stored bytes under ``key`` (not counted as a hit or miss); ``None`` when there
        are none or the server failed (counted as an error)."""
        health = self._health
        if health.down_until and health.skip():
            return None
        full = self._prefix + key.encode()
        try:
            blob = await self._client.request(_GET + b"$%d\r\n%s\r\n" % (len(full), full))
        except Exception as exc:
            health.failed(operation, exc, "miss", pause=not _entry_error(exc))
            return None
        if health.down_until:
            health.succeeded()
        if blob is not None and type(blob) is not bytes:
            health.unreadable(key, TypeError(f"GET answered {type(blob).__name__}"))
            return None
        return blob

    async def set(self, key: str, result: CompletionResult) -> None:
        """Store ``result`` under ``key`` (skipped, logged and counted when the server fails)."""
        if await self._set_bytes(key, encode_result(result), self._px):
            self._counts.stores += 1

    async def _set_bytes(
        self, key: str, blob: bytes, px: bytes | None, *, operation: str = "set"
    ) -> bool:
        """Store ``blob`` under ``key``, expiring after ``px`` milliseconds; whether it was."""
        health = self._health
        if health.down_until and health.skip():
            return False
        full = self._prefix + key.encode()
        command = pack(_SET, full, blob) if px is None else pack(_SET, full, blob, _PX, px)
        try:
            await self._client.request(command)
        except Exception as exc:
            health.failed(operation, exc, "store skipped", pause=not _entry_error(exc))
            return False
        if health.down_until:
            health.succeeded()
        return True

    async def clear(self) -> int:
        """Delete every entry of this cache's namespace; how many there were.

        :raises CacheError: the server failed (nothing to fall back on here).
        """
        pattern = self.namespace.translate(_GLOB).encode() + b"*"
        cursor = b"0"
        deleted = 0
        try:
            while True:
                reply = await self._client.request(
                    pack(b"SCAN", cursor, b"MATCH", pattern, b"COUNT", b"1000")
                )
                cursor, keys = reply[0], reply[1]
                if keys:
                    deleted += await self._client.request(pack(b"UNLINK", *keys))
                if cursor == b"0":
                    return deleted
        except Exception as exc:
            raise CacheError(f"RedisCache at {self.url} could not clear: {describe(exc)}") from exc

    def statistics(self) -> CacheStatistics:
        """Counts of this instance's lookups and stores (the server's entries are not
        counted: ``entries`` is ``None``)."""
        return self._counts.snapshot(None)

    async def aclose(self) -> None:
        """Close the connections to the server."""
        await self._client.aclose()


def _entry_error(exc: Exception) -> bool:
    """Whether ``exc`` is about one key (another program's value of another type there),
    not about the server: no reason to leave the server alone."""
    return isinstance(exc, RedisReplyError) and str(exc).startswith("WRONGTYPE")
