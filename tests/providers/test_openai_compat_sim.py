"""OpenAICompatible against the project's simulator server (``limelight sim``): success,
streaming, tool calls, every injected fault ending in a result or the right typed error in
bounded time, and a thousand faulty requests leaving no connection or task behind."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator

import anyio
import anyio.lowlevel
import msgspec
import pytest
import sniffio

from limelight.errors import (
    BadResponse,
    ProviderConnectionError,
    ProviderError,
    RateLimited,
    ServerError,
)
from limelight.providers import OpenAICompatible
from limelight.schemas import (
    CompletionRequest,
    CompletionResult,
    EmbeddingRequest,
    Message,
    StreamEventType,
    ToolSpec,
)
from limelight.sim import SimulatedConfig, serve_in_thread

pytestmark = pytest.mark.anyio

DEADLINE = 10.0  # seconds one request may take before it counts as hung
FAST = SimulatedConfig(
    ttft=0.0, ttft_jitter=0.0, tokens_per_second=None, output_tokens=8, tool_call_probability=0.0
)
WEATHER = ToolSpec(
    name="weather",
    description="The weather in a city.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)


def faulty(**rates: float) -> SimulatedConfig:
    return msgspec.structs.replace(FAST, **rates)


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with serve_in_thread(FAST) as base_url:
        yield base_url


def ask(**kwargs: object) -> CompletionRequest:
    return CompletionRequest(messages=[Message.user("Tell me something.")], **kwargs)  # type: ignore[arg-type]


async def collect(provider: OpenAICompatible, request: CompletionRequest) -> CompletionResult:
    """Stream ``request``; check the stream's shape and return its DONE result."""
    events = [event async for event in provider.stream(request)]
    assert [e.type for e in events].count(StreamEventType.DONE) == 1
    assert events[-1].type is StreamEventType.DONE
    result = events[-1].result
    assert result is not None
    tokens = "".join(e.content or "" for e in events if e.type is StreamEventType.TOKEN)
    assert tokens == (result.content or "")
    calls = [e.tool_call for e in events if e.type is StreamEventType.TOOL_CALL]
    assert calls == result.tool_calls
    return result


async def test_chat_plain_and_streamed(sim: str) -> None:
    async with OpenAICompatible(sim, "sk-sim") as provider:
        with anyio.fail_after(DEADLINE):
            plain = await provider.complete(ask(max_tokens=5))
            streamed = await collect(provider, ask(max_tokens=5))
        assert provider.statistics().in_use == 0
    for result in (plain, streamed):
        assert result.content
        assert result.usage is not None
        assert result.usage.completion_tokens == 5
        assert result.finish_reason == "length"
        assert result.model == "sim-1"
    assert streamed.ttft is not None


async def test_text_completion_and_embeddings_and_models(sim: str) -> None:
    async with OpenAICompatible(sim) as provider:
        with anyio.fail_after(DEADLINE):
            text = await provider.complete(CompletionRequest(prompt="Once upon", max_tokens=3))
            streamed = await collect(provider, CompletionRequest(prompt="Once upon", max_tokens=3))
            embedded = await provider.embed(EmbeddingRequest(input=["a", "b"], dimensions=8))
            models = await provider.list_models()
    assert text.content
    assert streamed.content
    assert text.usage is not None
    assert text.usage.completion_tokens == 3
    assert len(embedded.embeddings) == 2
    assert all(len(v) == 8 for v in embedded.embeddings)
    assert "sim-1" in models.ids()


async def test_tool_calls_plain_and_streamed() -> None:
    config = msgspec.structs.replace(FAST, tool_call_probability=1.0)
    request = ask(tools=[WEATHER], tool_choice="auto")
    with serve_in_thread(config) as url:
        async with OpenAICompatible(url) as provider:
            with anyio.fail_after(DEADLINE):
                plain = await provider.complete(request)
                streamed = await collect(provider, request)
    for result in (plain, streamed):
        assert result.finish_reason == "tool_calls"
        assert [c.name for c in result.tool_calls] == ["weather"]
        arguments = json.loads(result.tool_calls[0].arguments)
        assert isinstance(arguments["city"], str)
        assert result.tool_calls[0].id


