"""AgentConfig's options at work in an agent's runs, against the Scripted provider: tool
calls one after another or at once, the tool timeout, the tool concurrency limit, the
conversation's token budget and truncation, failing tools, and the usage limit in USD."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from limelight.agents import Agent, AgentConfig
from limelight.conversation import Conversation, Truncation, message_tokens
from limelight.models import ModelProfile, get_model_profile, register_model
from limelight.schemas import CompletionResult, Message, ToolCall, Usage
from limelight.testing import Reply, Scripted
from limelight.tools import Tool, tool
from limelight.usage import UsageLimits

pytestmark = pytest.mark.anyio

#: Checkpoints each recording tool passes through while it runs: enough for a concurrent
#: call to be scheduled in between, on either backend, whenever concurrency is allowed.
STEPS = 20


def calls(*specs: tuple[str, str]) -> list[ToolCall]:
    return [ToolCall(id=f"call-{i}", name=n, arguments=a) for i, (n, a) in enumerate(specs)]


class Recorder:
    """Tools that record when they start and end, and how many run at once."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.running = 0
        self.most = 0

    def tool(self, name: str) -> Tool:
        async def work(label: str) -> str:
            self.log.append(f"{label} start")
            self.running += 1
            self.most = max(self.most, self.running)
            try:
                for _ in range(STEPS):
                    await anyio.lowlevel.checkpoint()
            finally:
                self.running -= 1
            self.log.append(f"{label} end")
            return label

        return Tool(work, name=name, description="Record a call.")


# -- parallel_tool_execution ------------------------------------------------------------------


@pytest.mark.parametrize("parallel", [False, True])
async def test_parallel_tool_execution_false_runs_the_calls_one_after_another(
    parallel: bool,
) -> None:
    recorder = Recorder()
    batch = calls(*[("work", f'{{"label": "{label}"}}') for label in "abc"])
    provider = Scripted([batch, "all done"])
    agent = Agent(
        model=provider,
        tools=[recorder.tool("work")],
        config=AgentConfig(parallel_tool_execution=parallel),
    )
    result = await agent.run("work on a, b and c")
    assert result.status == "completed"
    assert [r.content for r in result.tool_results] == ["a", "b", "c"]
    if parallel:
        assert recorder.most == 3
    else:
        # Each call starts after the one before it ended, in the model's order.
        assert recorder.log == ["a start", "a end", "b start", "b end", "c start", "c end"]
        assert recorder.most == 1


# -- max_tool_concurrency ---------------------------------------------------------------------


@pytest.mark.parametrize(("limit", "most"), [(2, 2), (1, 1), (8, 5)])
async def test_max_tool_concurrency_bounds_the_calls_running_at_once(limit: int, most: int) -> None:
    recorder = Recorder()
    batch = calls(*[("work", f'{{"label": "t{i}"}}') for i in range(5)])
    agent = Agent(
        model=Scripted([batch, "done"]),
        tools=[recorder.tool("work")],
        config=AgentConfig(max_tool_concurrency=limit),
    )
    result = await agent.run("five at once")
    assert result.status == "completed"
    assert [r.content for r in result.tool_results] == [f"t{i}" for i in range(5)]
    assert recorder.most == most
    assert recorder.log.count("t4 end") == 1


# -- tool_timeout ---------------------------------------------------------------------------


async def test_a_tool_past_the_tool_timeout_becomes_an_error_result_and_the_run_goes_on() -> None:
    @tool
    async def quick() -> str:
        return "quick answer"

    @tool
    async def stuck() -> str:
        await anyio.sleep_forever()
        return "never"

    provider = Scripted([calls(("quick", "{}"), ("stuck", "{}")), "I answer without it."])
    agent = Agent(model=provider, tools=[quick, stuck], config=AgentConfig(tool_timeout=0.05))
    with anyio.fail_after(30):
        result = await agent.run("go")
    assert result.status == "completed"
    assert result.content == "I answer without it."
    assert [r.is_error for r in result.tool_results] == [False, True]
    assert result.tool_results[0].content == "quick answer"
    assert "tool 'stuck' timed out after 0.05 s" in result.tool_results[1].content
    # The model was told, in the next request.
    told = [m for m in provider.requests[1].messages if m.role == "tool"]
    assert [m.tool_call_id for m in told] == ["call-0", "call-1"]
    assert told[1].content == result.tool_results[1].content


async def test_a_tools_own_timeout_wins_over_the_agents() -> None:
    @tool(timeout=0.05)
    async def stuck() -> str:
        await anyio.sleep_forever()
        return "never"

    provider = Scripted([calls(("stuck", "{}")), "ok"])
    agent = Agent(model=provider, tools=[stuck], config=AgentConfig(tool_timeout=3600))
    with anyio.fail_after(30):
        result = await agent.run("go")
    assert result.status == "completed"
    assert "timed out after 0.05 s" in result.tool_results[0].content


# -- a tool raising ---------------------------------------------------------------------------


async def test_a_tool_raising_reaches_the_model_as_an_error_result_and_the_run_completes() -> None:
    @tool
    async def divide(a: int, b: int) -> float:
        """Divide.

        :param a: the dividend.
        :param b: the divisor.
        """
        return a / b

    @tool
    def lookup(key: str) -> str:  # sync: runs in a worker thread
        raise KeyError(key)

    provider = Scripted(
        [
            calls(("divide", '{"a": 1, "b": 0}'), ("lookup", '{"key": "missing"}')),
            calls(("divide", '{"a": 6, "b": 3}')),
            "6 / 3 = 2; 1 / 0 has no answer.",
        ]
    )
    result = await Agent(model=provider, tools=[divide, lookup]).run("go")
    assert result.status == "completed"
    assert result.num_turns == 3
    assert [r.is_error for r in result.tool_results] == [True, True, False]
    assert "raised ZeroDivisionError: division by zero" in result.tool_results[0].content
    assert "raised KeyError: 'missing'" in result.tool_results[1].content
    assert result.tool_results[2].content == "2.0"
    told = [m.content for m in provider.requests[1].messages if m.role == "tool"]
    assert told == [r.content for r in result.tool_results[:2]]


