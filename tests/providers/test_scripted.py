"""The Scripted test double: replies in order, every kind of item, streams, recording."""

from __future__ import annotations

import math

import anyio
import anyio.lowlevel
import pytest

from limelight.errors import ConfigError, ProviderConnectionError, ProviderTimeout, RateLimited
from limelight.providers import Provider
from limelight.providers._scripted import Reply, Scripted, ScriptExhausted, split_tokens
from limelight.schemas import (
    CompletionRequest,
    CompletionResult,
    EmbeddingRequest,
    Message,
    StreamEvent,
    StreamEventType,
    ToolCall,
    Usage,
)


def ask(text: str = "hi", **kwargs: object) -> CompletionRequest:
    return CompletionRequest(messages=[Message.user(text)], **kwargs)  # type: ignore[arg-type]


async def collect(provider: Scripted, request: CompletionRequest) -> list[StreamEvent]:
    return [event async for event in provider.stream(request)]


WEATHER = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
SEARCH = ToolCall(id="call_2", name="search", arguments='{"q": "x"}')


def test_scripted_is_a_provider() -> None:
    assert isinstance(Scripted([]), Provider)


@pytest.mark.anyio
async def test_text_replies_in_order_and_requests_recorded() -> None:
    provider = Scripted(["one", "two"])
    first = await provider.complete(ask("a"))
    assert provider.remaining == 1
    second = await provider.complete(ask("b"))
    assert (first.content, second.content) == ("one", "two")
    assert first.finish_reason == "stop"
    assert first.model == "scripted"
    assert first.provider == "scripted"
    assert (first.id, second.id) == ("scripted-1", "scripted-2")
    assert [r.messages[0].content for r in provider.requests] == ["a", "b"]
    assert provider.remaining == 0


@pytest.mark.anyio
async def test_exhausted_script_raises_a_clear_config_error() -> None:
    provider = Scripted(["only"])
    await provider.complete(ask())
    with pytest.raises(ScriptExhausted) as info:
        await provider.complete(ask())
    assert isinstance(info.value, ConfigError)
    assert info.value.scripted == 1
    assert info.value.request_number == 2
    assert "request #2 but only 1 reply was scripted" in str(info.value)
    assert "callable" in str(info.value)
    with pytest.raises(ScriptExhausted, match="only 0 replies were scripted"):
        await collect(Scripted([]), ask())


@pytest.mark.anyio
async def test_usage_is_deterministic() -> None:
    result = await Scripted(["a b c"]).complete(ask("12345678"))
    assert result.usage == Usage.of(2, 3)  # 8 characters / 4; three words
    tool = await Scripted([WEATHER]).complete(ask("12345678"))
    # name: 11 chars -> 3, arguments: 17 chars -> 5
    assert tool.usage == Usage.of(2, 8)


@pytest.mark.anyio
async def test_tool_call_items() -> None:
    provider = Scripted([WEATHER, [WEATHER, SEARCH], (SEARCH,)])
    single = await provider.complete(ask())
    assert single.tool_calls == [WEATHER]
    assert single.content is None
    assert single.finish_reason == "tool_calls"
    assert (await provider.complete(ask())).tool_calls == [WEATHER, SEARCH]
    assert (await provider.complete(ask())).tool_calls == [SEARCH]


@pytest.mark.anyio
async def test_reply_controls_every_detail() -> None:
    usage = Usage.of(100, 7)
    provider = Scripted(
        [
            Reply(text="calling", tool_calls=[SEARCH], finish_reason="length", usage=usage),
            Reply(text="plain"),
        ]
    )
    result = await provider.complete(ask())
    assert result.content == "calling"
    assert result.tool_calls == [SEARCH]
    assert result.finish_reason == "length"
    assert result.usage == usage
    assert (await provider.complete(ask())).finish_reason == "stop"


@pytest.mark.anyio
async def test_completion_result_is_returned_as_given() -> None:
    given = CompletionResult(content="exact", model="m", finish_reason="stop", latency=0.5)
    assert await Scripted([given]).complete(ask()) == given


@pytest.mark.anyio
async def test_exception_items_are_raised_and_consume_a_turn() -> None:
    error = RateLimited("slow down", status_code=429, retry_after=1.5)
    provider = Scripted([error, "after"])
    with pytest.raises(RateLimited) as info:
        await provider.complete(ask())
    assert info.value is error
    assert info.value.retry_after == 1.5
    assert (await provider.complete(ask())).content == "after"
    streamed: list[StreamEvent] = []
    with pytest.raises(ValueError, match="boom"):
        await drain(Scripted([ValueError("boom")]), ask(), streamed)
    assert streamed == []


async def drain(provider: Scripted, request: CompletionRequest, into: list[StreamEvent]) -> None:
    async for event in provider.stream(request):
        into.append(event)


@pytest.mark.anyio
async def test_sync_and_async_callables_answer_every_request() -> None:
    def echo(request: CompletionRequest) -> str:
        return f"echo: {request.messages[-1].content}"

    async def shout(request: CompletionRequest) -> Reply:
        await anyio.lowlevel.checkpoint()
        return Reply(text=str(request.messages[-1].content).upper())

    sync_provider = Scripted(echo)
    assert sync_provider.remaining is None
    results = [await sync_provider.complete(ask(str(i))) for i in range(5)]
    assert [r.content for r in results] == [f"echo: {i}" for i in range(5)]
    assert (await Scripted(shout).complete(ask("hey"))).content == "HEY"
    events = await collect(Scripted(shout), ask("a b"))
    assert events[-1].result is not None
    assert events[-1].result.content == "A B"


