"""Response caches: answer a request seen before without calling the model again.

Wrap any provider with :class:`CachingProvider` and give it a cache::

    from limelight.cache import CachingProvider, MemoryCache, SQLiteCache

    model = CachingProvider(OpenAICompatible(...), SQLiteCache("responses.db", ttl=86_400))
    agent = Agent(model=model, tools=[...])

A request's key is a hash of everything that shapes the answer (model, messages, tools,
sampling settings, response format, backend extras), not of labels that do not (metadata,
timeouts, streaming). A hit answers with the stored result at no cost: its ``usage`` is
zero, ``cost`` 0.0 and ``metadata["cache"]`` is ``"hit"``; a streamed hit replays the
answer as one token event, its tool calls, then DONE. Only complete answers are stored
(a stream the caller left early is not).

Caches on servers, shared by processes and hosts: :class:`RedisCache` (exact match, TTL,
``REDIS_URL``), :class:`PostgresRedisCache` (PostgreSQL durable, Redis hot in front;
``PG_DSN``, ``REDIS_URL``) and :class:`QdrantSemanticCache` (a request answered by the
nearest earlier one by meaning; ``QDRANT_URL``). A server that is down or failing never
fails a call: the lookup is a miss and the store is skipped, with a logged warning and a
counted error (``statistics().errors``). They load on first access (the extras
``limelight[redis]``, ``limelight[postgres]``, ``limelight[qdrant]``).

A caching provider is a backend like any other: an agent or a
:class:`~limelight.actors.ProviderPool` drives it, so each of its calls (a miss, or a hit
answered at once with zero tokens) takes the pipeline every model call takes: the pool's
retries, attempt hooks (a rate limiter's, analytics) and usage accounting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._cache import CachingProvider as CachingProvider
from ._lazy import lazy_attributes as _lazy_attributes
from .caches._base import CacheStatistics as CacheStatistics
from .caches._base import RequestCache as RequestCache
from .caches._base import ResponseCache as ResponseCache
from .caches._base import cache_key as cache_key
from .caches._memory import MemoryCache as MemoryCache
from .caches._sqlite import SQLiteCache as SQLiteCache

if TYPE_CHECKING:
    from .caches._postgres import PostgresRedisCache as PostgresRedisCache
    from .caches._qdrant import QdrantSemanticCache as QdrantSemanticCache
    from .caches._redis import RedisCache as RedisCache

__all__ = [
    "CacheStatistics",
    "CachingProvider",
    "MemoryCache",
    "PostgresRedisCache",
    "QdrantSemanticCache",
    "RedisCache",
    "RequestCache",
    "ResponseCache",
    "SQLiteCache",
    "cache_key",
]

# Relative to this module's package (``limelight``), hence the two dots.
__getattr__, __dir__ = _lazy_attributes(
    __name__,
    {
        "..caches._redis": ["RedisCache"],
        "..caches._postgres": ["PostgresRedisCache"],
        "..caches._qdrant": ["QdrantSemanticCache"],
    },
    extras={"..caches._postgres": "postgres", "..caches._qdrant": "qdrant"},
)
