"""The in-process simulated provider: answers, streams, tool calls, faults, quotas,
embeddings and reproducibility, on asyncio and trio."""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

import anyio
import anyio.lowlevel
import hypothesis
import jsonschema
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

from limelight.errors import (
    BadRequest,
    BadResponse,
    ConfigError,
    ProviderConnectionError,
    RateLimited,
    ServerError,
)
from limelight.providers import Provider
from limelight.schemas import (
    CompletionRequest,
    EmbeddingRequest,
    Message,
    StreamEvent,
    StreamEventType,
    ToolSpec,
)
from limelight.sim import (
    INLINE_EMBEDDING_VALUES,
    MAX_ARGUMENTS_LENGTH,
    MAX_EMBEDDING_DIMENSIONS,
    MAX_OUTPUT_TOKENS,
    MAX_SCHEMA_ARRAY_ITEMS,
    MAX_SCHEMA_STRING_LENGTH,
    FixedLength,
    LogNormalLength,
    Outcome,
    SimEngine,
    Simulated,
    SimulatedConfig,
    UniformLength,
    check_request,
    embed_text,
    estimate_prompt_tokens,
    parse_output_length,
)

FAST = SimulatedConfig(ttft=0.0, ttft_jitter=0.0, tokens_per_second=None, output_tokens=12)

WEATHER = ToolSpec(
    name="get_weather",
    description="Weather in a city",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string", "minLength": 2, "maxLength": 40},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "threshold": {"type": "number", "minimum": -10, "maximum": 40},
            "alerts": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "where": {
                "type": "object",
                "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                "required": ["lat", "lon"],
            },
            "note": {"type": ["string", "null"]},
        },
        "required": ["city", "days", "unit", "threshold", "alerts", "tags", "where"],
    },
)
SEARCH = ToolSpec(
    name="search", parameters={"type": "object", "properties": {"q": {"type": "string"}}}
)


def chat(text: str = "hello there", **kwargs: Any) -> CompletionRequest:
    return CompletionRequest(messages=[Message.user(text)], **kwargs)


async def collect(provider: Simulated, request: CompletionRequest) -> list[StreamEvent]:
    return [event async for event in provider.stream(request)]


async def drain(provider: Simulated, request: CompletionRequest, into: list[StreamEvent]) -> None:
    """Append every event to ``into``, so that what came before an error stays visible."""
    async for event in provider.stream(request):
        into.append(event)


def check_weather_arguments(arguments: str) -> None:
    """The generated arguments validate against WEATHER's schema."""
    args = json.loads(arguments)
    assert isinstance(args["city"], str)
    assert 2 <= len(args["city"]) <= 40
    assert isinstance(args["days"], int)
    assert not isinstance(args["days"], bool)
    assert 1 <= args["days"] <= 7
    assert args["unit"] in ("celsius", "fahrenheit")
    assert isinstance(args["threshold"], int | float)
    assert -10 <= args["threshold"] <= 40
    assert isinstance(args["alerts"], bool)
    assert args["tags"]
    assert all(isinstance(t, str) for t in args["tags"])
    assert isinstance(args["where"]["lat"], float | int)
    assert isinstance(args["where"]["lon"], float | int)
    assert set(args) <= {"city", "days", "unit", "threshold", "alerts", "tags", "where", "note"}
    if "note" in args:
        assert isinstance(args["note"], str)


def test_simulated_is_a_provider() -> None:
    assert isinstance(Simulated(FAST), Provider)


@pytest.mark.anyio
async def test_complete_answers_with_text_and_usage() -> None:
    provider = Simulated(FAST)
    result = await provider.complete(chat("what is up?", metadata={"role": "executor"}))
    assert result.content
    assert len(result.content.split()) == 12
    assert result.finish_reason == "stop"
    assert result.model == "sim-1"
    assert result.provider == "simulated"
    assert result.metadata == {"role": "executor"}
    assert result.usage is not None
    assert result.usage.prompt_tokens == 3  # "what is up?": 11 characters / 4, rounded up
    assert result.usage.completion_tokens == 12
    assert result.usage.total_tokens == 15
    assert result.id is not None
    assert result.id.startswith("chatcmpl-")
    assert result.rate_limit == {}  # no quota configured: no headers
    await provider.aclose()


