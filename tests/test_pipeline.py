"""One call pipeline: a model call made through each entry point (an agent, the role router
sync and async, the sync client, a cached provider, a batch, the benchmark harness in provider
mode) goes through a provider pool's attempt path, against the simulator over real HTTP. Each
emits the same analytics events, is counted in usage, and is admitted by one shared
rate limiter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from limelight import analytics
from limelight.actors import (
    Agent,
    GetStatistics,
    ProviderPool,
    RateLimiter,
    RateLimiterStatistics,
    RateLimitHook,
)
from limelight.batch import run_batch
from limelight.cache import CachingProvider, MemoryCache
from limelight.client import LLM
from limelight.harness import BenchConfig, ClosedLoop, Target, Workload, run
from limelight.providers import OpenAICompatible, SimulatedConfig, serve_in_thread
from limelight.roles import allm_text, clear_role_config, llm_text, set_role_config
from limelight.runtime import ActorRef, Runtime
from limelight.schemas import CompletionRequest, Message
from limelight.schemas._events import Event, EventType
from limelight.sinks import MemorySink
from limelight.usage import configure_usage, get_usage_summary, reset_usage

pytestmark = pytest.mark.anyio

FAST = SimulatedConfig(ttft=0.0, ttft_jitter=0.0, tokens_per_second=None, output_tokens=3)
#: What the attempt path records for one successful call, whatever the entry point.
CALL_EVENTS = {EventType.LLM_REQUEST: 1, EventType.LLM_RESPONSE: 1}


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    """The simulator's OpenAI-compatible server, over real HTTP (``.../v1``)."""
    with serve_in_thread(FAST) as url:
        yield url


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[MemorySink]:
    memory = MemorySink()
    config = analytics.AnalyticsConfig(spool_dir=str(tmp_path / "spool"), flush_interval=0.05)
    analytics.initialize(config=config, sinks=[memory])
    configure_usage(enabled=True)
    reset_usage()
    clear_role_config()
    try:
        yield memory
    finally:
        clear_role_config()
        reset_usage()
        analytics.shutdown(timeout=10)


class Ledger:
    """What the pipeline has recorded so far: analytics events, usage, admissions."""

    def __init__(self, sink: MemorySink, limiter: ActorRef) -> None:
        self.sink = sink
        self.limiter = limiter
        self.events = 0
        self.calls = 0
        self.admitted = 0

    async def statistics(self) -> RateLimiterStatistics:
        stats = await self.limiter.ask(GetStatistics())
        assert isinstance(stats, RateLimiterStatistics)
        return stats

    async def check(self, entry: str, calls: int = 1) -> None:
        """Since the last check: ``calls`` calls were recorded, each as the same events,
        counted in usage and admitted by the limiter."""
        assert await analytics.get_client().aflush(timeout=10), entry
        new: list[Event] = self.sink.events[self.events :]
        self.events = len(self.sink.events)
        counts: dict[EventType, int] = {}
        for event in new:
            if event.event_type in (EventType.LLM_REQUEST, EventType.LLM_RESPONSE):
                counts[event.event_type] = counts.get(event.event_type, 0) + 1
            assert event.event_type is not EventType.ERROR, (entry, event)
        assert counts == {kind: n * calls for kind, n in CALL_EVENTS.items()}, entry
        usage = get_usage_summary().total
        assert usage.calls - self.calls == calls, entry
        assert usage.completion_tokens > 0, entry
        self.calls = usage.calls
        stats = await self.statistics()
        assert stats.admitted - self.admitted == calls, entry
        self.admitted = stats.admitted


@pytest.fixture
async def ledger(sink: MemorySink) -> AsyncIterator[tuple[Runtime, Ledger]]:
    async with Runtime() as rt:
        limiter = await RateLimiter.start(rt, environ={})
        yield rt, Ledger(sink, limiter)


def user(text: str) -> CompletionRequest:
    return CompletionRequest(messages=[Message.user(text)], max_tokens=3)


