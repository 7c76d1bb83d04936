"""Decorators (track_llm_call, track_tool_use, track_agent_step) on sync and async functions,
and the Tracker context manager (sync and async): the events, their parent links, and the
user's exceptions passing through unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from limelight import analytics
from limelight.analytics import (
    AnalyticsClient,
    AnalyticsConfig,
    Tracker,
    track_agent_step,
    track_llm_call,
    track_tool_use,
)
from limelight.schemas import CompletionResult, Event, EventType, Usage, encode_events
from limelight.sinks import MemorySink


class Recorded:
    def __init__(self, client: AnalyticsClient, sink: MemorySink) -> None:
        self.client = client
        self.sink = sink

    def events(self) -> list[Event]:
        assert self.client.flush(10)
        events = self.sink.events
        encode_events(events)  # everything recorded is valid JSON
        return events

    def types(self) -> list[EventType]:
        return [e.event_type for e in self.events()]


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[Recorded]:
    sink = MemorySink()
    cfg = AnalyticsConfig(spool_dir=str(tmp_path), flush_interval=0.02)
    client = analytics.initialize(config=cfg, sinks=[sink])
    yield Recorded(client, sink)
    analytics.shutdown(5)


def openai_shaped(content: str) -> dict[str, Any]:
    return {
        "choices": [{"message": {"content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7},
    }


def test_track_llm_call_sync(recorded: Recorded) -> None:
    @track_llm_call("gpt-4o", "openai")
    def ask(messages: list[dict[str, str]]) -> dict[str, Any]:
        return openai_shaped("four")

    assert ask(messages=[{"role": "user", "content": "2+2?"}]) == openai_shaped("four")
    request, response = recorded.events()
    assert request.event_type is EventType.LLM_REQUEST
    assert request.payload.messages_count == 1  # type: ignore[union-attr]
    assert response.event_type is EventType.LLM_RESPONSE
    assert response.parent_event_id == request.event_id
    p = response.payload
    assert (p.model, p.provider, p.input_tokens, p.output_tokens) == ("gpt-4o", "openai", 11, 7)  # type: ignore[union-attr]
    assert p.content == "four"  # type: ignore[union-attr]
    assert p.finish_reason == "stop"  # type: ignore[union-attr]
    assert p.latency is not None  # type: ignore[union-attr]
    assert p.latency >= 0  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_track_llm_call_async_with_a_completion_result(recorded: Recorded) -> None:
    @track_llm_call("scripted", "limelight")
    async def ask(prompt: str) -> CompletionResult:
        return CompletionResult(content=prompt.upper(), usage=Usage.of(3, 2), cost=0.0125)

    result = await ask("hi")
    assert result.content == "HI"
    _, response = recorded.events()
    p = response.payload
    assert (p.input_tokens, p.output_tokens, p.cost, p.content) == (3, 2, 0.0125, "HI")  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_the_users_exception_is_reraised_unchanged(recorded: Recorded) -> None:
    failure = ValueError("the model is down")

    @track_llm_call("m", "p")
    async def ask() -> str:
        raise failure

    @track_tool_use("lookup", "search")
    def lookup(query: str) -> str:
        raise failure

    with pytest.raises(ValueError) as async_info:
        await ask()
    assert async_info.value is failure
    with pytest.raises(ValueError) as sync_info:
        lookup("x")
    assert sync_info.value is failure
    events = recorded.events()
    types = [e.event_type for e in events]
    assert types == [
        EventType.LLM_REQUEST,
        EventType.ERROR,
        EventType.TOOL_CALL,
        EventType.ERROR,
        EventType.TOOL_RESPONSE,
    ]
    llm_error = events[1]
    assert llm_error.parent_event_id == events[0].event_id
    assert llm_error.payload.error_type == "ValueError"  # type: ignore[union-attr]
    assert llm_error.payload.message == "the model is down"  # type: ignore[union-attr]
    assert events[4].payload.is_error  # type: ignore[union-attr]


def test_track_tool_use_records_arguments_without_secrets(recorded: Recorded) -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<Opaque>"

    @track_tool_use("weather", "http")
    def weather(city: str, api_key: str, extra: object = None) -> dict[str, Any]:
        return {"city": city, "temp": 21}

    assert weather("Paris", api_key="sk-live-1234567890abcdef", extra=Opaque()) == {
        "city": "Paris",
        "temp": 21,
    }
    call, response = recorded.events()
    assert call.payload.tool_name == "weather"  # type: ignore[union-attr]
    assert call.payload.tool_type == "http"  # type: ignore[union-attr]
    assert call.payload.arguments == {  # type: ignore[union-attr]
        "city": "Paris",
        "api_key": "[redacted]",
        "extra": "<Opaque>",
    }
    assert response.parent_event_id == call.event_id
    assert response.payload.result == {"city": "Paris", "temp": 21}  # type: ignore[union-attr]
    assert response.payload.duration is not None  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_agent_step_is_the_parent_of_what_it_calls(recorded: Recorded) -> None:
    @track_tool_use("add")
    async def add(a: int, b: int) -> int:
        return a + b

    @track_agent_step("plan-and-add")
    async def step(x: int) -> int:
        return await add(x, 1)

    assert await step(41) == 42
    events = recorded.events()
    assert [e.event_type for e in events] == [
        EventType.AGENT_REASONING,
        EventType.TOOL_CALL,
        EventType.TOOL_RESPONSE,
        EventType.FUNCTION_EXECUTION,
    ]
    start, call, response, done = events
    assert call.parent_event_id == start.event_id
    assert response.parent_event_id == call.event_id
    assert done.parent_event_id == start.event_id
    assert done.payload.function_name == "plan-and-add"  # type: ignore[union-attr]
    assert done.payload.arguments == {"x": 41}  # type: ignore[union-attr]
    assert done.payload.result == 42  # type: ignore[union-attr]


def test_sync_agent_step_records_its_error(recorded: Recorded) -> None:
    @track_agent_step("explode")
    def step() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError):
        step()
    events = recorded.events()
    assert [e.event_type for e in events] == [
        EventType.AGENT_REASONING,
        EventType.ERROR,
        EventType.FUNCTION_EXECUTION,
    ]
    assert events[2].payload.error == "KeyError: 'missing'"  # type: ignore[union-attr]


def test_without_a_client_the_decorators_just_call_through() -> None:
    assert analytics.current() is None

    @track_llm_call("m")
    def f(x: int) -> int:
        return x * 2

    assert f(21) == 42
    with Tracker(user_id="nobody") as t:
        assert t.log_user_input("hi") is not None


def test_tracker_sync(recorded: Recorded) -> None:
    with Tracker(user_id="u-7", metadata={"channel": "web"}) as tracker:
        question = tracker.log_user_input("What is 2 + 2?")
        with tracker.track_llm_call("gpt-4o", "openai", messages=[{}, {}]) as call:
            call.record(input_tokens=12, output_tokens=3, content="4", cost=0.001)
        with tracker.track_tool_call("calculator", {"expr": "2+2"}) as tool:
            tool.record(4)

        @track_tool_use("inner")
        def inner() -> str:
            return "ok"

        inner()
        answer = tracker.log_agent_response("4", parent_event_id=question)
    events = recorded.events()
    assert [e.event_type for e in events] == [
        EventType.SESSION_START,
        EventType.USER_INPUT,
        EventType.LLM_REQUEST,
        EventType.LLM_RESPONSE,
        EventType.TOOL_CALL,
        EventType.TOOL_RESPONSE,
        EventType.TOOL_CALL,
        EventType.TOOL_RESPONSE,
        EventType.AGENT_RESPONSE,
        EventType.SESSION_END,
    ]
    assert {e.run_id for e in events} == {tracker.run_id}  # decorated calls joined the run
    assert {e.user_id for e in events} == {"u-7"}
    by_id = {e.event_id: e for e in events}
    assert by_id[question].event_type is EventType.USER_INPUT
    assert by_id[answer].parent_event_id == question
    request, response = events[2], events[3]
    assert response.parent_event_id == request.event_id
    assert request.payload.messages_count == 2  # type: ignore[union-attr]
    assert response.payload.output_tokens == 3  # type: ignore[union-attr]
    assert events[5].payload.result == 4  # type: ignore[union-attr]
    assert events[-1].payload.status == "ok"  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_tracker_async_records_an_error_and_reraises(recorded: Recorded) -> None:
    failure = RuntimeError("tool blew up")
    with pytest.raises(RuntimeError) as info:
        async with Tracker(user_id="u-8") as tracker, tracker.track_tool_call("flaky"):
            raise failure
    assert info.value is failure
    events = recorded.events()
    assert [e.event_type for e in events] == [
        EventType.SESSION_START,
        EventType.TOOL_CALL,
        EventType.ERROR,
        EventType.TOOL_RESPONSE,
        EventType.ERROR,
        EventType.SESSION_END,
    ]
    assert events[3].payload.is_error  # type: ignore[union-attr]
    assert events[-1].payload.status == "error"  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_tracker_llm_call_async_with_a_response_object(recorded: Recorded) -> None:
    async with Tracker(session_id="s-9") as tracker, tracker.track_llm_call("m", "p") as call:
        call.record(CompletionResult(content="done", usage=Usage.of(5, 1)))
    events = recorded.events()
    assert {e.session_id for e in events} == {"s-9"}
    response = events[2]
    assert response.event_type is EventType.LLM_RESPONSE
    assert (response.payload.input_tokens, response.payload.content) == (5, "done")  # type: ignore[union-attr]
