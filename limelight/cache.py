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

A caching provider is a backend like any other: an agent or a
:class:`~limelight.actors.ProviderPool` drives it, so each of its calls (a miss, or a hit
answered at once with zero tokens) takes the pipeline every model call takes: the pool's
retries, attempt hooks (a rate limiter's, analytics) and usage accounting.
"""

from __future__ import annotations

from ._cache import CacheStatistics as CacheStatistics
from ._cache import CachingProvider as CachingProvider
from ._cache import MemoryCache as MemoryCache
from ._cache import ResponseCache as ResponseCache
from ._cache import SQLiteCache as SQLiteCache
from ._cache import cache_key as cache_key

__all__ = [
    "CacheStatistics",
    "CachingProvider",
    "MemoryCache",
    "ResponseCache",
    "SQLiteCache",
    "cache_key",
]