async def test_every_entry_point_takes_the_one_pipeline(
    sim_url: str, ledger: tuple[Runtime, Ledger]
) -> None:
    rt, book = ledger
    hook = RateLimitHook(book.limiter)

    # An agent (its own pool, a child of the agent).
    agent = Agent(model=OpenAICompatible(sim_url, model="sim"), hooks=[hook], name="agent")
    result = await agent.run("Say hi.")
    assert result.status == "completed", result.error
    await book.check("Agent")

    # The role router: async, then sync from a worker thread (a plain thread's view).
    set_role_config(
        "executor", backend="openai-compatible", base_url=sim_url, model="sim", limiter=hook
    )
    assert await allm_text("Say hi.", max_tokens=3)
    await book.check("allm_text")
    assert await anyio.to_thread.run_sync(lambda: llm_text("Say hi.", max_tokens=3))
    await book.check("llm_text")
    assert get_usage_summary().by_role["executor"].calls == 2

    # The sync client, from a worker thread.
    client = LLM(base_url=sim_url, model="sim", max_tokens=3, limiter=book.limiter)
    try:
        reply = await anyio.to_thread.run_sync(
            client.chat_completion, [{"role": "user", "content": "Say hi."}]
        )
        assert reply.choices[0].message.content
        await book.check("client.LLM")
    finally:
        await anyio.to_thread.run_sync(client.close)

    # A cached backend in a pool: the miss calls the model, the hit answers from the cache.
    cache = MemoryCache()
    cached = await ProviderPool.start(
        rt,
        CachingProvider(OpenAICompatible(sim_url, model="sim"), cache),
        name="cached",
        hooks=[hook],
    )
    assert (await cached.complete(user("Say hi."))).content
    await book.check("CachingProvider")
    hit = await cached.complete(user("Say hi."))
    assert hit.metadata.get("cache") == "hit"
    assert cache.statistics().hits == 1
    await book.check("CachingProvider hit")  # an attempt too, of zero tokens

    # A batch of calls.
    pool = await ProviderPool.start(
        rt, OpenAICompatible(sim_url, model="sim"), name="batch", hooks=[hook]
    )
    report = await run_batch(["a", "b"], lambda p: pool.complete(user(p)), concurrency=2)
    assert report.completed == 2
    await book.check("run_batch", calls=2)

    # The benchmark harness, sending through a provider pool.
    config = BenchConfig(
        target=Target(base_url=sim_url, model="sim"),
        workload=Workload(kind="stream", prompt_tokens="8", output_tokens="3"),
        load=ClosedLoop(concurrency=1),
        requests=1,
        client="provider",
    )
    bench = await run(config, limiter=book.limiter)
    assert bench.summary.completed == 1
    assert "ProviderPool" in bench.client
    await book.check("harness")

    stats = await book.statistics()
    assert {"/agent/provider", "role:executor", "bench"} <= set(stats.deployments)
    assert stats.timed_out == 0


async def test_sync_facades_refuse_a_stopped_limiter(sim_url: str) -> None:
    from limelight.errors import RuntimeNotRunning

    async with Runtime() as rt:
        limiter = await RateLimiter.start(rt, environ={})
    with pytest.raises(RuntimeNotRunning, match="stopped"):
        LLM(base_url=sim_url, limiter=limiter)


async def test_the_role_router_and_the_client_count_usage_like_an_agent(
    sim_url: str, sink: MemorySink
) -> None:
    """Without a limiter: the role router's async calls cross to its shared loop, and the
    client runs a loop of its own; both count each call once, as agents do."""
    set_role_config("writer", backend="openai-compatible", base_url=sim_url, model="sim")
    texts = await _gather([lambda: allm_text("Hi.", role="writer", max_tokens=2)] * 3)
    assert all(texts)
    with LLM(base_url=sim_url, model="sim", max_tokens=2) as client:
        await anyio.to_thread.run_sync(client.completion, "Once")
    summary = get_usage_summary()
    assert summary.by_role["writer"].calls == 3
    assert summary.by_role["default"].calls == 1
    assert summary.total.completion_tokens == 4 * 2


async def _gather(calls: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    results: list[Any] = [None] * len(calls)

    async def one(i: int) -> None:
        results[i] = await calls[i]()

    async with anyio.create_task_group() as tg:
        for i in range(len(calls)):
            tg.start_soon(one, i)
    return results
