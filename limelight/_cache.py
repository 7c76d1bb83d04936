"""The caching provider (see :mod:`limelight.cache`).

The caches themselves live in :mod:`limelight.caches`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import msgspec

from .caches._base import RequestCache, ResponseCache, cache_key
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

    An exact cache is asked by :func:`~limelight.cache.cache_key`; a
    :class:`~limelight.cache.RequestCache` (a semantic one) by the request itself, through
    its ``get_for`` and ``set_for``.

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
        # A cache that looks up by the request (a semantic one) is asked with the request.
        self._by_request: RequestCache | None = cache if isinstance(cache, RequestCache) else None
        self.name = provider.name
        self._should_cache = should_cache
        # The wrapped backend's default model, so pools and agents price and label alike.
        self.model: str = str(getattr(provider, "model", "") or "")

    def _cached(self, request: CompletionRequest) -> bool:
        return self._should_cache is None or self._should_cache(request)

    async def _lookup(self, request: CompletionRequest) -> CompletionResult | None:
        if self._by_request is not None:
            return await self._by_request.get_for(request)
        return await self.cache.get(cache_key(request))

    async def _store(self, request: CompletionRequest, result: CompletionResult) -> None:
        if self._by_request is not None:
            await self._by_request.set_for(request, result)
        else:
            await self.cache.set(cache_key(request), result)

    async def complete(self, request: CompletionRequest) -> CompletionResult:
        cached = self._cached(request)
        if cached:
            hit = await self._lookup(request)
            if hit is not None:
                return _as_hit(hit)
        result = await self.provider.complete(request)
        if cached:
            await self._store(request, result)
        return result

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        cached = self._cached(request)
        if cached:
            hit = await self._lookup(request)
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
        if cached and final is not None:
            await self._store(request, final)

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