@pytest.mark.anyio
async def test_max_tokens_caps_the_answer_with_finish_reason_length() -> None:
    provider = Simulated(FAST)
    result = await provider.complete(chat(max_tokens=5))
    assert result.finish_reason == "length"
    assert result.usage is not None
    assert result.usage.completion_tokens == 5
    assert result.content is not None
    assert len(result.content.split()) == 5
    # A cap above the answer's length changes nothing.
    result = await provider.complete(chat(max_tokens=50))
    assert result.finish_reason == "stop"
    assert result.usage is not None
    assert result.usage.completion_tokens == 12


@pytest.mark.anyio
async def test_text_completion_request_is_answered() -> None:
    provider = Simulated(FAST)
    result = await provider.complete(CompletionRequest(prompt="Once upon a time"))
    assert result.content
    assert result.id is not None
    assert result.id.startswith("cmpl-")
    assert result.usage is not None
    assert result.usage.prompt_tokens == 4


@pytest.mark.anyio
async def test_stream_follows_the_provider_contract() -> None:
    provider = Simulated(FAST)
    events = await collect(provider, chat())
    kinds = [e.type for e in events]
    assert kinds == [StreamEventType.TOKEN] * 12 + [StreamEventType.USAGE, StreamEventType.DONE]
    result = events[-1].result
    assert result is not None
    assert result.content == "".join(e.content or "" for e in events[:-2])
    assert events[-2].usage == result.usage
    assert result.ttft is not None
    assert result.latency is not None
    assert result.latency >= result.ttft


@pytest.mark.anyio
async def test_stream_and_complete_give_the_same_answer_for_the_same_request_number() -> None:
    streamed = await collect(Simulated(FAST), chat())
    completed = await Simulated(FAST).complete(chat())
    done = streamed[-1].result
    assert done is not None
    assert done.content == completed.content
    assert done.id == completed.id


@pytest.mark.anyio
async def test_tool_call_when_tools_are_offered() -> None:
    provider = Simulated(msgspec.structs.replace(FAST, tool_call_probability=1.0))
    request = chat(tools=[WEATHER])
    result = await provider.complete(request)
    assert result.content is None
    assert result.finish_reason == "tool_calls"
    assert len(result.tool_calls) == 1
    call = result.tool_calls[0]
    assert call.name == "get_weather"
    assert call.id.startswith("call_")
    check_weather_arguments(call.arguments)
    assert result.usage is not None
    assert result.usage.completion_tokens > 0
    assert result.usage.prompt_tokens == estimate_prompt_tokens(request)
    assert result.usage.prompt_tokens > estimate_prompt_tokens(chat())  # tools cost tokens


@pytest.mark.anyio
async def test_streamed_tool_call_is_one_event_then_usage_and_done() -> None:
    provider = Simulated(msgspec.structs.replace(FAST, tool_call_probability=1.0))
    events = await collect(provider, chat(tools=[WEATHER]))
    assert [e.type for e in events] == [
        StreamEventType.TOOL_CALL,
        StreamEventType.USAGE,
        StreamEventType.DONE,
    ]
    assert events[0].tool_call is not None
    check_weather_arguments(events[0].tool_call.arguments)
    assert events[-1].result is not None
    assert events[-1].result.tool_calls == [events[0].tool_call]


