"""AnalyticsHook on real provider pools: every attempt recorded as llm_request /
llm_response (or error) on the analytics client, with role, run and parent links; over the
Scripted provider and over the simulator on real HTTP."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from limelight import analytics
from limelight._analytics_hook import AnalyticsHook
from limelight.actors import AttemptHook, ProviderPool
from limelight.actors._shipper import AnalyticsShipper
from limelight.analytics import AnalyticsClient, AnalyticsConfig
from limelight.errors import ServerError
from limelight.providers import OpenAICompatible, Scripted, SimulatedConfig
from limelight.runtime import RetryPolicy, Runtime
from limelight.schemas import CompletionRequest, Event, EventType, Message, Usage
from limelight.schemas import CompletionResult as Result
from limelight.sim import serve_in_thread_async
from limelight.sinks import MemorySink

pytestmark = pytest.mark.anyio

FAST_RETRY = RetryPolicy(attempts=3, initial_delay=0.001, jitter=0)


async def start(rt: Runtime, tmp_path: Path, sink: MemorySink) -> AnalyticsClient:
    """A client of its own (not the process-wide one, so that the hook the provider workers
    add by themselves while analytics is initialized stays out of these tests)."""
    cfg = AnalyticsConfig(spool_dir=str(tmp_path), flush_interval=0.02)
    shipper = await AnalyticsShipper.start(rt, [sink], **cfg.shipper_options())
    return AnalyticsClient(shipper, cfg)


async def recorded(client: AnalyticsClient, sink: MemorySink) -> list[Event]:
    assert await client.aflush(10)
    return sink.events


async def test_attempts_are_recorded_with_links_tokens_and_errors(tmp_path: Path) -> None:
    sink = MemorySink()
    provider = Scripted(
        [
            ServerError("upstream hiccup", status_code=503),
            Result(content="hello", usage=Usage.of(9, 4), cost=0.002, provider="scripted"),
        ]
    )
    request = CompletionRequest(
        model="tiny",
        messages=[Message.user("hi"), Message.user("again")],
        metadata={"role": "executor", "run_id": "run-1", "user_id": "u-1"},
    )
    async with Runtime() as rt:
        client = await start(rt, tmp_path, sink)
        pool = await ProviderPool.start(
            rt,
            provider,
            name="dep-a",
            size=1,
            retry=FAST_RETRY,
            hooks=[AnalyticsHook(client=client)],
        )
        result = await pool.complete(request)
        assert result.content == "hello"
        events = await recorded(client, sink)
        await client.ashutdown(5)
    assert [e.event_type for e in events] == [
        EventType.LLM_REQUEST,
        EventType.ERROR,
        EventType.LLM_REQUEST,
        EventType.LLM_RESPONSE,
    ]
    first, error, second, response = events
    assert {e.run_id for e in events} == {"run-1"}
    assert {e.user_id for e in events} == {"u-1"}
    assert first.payload.role == "executor"  # type: ignore[union-attr]
    assert first.payload.messages_count == 2  # type: ignore[union-attr]
    assert first.payload.provider == "dep-a"  # type: ignore[union-attr]
    assert first.metadata == {"deployment": "dep-a", "attempt": 1}
    assert error.parent_event_id == first.event_id
    assert error.payload.error_type == "ServerError"  # type: ignore[union-attr]
    assert error.payload.context["attempt"] == 1  # type: ignore[union-attr]
    assert second.metadata["attempt"] == 2
    assert response.parent_event_id == second.event_id
    p = response.payload
    assert (p.model, p.provider, p.role) == ("tiny", "scripted", "executor")  # type: ignore[union-attr]
    assert (p.input_tokens, p.output_tokens, p.cost) == (9, 4, 0.002)  # type: ignore[union-attr]
    assert p.latency is not None  # type: ignore[union-attr]


async def test_streamed_calls_are_recorded_too(tmp_path: Path) -> None:
    sink = MemorySink()
    async with Runtime() as rt:
        client = await start(rt, tmp_path, sink)
        pool = await ProviderPool.start(
            rt, Scripted(["one two three"]), name="s", size=1, hooks=[AnalyticsHook(client=client)]
        )
        chunks = [e async for e in pool.stream(CompletionRequest(messages=[Message.user("x")]))]
        assert chunks
        events = await recorded(client, sink)
        await client.ashutdown(5)
    assert [e.event_type for e in events] == [EventType.LLM_REQUEST, EventType.LLM_RESPONSE]
    assert events[1].payload.output_tokens > 0  # type: ignore[union-attr]


async def test_the_simulator_over_http(tmp_path: Path) -> None:
    sink = MemorySink()
    config = SimulatedConfig(ttft=0.0, seed=3)
    async with serve_in_thread_async(config) as url, Runtime() as rt:
        client = await start(rt, tmp_path, sink)
        pool = await ProviderPool.start(
            rt,
            OpenAICompatible(url),
            name="sim",
            size=4,
            model="sim-model",
            hooks=[AnalyticsHook(provider="simulator", client=client)],
        )
        async with anyio.create_task_group() as tg:
            for i in range(8):
                request = CompletionRequest(
                    messages=[Message.user(f"question {i}")], metadata={"run_id": f"r{i}"}
                )
                tg.start_soon(pool.complete, request)
        events = await recorded(client, sink)
        await client.ashutdown(5)
    requests = [e for e in events if e.event_type is EventType.LLM_REQUEST]
    responses = [e for e in events if e.event_type is EventType.LLM_RESPONSE]
    assert len(requests) == len(responses) == 8
    assert {r.parent_event_id for r in responses} == {r.event_id for r in requests}
    assert {r.run_id for r in responses} == {f"r{i}" for i in range(8)}
    for response in responses:
        p = response.payload
        assert p.provider == "simulator"  # type: ignore[union-attr]
        assert p.model == "sim-model"  # type: ignore[union-attr]
        assert p.input_tokens > 0  # type: ignore[union-attr]
        assert p.output_tokens > 0  # type: ignore[union-attr]


async def test_without_analytics_the_hook_records_nothing_and_calls_work() -> None:
    assert analytics.current() is None
    assert isinstance(AnalyticsHook(), AttemptHook)
    async with Runtime() as rt:
        pool = await ProviderPool.start(
            rt, Scripted(["fine"]), name="p", size=1, hooks=[AnalyticsHook()]
        )
        result = await pool.complete(CompletionRequest(messages=[Message.user("x")]))
    assert result.content == "fine"


async def test_an_unpriced_answer_is_priced_from_the_price_data(tmp_path: Path) -> None:
    from limelight.usage import cost_of

    usage = Usage.of(1_000, 200)
    sink = MemorySink()
    async with Runtime() as rt:
        client = await start(rt, tmp_path, sink)
        pool = await ProviderPool.start(
            rt,
            Scripted([Result(content="ok", usage=usage, model="gpt-4o-mini")]),
            name="priced",
            size=1,
            hooks=[AnalyticsHook(client=client)],
        )
        await pool.complete(CompletionRequest(model="gpt-4o-mini", messages=[Message.user("hi")]))
        events = await recorded(client, sink)
        await client.ashutdown(5)
    response = next(e for e in events if e.event_type == EventType.LLM_RESPONSE)
    expected = cost_of(usage, "gpt-4o-mini")
    assert expected is not None
    assert expected > 0
    assert response.payload.cost == pytest.approx(expected)  # type: ignore[union-attr]
