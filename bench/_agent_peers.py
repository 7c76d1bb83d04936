"""The agent frameworks ``bench/agents.py`` runs beside limelight, each written the way its
documentation shows, with an in-process fake model that follows the same script as
limelight's variant (two turns asking for parallel ``lookup`` calls, then the answer).

Each builder takes the number of agents and the script, builds what the framework's docs
build (one agent definition where the framework's agents are stateless and shared by
concurrent runs, one agent per conversation where they hold its state), and returns
``run(i)``, one agent's whole task, returning its final answer. Imports stay inside the
builders: a framework that is not installed only costs its row.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

Run = Callable[[int], Awaitable[str]]


@dataclass(frozen=True, kw_only=True)
class Script:
    """What every fake model answers: on turns before the last, ``calls`` tool calls
    ``lookup(key="k<k>")`` with ids ``t<turn>-<k>``; on the last, :attr:`answer`. A model
    call and a tool call are async sleeps of ``model_delay`` and ``tool_delay`` seconds."""

    turns: int
    calls: int
    model_delay: float
    tool_delay: float
    system: str = "You look things up."
    answer: str = "All looked up: the answer is 42."

    def tool_calls(self, turn: int) -> list[tuple[str, str]]:
        """``(call id, key)`` of the tool calls asked for on ``turn`` (0-based); none on the
        last turn, which answers."""
        if turn >= self.turns - 1:
            return []
        return [(f"t{turn}-{k}", f"k{k}") for k in range(self.calls)]


def pydantic_ai(n: int, script: Script) -> Run:
    """pydantic-ai's ``Agent`` with a ``FunctionModel`` (its testing docs), one agent shared
    by every run as its docs show; ``Agent.run``. Tool calls of one response run
    concurrently."""
    from pydantic_ai import Agent, ModelMessage, ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    async def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        await asyncio.sleep(script.model_delay)
        turn = sum(isinstance(m, ModelResponse) for m in messages)
        if calls := script.tool_calls(turn):
            return ModelResponse(
                parts=[ToolCallPart("lookup", {"key": key}, tool_call_id=i) for i, key in calls]
            )
        return ModelResponse(parts=[TextPart(script.answer)])

    agent = Agent(FunctionModel(model), instructions=script.system)

    @agent.tool_plain
    async def lookup(key: str) -> str:
        """Look a key up.

        :param key: the key.
        """
        await asyncio.sleep(script.tool_delay)
        return f"value of {key}"

    async def run(i: int) -> str:
        result = await agent.run(f"task {i}")
        return result.output

    return run


def openai_agents(n: int, script: Script) -> Run:
    """openai-agents' ``Runner.run`` on an ``Agent`` whose model is a custom ``Model`` (its
    docs on custom model providers, which also turn tracing off for non-OpenAI models); one
    agent shared by every run. Function tools of one response run concurrently."""
    from agents import (
        Agent,
        Model,
        ModelResponse,
        Runner,
        Usage,
        function_tool,
        set_tracing_disabled,
    )
    from openai.types.responses import (
        ResponseFunctionToolCall,
        ResponseOutputMessage,
        ResponseOutputText,
    )

    class FakeModel(Model):
        async def get_response(
            self,
            system_instructions: Any,
            input: Any,
            model_settings: Any,
            tools: Any,
            output_schema: Any,
            handoffs: Any,
            tracing: Any,
            *,
            previous_response_id: Any,
            conversation_id: Any,
            prompt: Any,
        ) -> ModelResponse:
            await asyncio.sleep(script.model_delay)
            items = [] if isinstance(input, str) else input
            turn = sum(item.get("type") == "function_call" for item in items) // script.calls
            output: list[Any]
            if calls := script.tool_calls(turn):
                output = [
                    ResponseFunctionToolCall(
                        type="function_call",
                        call_id=i,
                        name="lookup",
                        arguments=json.dumps({"key": key}),
                    )
                    for i, key in calls
                ]
            else:
                text = ResponseOutputText(type="output_text", text=script.answer, annotations=[])
                output = [
                    ResponseOutputMessage(
                        id="msg",
                        type="message",
                        role="assistant",
                        status="completed",
                        content=[text],
                    )
                ]
            return ModelResponse(output=output, usage=Usage(), response_id=None)

        def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

    @function_tool
    async def lookup(key: str) -> str:
        """Look a key up.

        Args:
            key: the key.
        """
        await asyncio.sleep(script.tool_delay)
        return f"value of {key}"

    set_tracing_disabled(True)
    agent = Agent(name="looker", instructions=script.system, model=FakeModel(), tools=[lookup])

    async def run(i: int) -> str:
        result = await Runner.run(agent, f"task {i}")
        return str(result.final_output)

    return run


def _langchain_model_and_tool(script: Script) -> tuple[Any, Any]:
    """A custom LangChain chat model (langchain-core's docs on writing one: ``_agenerate``,
    ``_llm_type``) that binds tools as real chat models do, and the ``@tool`` lookup."""
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.tools import tool
    from langchain_core.utils.function_calling import convert_to_openai_tool

    class FakeChatModel(BaseChatModel):
        @property
        def _llm_type(self) -> str:
            return "fake-scripted"

        def _generate(self, messages: Any, stop: Any = None, **kwargs: Any) -> ChatResult:
            raise NotImplementedError("async only")

        async def _agenerate(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
        ) -> ChatResult:
            await asyncio.sleep(script.model_delay)
            turn = sum(isinstance(m, AIMessage) for m in messages)
            message = AIMessage(
                content="" if script.tool_calls(turn) else script.answer,
                tool_calls=[
                    {"name": "lookup", "args": {"key": key}, "id": i, "type": "tool_call"}
                    for i, key in script.tool_calls(turn)
                ],
            )
            return ChatResult(generations=[ChatGeneration(message=message)])

        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    @tool
    async def lookup(key: str) -> str:
        """Look a key up.

        Args:
            key: the key.
        """
        await asyncio.sleep(script.tool_delay)
        return f"value of {key}"

    return FakeChatModel(), lookup


def langgraph(n: int, script: Script) -> Run:
    """langgraph's prebuilt ``create_react_agent`` (deprecated since langgraph 1.0 for
    langchain's ``create_agent``, still documented and shipped) over a custom chat model;
    one compiled graph shared by every run, ``ainvoke``. Its ``ToolNode`` runs the tool
    calls of one message concurrently."""
    import warnings

    from langgraph.prebuilt import create_react_agent

    model, lookup = _langchain_model_and_tool(script)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation of create_react_agent
        graph = create_react_agent(model, tools=[lookup], prompt=script.system)

    async def run(i: int) -> str:
        state = await graph.ainvoke({"messages": [{"role": "user", "content": f"task {i}"}]})
        return str(state["messages"][-1].content)

    return run


def langchain(n: int, script: Script) -> Run:
    """langchain's ``create_agent`` (its agents docs; a langgraph graph underneath) over the
    same custom chat model; one agent shared by every run, ``ainvoke``. Tool calls of one
    message run concurrently."""
    from langchain.agents import create_agent

    model, lookup = _langchain_model_and_tool(script)
    agent = create_agent(model, tools=[lookup], system_prompt=script.system)

    async def run(i: int) -> str:
        state = await agent.ainvoke({"messages": [{"role": "user", "content": f"task {i}"}]})
        return str(state["messages"][-1].content)

    return run


def autogen_agentchat(n: int, script: Script) -> Run:
    """autogen-agentchat's ``AssistantAgent.run`` with a custom ``ChatCompletionClient``
    (autogen_ext's ``ReplayChatCompletionClient`` is the documented fake, but it replays one
    list across every call and counts tokens; this one answers by the conversation, as the
    other fakes do). An ``AssistantAgent`` holds its conversation, so one per run, sharing
    one client; ``max_tool_iterations`` lets it take the model's three turns. Tool calls of
    one response run concurrently (``asyncio.gather``)."""
    from autogen_agentchat.agents import AssistantAgent
    from autogen_core import FunctionCall
    from autogen_core.models import (
        AssistantMessage,
        ChatCompletionClient,
        CreateResult,
        ModelFamily,
        ModelInfo,
        RequestUsage,
    )

    usage = RequestUsage(prompt_tokens=0, completion_tokens=0)

    class FakeClient(ChatCompletionClient):
        async def create(self, messages: Any, **kwargs: Any) -> CreateResult:
            await asyncio.sleep(script.model_delay)
            turn = sum(isinstance(m, AssistantMessage) for m in messages)
            if calls := script.tool_calls(turn):
                content = [
                    FunctionCall(id=i, name="lookup", arguments=json.dumps({"key": key}))
                    for i, key in calls
                ]
                return CreateResult(
                    finish_reason="function_calls", content=content, usage=usage, cached=False
                )
            return CreateResult(
                finish_reason="stop", content=script.answer, usage=usage, cached=False
            )

        def create_stream(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

        async def close(self) -> None:
            pass

        def actual_usage(self) -> RequestUsage:
            return usage

        def total_usage(self) -> RequestUsage:
            return usage

        def count_tokens(self, *args: Any, **kwargs: Any) -> int:
            return 0

        def remaining_tokens(self, *args: Any, **kwargs: Any) -> int:
            return 1_000_000

        @property
        def capabilities(self) -> Any:
            return self.model_info

        @property
        def model_info(self) -> ModelInfo:
            return ModelInfo(
                vision=False,
                function_calling=True,
                json_output=False,
                family=ModelFamily.UNKNOWN,
                structured_output=False,
            )

    async def lookup(key: str) -> str:
        """Look a key up."""
        await asyncio.sleep(script.tool_delay)
        return f"value of {key}"

    client = FakeClient()
    agents = [
        AssistantAgent(
            f"agent_{i}",
            model_client=client,
            tools=[lookup],
            system_message=script.system,
            max_tool_iterations=script.turns,
        )
        for i in range(n)
    ]

    async def run(i: int) -> str:
        result = await agents[i].run(task=f"task {i}")
        return str(result.messages[-1].content)

    return run


#: Peers the ``bench`` extra cannot pin, and why (install them by hand to measure them).
#: name -> (distribution, pinned in the ``bench`` extra; builder).
PEERS: dict[str, tuple[str, Callable[[int, Script], Run]]] = {
    "pydantic-ai": ("pydantic-ai-slim", pydantic_ai),
    "openai-agents": ("openai-agents", openai_agents),
    "langgraph": ("langgraph", langgraph),
    "langchain": ("langchain", langchain),
    "autogen-agentchat": ("autogen-agentchat", autogen_agentchat),
}