def test_generated_arguments_validate_for_many_requests() -> None:
    engine = SimEngine(msgspec.structs.replace(FAST, tool_call_probability=1.0, seed=7))
    for _ in range(200):
        plan = engine.plan(
            chat(
                tools=[WEATHER],
                tool_choice={"type": "function", "function": {"name": "get_weather"}},
            )
        )
        assert plan.tool_calls[0].name == "get_weather"
        check_weather_arguments(plan.tool_calls[0].arguments)
        # Streamed fragments reassemble into the arguments.
        assert "".join(plan.tool_call_pieces[0]) == plan.tool_calls[0].arguments


def test_tool_call_probability_and_tool_choice() -> None:
    engine = SimEngine(msgspec.structs.replace(FAST, tool_call_probability=0.3))
    calls = sum(bool(engine.plan(chat(tools=[WEATHER, SEARCH])).tool_calls) for _ in range(400))
    assert 80 <= calls <= 160  # 30% of 400, give or take
    never = SimEngine(msgspec.structs.replace(FAST, tool_call_probability=1.0))
    assert not any(
        never.plan(chat(tools=[WEATHER], tool_choice="none")).tool_calls for _ in range(50)
    )
    always = SimEngine(msgspec.structs.replace(FAST, tool_call_probability=0.0))
    assert all(
        always.plan(chat(tools=[SEARCH], tool_choice="required")).tool_calls for _ in range(50)
    )
    named = SimEngine(msgspec.structs.replace(FAST, tool_call_probability=0.0))
    plans = [
        named.plan(
            chat(
                tools=[WEATHER, SEARCH],
                tool_choice={"type": "function", "function": {"name": "search"}},
            )
        )
        for _ in range(20)
    ]
    assert {p.tool_calls[0].name for p in plans} == {"search"}
    # No tools offered: never a tool call.
    assert not any(never.plan(chat()).tool_calls for _ in range(20))


def test_output_length_distributions() -> None:
    uniform = SimEngine(msgspec.structs.replace(FAST, output_tokens=UniformLength(low=3, high=9)))
    lengths = [len(uniform.plan(chat()).tokens) for _ in range(300)]
    assert min(lengths) == 3
    assert max(lengths) == 9
    lognormal = SimEngine(
        msgspec.structs.replace(FAST, output_tokens=LogNormalLength(mean=100, sd=40))
    )
    lengths = [len(lognormal.plan(chat()).tokens) for _ in range(2000)]
    assert statistics.mean(lengths) == pytest.approx(100, rel=0.1)
    assert statistics.stdev(lengths) == pytest.approx(40, rel=0.2)
    capped = [lognormal.plan(chat(max_tokens=60)) for _ in range(300)]
    assert max(len(p.tokens) for p in capped) == 60
    assert {p.finish_reason for p in capped} == {"length", "stop"}
    assert all(len(p.tokens) == 60 for p in capped if p.finish_reason == "length")
    assert all(p.finish_reason == "stop" for p in capped if len(p.tokens) < 60)


def test_parse_output_length() -> None:
    assert parse_output_length("64") == FixedLength(tokens=64)
    assert parse_output_length("32-128") == UniformLength(low=32, high=128)
    assert parse_output_length("lognormal:200:80") == LogNormalLength(mean=200.0, sd=80.0)
    for bad in ("", "abc", "1-2-3", "lognormal:1"):
        with pytest.raises(ConfigError, match="not understood"):
            parse_output_length(bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ttft": -1.0},
        {"tokens_per_second": 0.0},
        {"output_tokens": 0},
        {"output_tokens": UniformLength(low=5, high=2)},
        {"output_tokens": LogNormalLength(mean=0, sd=1)},
        {"server_error_rate": 1.5},
        {"server_error_rate": 0.6, "malformed_rate": 0.6},
        {"rpm": 0},
        {"max_concurrency": 0},
        {"models": ()},
        {"embedding_dimensions": 0},
        {"embedding_dimensions": MAX_EMBEDDING_DIMENSIONS + 1},
        {"output_tokens": MAX_OUTPUT_TOKENS + 1},
        {"output_tokens": UniformLength(low=1, high=MAX_OUTPUT_TOKENS + 1)},
        {"output_tokens": LogNormalLength(mean=math.inf, sd=1)},
        {"output_tokens": LogNormalLength(mean=math.nan, sd=1)},
        {"output_tokens": LogNormalLength(mean=10, sd=math.nan)},
    ],
)
def test_invalid_config_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        SimulatedConfig(**kwargs)