async def test_rate_limit_headers_on_results_and_errors() -> None:
    with serve_in_thread(msgspec.structs.replace(FAST, rpm=2)) as url:
        async with OpenAICompatible(url) as provider:
            with anyio.fail_after(DEADLINE):
                first = await provider.complete(ask())
                await provider.complete(ask())
                with pytest.raises(RateLimited) as caught:
                    await provider.complete(ask())
    assert first.rate_limit["x-ratelimit-limit-requests"] == "2"
    assert first.rate_limit["x-ratelimit-remaining-requests"] == "1"
    error = caught.value
    assert error.status_code == 429
    assert error.retry_after is not None
    assert error.retry_after > 0
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert "retry-after-ms" in error.headers


# Every injected fault, and what it must become, plain and streamed.
FAULTS = [
    ("server_error_rate", ServerError, ServerError),
    ("rate_limit_error_rate", RateLimited, RateLimited),
    ("connection_reset_rate", ProviderConnectionError, ProviderConnectionError),
    # A plain answer cut short is a dropped connection (the body is shorter than promised);
    # a stream cut short is complete HTTP but lacks its end: a bad response.
    ("truncated_rate", ProviderConnectionError, BadResponse),
    ("malformed_rate", BadResponse, BadResponse),
]


@pytest.mark.parametrize(("fault", "plain_error", "stream_error"), FAULTS)
async def test_every_fault_ends_in_its_typed_error(
    fault: str, plain_error: type[ProviderError], stream_error: type[ProviderError]
) -> None:
    with serve_in_thread(faulty(**{fault: 1.0})) as url:
        async with OpenAICompatible(url) as provider:
            with anyio.fail_after(DEADLINE), pytest.raises(plain_error) as plain:
                await provider.complete(ask())
            with anyio.fail_after(DEADLINE), pytest.raises(stream_error) as streamed:
                await collect(provider, ask())
            assert provider.statistics().in_use == 0
    assert type(plain.value) is plain_error
    assert type(streamed.value) is stream_error
    if fault == "rate_limit_error_rate":
        assert plain.value.retry_after == pytest.approx(FAST.fault_retry_after)


def running_tasks() -> int:
    """How many tasks the running event loop has now."""
    if sniffio.current_async_library() == "asyncio":
        return len(asyncio.all_tasks())
    import trio

    def count(task: trio.lowlevel.Task) -> int:
        return 1 + sum(
            count(child) for nursery in task.child_nurseries for child in nursery.child_tasks
        )

    return count(trio.lowlevel.current_root_task())


@pytest.mark.slow
async def test_a_thousand_faulty_requests_leave_nothing_behind() -> None:
    config = faulty(
        server_error_rate=0.05,
        rate_limit_error_rate=0.05,
        connection_reset_rate=0.05,
        truncated_rate=0.05,
        malformed_rate=0.05,
    )
    outcomes: Counter[str] = Counter()
    unexpected: list[BaseException] = []
    tasks_before = running_tasks()

    async def one(i: int, limiter: anyio.CapacityLimiter, provider: OpenAICompatible) -> None:
        async with limiter:
            request = ask(max_tokens=4, seed=i)
            try:
                with anyio.fail_after(DEADLINE):
                    if i % 2:
                        await collect(provider, request)
                    else:
                        await provider.complete(request)
            except ProviderError as exc:
                outcomes[type(exc).__name__] += 1
            except Exception as exc:  # recorded, and fails the test below
                unexpected.append(exc)
            else:
                outcomes["ok"] += 1

    with serve_in_thread(config) as url:
        provider = OpenAICompatible(url)
        limiter = anyio.CapacityLimiter(50)
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for i in range(1000):
                    tg.start_soon(one, i, limiter, provider)
        stats = provider.statistics()
        assert stats.in_use == 0
        assert 1 <= stats.idle <= 50
        await provider.aclose()
        assert provider.statistics().in_use == provider.statistics().idle == 0
    assert unexpected == []
    assert sum(outcomes.values()) == 1000
    for name in ("ok", "ServerError", "RateLimited", "ProviderConnectionError", "BadResponse"):
        assert outcomes[name] > 0, outcomes
    await anyio.lowlevel.checkpoint()  # let closed connections finish their callbacks
    assert running_tasks() == tasks_before
