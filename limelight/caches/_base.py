"""What every response cache shares: a request's key, statistics, the protocols.

The protocols are what a :class:`~limelight.cache.CachingProvider` drives: exact by key
(:class:`ResponseCache`), or by the request itself (:class:`RequestCache`)."""

from __future__ import annotations

import hashlib
from typing import Protocol, runtime_checkable

import msgspec

from ..errors import ConfigError
from ..schemas import CompletionRequest, CompletionResult

__all__ = [
    "CacheStatistics",
    "RequestCache",
    "ResponseCache",
    "cache_key",
]

# Built once and reused (msgspec's advice): a key must not depend on dict order.
encoder = msgspec.json.Encoder(order="deterministic")
result_decoder = msgspec.json.Decoder(CompletionResult)
_plain_encoder = msgspec.json.Encoder()


def cache_key(request: CompletionRequest) -> str:
    """The key of ``request``: a SHA-256 of what shapes its answer."""
    shaped = msgspec.structs.replace(request, metadata={}, attempt_timeout=None, stream=False)
    return hashlib.sha256(encoder.encode(shaped)).hexdigest()


def encode_result(result: CompletionResult) -> bytes:
    """A result as stored: JSON (readable with ``redis-cli``, ``psql``, ``sqlite3``)."""
    return _plain_encoder.encode(result)


class CacheStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """What a cache has done so far.

    :ivar hits: lookups answered.
    :ivar misses: lookups not answered (expired entries, and lookups a failing server could
        not answer, included).
    :ivar stores: answers stored.
    :ivar evictions: entries dropped for room or age.
    :ivar entries: entries held now; ``None`` where the cache cannot tell without asking its
        server (the server caches).
    :ivar errors: operations a server failed or that were skipped while it was down, and
        stored entries that could not be read back: each one answered as a miss or a
        skipped store, with a logged warning, never as a failed call.
    """

    hits: int = 0
    misses: int = 0
    stores: int = 0
    evictions: int = 0
    entries: int | None = 0
    errors: int = 0

    @property
    def hit_rate(self) -> float | None:
        lookups = self.hits + self.misses
        return None if lookups == 0 else self.hits / lookups


@runtime_checkable
class ResponseCache(Protocol):
    """Where answers are kept, by :func:`cache_key`. Every method may be called from any task
    of the event loop the cache is used on."""

    async def get(self, key: str) -> CompletionResult | None: ...

    async def set(self, key: str, result: CompletionResult) -> None: ...

    def statistics(self) -> CacheStatistics: ...


@runtime_checkable
class RequestCache(ResponseCache, Protocol):
    """A cache that looks answers up by the request itself, not only by its key (a semantic
    cache compares what the request says). :class:`~limelight.cache.CachingProvider` calls
    these instead of ``get``/``set`` when a cache has them."""

    async def get_for(self, request: CompletionRequest) -> CompletionResult | None: ...

    async def set_for(self, request: CompletionRequest, result: CompletionResult) -> None: ...


def check_bounds(max_entries: int | None, ttl: float | None) -> None:
    """Refuse a bound that cannot hold anything."""
    if max_entries is not None and max_entries < 1:
        raise ConfigError(f"max_entries must be >= 1 or None, got {max_entries!r}")
    if ttl is not None and not ttl > 0:
        raise ConfigError(f"ttl must be > 0 seconds or None, got {ttl!r}")


class Counts:
    """A cache's counters, turned into a :class:`CacheStatistics` on demand."""

    __slots__ = ("errors", "evictions", "hits", "misses", "stores")

    def __init__(self) -> None:
        self.hits = self.misses = self.stores = self.evictions = self.errors = 0

    def snapshot(self, entries: int | None) -> CacheStatistics:
        return CacheStatistics(
            hits=self.hits,
            misses=self.misses,
            stores=self.stores,
            evictions=self.evictions,
            entries=entries,
            errors=self.errors,
        )
