"""Shared pieces of the cache tests: requests, a provider that counts the calls it forwards,
a bag-of-words embedder, and helpers to read what structlog logged."""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

from limelight.providers import OpenAICompatible
from limelight.schemas import (
    CompletionRequest,
    CompletionResult,
    EmbeddingRequest,
    EmbeddingResult,
    Message,
    ModelList,
    StreamEvent,
    Usage,
)


def request(text: str = "hi", **kwargs: Any) -> CompletionRequest:
    return CompletionRequest(model="sim", messages=[Message.user(text)], max_tokens=4, **kwargs)


def answer(text: str = "stored answer") -> CompletionResult:
    return CompletionResult(
        content=text, model="sim", usage=Usage.of(12, 3), cost=0.001, finish_reason="stop"
    )


def unique(prefix: str) -> str:
    """A name no other test (nor the other event loop's run of this one) uses."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


class Counting:
    """Forwards every call to a real provider (the simulator over HTTP) and counts them: a
    cache hit must leave the count unchanged."""

    def __init__(self, inner: OpenAICompatible) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.calls = 0

    async def complete(self, req: CompletionRequest) -> CompletionResult:
        self.calls += 1
        return await self.inner.complete(req)

    def stream(self, req: CompletionRequest) -> AsyncIterator[StreamEvent]:
        self.calls += 1
        return self.inner.stream(req)

    async def embed(self, req: EmbeddingRequest) -> EmbeddingResult:
        return await self.inner.embed(req)

    async def list_models(self) -> ModelList:
        return await self.inner.list_models()

    async def aclose(self) -> None:
        await self.inner.aclose()


_WORD = re.compile(r"[a-z0-9]+")


def bag_of_words(text: str, dimensions: int = 512) -> list[float]:
    """A real (if simple) embedding: each lower-cased word hashed to a dimension, the vector
    normalised. Texts sharing most words are near; the cosine of two texts is the share of
    words they have in common."""
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
        vector[int.from_bytes(digest, "big") % dimensions] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def warnings_of(
    logs: list[dict[str, Any]], event: str = "cache server failed"
) -> list[dict[str, Any]]:
    return [e for e in logs if e.get("log_level") == "warning" and e.get("event") == event]