@pytest.mark.anyio
async def test_same_seed_same_answers_different_seed_different_answers() -> None:
    async def run(seed: int) -> list[Any]:
        config = msgspec.structs.replace(
            FAST,
            seed=seed,
            tool_call_probability=0.5,
            output_tokens=UniformLength(low=1, high=30),
            server_error_rate=0.2,
        )
        provider = Simulated(config)
        outcomes: list[Any] = []
        for i in range(20):
            try:
                result = await provider.complete(chat(f"question {i}", tools=[SEARCH]))
                outcomes.append((result.content, result.tool_calls, result.usage))
            except ServerError as exc:
                outcomes.append(("error", exc.status_code))
        return outcomes

    first, again, other = await run(1), await run(1), await run(2)
    assert first == again
    assert first != other
    assert any(o[0] == "error" for o in first)  # the faults repeat too
    assert any(o[0] != "error" for o in first)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("rate", "error"),
    [
        ("server_error_rate", ServerError),
        ("rate_limit_error_rate", RateLimited),
        ("connection_reset_rate", ProviderConnectionError),
        ("truncated_rate", BadResponse),
        ("malformed_rate", BadResponse),
    ],
)
async def test_complete_raises_each_fault(rate: str, error: type[Exception]) -> None:
    provider = Simulated(msgspec.structs.replace(FAST, **{rate: 1.0}))
    with pytest.raises(error):
        await provider.complete(chat())
    assert provider.engine.quota.in_flight == 0


@pytest.mark.anyio
async def test_server_error_carries_status_and_body() -> None:
    provider = Simulated(msgspec.structs.replace(FAST, server_error_rate=1.0))
    with pytest.raises(ServerError) as info:
        await provider.complete(chat())
    assert info.value.status_code in (500, 502, 503)
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"]["type"] == "server_error"


@pytest.mark.anyio
async def test_injected_429_carries_retry_after() -> None:
    provider = Simulated(
        msgspec.structs.replace(FAST, rate_limit_error_rate=1.0, fault_retry_after=0.25)
    )
    with pytest.raises(RateLimited) as info:
        await provider.complete(chat())
    assert info.value.retry_after == 0.25
    assert info.value.status_code == 429
    assert info.value.headers["retry-after-ms"] == "250"
    assert info.value.headers["retry-after"] == "1"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("rate", "error"),
    [
        ("connection_reset_rate", ProviderConnectionError),
        ("truncated_rate", BadResponse),
        ("malformed_rate", BadResponse),
    ],
)
async def test_stream_faults_strike_mid_stream(rate: str, error: type[Exception]) -> None:
    provider = Simulated(msgspec.structs.replace(FAST, **{rate: 1.0}))
    received: list[StreamEvent] = []
    with pytest.raises(error):
        await drain(provider, chat(), received)
    # Half the answer arrived, then the fault; never a DONE.
    assert [e.type for e in received] == [StreamEventType.TOKEN] * 6
    assert provider.engine.quota.in_flight == 0


@pytest.mark.anyio
async def test_stream_server_error_raises_before_any_event() -> None:
    provider = Simulated(msgspec.structs.replace(FAST, server_error_rate=1.0))
    received: list[StreamEvent] = []
    with pytest.raises(ServerError):
        await drain(provider, chat(), received)
    assert received == []


