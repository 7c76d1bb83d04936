"""Every backend through the same checks: complete, stream (tokens, then DONE with the
assembled result), tool calls where supported (a clear error where not), errors as the
project's typed errors, and cancellation mid-generation leaving no thread or task behind."""

from __future__ import annotations

import json
import threading

import anyio
import pytest

from limelight.errors import BadRequest
from limelight.schemas import CompletionResult, StreamEvent, StreamEventType

from .conftest import ADD, Case

pytestmark = pytest.mark.anyio


def generation_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("limelight-")]


async def collect(case: Case, request: object) -> list[StreamEvent]:
    async with case.make() as provider:
        return [event async for event in provider.stream(request)]  # type: ignore[arg-type]


def check_result(result: CompletionResult, provider_name: str) -> None:
    assert isinstance(result.content, str)
    assert result.content
    assert result.finish_reason in ("stop", "length")
    assert result.provider == provider_name
    assert result.usage is not None
    assert result.usage.completion_tokens > 0
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    assert result.latency is not None
    assert result.latency >= 0


async def test_complete_answers_with_text_and_usage(case: Case) -> None:
    async with case.make() as provider:
        result = await provider.complete(case.request)
        check_result(result, provider.name)
        assert not result.tool_calls


async def test_stream_yields_tokens_then_one_done_with_the_assembled_result(case: Case) -> None:
    async with case.make() as provider:
        events = [event async for event in provider.stream(case.request)]
        name = provider.name
    kinds = [e.type for e in events]
    assert kinds[-1] is StreamEventType.DONE
    assert kinds.count(StreamEventType.DONE) == 1
    tokens = [e.content for e in events if e.type is StreamEventType.TOKEN]
    assert tokens
    assert all(tokens)
    first_other = next(i for i, k in enumerate(kinds) if k is not StreamEventType.TOKEN)
    assert all(k is StreamEventType.TOKEN for k in kinds[:first_other])
    assert StreamEventType.TOKEN not in kinds[first_other:], "a token came after the end events"
    result = events[-1].result
    assert result is not None
    check_result(result, name)
    assert result.content == "".join(t for t in tokens if t)
    usage = [e.usage for e in events if e.type is StreamEventType.USAGE]
    assert usage == [result.usage]
    assert result.ttft is not None
    assert result.ttft <= result.latency


async def test_tool_calls_where_supported_and_a_clear_error_where_not(case: Case) -> None:
    async with case.make() as provider:
        if case.tool_request is None:
            from limelight.schemas import CompletionRequest

            with pytest.raises(BadRequest, match="tool calls"):
                await provider.complete(
                    CompletionRequest(messages=case.request.messages, tools=[ADD])
                )
            return
        result = await provider.complete(case.tool_request)
        events = [event async for event in provider.stream(case.tool_request)]
    assert [c.name for c in result.tool_calls] == ["add"]
    assert result.finish_reason == "tool_calls"
    arguments = json.loads(result.tool_calls[0].arguments)
    assert set(arguments) >= {"a", "b"}
    calls = [e.tool_call for e in events if e.type is StreamEventType.TOOL_CALL]
    done = events[-1].result
    assert done is not None
    assert events[-1].type is StreamEventType.DONE
    assert calls == done.tool_calls
    assert [c.name for c in done.tool_calls] == ["add"]
    assert all(json.loads(c.arguments) for c in done.tool_calls)


async def test_errors_are_the_projects_typed_errors(case: Case) -> None:
    async with case.make() as provider:
        with pytest.raises(case.error) as complete_error:
            await provider.complete(case.error_request)
        with pytest.raises(case.error):
            async for _ in provider.stream(case.error_request):
                pass
        # The backend is still usable after an error.
        check_result(await provider.complete(case.request), provider.name)
    assert str(complete_error.value)


async def test_cancelling_mid_generation_stops_it_and_the_next_call_works(case: Case) -> None:
    before = set(generation_threads())
    async with case.make() as provider:
        received: list[str] = []
        with anyio.CancelScope() as scope:
            stream = provider.stream(case.long_request)
            try:
                async for event in stream:
                    if event.type is StreamEventType.TOKEN:
                        received.append(event.content or "")
                    if len(received) == 3:
                        scope.cancel()
                    assert event.type is not StreamEventType.DONE, "the answer was not long"
            finally:
                await stream.aclose()  # type: ignore[attr-defined]
        # Stopped soon after the cancel (tokens already read may still come), far from the
        # answer's end (hundreds of tokens), and without a DONE (asserted in the loop).
        assert scope.cancelled_caught
        assert 3 <= len(received) < 150
        # No generation thread outlives the cancelled stream.
        assert set(generation_threads()) <= before
        check_result(await provider.complete(case.request), provider.name)
    assert set(generation_threads()) <= before


async def test_many_concurrent_calls_all_answer(case: Case) -> None:
    async with case.make() as provider:
        results: list[CompletionResult] = []

        async def one() -> None:
            results.append(await provider.complete(case.request))

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(one)
    assert len(results) == 4
    for result in results:
        check_result(result, provider.name)
