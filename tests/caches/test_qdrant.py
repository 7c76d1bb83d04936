"""QdrantSemanticCache on asyncio and trio: a request is answered by the nearest stored one
when their texts are alike (cosine similarity at or above the threshold) and all else is
equal; below the threshold, or with another model, tools or sampling, it is a miss.

No Qdrant server binary can be had here (no network, no package for it), so these run
qdrant-client's local mode (``location=":memory:"`` or a folder): the same client API, its
in-process engine. The down-server path is still real: the client against a closed port.
Embeddings come from the simulator over HTTP (through a provider's ``embed``; equal texts
embed equally) and from a bag-of-words embedder (texts sharing most words are near)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from limelight.cache import CachingProvider, QdrantSemanticCache, RequestCache, cache_key
from limelight.errors import ConfigError
from limelight.providers import OpenAICompatible
from limelight.schemas import CompletionRequest, Message, ToolSpec, Usage

from ._helpers import Counting, answer, bag_of_words, cosine, request, warnings_of
from ._servers import free_port

pytestmark = pytest.mark.anyio

CAPITAL = "What is the capital of France?"
REWORDED = "what is the capital city of France"
OTHER = "What is the capital of Spain?"


def semantic(threshold: float = 0.9, **kwargs: Any) -> QdrantSemanticCache:
    return QdrantSemanticCache(
        location=":memory:", embedder=bag_of_words, threshold=threshold, **kwargs
    )


async def test_alike_texts_hit_and_others_miss() -> None:
    # The embedder's own similarities, on either side of the threshold.
    assert cosine(bag_of_words(CAPITAL), bag_of_words(REWORDED)) >= 0.9
    assert cosine(bag_of_words(CAPITAL), bag_of_words(OTHER)) < 0.9
    cache = semantic(0.9)
    try:
        assert isinstance(cache, RequestCache)
        assert await cache.get_for(request(CAPITAL)) is None
        await cache.set_for(request(CAPITAL), answer("Paris"))
        hit = await cache.get_for(request(REWORDED))
        assert hit is not None
        assert hit.content == "Paris"
        assert 0.9 <= float(hit.metadata["cache_similarity"]) < 1.0
        assert await cache.get_for(request(OTHER)) is None
        stats = cache.statistics()
        assert (stats.hits, stats.misses, stats.stores, stats.errors) == (1, 2, 1, 0)
        # The same threshold set higher than their similarity: a miss.
        strict = semantic(0.99)
        await strict.set_for(request(CAPITAL), answer("Paris"))
        assert await strict.get_for(request(REWORDED)) is None
        assert await strict.get_for(request(CAPITAL)) is not None
        await strict.aclose()
    finally:
        await cache.aclose()


async def test_everything_but_the_text_must_match() -> None:
    cache = semantic(0.9)
    tool = ToolSpec(name="lookup", description="look it up")
    try:
        await cache.set_for(request(CAPITAL, temperature=0.0), answer("Paris"))
        assert await cache.get_for(request(REWORDED, temperature=0.0)) is not None
        assert await cache.get_for(request(REWORDED, temperature=0.7)) is None
        assert await cache.get_for(request(REWORDED, temperature=0.0, tools=[tool])) is None
        other_model = CompletionRequest(
            model="other", messages=[Message.user(REWORDED)], max_tokens=4, temperature=0.0
        )
        assert await cache.get_for(other_model) is None
        # Labels do not count (metadata, timeouts), as for exact keys.
        labelled = request(REWORDED, temperature=0.0, metadata={"run": "x"}, attempt_timeout=3.0)
        assert await cache.get_for(labelled) is not None
    finally:
        await cache.aclose()


async def test_earlier_messages_must_match_unless_all_texts_are_compared() -> None:
    def chat(system: str, question: str) -> CompletionRequest:
        return CompletionRequest(
            model="sim", messages=[Message.system(system), Message.user(question)]
        )

    last_user = semantic(0.9)
    messages = semantic(0.8, text="messages")
    try:
        for cache in (last_user, messages):
            await cache.set_for(chat("You are terse.", CAPITAL), answer("Paris"))
        assert await last_user.get_for(chat("You are terse.", REWORDED)) is not None
        assert await last_user.get_for(chat("You are very terse.", REWORDED)) is None
        # Comparing every message's text, the slightly different system prompt is near too.
        hit = await messages.get_for(chat("You are very terse.", REWORDED))
        assert hit is not None
        assert hit.content == "Paris"
    finally:
        await last_user.aclose()
        await messages.aclose()


async def test_a_provider_embeds_and_a_caching_provider_answers(sim_url: str) -> None:
    embedder = OpenAICompatible(sim_url, model="sim-embed")
    cache = QdrantSemanticCache(location=":memory:", embedder=embedder, threshold=0.95)
    backend = Counting(OpenAICompatible(sim_url, model="sim"))
    model = CachingProvider(backend, cache)
    try:
        first = await model.complete(request(CAPITAL))
        second = await model.complete(request(CAPITAL, metadata={"run": "2"}))
        assert backend.calls == 1
        assert second.content == first.content
        assert second.metadata["cache"] == "hit"
        assert second.usage == Usage()
        # The simulator's embeddings of different texts are far apart: a miss, a call.
        await model.complete(request(REWORDED))
        assert backend.calls == 2
        streamed = [e async for e in model.stream(request(CAPITAL))]
        assert backend.calls == 2
        assert streamed[-1].result is not None
        assert streamed[-1].result.content == first.content
    finally:
        await model.aclose()
        await embedder.aclose()
        await cache.aclose()


async def test_entries_expire_after_their_ttl() -> None:
    cache = semantic(0.9, ttl=0.3)
    try:
        await cache.set_for(request(CAPITAL), answer("Paris"))
        assert await cache.get_for(request(REWORDED)) is not None
        assert await cache.get(cache_key(request(CAPITAL))) is not None
        await anyio.sleep(0.5)
        assert await cache.get_for(request(REWORDED)) is None
        assert await cache.get(cache_key(request(CAPITAL))) is None
    finally:
        await cache.aclose()


async def test_a_local_folder_keeps_entries_across_instances(tmp_path: Path) -> None:
    folder = tmp_path / "qdrant"
    first = QdrantSemanticCache(location=folder, embedder=bag_of_words, threshold=0.9)
    await first.set_for(request(CAPITAL), answer("Paris"))
    await first.aclose()
    again = QdrantSemanticCache(location=folder, embedder=bag_of_words, threshold=0.9)
    try:
        hit = await again.get_for(request(REWORDED))
        assert hit is not None
        assert hit.content == "Paris"
        await again.clear()
        assert await again.get_for(request(REWORDED)) is None
    finally:
        await again.aclose()


async def test_a_server_that_is_down_is_a_miss_with_a_warning(sim_url: str) -> None:
    with pytest.warns(UserWarning, match="insecure connection"):  # qdrant-client's own
        cache = QdrantSemanticCache(
            f"http://127.0.0.1:{free_port()}",
            api_key="qd-secret-key",
            embedder=bag_of_words,
            retry_interval=60,
        )
    backend = Counting(OpenAICompatible(sim_url, model="sim"))
    model = CachingProvider(backend, cache)
    try:
        with capture_logs() as logs:
            for _ in range(2):
                assert (await model.complete(request(CAPITAL))).content
        assert backend.calls == 2
        stats = cache.statistics()
        assert (stats.hits, stats.misses, stats.stores, stats.errors) == (0, 2, 0, 4)
        assert len(warnings_of(logs)) == 1
        assert "qd-secret-key" not in repr(logs)
    finally:
        await model.aclose()
        await cache.aclose()


async def test_an_embedder_that_fails_is_a_miss_with_a_warning(sim_url: str) -> None:
    def broken(text: str) -> list[float]:
        raise RuntimeError("embedding service unavailable")

    cache = QdrantSemanticCache(location=":memory:", embedder=broken)
    backend = Counting(OpenAICompatible(sim_url, model="sim"))
    model = CachingProvider(backend, cache)
    try:
        with capture_logs() as logs:
            assert (await model.complete(request(CAPITAL))).content
        assert cache.statistics().errors == 2  # the lookup and the store
        assert len(warnings_of(logs, "cache embedder failed")) == 2
    finally:
        await model.aclose()
        await cache.aclose()


async def test_async_embedders_and_the_exact_protocol() -> None:
    async def embed(text: str) -> list[float]:
        await anyio.lowlevel.checkpoint()
        return bag_of_words(text)

    cache = QdrantSemanticCache(location=":memory:", embedder=embed, threshold=0.9)
    try:
        await cache.set_for(request(CAPITAL), answer("Paris"))
        found = await cache.get(cache_key(request(CAPITAL)))  # by exact key too
        assert found == answer("Paris")
        assert await cache.get(cache_key(request(REWORDED))) is None
        with pytest.raises(ConfigError, match="set_for"):
            await cache.set(cache_key(request(CAPITAL)), answer())
        # A request with no text is not cached (nothing to compare).
        empty = CompletionRequest(model="sim", messages=[Message.system("only a system")])
        await cache.set_for(empty, answer())
        assert await cache.get_for(empty) is None
        assert cache.statistics().stores == 1
    finally:
        await cache.aclose()


def test_bad_settings_are_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QDRANT_URL", raising=False)
    with pytest.raises(ConfigError, match="QDRANT_URL"):
        QdrantSemanticCache(embedder=bag_of_words)
    monkeypatch.setenv("QDRANT_URL", "ftp://admin:pw123@qdrant")
    with pytest.raises(ConfigError, match="QDRANT_URL") as caught:
        QdrantSemanticCache(embedder=bag_of_words)
    assert "pw123" not in str(caught.value)
    for bad in ({"threshold": 0}, {"threshold": 1.5}, {"ttl": 0}, {"text": "all"}):
        with pytest.raises(ConfigError):
            QdrantSemanticCache(location=":memory:", embedder=bag_of_words, **bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="embedder"):
        QdrantSemanticCache(location=":memory:", embedder="text-embedding-3-small")  # type: ignore[arg-type]