@pytest.mark.anyio
async def test_rpm_quota_refuses_after_the_limit() -> None:
    provider = Simulated(msgspec.structs.replace(FAST, rpm=3))
    results = [await provider.complete(chat()) for _ in range(3)]
    assert [r.rate_limit["x-ratelimit-remaining-requests"] for r in results] == ["2", "1", "0"]
    assert results[0].rate_limit["x-ratelimit-limit-requests"] == "3"
    with pytest.raises(RateLimited) as info:
        await provider.complete(chat())
    assert info.value.retry_after is not None
    assert 0 < info.value.retry_after <= 20
    assert info.value.headers["x-ratelimit-remaining-requests"] == "0"
    assert "retry-after-ms" in info.value.headers
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"]["code"] == "rate_limit_exceeded"
    assert "Limit 3, Used 3, Requested 1" in str(info.value)
    with pytest.raises(RateLimited):  # streams are refused too
        await collect(provider, chat())


@pytest.mark.anyio
async def test_tpm_quota_charges_prompt_plus_max_tokens() -> None:
    provider = Simulated(msgspec.structs.replace(FAST, tpm=100, default_output_budget=40))
    # "hi": 1 prompt token + 40 budget = 41 per request; 100 tokens fit two.
    await provider.complete(chat("hi"))
    second = await provider.complete(chat("hi"))
    assert second.rate_limit["x-ratelimit-remaining-tokens"] in ("18", "19")
    with pytest.raises(RateLimited) as info:
        await provider.complete(chat("hi"))
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"]["type"] == "tokens"
    # A small max_tokens still fits.
    result = await provider.complete(chat("hi", max_tokens=5))
    assert result.finish_reason == "length"


@pytest.mark.anyio
async def test_concurrency_cap_holds_while_a_stream_is_open_and_frees_on_close() -> None:
    provider = Simulated(msgspec.structs.replace(FAST, max_concurrency=1))
    iterator = aiter(provider.stream(chat()))
    first = await anext(iterator)
    assert first.type is StreamEventType.TOKEN
    with pytest.raises(RateLimited) as info:
        await provider.complete(chat())
    assert "concurrent requests" in str(info.value)
    await iterator.aclose()  # type: ignore[attr-defined]
    assert provider.engine.quota.in_flight == 0
    assert (await provider.complete(chat())).content


@pytest.mark.anyio
async def test_cancelled_request_frees_its_slot() -> None:
    provider = Simulated(msgspec.structs.replace(FAST, ttft=3600.0, max_concurrency=1))
    async with anyio.create_task_group() as tg:
        tg.start_soon(provider.complete, chat())
        while provider.engine.quota.in_flight == 0:
            await anyio.lowlevel.checkpoint()
        tg.cancel_scope.cancel()
    assert provider.engine.quota.in_flight == 0


@pytest.mark.anyio
async def test_bad_requests_are_refused() -> None:
    provider = Simulated(msgspec.structs.replace(FAST, strict_models=True, models=("a", "b")))
    with pytest.raises(BadRequest) as info:
        await provider.complete(chat(model="c"))
    assert info.value.status_code == 404
    with pytest.raises(BadRequest) as info:
        await provider.complete(CompletionRequest(model="a"))
    assert info.value.status_code == 400
    with pytest.raises(BadRequest):
        await provider.complete(chat(max_tokens=0))
    assert (await provider.complete(chat(model="b"))).model == "b"
    assert (await provider.complete(chat())).model == "a"  # the first is the default


@pytest.mark.anyio
async def test_embeddings_are_deterministic_unit_vectors() -> None:
    provider = Simulated(FAST)
    result = await provider.embed(EmbeddingRequest(input=["cat", "dog", "cat"]))
    cat, dog, cat_again = result.embeddings
    assert len(cat) == FAST.embedding_dimensions
    assert math.fsum(x * x for x in cat) == pytest.approx(1.0)
    assert cat == cat_again
    assert cat != dog
    again = await Simulated(msgspec.structs.replace(FAST, seed=99)).embed(
        EmbeddingRequest(input=["cat"], dimensions=8)
    )
    assert len(again.embeddings[0]) == 8
    assert result.usage is not None
    assert result.usage.prompt_tokens == 3


