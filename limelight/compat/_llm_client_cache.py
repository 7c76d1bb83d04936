"""The agent client's cache backends, as limelight's response caches.

``cache_backend="fs"``, ``"pg_redis"`` and ``"qdrant"`` map to :mod:`limelight.cache`'s
caches, one per collection.

==============  ============================================================================
earlier name    limelight cache
==============  ============================================================================
``"fs"``        :class:`~limelight.cache.SQLiteCache`, one file per collection in
                ``cache_dir`` (``<cache_dir>/<collection>.sqlite3``)
``"memory"``    :class:`~limelight.cache.MemoryCache` (new here: in-process, per collection)
``"pg_redis"``  :class:`~limelight.cache.PostgresRedisCache`, a table per collection
                (``pg_dsn``, ``redis_url``, ``redis_ttl_seconds``, ``compress_pg``;
                defaults from ``PG_DSN`` and ``REDIS_URL``)
``"qdrant"``    :class:`~limelight.cache.QdrantSemanticCache` (``qdrant_url``,
                ``qdrant_api_key``; defaults from ``QDRANT_URL`` and ``QDRANT_API_KEY``):
                a *semantic* cache now, requests embedded with ``text-embedding-3-small``
                on the provider's server; the earlier one matched keys exactly
``None``        no cache (also ``"none"``)
==============  ============================================================================

A call opts in with ``cache_response=True`` and may name its own ``cache_collection``.
``regen_cache`` skips the lookup and overwrites the entry; ``rewrite_cache`` skips it and
stores under the next free ``<key>_<n>``, keeping the older entries (as before).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any, Final

import msgspec

from .. import cache as cache_module
from ..cache import MemoryCache, ResponseCache, SQLiteCache
from ..errors import ConfigError
from ..schemas import CompletionRequest, CompletionResult

__all__ = ["BACKENDS", "CacheSettings", "Caches"]

#: The backend names ``cache_backend=`` accepts.
BACKENDS: Final = ("fs", "memory", "pg_redis", "qdrant", "none")
DEFAULT_COLLECTION: Final = "default"
#: The model the ``"qdrant"`` backend embeds requests with (through the provider's server).
QDRANT_EMBEDDING_MODEL: Final = "text-embedding-3-small"
#: Suffixes ``rewrite_cache`` tries before giving up (as the earlier package did).
_MAX_REWRITES: Final = 1000
_COLLECTION: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class CacheSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The cache arguments of ``OpenAIProvider`` and ``OpenAIClient``."""

    backend: str | None = None
    cache_dir: str | None = None
    collection: str | None = None
    pg_dsn: str | None = None
    redis_url: str | None = None
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    redis_ttl_seconds: int = 60 * 60 * 24
    compress_pg: bool = True

    def __post_init__(self) -> None:
        if self.backend is not None and self.backend not in BACKENDS:
            raise ConfigError(
                f"cache_backend must be one of {', '.join(map(repr, BACKENDS))} or None, got "
                f"{self.backend!r}"
            )
        if self.backend == "fs" and not self.cache_dir:
            raise ConfigError(
                "cache_backend='fs' keeps its files in cache_dir: pass cache_dir='path/to/dir'"
            )
        if self.collection is not None:
            _check_collection(self.collection)


def _check_collection(name: str) -> str:
    if not _COLLECTION.match(name):
        raise ConfigError(
            f"cache_collection {name!r} is not a valid name: use letters, digits, _, . and - "
            "(at most 128), starting with a letter, digit or _"
        )
    return name


class Caches:
    """The caches of one provider, by collection, created on first use."""

    def __init__(self, settings: CacheSettings, *, embedder: Any = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._caches: dict[str, ResponseCache] = {}

    @property
    def enabled(self) -> bool:
        return self.settings.backend not in (None, "none")

    def _make(self, collection: str) -> ResponseCache:
        s = self.settings
        if s.backend == "fs":
            assert s.cache_dir is not None
            return SQLiteCache(Path(s.cache_dir) / f"{collection}.sqlite3")
        if s.backend == "memory":
            return MemoryCache(max_entries=None)
        # The server caches load on first access (raising MissingExtra without their extra).
        if s.backend == "pg_redis":
            pg_cache: ResponseCache = cache_module.PostgresRedisCache(
                s.pg_dsn,
                s.redis_url,
                table=collection.replace(".", "_").replace("-", "_"),
                redis_ttl=float(s.redis_ttl_seconds),
                compress=s.compress_pg,
            )
            return pg_cache
        if self._embedder is None:
            raise ConfigError("cache_backend='qdrant' needs a provider to embed requests with")
        qdrant_cache: ResponseCache = cache_module.QdrantSemanticCache(
            s.qdrant_url,
            s.qdrant_api_key,
            embedder=self._embedder,
            embedding_model=QDRANT_EMBEDDING_MODEL,
            collection=collection,
        )
        return qdrant_cache

    def get_cache(self, collection: str | None) -> ResponseCache:
        """The cache of ``collection`` (the provider's default collection when ``None``).

        :raises ConfigError: caching is off, or the collection name is not valid.
        :raises MissingExtra: the backend's cache class is not available.
        """
        if not self.enabled:
            raise ConfigError(
                "cache_response=True needs a cache: create the provider with cache_backend="
                "'fs' (with cache_dir=), 'memory', 'pg_redis' or 'qdrant'"
            )
        name = _check_collection(collection or self.settings.collection or DEFAULT_COLLECTION)
        cache = self._caches.get(name)
        if cache is None:
            cache = self._caches[name] = self._make(name)
        return cache

    async def lookup(
        self,
        key: str,
        collection: str | None,
        *,
        rewrite: bool = False,
        regen: bool = False,
        request: CompletionRequest | None = None,
    ) -> CompletionResult | None:
        """The stored answer of ``key``; ``None`` on a miss or when ``rewrite``/``regen``
        skip the lookup. A cache that matches by request (a semantic one) is asked with
        ``request``."""
        cache = self.get_cache(collection)
        if rewrite or regen:
            return None
        get_for = getattr(cache, "get_for", None)
        if request is not None and get_for is not None:
            found: CompletionResult | None = await get_for(request)
            return found
        return await cache.get(key)

    async def store(
        self,
        key: str,
        collection: str | None,
        result: CompletionResult,
        *,
        rewrite: bool = False,
        regen: bool = False,
        request: CompletionRequest | None = None,
    ) -> str:
        """Store ``result``; the key it was stored under (``<key>_<n>`` for ``rewrite``)."""
        cache = self.get_cache(collection)
        set_for = getattr(cache, "set_for", None)
        if request is not None and set_for is not None:
            await set_for(request, result)
            return key
        if rewrite and not regen:
            for n in range(_MAX_REWRITES):
                candidate = f"{key}_{n}"
                if await cache.get(candidate) is None:
                    key = candidate
                    break
            else:
                raise ConfigError(
                    f"rewrite_cache: {_MAX_REWRITES} entries exist for this key already; use "
                    "regen_cache=True to overwrite one"
                )
        await cache.set(key, result)
        return key

    async def close(self) -> None:
        """Close every cache opened (their files and connections)."""
        caches, self._caches = list(self._caches.values()), {}
        for cache in caches:
            close = getattr(cache, "aclose", None) or getattr(cache, "close", None)
            if close is not None:
                outcome = close()
                if inspect.isawaitable(outcome):
                    await outcome
