"""An agent used inside the caller's Runtime joins it (no runtime of its own); the calls of
a run, child agents' included, count under the caller's usage_run."""

from __future__ import annotations

import pytest

from limelight.agents import Agent
from limelight.runtime import Runtime, current_runtime
from limelight.schemas import ToolCall, Usage
from limelight.testing import Reply, Scripted
from limelight.usage import get_run_usage, get_usage_summary, reset_usage, usage_run

pytestmark = pytest.mark.anyio


async def test_an_agent_run_inside_a_runtime_lives_in_it() -> None:
    agent = Agent(model=Scripted(["first", "second"]))
    async with Runtime() as rt:
        assert current_runtime() is rt
        result = await agent.run("hi")
        assert result.content == "first"
        # Spawned in the caller's runtime: in its tree, at its own name.
        assert agent.ref is not None
        assert agent.ref.path == "/agent"
        assert [c.name for c in rt.tree().children] == ["agent"]
        # The second run goes to the same actor and continues the conversation.
        again = await agent.run("more")
        assert again.content == "second"
        assert [m.role for m in again.conversation.messages] == [
            "user",
            "assistant",
            "user",
            "assistant",
        ]
    assert agent.ref is None  # stopped with the runtime


async def test_agents_sharing_a_name_get_numbered_paths() -> None:
    one = Agent(model=Scripted(["a"]))
    two = Agent(model=Scripted(["b"]))
    async with Runtime() as rt:
        assert (await one.run("x")).content == "a"
        assert (await two.run("x")).content == "b"
        assert one.ref is not None
        assert two.ref is not None
        paths = {one.ref.path, two.ref.path}
        assert "/agent" in paths
        assert len(paths) == 2
        assert len(rt.tree().children) == 2


async def test_a_stream_inside_a_runtime_needs_no_async_with() -> None:
    agent = Agent(model=Scripted(["streamed words"]))
    async with Runtime():
        events = [e async for e in agent.stream("go")]
    assert events[-1].result is not None
    assert events[-1].result.content == "streamed words"


async def test_without_a_runtime_the_agent_opens_one_per_call() -> None:
    assert current_runtime() is None
    agent = Agent(model=Scripted(["alone"]))
    assert (await agent.run("hi")).content == "alone"
    assert agent.ref is None


async def test_a_runs_calls_and_its_child_agents_count_under_the_callers_usage_run() -> None:
    reset_usage()
    child = Agent(
        model=Scripted([Reply(text="child says", usage=Usage.of(7, 3))]),
        name="helper",
    )
    parent = Agent(
        model=Scripted(
            [
                Reply(
                    tool_calls=[ToolCall(id="c1", name="helper", arguments='{"task": "do it"}')],
                    usage=Usage.of(10, 5),
                ),
                Reply(text="done", usage=Usage.of(20, 2)),
            ]
        ),
        tools=[child.as_tool(description="Helps.")],
        name="boss",
    )
    outside = Agent(model=Scripted([Reply(text="not counted", usage=Usage.of(100, 100))]))
    async with Runtime():
        with usage_run("eval-1"):
            result = await parent.run("delegate")
        await outside.run("elsewhere")
    assert result.status == "completed"
    run = get_run_usage("eval-1")
    # The parent's two calls and the child's one: 37 prompt + 10 completion tokens.
    assert run.calls == 3
    assert (run.usage.prompt_tokens, run.usage.completion_tokens) == (37, 10)
    summary = get_usage_summary()
    assert set(summary.by_run) == {"eval-1"}
    assert summary.total.calls == 4
    assert summary.by_role["helper"].calls == 1
    reset_usage()
