"""Response caches a :class:`~limelight.cache.CachingProvider` stores answers in.

In process or on local disk: :class:`MemoryCache`, :class:`SQLiteCache`. On servers:
:class:`RedisCache` (exact match), :class:`PostgresRedisCache` (PostgreSQL, durable, with
Redis in front) and :class:`QdrantSemanticCache` (nearest neighbour by meaning). The server
caches load on first access, so ``import limelight.caches`` needs none of their packages; a
missing one raises :class:`~limelight.errors.MissingExtra` naming the extra to install.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes as _lazy_attributes
from ._base import CacheStatistics as CacheStatistics
from ._base import RequestCache as RequestCache
from ._base import ResponseCache as ResponseCache
from ._base import cache_key as cache_key
from ._memory import MemoryCache as MemoryCache
from ._sqlite import SQLiteCache as SQLiteCache

if TYPE_CHECKING:
    from ._postgres import PostgresRedisCache as PostgresRedisCache
    from ._qdrant import Embedder as Embedder
    from ._qdrant import EmbeddingProvider as EmbeddingProvider
    from ._qdrant import QdrantSemanticCache as QdrantSemanticCache
    from ._redis import RedisCache as RedisCache

__all__ = [
    "CacheStatistics",
    "Embedder",
    "EmbeddingProvider",
    "MemoryCache",
    "PostgresRedisCache",
    "QdrantSemanticCache",
    "RedisCache",
    "RequestCache",
    "ResponseCache",
    "SQLiteCache",
    "cache_key",
]

__getattr__, __dir__ = _lazy_attributes(
    __name__,
    {
        "._redis": ["RedisCache"],
        "._postgres": ["PostgresRedisCache"],
        "._qdrant": ["Embedder", "EmbeddingProvider", "QdrantSemanticCache"],
    },
    extras={"._postgres": "postgres", "._qdrant": "qdrant"},
)