@pytest.mark.anyio
async def test_embedding_faults_and_quota() -> None:
    with pytest.raises(ServerError):
        await Simulated(msgspec.structs.replace(FAST, server_error_rate=1.0)).embed(
            EmbeddingRequest(input=["x"])
        )
    with pytest.raises(BadResponse):
        await Simulated(msgspec.structs.replace(FAST, truncated_rate=1.0)).embed(
            EmbeddingRequest(input=["x"])
        )
    limited = Simulated(msgspec.structs.replace(FAST, rpm=1))
    await limited.embed(EmbeddingRequest(input=["x"]))
    with pytest.raises(RateLimited):
        await limited.embed(EmbeddingRequest(input=["x"]))
    with pytest.raises(BadRequest):
        await limited.embed(EmbeddingRequest(input=[]))


@pytest.mark.anyio
async def test_list_models() -> None:
    provider = Simulated(msgspec.structs.replace(FAST, models=("m1", "m2")))
    models = await provider.list_models()
    assert models.ids() == ["m1", "m2"]
    assert models.models[0].owned_by == "limelight-sim"


def test_refused_requests_do_not_change_later_answers() -> None:
    # Request N's answer depends on (seed, N) only, not on what happened before it.
    free = SimEngine(FAST)
    capped = SimEngine(msgspec.structs.replace(FAST, max_concurrency=1))
    free_plans = [free.plan(chat()) for _ in range(3)]
    held = capped.plan(chat())
    refused = capped.plan(chat())
    capped.release(held)
    after = capped.plan(chat())
    assert [held.outcome, refused.outcome, after.outcome] == [
        Outcome.OK,
        Outcome.RATE_LIMITED,
        Outcome.OK,
    ]
    assert held.tokens == free_plans[0].tokens
    assert after.tokens == free_plans[2].tokens
    assert after.tokens != free_plans[1].tokens


