"""Response caches' implementation (see :mod:`limelight.cache`).

It holds the cache key, the in-memory and SQLite caches, and :class:`CachingProvider`."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import anyio
import msgspec

from ._files import create_private_sqlite
from .errors import ConfigError
from .providers._base import Provider
from .schemas import (
    CompletionRequest,
    CompletionResult,
    EmbeddingRequest,
    EmbeddingResult,
    ModelList,
    StreamEvent,
    StreamEventType,
    ToolCall,
    Usage,
)

_encoder = msgspec.json.Encoder(order="deterministic")
_result_decoder = msgspec.json.Decoder(CompletionResult)


def cache_key(request: CompletionRequest) -> str:
    """The key of ``request``: a SHA-256 of what shapes its answer."""
    shaped = msgspec.structs.replace(request, metadata={}, attempt_timeout=None, stream=False)
    return hashlib.sha256(_encoder.encode(shaped)).hexdigest()


class CacheStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """:ivar hits: lookups answered. :ivar misses: lookups not answered (expired included).
    :ivar stores: answers stored. :ivar evictions: entries dropped for room or age.
    :ivar entries: entries held now."""

    hits: int = 0
    misses: int = 0
    stores: int = 0
    evictions: int = 0
    entries: int = 0

    @property
    def hit_rate(self) -> float | None:
        lookups = self.hits + self.misses
        return None if lookups == 0 else self.hits / lookups


@runtime_checkable
class ResponseCache(Protocol):
    """Where answers are kept. Both methods may be called from any task."""

    async def get(self, key: str) -> CompletionResult | None: ...

    async def set(self, key: str, result: CompletionResult) -> None: ...

    def statistics(self) -> CacheStatistics: ...


def _check(max_entries: int | None, ttl: float | None) -> None:
    if max_entries is not None and max_entries < 1:
        raise ConfigError(f"max_entries must be >= 1 or None, got {max_entries!r}")
    if ttl is not None and ttl <= 0:
        raise ConfigError(f"ttl must be > 0 seconds or None, got {ttl!r}")


class _Counts:
    __slots__ = ("evictions", "hits", "misses", "stores")

    def __init__(self) -> None:
        self.hits = self.misses = self.stores = self.evictions = 0

    def snapshot(self, entries: int) -> CacheStatistics:
        return CacheStatistics(
            hits=self.hits,
            misses=self.misses,
            stores=self.stores,
            evictions=self.evictions,
            entries=entries,
        )


class MemoryCache:
    """An in-process LRU cache.

    :param max_entries: entries kept; the least recently used goes first (``None``: no
        bound).
    :param ttl: seconds an entry stays valid (``None``: for ever).
    :param clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(
        self,
        *,
        max_entries: int | None = 10_000,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check(max_entries, ttl)
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, CompletionResult]] = OrderedDict()
        self._counts = _Counts()

    async def get(self, key: str) -> CompletionResult | None:
        entry = self._entries.get(key)
        if entry is not None and self.ttl is not None and self._clock() - entry[0] > self.ttl:
            del self._entries[key]
            self._counts.evictions += 1
            entry = None
        if entry is None:
            self._counts.misses += 1
            return None
        self._entries.move_to_end(key)
        self._counts.hits += 1
        return entry[1]

    async def set(self, key: str, result: CompletionResult) -> None:
        self._entries[key] = (self._clock(), result)
        self._entries.move_to_end(key)
        self._counts.stores += 1
        if self.max_entries is not None:
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
                self._counts.evictions += 1

    def clear(self) -> None:
        self._entries.clear()

    def statistics(self) -> CacheStatistics:
        return self._counts.snapshot(len(self._entries))


