"""The Agent actor against the Scripted provider: the ReAct loop, statuses, streaming,
conversations across runs, agent trees; and once against the simulator over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from limelight.actors import Attempt, ProviderPool
from limelight.agents import Agent, AgentConfig, AgentResult
from limelight.errors import ActorCrashed, ActorNotFound, BadRequest, ConfigError
from limelight.models import ModelProfile, register_model
from limelight.providers import OpenAICompatible, SimulatedConfig
from limelight.runtime import Runtime
from limelight.schemas import (
    CompletionRequest,
    CompletionResult,
    Message,
    StreamEventType,
    ToolCall,
    Usage,
)
from limelight.sim import serve_in_thread_async
from limelight.testing import Reply, Scripted
from limelight.tools import tool
from limelight.usage import UsageLimits, get_tokens_by_role, reset_usage

pytestmark = pytest.mark.anyio


@tool
async def add(a: int, b: int) -> int:
    """Add two numbers.

    :param a: the first.
    :param b: the second.
    """
    return a + b


@tool
def shout(text: str) -> str:
    return text.upper()


def calls(*specs: tuple[str, str]) -> list[ToolCall]:
    return [ToolCall(id=f"call-{i}", name=n, arguments=a) for i, (n, a) in enumerate(specs)]


async def test_a_run_calls_tools_and_answers() -> None:
    provider = Scripted(
        [
            Reply(
                tool_calls=calls(("add", '{"a": 2, "b": 3}'), ("shout", '{"text": "hi"}')),
                usage=Usage.of(10, 5),
            ),
            Reply(text="5 and HI", usage=Usage.of(20, 3)),
        ]
    )
    agent = Agent(model=provider, tools=[add, shout], system="Be terse.")
    result = await agent.run("Add 2 and 3, and shout hi.")
    assert result.status == "completed"
    assert result.ok
    assert result.content == "5 and HI"
    assert result.num_turns == 2
    assert [c.name for c in result.all_tool_calls] == ["add", "shout"]
    assert [r.content for r in result.tool_results] == ["5", "HI"]
    # The model saw the tools and, on the second turn, their results.
    first, second = provider.requests
    assert [t.name for t in first.tools] == ["add", "shout"]
    assert first.messages[0] == Message.system("Be terse.")
    assert [(m.role, m.content) for m in second.messages[-2:]] == [("tool", "5"), ("tool", "HI")]
    assert result.usage == Usage.of(30, 8)


async def test_model_mistakes_reach_the_model_as_error_results() -> None:
    provider = Scripted(
        [calls(("nope", "{}"), ("add", "{bad json"), ("add", '{"a": "x", "b": 1}')), "sorry"]
    )
    result = await Agent(model=provider, tools=[add]).run("go")
    assert result.status == "completed"
    assert [r.is_error for r in result.tool_results] == [True, True, True]
    tool_messages = [m for m in provider.requests[1].messages if m.role == "tool"]
    assert len(tool_messages) == 3
    assert "no tool named 'nope'" in (tool_messages[0].content or "")


async def test_parallel_tool_calls_run_concurrently() -> None:
    a_started, b_started = anyio.Event(), anyio.Event()

    @tool(timeout=5)
    async def ping() -> str:
        a_started.set()
        await b_started.wait()
        return "ping"

    @tool(timeout=5)
    async def pong() -> str:
        b_started.set()
        await a_started.wait()
        return "pong"

    provider = Scripted([calls(("ping", "{}"), ("pong", "{}")), "both"])
    result = await Agent(model=provider, tools=[ping, pong]).run("go")
    assert [r.content for r in result.tool_results] == ["ping", "pong"]


async def test_max_turns_ends_the_run() -> None:
    provider = Scripted(lambda request: calls(("add", '{"a": 1, "b": 1}')))
    result = await Agent(model=provider, tools=[add], config=AgentConfig(max_turns=3)).run(
        "loop forever"
    )
    assert result.status == "max_turns"
    assert result.num_turns == 3
    assert len(result.all_tool_calls) == 3
    # Every call has its result: the conversation can go on.
    roles = [m.role for m in result.conversation.messages]
    assert roles == ["user"] + ["assistant", "tool"] * 3


async def test_the_deadline_ends_the_run_with_timeout_and_answers_pending_calls() -> None:
    @tool
    async def slow() -> str:
        await anyio.sleep_forever()
        return ""

    provider = Scripted([calls(("slow", "{}"))])
    agent = Agent(model=provider, tools=[slow], config=AgentConfig(deadline=0.2))
    result = await agent.run("go")
    assert result.status == "timeout"
    last = result.conversation.messages[-1]
    assert last.role == "tool"
    assert last.tool_call_id == "call-0"
    assert "before this tool call finished" in (last.content or "")


async def test_a_provider_error_ends_the_run_with_status_error() -> None:
    provider = Scripted([BadRequest("model not found", status_code=404)])
    result = await Agent(model=provider).run("hi")
    assert result.status == "error"
    assert result.error is not None
    assert "BadRequest: model not found" in result.error
    assert result.content is None


async def test_a_second_run_continues_the_conversation_and_reset_starts_over() -> None:
    provider = Scripted(["first answer", "second answer", "fresh"])
    agent = Agent(model=provider, system="sys")
    await agent.run("one")
    result = await agent.run("two")
    assert result.content == "second answer"
    assert [m.content for m in provider.requests[1].messages] == [
        "sys",
        "one",
        "first answer",
        "two",
    ]
    await agent.reset()
    await agent.run("three")
    assert [m.content for m in provider.requests[2].messages] == ["sys", "three"]


async def test_cost_comes_from_the_model_profile() -> None:
    register_model(
        ModelProfile(name="priced-test-model", context_window=10_000, input_price=1, output_price=2)
    )
    provider = Scripted([Reply(text="ok", usage=Usage.of(1_000, 500))], model="priced-test-model")
    result = await Agent(model=provider).run("hi")
    assert result.cost == pytest.approx((1_000 * 1 + 500 * 2) / 1e6)


async def test_cancel_ends_the_run_with_status_cancelled() -> None:
    provider = Scripted([Reply(text="late", delay=30)])
    agent = Agent(model=provider)
    async with Runtime() as rt:
        ref = await rt.spawn(agent, name="a")
        outcome: list[AgentResult] = []
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                outcome.append(await agent.run("hi"))

            tg.start_soon(run)
            while not provider.requests:
                await anyio.sleep(0.01)
            agent.cancel()
        assert outcome[0].status == "cancelled"
        assert ref.alive


async def test_stream_yields_tokens_tool_calls_tool_results_and_done() -> None:
    provider = Scripted([calls(("add", '{"a": 1, "b": 2}')), "the sum is 3"])
    agent = Agent(model=provider, tools=[add])
    async with agent.stream("add 1 and 2") as events:
        seen = [e async for e in events]
    kinds = [e.type for e in seen]
    assert kinds == [
        StreamEventType.TOOL_CALL,
        StreamEventType.TOOL_RESULT,
        StreamEventType.TOKEN,
        StreamEventType.TOKEN,
        StreamEventType.TOKEN,
        StreamEventType.TOKEN,
        StreamEventType.DONE,
    ]
    tool_result = seen[1].tool_result
    assert tool_result is not None
    assert (tool_result.content, tool_result.name, tool_result.is_error) == ("3", "add", False)
    call = seen[0].tool_call
    assert call is not None
    assert tool_result.tool_call_id == call.id
    assert "".join(e.content or "" for e in seen if e.type is StreamEventType.TOKEN) == (
        "the sum is 3"
    )
    done = seen[-1]
    assert done.result is not None
    assert done.result.content == "the sum is 3"
    assert done.meta["status"] == "completed"
    assert events.result is not None
    assert events.result.num_turns == 2


async def test_a_failed_stream_ends_with_error_then_done() -> None:
    agent = Agent(model=Scripted([BadRequest("nope", status_code=400)]))
    async with Runtime() as rt:
        await rt.spawn(agent, name="a")
        async with agent.stream("hi") as events:
            seen = [e async for e in events]
    assert [e.type for e in seen] == [StreamEventType.ERROR, StreamEventType.DONE]
    assert seen[0].error_type == "BadRequest"
    assert seen[1].meta["status"] == "error"


async def test_leaving_a_stream_early_cancels_the_run() -> None:
    provider = Scripted(["word " * 500])
    agent = Agent(model=provider)
    async with Runtime() as rt:
        await rt.spawn(agent, name="a")
        async with agent.stream("talk") as events:
            async for _ in events:
                break
        # The agent is free for the next run.
        with anyio.fail_after(10):
            while agent.last_result is None:
                await anyio.sleep(0.01)
        assert agent.last_result.status == "cancelled"


async def test_a_stream_without_a_runtime_needs_async_with() -> None:
    agent = Agent(model=Scripted(["x"]))
    with pytest.raises(ConfigError, match=r"async with agent\.stream"):
        async for _ in agent.stream("hi"):
            pass


async def test_agents_live_in_the_runtime_tree_and_by_path() -> None:
    child = Agent(model=Scripted(["child says hi"]), name="helper")
    parent = Agent(
        model=Scripted([calls(("helper", '{"task": "say hi"}')), "done"]),
        tools=[child.as_tool(description="A helper.")],
        name="boss",
    )
    async with Runtime() as rt:
        ref = await rt.spawn(parent, name="boss")
        tree = rt.tree().render()
        for name in ("boss", "helper", "tools", "provider"):
            assert name in tree
        child_ref = rt.lookup("/boss/helper")
        assert child.ref == child_ref
        result = await parent.run("delegate")
        assert result.content == "done"
        assert result.tool_results[0].content == "child says hi"
        # The child's usage counts in the parent's.
        assert child.last_result is not None
        child_usage = child.last_result.usage
        assert result.tool_results[0].usage == child_usage
        own = result.usage.total_tokens - child_usage.total_tokens
        assert own > 0
        # Stopping the parent stops the child with it.
        await ref.stop()
        assert not child_ref.alive
        with pytest.raises(ActorNotFound):
            rt.lookup("/boss/helper")


async def test_a_child_agent_shares_the_parents_deadline() -> None:
    child_provider = Scripted([Reply(text="too late", delay=30)])
    child = Agent(model=child_provider, name="helper")
    parent = Agent(
        model=Scripted([calls(("helper", '{"task": "slow work"}'))]),
        tools=[child.as_tool()],
        name="boss",
        config=AgentConfig(deadline=0.3),
    )
    async with Runtime() as rt:
        await rt.spawn(parent, name="boss")
        with anyio.fail_after(10):
            result = await parent.run("delegate")
        assert result.status == "timeout"
        assert len(child_provider.requests) == 1
        # The child's run was cancelled with the parent's deadline, not left running for
        # the 30 s its model takes.
        child_ref = rt.lookup("/boss/helper")
        with anyio.fail_after(10):
            # Ended by its inherited deadline (expired) or by the parent's cancel (processed),
            # whichever comes first.
            while (stats := child_ref.statistics()).processed + stats.expired == 0:
                await anyio.sleep(0.01)
        assert child.last_result is None or child.last_result.status == "cancelled"


async def test_cancelling_the_parent_cancels_the_childs_run() -> None:
    child_provider = Scripted([Reply(text="too late", delay=30)])
    child = Agent(model=child_provider, name="helper")
    parent = Agent(
        model=Scripted([calls(("helper", '{"task": "slow work"}'))]),
        tools=[child.as_tool()],
        name="boss",
    )
    async with Runtime() as rt:
        await rt.spawn(parent, name="boss")
        outcome: list[AgentResult] = []
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                outcome.append(await parent.run("delegate"))

            tg.start_soon(run)
            with anyio.fail_after(10):
                while not child_provider.requests:
                    await anyio.sleep(0.01)
            parent.cancel()
        assert outcome[0].status == "cancelled"
        with anyio.fail_after(10):
            while child.last_result is None:
                await anyio.sleep(0.01)
        assert child.last_result.status == "cancelled"
        # The calls ran in the parent's task and ended with its run: nothing of them is left
        # running in its tool executor, which is still up for the next run.
        executor = parent._executor_actor
        assert executor is not None
        assert not executor._running
        assert rt.lookup("/boss/tools").alive


async def test_agents_can_share_a_provider_pool() -> None:
    async with Runtime() as rt:
        pool = await ProviderPool.start(
            rt, Scripted(lambda request: "shared"), name="shared", size=2
        )
        agents = [Agent(model=pool, name=f"a{i}", runtime=rt) for i in range(3)]
        results = [await a.run("hi") for a in agents]
        assert [r.content for r in results] == ["shared"] * 3
        assert rt.lookup("/a2").alive


def test_bad_agent_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="max_turns"):
        AgentConfig(max_turns=0)
    with pytest.raises(ConfigError, match="deadline"):
        AgentConfig(deadline=-1)
    with pytest.raises(ConfigError, match="takes a model string"):
        Agent(model=object())  # type: ignore[arg-type]


@pytest.fixture
async def sim_url() -> AsyncIterator[str]:
    async with serve_in_thread_async(SimulatedConfig(ttft=0.0, seed=3)) as url:
        yield url


async def test_an_agent_over_http_against_the_simulator(sim_url: str) -> None:
    agent = Agent(model=OpenAICompatible(sim_url), model_name="sim-model", name="sim")
    result = await agent.run("Tell me something.")
    assert result.status == "completed"
    assert result.content
    assert result.usage.completion_tokens > 0
    async with agent.stream("And again.") as events:
        seen = [e async for e in events]
    assert seen[-1].type is StreamEventType.DONE
    tokens = "".join(e.content or "" for e in seen if e.type is StreamEventType.TOKEN)
    assert tokens == seen[-1].result.content  # type: ignore[union-attr]
    assert isinstance(CompletionRequest(), CompletionRequest)


class BuggyAgent(Agent):
    def _add_cost(self, cost: float | None, result: CompletionResult) -> float | None:
        raise RuntimeError("bug in the agent")


async def test_an_agent_bug_reaches_the_caller_and_never_hangs_a_stream() -> None:
    agent = BuggyAgent(model=Scripted(lambda r: calls(("add", "{}"))), tools=[add])
    async with Runtime() as rt:
        await rt.spawn(agent, name="buggy")
        with pytest.raises(ActorCrashed, match="bug in the agent"):
            await agent.run("go")
        with anyio.fail_after(10):
            async with agent.stream("again") as events:
                seen = [e async for e in events]
    assert [e.type for e in seen] == [StreamEventType.TOOL_CALL, StreamEventType.ERROR]
    assert seen[-1].error_type == "RuntimeError"


async def test_hooks_reach_the_pool_an_agent_starts() -> None:
    seen: list[tuple[str, int]] = []

    class Hook:
        async def before(self, attempt: Attempt) -> None:
            seen.append(("before", attempt.number))

        async def after(
            self, attempt: Attempt, result: object, error: BaseException | None
        ) -> None:
            seen.append(("after", attempt.number))

    result = await Agent(model=Scripted(["hi"]), hooks=[Hook()]).run("hello")
    assert result.content == "hi"
    assert seen == [("before", 1), ("after", 1)]


async def test_a_caller_giving_up_cancels_its_run_only() -> None:
    provider = Scripted([Reply(text="slow", delay=30), "quick"])
    # Two workers: the kernel does not cancel a handler whose asker left, so the first
    # worker sleeps on through the abandoned call (a kernel change, reported).
    agent = Agent(model=provider, config=AgentConfig(pool_size=2))
    async with Runtime() as rt:
        await rt.spawn(agent, name="a")
        async with anyio.create_task_group() as tg:
            tg.start_soon(agent.run, "first")
            with anyio.fail_after(10):
                while not provider.requests:
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
        with anyio.fail_after(10):
            while agent.last_result is None:
                await anyio.sleep(0.01)
        assert agent.last_result.status == "cancelled"
        result = await agent.run("second")
        assert result.content == "quick"


async def test_concurrent_calls_need_a_runtime_of_the_callers() -> None:
    provider = Scripted([Reply(text="first", delay=0.2), "second"])
    agent = Agent(model=provider)
    errors: list[Exception] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(agent.run, "one")
        while not provider.requests:
            await anyio.sleep(0.01)
        try:
            await agent.run("two")
        except ConfigError as exc:
            errors.append(exc)
    assert len(errors) == 1
    assert "give it runtime=" in str(errors[0])
    # Once the first call is over, the agent runs again, continuing its conversation.
    result = await agent.run("two")
    assert result.content == "second"
    assert [m.content for m in result.conversation.messages] == ["one", "first", "two", "second"]


async def test_a_model_string_is_resolved_to_its_backend() -> None:
    agent = Agent(model="sim:gpt-4o-mini", system="Be brief.")
    assert agent.model_name == "gpt-4o-mini"
    result = await agent.run("Say something.")
    assert result.status == "completed", result.error
    assert result.content
    assert result.usage.completion_tokens > 0


def test_a_model_that_is_not_a_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="model string, a Provider"):
        Agent(model=42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="non-empty string"):
        Agent(model=" ")


async def test_a_run_stops_at_its_usage_limit_before_running_more_tools() -> None:
    ran: list[str] = []

    @tool
    async def expensive(x: int) -> int:
        """Cost a lot.

        :param x: anything.
        """
        ran.append("expensive")
        return x

    provider = Scripted(
        [
            Reply(tool_calls=calls(("expensive", '{"x": 1}')), usage=Usage.of(15, 10)),
            "never asked",
        ]
    )
    agent = Agent(
        model=provider,
        tools=[expensive],
        config=AgentConfig(usage_limits=UsageLimits(max_tokens=20)),
    )
    result = await agent.run("go")
    assert result.status == "usage_limit"
    assert result.error is not None
    assert "UsageLimits.max_tokens" in result.error
    assert "used 25 tokens" in result.error
    assert ran == []
    assert result.num_turns == 1
    # The model's call is answered in the conversation, so a next run is well formed.
    last = result.conversation.messages[-1]
    assert last.role == "tool"
    assert "before this tool call finished" in (last.content or "")


async def test_a_child_agents_usage_counts_toward_the_parents_limit() -> None:
    child = Agent(model=Scripted([Reply(text="big", usage=Usage.of(500, 500))]), name="helper")
    parent = Agent(
        model=Scripted(
            [
                Reply(tool_calls=calls(("helper", '{"task": "go"}')), usage=Usage.of(5, 5)),
                "never asked",
            ]
        ),
        tools=[child.as_tool()],
        config=AgentConfig(usage_limits=UsageLimits(max_tokens=100)),
    )
    result = await parent.run("delegate")
    assert result.status == "usage_limit"
    assert result.usage.total_tokens == 1010


async def test_model_calls_are_counted_under_the_agents_name() -> None:
    reset_usage()
    agent = Agent(model=Scripted([Reply(text="ok", usage=Usage.of(7, 3))]), name="counter")
    result = await agent.run("hi")
    assert result.status == "completed"
    assert get_tokens_by_role()["counter"].total_tokens == 10
    reset_usage()