@pytest.mark.parametrize(
    "anyio_backend",
    [pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio-mockclock")],
)
@pytest.mark.anyio
async def test_delays_and_quota_refill_follow_the_event_loops_clock() -> None:
    # Virtual time (trio's autojumping MockClock): the sleeps are exact and instant, and the
    # quota refills with the same clock, so simulated seconds cost no real ones.
    config = SimulatedConfig(
        ttft=2.0, ttft_jitter=0.0, tokens_per_second=10.0, output_tokens=11, rpm=60
    )
    provider = Simulated(config)
    start = anyio.current_time()
    result = await provider.complete(chat())
    assert anyio.current_time() - start == pytest.approx(3.0)  # ttft + 10 gaps of 0.1 s
    assert result.latency == pytest.approx(3.0)
    events = await collect(provider, chat())
    done = events[-1].result
    assert done is not None
    assert done.ttft == pytest.approx(2.0)
    # 60 per minute: the two requests' 6 virtual seconds refilled what they used. Empty
    # the bucket, and the next request must wait 1 s, virtual too.
    for _ in range(60):
        provider.engine.quota.try_acquire(1)
    with pytest.raises(RateLimited) as info:
        await provider.complete(chat())
    assert info.value.retry_after == pytest.approx(1.0)
    await anyio.sleep(1.0)
    assert (await provider.complete(chat(max_tokens=1))).finish_reason == "length"


# -- What the engine refuses (the in-process provider and the server alike) --------------


def test_a_long_tail_is_cut_at_the_output_cap() -> None:
    # Lengths this large overflowed (or asked for more tokens than memory holds) before.
    engine = SimEngine(
        msgspec.structs.replace(FAST, output_tokens=LogNormalLength(mean=1e300, sd=1e300))
    )
    lengths = {len(engine.plan(chat()).tokens) for _ in range(3)}
    assert lengths == {MAX_OUTPUT_TOKENS}


def tool_with(parameters: dict[str, Any]) -> ToolSpec:
    return ToolSpec(name="f", parameters=parameters)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("request_", "param", "says"),
    [
        (
            chat(tools=[tool_with({"type": "object", "required": 5})], tool_choice="required"),
            "tools[0].function.parameters",
            "'required' must be an array of strings",
        ),
        (
            chat(
                tools=[tool_with({"properties": {"x": {"minLength": 10**9}}})],
                tool_choice="required",
            ),
            "tools[0].function.parameters",
            "MAX_SCHEMA_STRING_LENGTH",
        ),
        (
            # In-process requests can hold what JSON cannot: refused, not crashed on.
            chat(tools=[tool_with({"properties": {"x": {"maximum": math.inf}}})]),
            "tools[0].function.parameters",
            "not a JSON number",
        ),
        (
            chat(tools=[tool_with({"enum": ({1, 2},)})]),
            "tools[0].function.parameters",
            "not JSON",
        ),
        (chat(max_tokens=MAX_OUTPUT_TOKENS + 1), "max_tokens", "MAX_OUTPUT_TOKENS"),
        (
            chat(
                response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": 3}}
            ),
            "response_format.json_schema.schema",
            "a schema must be an object or a boolean",
        ),
    ],
    ids=[
        "required-5",
        "minLength-1e9",
        "infinite-maximum",
        "a-set",
        "max_tokens",
        "response_format",
    ],
)
async def test_bad_requests_are_refused_in_process(
    request_: CompletionRequest, param: str, says: str
) -> None:
    with pytest.raises(BadRequest) as info:
        await Simulated(FAST).complete(request_)
    assert info.value.status_code == 400
    assert info.value.body is not None
    assert info.value.body["error"]["param"] == param
    assert says in info.value.body["error"]["message"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("dimensions", "says"),
    [(-3, ">= 1"), (0, ">= 1"), (MAX_EMBEDDING_DIMENSIONS + 1, "MAX_EMBEDDING_DIMENSIONS")],
)
async def test_embedding_dimensions_out_of_range_are_refused_in_process(
    dimensions: int, says: str
) -> None:
    # -3 gave empty vectors and 0 the default length before.
    with pytest.raises(BadRequest) as info:
        await Simulated(FAST).embed(EmbeddingRequest(input=["cat"], dimensions=dimensions))
    assert info.value.body is not None
    assert info.value.body["error"]["param"] == "dimensions"
    assert says in info.value.body["error"]["message"]