# -- context_tokens and truncation ------------------------------------------------------------


@pytest.mark.parametrize("truncation", ["sliding", "drop_oldest", "drop_middle"])
async def test_context_tokens_truncate_what_the_provider_receives(truncation: Truncation) -> None:
    budget = 120
    provider = Scripted(lambda request: "a rather long answer that fills the context " * 3)
    agent = Agent(
        model=provider,
        system="Be brief.",
        config=AgentConfig(context_tokens=budget, truncation=truncation),
    )
    prompts = ["THE TASK: count to ten.", *(f"and then {i}?" for i in range(6))]
    for prompt in prompts:
        result = await agent.run(prompt)
        assert result.status == "completed"
    assert len(provider.requests) == len(prompts)
    for request, prompt in zip(provider.requests, prompts, strict=True):
        sent = request.messages
        assert sum(message_tokens(m) for m in sent) <= budget
        assert sent[0] == Message.system("Be brief.")
        assert sent[-1] == Message.user(prompt)
    last = provider.requests[-1].messages
    # The conversation itself keeps everything; only what is sent is cut.
    assert len(agent.conversation) == 2 * len(prompts)
    assert len(last) - 1 < len(agent.conversation) - 1
    if truncation == "drop_middle":
        assert last[1] == Message.user(prompts[0])  # the task stays
    else:
        assert Message.user(prompts[0]) not in last
    if truncation == "sliding":
        assert last[1].role == "user"


# -- usage_limits.max_cost --------------------------------------------------------------------


@tool
async def tick(n: int) -> int:
    """Count.

    :param n: a number.
    """
    return n + 1


def ticking(usage: Usage, *, model: str) -> Scripted:
    """A model calling ``tick`` every turn, each call using ``usage``."""
    reply = Reply(tool_calls=calls(("tick", '{"n": 1}')), usage=usage)
    return Scripted(lambda request: reply, model=model)


async def test_max_cost_stops_a_run_of_a_priced_model() -> None:
    register_model(
        ModelProfile(
            name="priced-limit-model", context_window=10_000, input_price=1.0, output_price=2.0
        )
    )
    # 0.002 USD a call at these prices.
    provider = ticking(Usage.of(1_000, 500), model="priced-limit-model")
    agent = Agent(
        model=provider,
        tools=[tick],
        config=AgentConfig(max_turns=10, usage_limits=UsageLimits(max_cost=0.005)),
    )
    result = await agent.run("go")
    assert result.status == "usage_limit"
    # 0.002, 0.004: under; 0.006 reaches the limit after the third call, before its tools.
    assert result.num_turns == 3
    assert len(result.tool_results) == 2
    assert result.cost == pytest.approx(0.006)
    assert result.error is not None
    assert "UsageLimits.max_cost" in result.error
    assert "cost 0.006000 USD" in result.error
    assert provider.requests[0].model == "priced-limit-model"


async def test_max_cost_never_stops_a_run_whose_price_is_unknown_and_its_cost_is_none() -> None:
    provider = ticking(Usage.of(1_000_000, 1_000_000), model="house-model-nobody-prices")
    agent = Agent(
        model=provider,
        tools=[tick],
        config=AgentConfig(max_turns=4, usage_limits=UsageLimits(max_cost=0.000_001)),
    )
    result = await agent.run("go")
    # An unknown cost never passes max_cost: the run goes on to its other limits.
    assert result.status == "max_turns"
    assert result.num_turns == 4
    assert result.cost is None
    assert result.usage.total_tokens == 8_000_000


async def test_a_cost_the_provider_reports_counts_toward_max_cost_without_a_known_price() -> None:
    answer = CompletionResult(
        tool_calls=calls(("tick", '{"n": 1}')),
        finish_reason="tool_calls",
        usage=Usage.of(10, 10),
        cost=0.25,
    )
    provider = Scripted(lambda request: answer, model="house-model-nobody-prices")
    agent = Agent(
        model=provider,
        tools=[tick],
        config=AgentConfig(max_turns=10, usage_limits=UsageLimits(max_cost=0.6)),
    )
    result = await agent.run("go")
    assert result.status == "usage_limit"
    assert result.num_turns == 3
    assert result.cost == pytest.approx(0.75)


async def test_a_dated_variant_of_a_registered_priced_model_is_priced() -> None:
    register_model(
        ModelProfile(
            name="priced-family-model", context_window=10_000, input_price=1.0, output_price=2.0
        )
    )
    variant = "priced-family-model-2025-01-01"
    profile = get_model_profile(variant)
    assert profile is not None
    assert profile.cost(Usage.of(1_000, 500)) == pytest.approx(0.002)
    provider = Scripted([Reply(text="ok", usage=Usage.of(1_000, 500))], model=variant)
    result = await Agent(model=provider).run("hi")
    assert result.cost == pytest.approx(0.002)


async def test_an_empty_conversation_given_is_the_one_the_agent_uses() -> None:
    mine = Conversation("Be brief.")
    agent = Agent(model=Scripted(["hello"]), conversation=mine)
    assert agent.conversation is mine  # an empty one is not swapped for a fresh one
    await agent.run("hi")
    assert [m.role for m in mine.messages] == ["user", "assistant"]
