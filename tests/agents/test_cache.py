"""Response caches: a request seen before is answered without the model, at no cost; keys
ignore labels but not what shapes the answer; LRU and TTL bounds; SQLite persists across
instances; streams replay; agents use a cached provider like any other."""

from __future__ import annotations

from pathlib import Path

import pytest

from limelight.agents import Agent
from limelight.cache import CachingProvider, MemoryCache, SQLiteCache, cache_key
from limelight.errors import ConfigError
from limelight.schemas import CompletionRequest, Message, StreamEventType, ToolCall, Usage
from limelight.testing import Reply, Scripted

pytestmark = pytest.mark.anyio


def request(text: str = "hi", **kwargs: object) -> CompletionRequest:
    return CompletionRequest(model="m", messages=[Message.user(text)], **kwargs)  # type: ignore[arg-type]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_keys_ignore_labels_but_not_what_shapes_the_answer() -> None:
    base = cache_key(request())
    assert cache_key(request(metadata={"run_id": "x"}, attempt_timeout=3.0, stream=True)) == base
    assert cache_key(request("other")) != base
    assert cache_key(request(temperature=0.5)) != base
    assert cache_key(CompletionRequest(model="n", messages=[Message.user("hi")])) != base


async def test_a_repeated_request_is_answered_from_the_cache_at_no_cost() -> None:
    backend = Scripted([Reply(text="first answer", usage=Usage.of(10, 5))])
    cache = MemoryCache()
    model = CachingProvider(backend, cache)
    first = await model.complete(request())
    second = await model.complete(request(metadata={"run": "2"}))
    assert first.content == second.content == "first answer"
    assert len(backend.requests) == 1  # the script has one reply: a second call would fail
    assert second.usage == Usage()
    assert second.cost == 0.0
    assert second.metadata["cache"] == "hit"
    assert "cache" not in first.metadata
    stats = cache.statistics()
    assert (stats.hits, stats.misses, stats.stores, stats.entries) == (1, 1, 1, 1)
    assert stats.hit_rate == 0.5


async def test_a_streamed_hit_replays_the_answer() -> None:
    calls = [ToolCall(id="c1", name="f", arguments="{}")]
    model = CachingProvider(Scripted([Reply(text="streamed", tool_calls=calls)]), MemoryCache())
    first = [e async for e in model.stream(request())]
    again = [e async for e in model.stream(request())]
    assert first[-1].type is again[-1].type is StreamEventType.DONE
    assert [e.type for e in again] == [
        StreamEventType.TOKEN,
        StreamEventType.TOOL_CALL,
        StreamEventType.DONE,
    ]
    assert again[0].content == "streamed"
    assert again[-1].result is not None
    assert again[-1].result.tool_calls == calls
    # What complete() stored is what stream() replays, and the other way round.
    assert (await model.complete(request())).content == "streamed"


async def test_a_stream_left_early_is_not_stored() -> None:
    cache = MemoryCache()
    model = CachingProvider(Scripted(["a long answer", "second"]), cache)
    stream = model.stream(request())
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    assert cache.statistics().stores == 0


async def test_memory_cache_evicts_least_recently_used_and_expired() -> None:
    clock = FakeClock()
    cache = MemoryCache(max_entries=2, ttl=60, clock=clock)
    model = CachingProvider(Scripted(lambda r: r.messages[-1].content or ""), cache)
    for text in ("a", "b"):
        await model.complete(request(text))
    await model.complete(request("a"))  # a hit: "a" is now the most recent
    await model.complete(request("c"))  # evicts "b"
    assert (await cache.get(cache_key(request("b")))) is None
    assert (await cache.get(cache_key(request("a")))) is not None
    clock.now = 61
    assert (await cache.get(cache_key(request("a")))) is None
    assert cache.statistics().evictions == 2


async def test_sqlite_cache_persists_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "responses.db"
    backend = Scripted([Reply(text="kept on disk", usage=Usage.of(3, 4))])
    first_cache = SQLiteCache(path)
    assert (await CachingProvider(backend, first_cache).complete(request())).content
    first_cache.close()
    reopened = SQLiteCache(path)
    hit = await CachingProvider(Scripted([]), reopened).complete(request())
    assert hit.content == "kept on disk"
    assert hit.metadata["cache"] == "hit"
    assert reopened.statistics().entries == 1
    reopened.close()


async def test_sqlite_cache_bounds(tmp_path: Path) -> None:
    clock = FakeClock()
    cache = SQLiteCache(tmp_path / "r.db", ttl=10, max_entries=2, clock=clock)
    model = CachingProvider(Scripted(lambda r: "x"), cache)
    for i, text in enumerate(("a", "b", "c")):
        clock.now = float(i)
        await model.complete(request(text))
    assert cache.statistics().entries == 2
    assert await cache.get(cache_key(request("a"))) is None  # the oldest went
    clock.now = 100.0
    assert await cache.get(cache_key(request("c"))) is None  # expired
    cache.close()


async def test_should_cache_chooses_what_is_cached() -> None:
    backend = Scripted(lambda r: f"answer {len(backend.requests)}")
    model = CachingProvider(backend, MemoryCache(), should_cache=lambda r: r.temperature == 0)
    assert (await model.complete(request(temperature=0))).content == (
        await model.complete(request(temperature=0))
    ).content
    warm = [await model.complete(request(temperature=1)) for _ in range(2)]
    assert warm[0].content != warm[1].content


async def test_an_agent_runs_on_a_cached_provider() -> None:
    cache = MemoryCache()
    backend = Scripted(["cached answer"])
    for _ in range(2):
        result = await Agent(model=CachingProvider(backend, cache), system="s").run("same")
        assert result.content == "cached answer"
    assert cache.statistics().hits == 1
    assert len(backend.requests) == 1


def test_bad_cache_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_entries"):
        MemoryCache(max_entries=0)
    with pytest.raises(ConfigError, match="ttl"):
        SQLiteCache(tmp_path / "x.db", ttl=-1)
    with pytest.raises(ConfigError, match="cache must have"):
        CachingProvider(Scripted([]), object())  # type: ignore[arg-type]