@pytest.mark.anyio
async def test_stream_splits_tokens_keeping_whitespace() -> None:
    text = "Hello,  world!\nHow are\tyou?  "
    events = await collect(Scripted([text]), ask())
    tokens = [e.content for e in events if e.type is StreamEventType.TOKEN]
    assert tokens == ["Hello,", "  world!", "\nHow", " are", "\tyou?", "  "]
    assert "".join(t or "" for t in tokens) == text
    assert [e.type for e in events[-2:]] == [StreamEventType.USAGE, StreamEventType.DONE]
    done = events[-1].result
    assert done is not None
    assert done.content == text
    assert done.usage == events[-2].usage
    assert done.ttft is not None
    assert done.latency is not None


@pytest.mark.anyio
async def test_stream_of_tool_calls_and_text() -> None:
    events = await collect(
        Scripted([Reply(text="let me check", tool_calls=[WEATHER, SEARCH])]), ask()
    )
    assert [e.type for e in events] == [
        StreamEventType.TOKEN,
        StreamEventType.TOKEN,
        StreamEventType.TOKEN,
        StreamEventType.TOOL_CALL,
        StreamEventType.TOOL_CALL,
        StreamEventType.USAGE,
        StreamEventType.DONE,
    ]
    assert [e.tool_call for e in events[3:5]] == [WEATHER, SEARCH]


@pytest.mark.anyio
async def test_token_delay_lets_other_tasks_run_between_tokens() -> None:
    provider = Scripted(["a b c d"], token_delay=0.001)
    order: list[str] = []

    async def ticker() -> None:
        while len(order) < 12:
            order.append("tick")
            await anyio.sleep(0.0005)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        async for event in provider.stream(ask()):
            if event.type is StreamEventType.TOKEN:
                order.append(str(event.content).strip())
        tg.cancel_scope.cancel()
    words = [o for o in order if o != "tick"]
    assert words == ["a", "b", "c", "d"]
    # Something else ran between the first and last token.
    assert "tick" in order[order.index("a") : order.index("d")]


@pytest.mark.anyio
async def test_requests_are_recorded_in_call_order_when_concurrent() -> None:
    provider = Scripted(lambda request: str(request.metadata["n"]))
    results: dict[int, str | None] = {}

    async def call(n: int) -> None:
        results[n] = (await provider.complete(ask(metadata={"n": str(n)}))).content

    async with anyio.create_task_group() as tg:
        for n in range(10):
            tg.start_soon(call, n)
    assert results == {n: str(n) for n in range(10)}
    assert sorted(r.metadata["n"] for r in provider.requests) == [str(n) for n in range(10)]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"Scripted\(\['hello'\]\)"):
        Scripted("hello")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Scripted([], delay=-1)


@pytest.mark.anyio
async def test_unknown_item_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="reply #1 is a int"):
        await Scripted([42]).complete(ask())  # type: ignore[list-item]


@pytest.mark.anyio
async def test_embed_and_list_models() -> None:
    provider = Scripted([], model="tiny", embedding_dimensions=4)
    result = await provider.embed(EmbeddingRequest(input=["x", "y", "x"]))
    assert len(result.embeddings) == 3
    assert all(len(v) == 4 for v in result.embeddings)
    assert result.embeddings[0] == result.embeddings[2]
    assert result.embeddings[0] != result.embeddings[1]
    assert math.fsum(v * v for v in result.embeddings[1]) == pytest.approx(1.0)
    assert result.model == "tiny"
    assert len(provider.embed_requests) == 1
    assert (await provider.list_models()).ids() == ["tiny"]
    await provider.aclose()


def test_split_tokens_round_trips() -> None:
    for text in ("", " ", "a", " a ", "a\n\nb", "  lead and trail  "):
        assert "".join(split_tokens(text)) == text
    assert split_tokens("") == []


@pytest.mark.anyio
async def test_it_bounds_its_own_attempts() -> None:
    # A ProviderWorker leaves the attempt's timing to it (no cancel scope of its own).
    assert Scripted(["x"]).bounds_attempts is True


@pytest.mark.anyio
@pytest.mark.parametrize("script", ["list", "async"])
async def test_total_timeout_bounds_a_slow_reply(script: str) -> None:
    async def slow(request: CompletionRequest) -> str:
        await anyio.sleep(5)
        return "late"

    provider = Scripted(["late"], delay=5) if script == "list" else Scripted(slow)
    # Well before the reply's 5 s: the bound ended the wait.
    with anyio.fail_after(3), pytest.raises(ProviderTimeout, match=r"within 0\.05 s"):
        await provider.complete(ask(), total_timeout=0.05)
    # A reply within the bound is answered as usual.
    quick = Scripted(["on time"], delay=0.01)
    result = await quick.complete(ask(), total_timeout=1)
    assert result.content == "on time"


@pytest.mark.anyio
@pytest.mark.parametrize("script", ["list", "async"])
async def test_aclose_ends_the_calls_waiting_for_their_replies(script: str) -> None:
    started = anyio.Event()

    async def slow(request: CompletionRequest) -> str:
        started.set()
        await anyio.sleep(10)
        return "never"

    provider = Scripted(["never"], delay=10) if script == "list" else Scripted(slow)
    errors: list[BaseException] = []
    answers: list[str | None] = []

    async def call() -> None:
        try:
            answers.append((await provider.complete(ask(), total_timeout=60)).content)
        except ProviderConnectionError as exc:
            errors.append(exc)

    with anyio.fail_after(3):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            if script == "async":
                await started.wait()
            else:
                await anyio.sleep(0.05)
            await provider.aclose()
    assert answers == []
    assert len(errors) == 1
    assert "closed" in str(errors[0])
    # Closing does not end the provider: it answers again.
    again = Scripted(["again"])
    await again.aclose()
    assert (await again.complete(ask(), total_timeout=1)).content == "again"
