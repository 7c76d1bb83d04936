"""Agents against the simulator over real HTTP: tool calls the simulated model makes and the
agent's tools run, and provider calls that go through the rate limiter."""

from __future__ import annotations

import anyio
import msgspec
import pytest

from limelight._buckets import DeploymentLimits
from limelight.actors._ratelimit import (
    GetStatistics,
    RateLimiter,
    RateLimiterStatistics,
    RateLimitHook,
)
from limelight.agents import Agent, AgentConfig, AgentResult
from limelight.providers import OpenAICompatible, SimulatedConfig
from limelight.runtime import ActorRef, Runtime
from limelight.schemas import StreamEventType
from limelight.sim import estimate_prompt_tokens
from limelight.testing import serve_in_thread_async
from limelight.tools import Tool, tool

pytestmark = pytest.mark.anyio


class Forecast(msgspec.Struct, frozen=True):
    city: str
    days: int


def forecast_tool(seen: list[Forecast]) -> Tool:
    @tool
    async def forecast(city: str, days: int = 1) -> str:
        """The weather forecast.

        :param city: the city's name.
        :param days: how many days ahead.
        """
        seen.append(Forecast(city, days))
        return f"{days} day(s) of sun in {city!r}"

    return forecast


def check_tool_turns(result: AgentResult, seen: list[Forecast]) -> None:
    """Every call the simulated model made ran the tool with the model's arguments, and its
    result went back into the conversation."""
    assert len(result.all_tool_calls) == result.num_turns
    assert len(seen) == len(result.all_tool_calls)
    for call, ran, outcome in zip(result.all_tool_calls, seen, result.tool_results, strict=True):
        assert call.name == "forecast"
        arguments = msgspec.json.decode(call.arguments)
        assert ran == Forecast(arguments["city"], arguments.get("days", 1))
        assert not outcome.is_error
        assert outcome.content == f"{ran.days} day(s) of sun in {ran.city!r}"
        assert outcome.tool_call_id == call.id
    answered = {m.tool_call_id: m.content for m in result.conversation.messages if m.role == "tool"}
    assert {r.tool_call_id: r.content for r in result.tool_results}.items() <= answered.items()


async def test_the_simulated_model_calls_the_agents_tool_over_http() -> None:
    # Offered tools, this simulated model always calls one, with schema-valid arguments.
    config = SimulatedConfig(ttft=0.0, tokens_per_second=None, tool_call_probability=1.0, seed=5)
    seen: list[Forecast] = []
    async with serve_in_thread_async(config) as url:
        agent = Agent(
            model=OpenAICompatible(url),
            model_name="sim-model",
            tools=[forecast_tool(seen)],
            config=AgentConfig(max_turns=3),
        )
        result = await agent.run("What will the weather be?")
        assert result.status == "max_turns", result.error
        assert result.num_turns == 3
        check_tool_turns(result, seen)
        # Streaming, the same: the tool calls and their results arrive as events.
        seen.clear()
        async with agent.stream("And next week?") as events:
            received = [e async for e in events]
        assert events.result is not None
        check_tool_turns(events.result, seen)
        kinds = [e.type for e in received]
        assert kinds.count(StreamEventType.TOOL_CALL) == 3
        results = [e.tool_result for e in received if e.type is StreamEventType.TOOL_RESULT]
        assert results == events.result.tool_results
        assert kinds[-1] is StreamEventType.DONE


async def limiter_stats(limiter: ActorRef) -> RateLimiterStatistics:
    stats = await limiter.ask(GetStatistics())
    assert isinstance(stats, RateLimiterStatistics)
    return stats


async def test_agents_calls_go_through_the_rate_limiter_over_http() -> None:
    # The simulator enforces quotas and tells them in x-ratelimit-* headers; the limiter is
    # configured with nothing and learns them from the agents' answers.
    rpm, tpm = 5_000, 2_000_000
    config = SimulatedConfig(
        ttft=0.0,
        tokens_per_second=None,
        tool_call_probability=0.5,
        rpm=rpm,
        tpm=tpm,
        seed=11,
    )
    async with serve_in_thread_async(config) as url, Runtime() as rt:
        limiter = await RateLimiter.start(rt, environ={})
        seen: list[Forecast] = []
        agents = [
            Agent(
                model=OpenAICompatible(url),
                model_name="sim-model",
                tools=[forecast_tool(seen)],
                name=f"agent-{i}",
                runtime=rt,
                config=AgentConfig(max_turns=4, max_tokens=32),
                hooks=[RateLimitHook(limiter, estimator=estimate_prompt_tokens)],
            )
            for i in range(3)
        ]
        results: dict[str, AgentResult] = {}

        async def run(agent: Agent) -> None:
            results[agent.name] = await agent.run(f"Weather for {agent.name}?")

        async with anyio.create_task_group() as tg:
            for agent in agents:
                tg.start_soon(run, agent)
        stats = await limiter_stats(limiter)
    assert all(r.status in ("completed", "max_turns") for r in results.values()), results
    # Each agent's pool is its own deployment, named by the agent's path.
    assert set(stats.deployments) == {f"/{name}/provider" for name in results}
    for name, result in results.items():
        deployment = stats.deployments[f"/{name}/provider"]
        assert deployment.admitted == result.num_turns
        assert deployment.rate_limited == 0
        assert deployment.timed_out == 0
        assert deployment.in_flight == 0
        assert deployment.limits.rpm == rpm
        assert deployment.limits.tpm == tpm
    assert stats.admitted == sum(r.num_turns for r in results.values())
    assert len(seen) == sum(len(r.all_tool_calls) for r in results.values())
    assert seen  # the tools were offered and used


async def test_an_agent_whose_quota_is_spent_waits_and_ends_with_rate_limit_timeout() -> None:
    config = SimulatedConfig(ttft=0.0, tokens_per_second=None, tool_call_probability=1.0, seed=2)
    seen: list[Forecast] = []
    async with serve_in_thread_async(config) as url, Runtime() as rt:
        # One request a minute: the first turn is admitted, the second would wait a minute.
        limiter = await RateLimiter.start(
            rt, {"/limited/provider": DeploymentLimits(rpm=1)}, environ={}
        )
        agent = Agent(
            model=OpenAICompatible(url),
            model_name="sim-model",
            tools=[forecast_tool(seen)],
            name="limited",
            runtime=rt,
            config=AgentConfig(max_turns=5),
            hooks=[RateLimitHook(limiter, estimator=estimate_prompt_tokens, max_wait=0.2)],
        )
        result = await agent.run("Weather?")
        deployment = (await limiter_stats(limiter)).deployments["/limited/provider"]
    assert result.status == "error"
    assert result.error is not None
    assert result.error.startswith("RateLimitTimeout: waited")
    assert result.num_turns == 2
    assert len(seen) == 1  # the first turn's tool call ran; the second turn never left
    assert deployment.admitted == 1
    assert deployment.timed_out == 1
    assert deployment.waiting == 0
    assert deployment.in_flight == 0
