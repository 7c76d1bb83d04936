"""LimelightCallbackHandler on real langchain-core runnables, offline: its fake chat models
(real BaseChatModel subclasses that answer from a script), a real ``@tool``, prompt templates
and runnable sequences."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langchain_core.tools import tool

from limelight import analytics
from limelight.integrations import LimelightCallbackHandler
from limelight.schemas._events import Event, EventType
from limelight.sinks import MemorySink

from .conftest import by_type


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@tool
def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"tool failed: {reason}")


def _answer(text: str, inputs: int, outputs: int, cached: int = 0) -> AIMessage:
    return AIMessage(
        content=text,
        usage_metadata={
            "input_tokens": inputs,
            "output_tokens": outputs,
            "total_tokens": inputs + outputs,
            "input_token_details": {"cache_read": cached},
        },
    )


def _chain(model: Any) -> Runnable[dict[str, Any], str]:
    """prompt | model | parser, then a step that calls the real tool inside the chain."""

    def add_lengths(text: str, config: RunnableConfig) -> str:
        total = add.invoke({"a": len(text), "b": 1}, config=config)
        return f"{text} ({total})"

    prompt = ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "Say {word}.")])
    return prompt | model | StrOutputParser() | RunnableLambda(add_lengths, name="add_lengths")


def _check_chain_tree(events: list[Event], text: str) -> None:
    ids = {e.event_id: e for e in events}
    # One invoke is one run, and every parent link points at an event of that run.
    assert len({e.run_id for e in events}) == 1
    assert all(e.parent_event_id in ids for e in events if e.parent_event_id is not None)
    roots = [e for e in events if e.parent_event_id is None]
    assert len(roots) == 1
    root = roots[0]
    assert root.event_type == EventType.AGENT_PLANNING
    assert root.payload.agent_name == "RunnableSequence"  # type: ignore[union-attr]

    (request,) = by_type(events, EventType.LLM_REQUEST)
    assert request.parent_event_id == root.event_id
    assert request.payload.model == "generic-fake-chat-model"  # type: ignore[union-attr]
    assert request.payload.messages_count == 2  # type: ignore[union-attr]
    (response,) = by_type(events, EventType.LLM_RESPONSE)
    assert response.parent_event_id == request.event_id
    payload = response.payload
    assert (payload.input_tokens, payload.output_tokens, payload.cached_tokens) == (12, 4, 5)  # type: ignore[union-attr]
    assert payload.content == text  # type: ignore[union-attr]
    assert payload.latency is not None  # type: ignore[union-attr]

    # The tool ran inside the add_lengths step: its call hangs under that step.
    step = next(
        e
        for e in by_type(events, EventType.AGENT_PLANNING)
        if e.payload.agent_name == "add_lengths"  # type: ignore[union-attr]
    )
    (call,) = by_type(events, EventType.TOOL_CALL)
    assert call.parent_event_id == step.event_id
    assert call.payload.tool_name == "add"  # type: ignore[union-attr]
    assert call.payload.arguments == {"a": len(text), "b": 1}  # type: ignore[union-attr]
    (result,) = by_type(events, EventType.TOOL_RESPONSE)
    assert result.parent_event_id == call.event_id
    assert result.payload.result == len(text) + 1  # type: ignore[union-attr]
    assert not result.payload.is_error  # type: ignore[union-attr]

    # Every step that started ended, under its own start; the root's answer is the chain's.
    plans = by_type(events, EventType.AGENT_PLANNING)
    finals = by_type(events, EventType.AGENT_RESPONSE)
    assert {f.parent_event_id for f in finals} == {p.event_id for p in plans}
    final = next(f for f in finals if f.parent_event_id == root.event_id)
    assert final.payload.content == f"{text} ({len(text) + 1})"  # type: ignore[union-attr]
    assert not by_type(events, EventType.ERROR)


def test_a_sync_chain_records_its_tree(sink: MemorySink) -> None:
    model = GenericFakeChatModel(messages=iter([_answer("hello", 12, 4, cached=5)]))
    handler = LimelightCallbackHandler(user_id="u-1", session_id="s-1")
    out = _chain(model).invoke({"word": "hello"}, config={"callbacks": [handler]})
    assert out == "hello (6)"
    assert analytics.get_client().flush(timeout=10)
    events = sink.events
    _check_chain_tree(events, "hello")
    assert {e.user_id for e in events} == {"u-1"}
    assert {e.session_id for e in events} == {"s-1"}


@pytest.mark.anyio
async def test_an_async_chain_records_its_tree(sink: MemorySink, anyio_backend: str) -> None:
    """LangChain's async API is asyncio-only: on trio the chain runs its sync API in a worker
    thread, the way a trio app would call it."""
    model = GenericFakeChatModel(messages=iter([_answer("howdy", 12, 4, cached=5)]))
    handler = LimelightCallbackHandler()
    config: RunnableConfig = {"callbacks": [handler]}
    chain = _chain(model)
    if anyio_backend == "asyncio":
        out = await chain.ainvoke({"word": "howdy"}, config=config)
    else:
        out = await anyio.to_thread.run_sync(lambda: chain.invoke({"word": "howdy"}, config=config))
    assert out == "howdy (6)"
    assert await analytics.get_client().aflush(timeout=10)
    _check_chain_tree(sink.events, "howdy")


def test_separate_invokes_are_separate_runs_unless_a_run_id_is_given(sink: MemorySink) -> None:
    model = FakeListChatModel(responses=["one", "two"])
    handler = LimelightCallbackHandler()
    model.invoke("first", config={"callbacks": [handler]})
    model.invoke("second", config={"callbacks": [handler]})
    pinned = LimelightCallbackHandler(run_id="my-run", parent_event_id=uuid.UUID(int=7))
    model.invoke("third", config={"callbacks": [pinned]})
    assert analytics.get_client().flush(timeout=10)
    requests = by_type(sink.events, EventType.LLM_REQUEST)
    assert len(requests) == 3
    assert requests[0].run_id != requests[1].run_id
    assert requests[2].run_id == "my-run"
    assert requests[2].parent_event_id == uuid.UUID(int=7)
    responses = by_type(sink.events, EventType.LLM_RESPONSE)
    assert [r.payload.content for r in responses] == ["one", "two", "one"]  # type: ignore[union-attr]
    assert [r.payload.model for r in responses] == ["fake-list-chat-model"] * 3  # type: ignore[union-attr]


def test_tool_calls_in_an_answer_are_counted(sink: MemorySink) -> None:
    message = AIMessage(
        content="", tool_calls=[{"name": "add", "args": {"a": 1, "b": 2}, "id": "call-1"}]
    )
    model = GenericFakeChatModel(messages=iter([message]))
    handler = LimelightCallbackHandler()
    answer = model.invoke("add 1 and 2", config={"callbacks": [handler]})
    # The model's tool call, run through the real tool as an agent loop would.
    tool_message = add.invoke(answer.tool_calls[0], config={"callbacks": [handler]})
    assert tool_message.content == "3"
    assert analytics.get_client().flush(timeout=10)
    (response,) = by_type(sink.events, EventType.LLM_RESPONSE)
    assert response.payload.tool_calls_count == 1  # type: ignore[union-attr]
    (call,) = by_type(sink.events, EventType.TOOL_CALL)
    assert call.payload.tool_call_id == "call-1"  # type: ignore[union-attr]
    (result,) = by_type(sink.events, EventType.TOOL_RESPONSE)
    assert result.payload.tool_call_id == "call-1"  # type: ignore[union-attr]
    assert result.payload.result == "3"  # type: ignore[union-attr]


class _BrokenChatModel(GenericFakeChatModel):
    """A chat model whose backend fails (the error path of a real BaseChatModel)."""

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        raise ConnectionError("backend unreachable")


def test_errors_are_recorded_under_what_failed(sink: MemorySink) -> None:
    handler = LimelightCallbackHandler()
    model = _BrokenChatModel(messages=iter([]))
    with pytest.raises(ConnectionError, match="backend unreachable"):
        model.invoke("hi", config={"callbacks": [handler]})
    with pytest.raises(RuntimeError, match="tool failed: because"):
        explode.invoke({"reason": "because"}, config={"callbacks": [handler]})
    assert analytics.get_client().flush(timeout=10)
    events = sink.events

    (request,) = by_type(events, EventType.LLM_REQUEST)
    assert not by_type(events, EventType.LLM_RESPONSE)
    (error,) = by_type(events, EventType.ERROR)
    assert error.parent_event_id == request.event_id
    assert error.payload.error_type == "ConnectionError"  # type: ignore[union-attr]
    assert "backend unreachable" in error.payload.message  # type: ignore[union-attr]

    (call,) = by_type(events, EventType.TOOL_CALL)
    (result,) = by_type(events, EventType.TOOL_RESPONSE)
    assert result.parent_event_id == call.event_id
    assert result.payload.is_error  # type: ignore[union-attr]
    assert "tool failed: because" in result.payload.result  # type: ignore[union-attr]


def test_a_failing_chain_step_records_an_error_under_the_step(sink: MemorySink) -> None:
    def boom(text: str) -> str:
        raise ValueError(f"cannot use {text!r}")

    chain = FakeListChatModel(responses=["x"]) | StrOutputParser() | RunnableLambda(boom)
    with pytest.raises(ValueError, match="cannot use 'x'"):
        chain.invoke("go", config={"callbacks": [LimelightCallbackHandler()]})
    assert analytics.get_client().flush(timeout=10)
    events = sink.events
    step = next(
        e
        for e in by_type(events, EventType.AGENT_PLANNING)
        if e.payload.agent_name == "boom"  # type: ignore[union-attr]
    )
    errors = by_type(events, EventType.ERROR)
    # The step and the sequence around it both failed, each recorded under its own start.
    assert {e.parent_event_id for e in errors} == {
        step.event_id,
        next(e for e in events if e.parent_event_id is None).event_id,
    }
    assert all(e.payload.error_type == "ValueError" for e in errors)  # type: ignore[union-attr]


def test_a_given_client_is_used_and_nothing_is_recorded_without_one(tmp_path: Path) -> None:
    # Not initialized: the chain runs as usual and the handler records nothing.
    assert analytics.current() is None
    model = FakeListChatModel(responses=["quiet"])
    assert model.invoke("hi", config={"callbacks": [LimelightCallbackHandler()]}).content == "quiet"

    memory = MemorySink()
    config = analytics.AnalyticsConfig(spool_dir=str(tmp_path / "spool"), flush_interval=0.05)
    client = analytics.initialize(config=config, sinks=[memory])
    try:
        handler = LimelightCallbackHandler(client=client)
        model.invoke("hi", config={"callbacks": [handler]})
        assert client.flush(timeout=10)
        kinds = [e.event_type for e in memory.events]
        assert kinds == [EventType.LLM_REQUEST, EventType.LLM_RESPONSE]
    finally:
        analytics.shutdown(timeout=10)


@pytest.fixture(autouse=True)
def _no_leftover_client() -> Iterator[None]:
    yield
    assert analytics.current() is None


def test_a_streamed_answer_records_its_time_to_first_token(sink: MemorySink) -> None:
    model = GenericFakeChatModel(messages=iter([_answer("one two three", 3, 3)]))
    handler = LimelightCallbackHandler()
    chunks = [c.content for c in model.stream("count", config={"callbacks": [handler]})]
    assert "".join(chunks) == "one two three"  # type: ignore[arg-type]
    assert len(chunks) > 1
    assert analytics.get_client().flush(timeout=10)
    (response,) = by_type(sink.events, EventType.LLM_RESPONSE)
    assert response.payload.content == "one two three"  # type: ignore[union-attr]
    ttft, latency = response.payload.ttft, response.payload.latency  # type: ignore[union-attr]
    assert ttft is not None
    assert latency is not None
    assert 0 <= ttft <= latency


def test_tool_arguments_and_results_that_json_cannot_carry_are_recorded(
    sink: MemorySink,
) -> None:
    """Arguments and results are reduced to JSON (objects as their repr, long text cut), so
    the event still reaches a sink that encodes it."""

    class Point:
        def __repr__(self) -> str:
            return "Point(1, 2)"

    @tool
    def echo(text: str) -> dict[str, object]:
        """Echo."""
        return {"where": Point(), "text": text * 3000}

    echo.invoke({"text": "ab"}, config={"callbacks": [LimelightCallbackHandler()]})
    assert analytics.get_client().flush(timeout=10)
    (result,) = by_type(sink.events, EventType.TOOL_RESPONSE)
    payload = result.payload.result  # type: ignore[union-attr]
    assert payload["where"] == "Point(1, 2)"
    assert len(payload["text"]) < 4100
    assert payload["text"].endswith("…")