class SQLiteCache:
    """A cache in a local SQLite file, shared by processes and kept across restarts.

    :param path: the file (created with its folder).
    :param ttl: seconds an entry stays valid (``None``: for ever); age is wall-clock time.
    :param max_entries: entries kept; the oldest stored go first (``None``: no bound).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        ttl: float | None = None,
        max_entries: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _check(max_entries, ttl)
        self.path = Path(path)
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._counts = _Counts()
        self._lock = threading.Lock()
        create_private_sqlite(self.path)  # 0600, and so its -wal and -shm; its folder 0700
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses "
                "(key TEXT PRIMARY KEY, stored REAL NOT NULL, result BLOB NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS responses_stored ON responses(stored)")

    async def get(self, key: str) -> CompletionResult | None:
        return await anyio.to_thread.run_sync(self._get, key)

    async def set(self, key: str, result: CompletionResult) -> None:
        await anyio.to_thread.run_sync(self._set, key, _encoder.encode(result))

    def _get(self, key: str) -> CompletionResult | None:
        with self._lock:
            row = self._db.execute(
                "SELECT stored, result FROM responses WHERE key = ?", (key,)
            ).fetchone()
            if row is not None and self.ttl is not None and self._clock() - row[0] > self.ttl:
                self._db.execute("DELETE FROM responses WHERE key = ?", (key,))
                self._counts.evictions += 1
                row = None
            if row is None:
                self._counts.misses += 1
                return None
            self._counts.hits += 1
        return _result_decoder.decode(row[1])

    def _set(self, key: str, blob: bytes) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, stored, result) VALUES (?, ?, ?)",
                (key, self._clock(), blob),
            )
            self._counts.stores += 1
            if self.max_entries is not None:
                over = self._size() - self.max_entries
                if over > 0:
                    self._db.execute(
                        "DELETE FROM responses WHERE key IN "
                        "(SELECT key FROM responses ORDER BY stored LIMIT ?)",
                        (over,),
                    )
                    self._counts.evictions += over

    def _size(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM responses")

    def statistics(self) -> CacheStatistics:
        with self._lock:
            return self._counts.snapshot(self._size())

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _as_hit(result: CompletionResult) -> CompletionResult:
    return msgspec.structs.replace(
        result,
        usage=Usage(),
        cost=0.0,
        latency=0.0,
        ttft=0.0 if result.ttft is not None else None,
        metadata={**result.metadata, "cache": "hit"},
        rate_limit={},
    )


class CachingProvider:
    """A provider that answers repeated requests from ``cache`` and asks ``provider`` for
    the rest (storing what it answers).

    :param should_cache: which requests to look up and store (default: all); e.g. only
        ``temperature == 0`` ones.
    """

    def __init__(
        self,
        provider: Provider,
        cache: ResponseCache,
        *,
        should_cache: Callable[[CompletionRequest], bool] | None = None,
    ) -> None:
        if not isinstance(cache, ResponseCache):
            raise ConfigError(
                f"cache must have get(), set() and statistics() (a MemoryCache, an "
                f"SQLiteCache...), got {type(cache).__name__}"
            )
        self.provider = provider
        self.cache = cache
        self.name = provider.name
        self._should_cache = should_cache
        # The wrapped backend's default model, so pools and agents price and label alike.
        self.model: str = str(getattr(provider, "model", "") or "")

    def _key(self, request: CompletionRequest) -> str | None:
        if self._should_cache is not None and not self._should_cache(request):
            return None
        return cache_key(request)

    async def complete(self, request: CompletionRequest) -> CompletionResult:
        key = self._key(request)
        if key is not None:
            hit = await self.cache.get(key)
            if hit is not None:
                return _as_hit(hit)
        result = await self.provider.complete(request)
        if key is not None:
            await self.cache.set(key, result)
        return result

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        key = self._key(request)
        if key is not None:
            hit = await self.cache.get(key)
            if hit is not None:
                async for event in _replay(_as_hit(hit)):
                    yield event
                return
        final: CompletionResult | None = None
        inner = self.provider.stream(request)
        try:
            async for event in inner:
                if event.type is StreamEventType.DONE:
                    final = event.result
                yield event
        finally:
            # Closed here when the caller leaves early, not when collected: it may hold a
            # connection.
            aclose = getattr(inner, "aclose", None)
            if aclose is not None:
                await aclose()
        if key is not None and final is not None:
            await self.cache.set(key, final)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        return await self.provider.embed(request)

    async def list_models(self) -> ModelList:
        return await self.provider.list_models()

    async def aclose(self) -> None:
        await self.provider.aclose()


async def _replay(result: CompletionResult) -> AsyncIterator[StreamEvent]:
    if result.content:
        yield StreamEvent.token(result.content)
    call: ToolCall
    for call in result.tool_calls:
        yield StreamEvent(type=StreamEventType.TOOL_CALL, tool_call=call)
    yield StreamEvent.done(result)
