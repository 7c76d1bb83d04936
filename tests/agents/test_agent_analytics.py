"""Agents, their tool executors and provider workers record a run's events by themselves
once analytics is initialized, linked into the agent tree: each event's parent is the one
that caused it, down into child agents called as tools."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from limelight import analytics
from limelight.agents import Agent
from limelight.schemas import ToolCall, Usage
from limelight.schemas._events import Event, EventType
from limelight.sinks import MemorySink
from limelight.testing import Reply, Scripted
from limelight.tools import tool

pytestmark = pytest.mark.anyio


@tool
async def add(a: int, b: int) -> int:
    """Add two numbers.

    :param a: the first.
    :param b: the second.
    """
    return a + b


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[MemorySink]:
    memory = MemorySink()
    config = analytics.AnalyticsConfig(spool_dir=str(tmp_path / "spool"), flush_interval=0.05)
    analytics.initialize(config=config, sinks=[memory])
    try:
        yield memory
    finally:
        analytics.shutdown(timeout=10)


def by_type(events: list[Event], kind: EventType) -> list[Event]:
    return [e for e in events if e.event_type == kind]


async def test_a_run_records_its_tree_of_events(sink: MemorySink) -> None:
    child = Agent(model=Scripted([Reply(text="child says 5", usage=Usage.of(4, 2))]), name="helper")
    parent = Agent(
        model=Scripted(
            [
                Reply(
                    tool_calls=[
                        ToolCall(id="c1", name="add", arguments='{"a": 2, "b": 3}'),
                        ToolCall(id="c2", name="helper", arguments='{"task": "say 5"}'),
                    ],
                    usage=Usage.of(10, 5),
                ),
                Reply(text="5, twice", usage=Usage.of(20, 3)),
            ]
        ),
        tools=[add, child.as_tool(description="A helper.")],
        name="boss",
    )
    result = await parent.run("Add 2 and 3, and ask the helper.")
    assert result.status == "completed"
    assert analytics.get_client().flush(timeout=10)
    events = sink.events
    ids = {e.event_id: e for e in events}
    assert len(ids) == len(events)

    inputs = by_type(events, EventType.USER_INPUT)
    root = next(e for e in inputs if e.parent_event_id is None)
    assert root.payload.text == "Add 2 and 3, and ask the helper."  # type: ignore[union-attr]
    # One run: every event of the tree carries the parent's run id.
    assert {e.run_id for e in events} == {root.run_id}

    # Three model calls (two of the parent, one of the child), each request with its
    # response under it, and the requests under their agent's run.
    requests = by_type(events, EventType.LLM_REQUEST)
    responses = by_type(events, EventType.LLM_RESPONSE)
    assert len(requests) == len(responses) == 3
    assert {r.parent_event_id for r in responses} == {r.event_id for r in requests}
    assert sorted(r.payload.input_tokens for r in responses) == [4, 10, 20]  # type: ignore[union-attr]

    # The two tool calls hang under the parent's run, each response under its call.
    tool_calls = by_type(events, EventType.TOOL_CALL)
    assert {c.payload.tool_name for c in tool_calls} == {"add", "helper"}  # type: ignore[union-attr]
    assert all(c.parent_event_id == root.event_id for c in tool_calls)
    tool_responses = by_type(events, EventType.TOOL_RESPONSE)
    assert {r.parent_event_id for r in tool_responses} == {c.event_id for c in tool_calls}
    results = {r.payload.tool_name: r.payload.result for r in tool_responses}  # type: ignore[union-attr]
    assert results == {"add": "5", "helper": "child says 5"}

    # The child's run starts under the parent's call of it.
    helper_call = next(c for c in tool_calls if c.payload.tool_name == "helper")  # type: ignore[union-attr]
    child_root = next(e for e in inputs if e.parent_event_id == helper_call.event_id)
    assert child_root.payload.text == "say 5"  # type: ignore[union-attr]
    child_request = next(r for r in requests if r.parent_event_id == child_root.event_id)
    assert child_request.payload.role == "helper"  # type: ignore[union-attr]

    # Each run ends with its agent's response, under its own start.
    finals = {e.payload.agent_name: e for e in by_type(events, EventType.AGENT_RESPONSE)}  # type: ignore[union-attr]
    assert finals["boss"].parent_event_id == root.event_id
    assert finals["boss"].payload.content == "5, twice"  # type: ignore[union-attr]
    assert finals["boss"].payload.turns == 2  # type: ignore[union-attr]
    assert finals["helper"].parent_event_id == child_root.event_id


async def test_a_failed_run_records_its_error(sink: MemorySink) -> None:
    from limelight.errors import BadRequest

    agent = Agent(
        model=Scripted([BadRequest("the prompt is malformed", status_code=400)]), name="solo"
    )
    result = await agent.run("hi")
    assert result.status == "error"
    assert analytics.get_client().flush(timeout=10)
    errors = by_type(sink.events, EventType.ERROR)
    assert errors
    assert any("the prompt is malformed" in e.payload.message for e in errors)  # type: ignore[union-attr]


async def test_nothing_is_recorded_without_analytics() -> None:
    assert analytics.current() is None
    result = await Agent(model=Scripted(["fine"])).run("hi")
    assert result.status == "completed"