@pytest.mark.anyio
async def test_large_embeddings_are_computed_in_a_worker_thread_and_match() -> None:
    texts = [f"text {i}" for i in range(INLINE_EMBEDDING_VALUES // 64 + 1)]
    result = await Simulated(FAST).embed(EmbeddingRequest(input=texts, dimensions=64))
    assert len(texts) * 64 > INLINE_EMBEDDING_VALUES
    assert result.embeddings == [embed_text(text, 64) for text in texts]


def test_generated_arguments_honour_a_min_length_above_64() -> None:
    # Strings were cut at 64 characters whatever their minLength.
    engine = SimEngine(FAST)
    schema = {"type": "object", "properties": {"x": {"type": "string", "minLength": 300}}}
    plan = engine.plan(
        chat(tools=[tool_with(schema | {"required": ["x"]})], tool_choice="required")
    )
    assert len(json.loads(plan.tool_calls[0].arguments)["x"]) >= 300


# Schemas the generator is meant to satisfy: types, bounds (consistent ones), enums, consts,
# nested objects and arrays, anyOf; sizes now and then beyond the caps.
SIZES = st.integers(min_value=0, max_value=12) | st.sampled_from(
    [200, MAX_SCHEMA_ARRAY_ITEMS, MAX_SCHEMA_ARRAY_ITEMS + 1, MAX_SCHEMA_STRING_LENGTH]
)


@st.composite
def string_schemas(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": draw(st.sampled_from(["string", ["string", "null"]]))}
    low = draw(st.none() | SIZES)
    if low is not None:
        schema["minLength"] = low
    if draw(st.booleans()):
        schema["maxLength"] = (low or 0) + draw(st.integers(min_value=0, max_value=20))
    return schema


@st.composite
def integer_schemas(draw: st.DrawFn) -> dict[str, Any]:
    low, high = sorted(draw(st.lists(st.integers(), min_size=2, max_size=2)))
    schema: dict[str, Any] = {"type": "integer"}
    lower = draw(st.sampled_from([None, "minimum", "exclusiveMinimum"]))
    if lower is not None:
        schema[lower] = low - 1 if lower == "exclusiveMinimum" else low
    upper = draw(st.sampled_from([None, "maximum", "exclusiveMaximum"]))
    if upper is not None:
        schema[upper] = high + 1 if upper == "exclusiveMaximum" else high
    return schema


@st.composite
def number_schemas(draw: st.DrawFn) -> dict[str, Any]:
    finite = st.floats(min_value=-1e300, max_value=1e300)
    low, high = sorted(draw(st.lists(finite, min_size=2, max_size=2)))
    schema: dict[str, Any] = {"type": "number"}
    if draw(st.booleans()):
        schema["minimum"] = low
    if draw(st.booleans()):
        schema["maximum"] = high
    return schema


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)  # fmt: skip
LEAF_SCHEMAS = (
    string_schemas()
    | integer_schemas()
    | number_schemas()
    | st.sampled_from([{"type": "boolean"}, {"type": "null"}, {}])
    | st.builds(lambda values: {"enum": values}, st.lists(JSON_VALUES, min_size=1, max_size=4))
    | st.builds(lambda value: {"const": value}, JSON_VALUES)
)


@st.composite
def array_schemas(draw: st.DrawFn, items: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "items": draw(items)}
    low = draw(st.none() | SIZES)
    if low is not None:
        schema["minItems"] = low
    if draw(st.booleans()):
        schema["maxItems"] = (low or 0) + draw(st.integers(min_value=0, max_value=5))
    return schema


@st.composite
def object_schemas(draw: st.DrawFn, values: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    properties = draw(st.dictionaries(st.text(max_size=6), values, max_size=4))
    required = (
        draw(st.lists(st.sampled_from(sorted(properties)), unique=True)) if properties else []
    )
    return {"type": "object", "properties": properties, "required": required}


SCHEMAS = st.recursive(
    LEAF_SCHEMAS,
    lambda inner: (
        array_schemas(inner)
        | object_schemas(inner)
        | st.builds(lambda options: {"anyOf": options}, st.lists(inner, min_size=1, max_size=3))
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=SCHEMAS, seed=st.integers(min_value=0, max_value=2**32))
def test_generated_arguments_are_valid_and_within_the_cap_or_the_schema_is_refused(
    schema: dict[str, Any], seed: int
) -> None:
    parameters = {"type": "object", "properties": {"x": schema}, "required": ["x"]}
    request = chat(tools=[tool_with(parameters)], tool_choice="required")
    refusal = check_request(request, embedding_dimensions=FAST.embedding_dimensions)
    hypothesis.event("refused" if refusal is not None else "generated")
    if refusal is not None:
        # Only a cap refuses a schema built right, and the message names it.
        assert "(MAX_" in refusal["error"]["message"]
        return
    plan = SimEngine(msgspec.structs.replace(FAST, seed=seed)).plan(request)
    arguments = plan.tool_calls[0].arguments
    assert len(arguments.encode()) <= MAX_ARGUMENTS_LENGTH
    jsonschema.Draft202012Validator(parameters).validate(json.loads(arguments))
