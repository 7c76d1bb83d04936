"""The agent client's ``Agent``, over limelight's agent actor.

It wraps :class:`~limelight.agents.Agent`.

The ReAct loop, the tool executor, deadlines and the provider pool are limelight's; the
agent runs in its provider's host runtime and shares its pool (so its calls take the
provider's rate limiter). This module keeps the earlier API around it: ``run`` returning an
``AgentResult`` with its turns, ``stream`` yielding the earlier events (``turn_start`` and
``tool_result`` META events included), a synchronous ``reset``, forks and session files.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import anyio

from ..actors import Agent as NativeAgent
from ..actors import AgentConfig as NativeConfig
from ..actors import AgentResult as NativeResult
from ..errors import ConfigError
from ..schemas import Message as NativeMessage
from ..schemas import StreamEventType as NativeKind
from ..schemas import ToolResult as NativeToolResult
from ._llm_client_conversation import Conversation
from ._llm_client_host import BridgedStream, close_when_collected
from ._llm_client_models import ModelProfile
from ._llm_client_provider import OpenAIProvider
from ._llm_client_requests import translate_event
from ._llm_client_tools import Tool, ToolRegistry, ToolResult
from ._llm_client_types import (
    CompletionResult,
    StreamEvent,
    StreamEventType,
    ToolCall,
    Usage,
    tool_call_from_native,
    usage_from_native,
)

__all__ = ["Agent", "AgentConfig", "AgentResult", "TurnResult", "quick_agent"]

#: Per-run options limelight's agent takes (any other would be silently lost: refused).
_RUN_OPTIONS = ("temperature", "max_tokens")
#: The length of a tool result's text in its META event (as before).
_EVENT_CONTENT = 500


@dataclass
class AgentConfig:
    """How an agent runs.

    ``max_tokens`` is the context window its conversation is cut to (less
    ``reserve_tokens``). limelight's agent runs every tool call the model makes and shows
    the model every error, so ``max_tool_calls_per_turn``, ``stop_on_tool_error`` and
    ``include_tool_errors_in_context`` must keep their defaults (the agent refuses others
    with a :class:`~limelight.errors.ConfigError`); ``stream_tool_calls`` is always on.
    """

    max_turns: int = 10
    max_tool_calls_per_turn: int = 10
    parallel_tool_execution: bool = True
    tool_timeout: float = 30.0
    max_tokens: int | None = None
    reserve_tokens: int = 2000
    stop_on_tool_error: bool = False
    include_tool_errors_in_context: bool = True
    stream_tool_calls: bool = True

    def to_native(self, **overrides: Any) -> NativeConfig:
        """limelight's config for this one.

        :raises ConfigError: a setting limelight's agent does not have, or a bad value.
        """
        unsupported = [
            f"{name}={getattr(self, name)!r}"
            for name, default in (
                ("max_tool_calls_per_turn", 10),
                ("stop_on_tool_error", False),
                ("include_tool_errors_in_context", True),
            )
            if getattr(self, name) != default
        ]
        if unsupported:
            raise ConfigError(
                f"AgentConfig({', '.join(unsupported)}) is not supported: limelight's agent "
                "runs every tool call the model makes and shows the model every tool error "
                "(bound the run with max_turns instead)"
            )
        return NativeConfig(
            max_turns=overrides.get("max_turns") or self.max_turns,
            parallel_tool_execution=self.parallel_tool_execution,
            tool_timeout=self.tool_timeout,
            temperature=overrides.get("temperature"),
            max_tokens=overrides.get("max_tokens"),
        )


@dataclass
class TurnResult:
    """One model call of a run and the tools it called."""

    completion: CompletionResult
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_results: list[ToolResult] = field(default_factory=list)
    turn_number: int = 0

    @property
    def has_tool_calls(self) -> bool:
        return bool(self.tool_calls)

    @property
    def content(self) -> str | None:
        return self.completion.content


@dataclass
class AgentResult:
    """A run's outcome: ``status`` ``"success"``, ``"max_turns"`` or ``"error"``
    (``error`` says what: a failed call, the deadline, a usage limit)."""

    content: str | None = None
    turns: list[TurnResult] = field(default_factory=list)
    conversation: Conversation | None = None
    total_usage: Usage | None = None
    status: Literal["success", "max_turns", "error"] = "success"
    error: str | None = None

    @property
    def num_turns(self) -> int:
        return len(self.turns)

    @property
    def all_tool_calls(self) -> list[ToolCall]:
        return [call for turn in self.turns for call in turn.tool_calls]

    def to_dict(self) -> dict[str, Any]:
        return {
            "content": self.content,
            "num_turns": self.num_turns,
            "status": self.status,
            "error": self.error,
            "total_usage": self.total_usage.to_dict() if self.total_usage else None,
        }


def _turns(
    messages: Sequence[NativeMessage], results: Sequence[NativeToolResult]
) -> list[TurnResult]:
    """A run's turns, read back from the messages it added: each assistant message is a
    model call, the tool messages after it its results."""
    by_id = {r.tool_call_id: r for r in results if r.tool_call_id is not None}
    turns: list[TurnResult] = []
    for message in messages:
        if message.role == "assistant":
            calls = [tool_call_from_native(c) for c in message.tool_calls]
            completion = CompletionResult(
                content=message.content or None,
                tool_calls=calls or None,
                finish_reason="tool_calls" if calls else "stop",
            )
            turns.append(TurnResult(completion, calls, [], len(turns)))
        elif message.role == "tool" and turns:
            native = by_id.get(message.tool_call_id or "")
            if native is None:  # an answer the agent wrote for a call cut short
                native = NativeToolResult(content=message.content or "", is_error=True)
            turns[-1].tool_results.append(ToolResult.from_native(native))
    return turns


class Agent:
    """A tool-using agent over a provider.

    ::

        agent = Agent(provider=OpenAIProvider(model="gpt-5-nano"), tools=[get_weather],
                      system_message="You are a helpful assistant.")
        result = await agent.run("What's the weather in Tokyo?")

    A second :meth:`run` continues the conversation; :meth:`reset` starts over.

    :raises ConfigError: a provider that is not an ``OpenAIProvider``, unsupported config.
    """

    def __init__(
        self,
        provider: OpenAIProvider,
        *,
        tools: Sequence[Tool | Any] | ToolRegistry | None = None,
        system_message: str | None = None,
        conversation: Conversation | None = None,
        config: AgentConfig | None = None,
        max_turns: int = 10,
        max_tokens: int | None = None,
    ) -> None:
        if not isinstance(provider, OpenAIProvider):
            raise ConfigError(
                f"Agent(provider=...) takes an OpenAIProvider, got {type(provider).__name__}"
            )
        self.provider = provider
        self.tools = tools if isinstance(tools, ToolRegistry) else ToolRegistry(tools or [])
        self.config = config or AgentConfig()
        if max_turns != 10:
            self.config.max_turns = max_turns
        if max_tokens is not None:
            self.config.max_tokens = max_tokens
        self.config.to_native()  # refuse what limelight's agent cannot do, now
        if conversation is not None:
            self.conversation = conversation
            if system_message:
                self.conversation.system_message = system_message
        else:
            self.conversation = Conversation(
                system_message=system_message,
                max_tokens=self.config.max_tokens,
                reserve_tokens=self.config.reserve_tokens,
            )
        self._slot = _Slot()
        self._built_for: tuple[list[str], int] | None = None
        self._busy: anyio.Lock | None = None
        self._running = False
        self._finalizer = close_when_collected(self, provider.host.runtime, self._slot.stop)

    @property
    def model(self) -> type[ModelProfile]:
        return self.provider.model

    # -- the native agent (on the host's loop) ----------------------------------------------

    async def _agent(self) -> NativeAgent:
        """limelight's agent for the current tools and conversation, started on first use
        (and again after the tools or the conversation changed)."""
        identity = (self.tools.names, id(self.conversation.native))
        native = self._slot.native
        if native is not None and self._built_for == identity:
            return native
        await self._slot.stop()
        runtime = self.provider.host.runtime
        native = self._slot.native = NativeAgent(
            model=await self.provider.pool(),
            tools=self.tools.natives(),
            system=self.conversation.system_message,
            config=self.config.to_native(),
            name=runtime.auto_name("llm-client-agent"),
            runtime=runtime,
            model_name=self.provider.model_name,
            conversation=self.conversation.native,
        )
        self._built_for = identity
        return native

    async def _prepare(self, max_turns: int | None, options: dict[str, Any]) -> NativeAgent:
        agent = await self._agent()
        agent.config = self.config.to_native(max_turns=max_turns, **options)
        return agent

    def _lock(self) -> anyio.Lock:
        if self._busy is None:
            self._busy = anyio.Lock()
        return self._busy

    def _result(self, native: NativeResult, start: int) -> AgentResult:
        added = native.conversation.messages[start:]
        status: Literal["success", "max_turns", "error"]
        if native.status == "completed":
            status, error = "success", None
        elif native.status == "max_turns":
            status, error = "max_turns", None
        else:
            status = "error"
            error = native.error or f"the run ended with status {native.status}"
        content = native.content
        if status == "error" and not content:
            content = error
        return AgentResult(
            content=content,
            turns=_turns(added, native.tool_results),
            conversation=self.conversation,
            total_usage=usage_from_native(native.usage, self.provider.model_name) or Usage(),
            status=status,
            error=error,
        )

    # -- runs ---------------------------------------------------------------------------------

    @staticmethod
    def _options(kwargs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(kwargs) - set(_RUN_OPTIONS))
        if unknown:
            raise ConfigError(
                f"Agent runs take {', '.join(_RUN_OPTIONS)} as options, not "
                f"{', '.join(unknown)}: limelight's agent sends these only"
            )
        return kwargs

    async def run(self, prompt: str, *, max_turns: int | None = None, **kwargs: Any) -> AgentResult:
        """Run until the model answers without tool calls, or ``max_turns`` calls.

        :param kwargs: ``temperature``, ``max_tokens`` (of each answer).
        :raises ConfigError: a prompt that is not a string, or an unknown option.
        """
        if not isinstance(prompt, str):
            raise ConfigError(f"prompt must be a str, got {type(prompt).__name__}")
        options = self._options(kwargs)
        return await self.provider.host.call(self._run_there, prompt, max_turns, options)

    async def _run_there(
        self, prompt: str, max_turns: int | None, options: dict[str, Any]
    ) -> AgentResult:
        async with self._lock():
            self._running = True
            try:
                agent = await self._prepare(max_turns, options)
                start = len(self.conversation.native)
                return self._result(await agent.run(prompt), start)
            finally:
                self._running = False

    def stream(
        self, prompt: str, *, max_turns: int | None = None, **kwargs: Any
    ) -> BridgedStream[StreamEvent]:
        """Run, streaming: per turn a META ``{"event": "turn_start", "turn": n}``, TOKEN and
        TOOL_CALL_START/DELTA/END events, the turn's DONE (its :class:`CompletionResult`),
        a META ``{"event": "tool_result", "tool_call_id", "tool_name", "success",
        "content"}`` per tool run; at the end a DONE whose ``data`` is the
        :class:`AgentResult`. Read it to the end, or ``aclose()`` it.
        """
        if not isinstance(prompt, str):
            raise ConfigError(f"prompt must be a str, got {type(prompt).__name__}")
        options = self._options(kwargs)
        return self.provider.host.stream(lambda: self._stream_there(prompt, max_turns, options))

    async def _stream_there(
        self, prompt: str, max_turns: int | None, options: dict[str, Any]
    ) -> AsyncIterator[StreamEvent]:
        model = self.provider.model_name
        async with self._lock():
            self._running = True
            try:
                agent = await self._prepare(max_turns, options)
                start = len(self.conversation.native)
                turn = _Turn(0)
                yield turn.start_event()
                async with agent.stream(prompt) as events:
                    async for event in events:
                        for out in turn.events(event, model):
                            yield out
                result = events.result
            finally:
                self._running = False
        if result is not None:
            if not turn.done_sent:
                yield turn.done_event()
            yield StreamEvent(type=StreamEventType.DONE, data=self._result(result, start))

    async def chat(self, message: str, **kwargs: Any) -> str:
        """The answer's text only."""
        return (await self.run(message, **kwargs)).content or ""

    # -- tools and conversation ---------------------------------------------------------------

    def add_tool(self, tool: Tool) -> Agent:
        self.tools.register(tool)
        return self

    def remove_tool(self, name: str) -> Agent:
        self.tools.unregister(name)
        return self

    def reset(self) -> Agent:
        """Forget the conversation (the system message stays).

        :raises ConfigError: a run is in progress.
        """
        if self._running:
            raise ConfigError("reset() while a run is in progress: wait for it to end")
        self.conversation.clear()
        return self

    def fork(self) -> Agent:
        """A new agent with this one's provider, tools and config, and a copy of its
        conversation."""
        return Agent(
            provider=self.provider,
            tools=self.tools,
            conversation=self.conversation.fork(),
            config=dataclasses.replace(self.config),
        )

    def save_session(self, path: str | os.PathLike[str]) -> None:
        """Write the conversation, config and tool names as JSON (the earlier format)."""
        data = {
            "version": "1.0",
            "conversation": self.conversation.to_dict(),
            "config": dataclasses.asdict(self.config),
            "tool_names": self.tools.names,
        }
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data, indent=2), encoding="utf-8")

    @classmethod
    def load_session(
        cls,
        path: str | os.PathLike[str],
        provider: OpenAIProvider,
        *,
        tools: Sequence[Tool] | ToolRegistry | None = None,
    ) -> Agent:
        """An agent continuing a saved session; warns when a tool it used is not given.

        :raises ConfigError: the file is not a saved session.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            config = AgentConfig(**data.get("config", {}))
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{os.fspath(path)!r} is not a saved agent session: {exc}") from exc
        agent = cls(
            provider=provider,
            tools=tools,
            conversation=Conversation.from_dict(data["conversation"]),
            config=config,
        )
        missing = set(data.get("tool_names", [])) - set(agent.tools.names)
        if missing:
            warnings.warn(
                f"the session was saved with tools that are not given: {sorted(missing)}",
                UserWarning,
                stacklevel=2,
            )
        return agent

    # -- lifecycle ----------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the agent's actor and close its provider."""
        self._finalizer.detach()
        await self.provider.host.call(self._slot.stop)
        await self.provider.close()

    async def __aenter__(self) -> Agent:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class _Turn:
    """The streaming state of one model call of a run."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.text: list[str] = []
        self.calls: list[ToolCall] = []
        self.ran_tools = False
        self.done_sent = False

    def _next(self) -> None:
        self.number += 1
        self.text, self.calls = [], []
        self.ran_tools = self.done_sent = False

    def start_event(self) -> StreamEvent:
        return StreamEvent(
            type=StreamEventType.META, data={"event": "turn_start", "turn": self.number}
        )

    def done_event(self) -> StreamEvent:
        self.done_sent = True
        completion = CompletionResult(
            content="".join(self.text) or None,
            tool_calls=list(self.calls) or None,
            finish_reason="tool_calls" if self.calls else "stop",
        )
        return StreamEvent(type=StreamEventType.DONE, data=completion)

    def events(self, event: Any, model: str) -> list[StreamEvent]:
        """``event`` of limelight's agent as the earlier package's events (a new turn's
        start when text or a call comes after tool results)."""
        out: list[StreamEvent] = []
        if event.type in (NativeKind.TOKEN, NativeKind.TOOL_CALL) and self.ran_tools:
            self._next()
            out.append(self.start_event())
        match event.type:
            case NativeKind.TOKEN:
                self.text.append(event.content or "")
                out += translate_event(event, len(self.calls), model)
            case NativeKind.TOOL_CALL if event.tool_call is not None:
                out += translate_event(event, len(self.calls), model)
                self.calls.append(tool_call_from_native(event.tool_call))
            case NativeKind.TOOL_RESULT if event.tool_result is not None:
                if not self.done_sent:
                    out.append(self.done_event())
                self.ran_tools = True
                result = ToolResult.from_native(event.tool_result)
                out.append(
                    StreamEvent(
                        type=StreamEventType.META,
                        data={
                            "event": "tool_result",
                            "tool_call_id": event.tool_result.tool_call_id,
                            "tool_name": event.tool_result.name,
                            "success": result.success,
                            "content": result.to_string()[:_EVENT_CONTENT],
                        },
                    )
                )
            case NativeKind.ERROR:
                out.append(
                    StreamEvent(
                        type=StreamEventType.ERROR,
                        data={"status": 500, "error": event.error, "type": event.error_type},
                    )
                )
        return out


class _Slot:
    """The agent's limelight agent, kept apart from it: a finalizer can stop it without
    keeping the agent alive."""

    __slots__ = ("native",)

    def __init__(self) -> None:
        self.native: NativeAgent | None = None

    async def stop(self) -> None:
        native, self.native = self.native, None
        if native is not None and native.ref is not None:
            await native.ref.stop()


async def quick_agent(
    prompt: str,
    *,
    model: str = "gpt-5-mini",
    tools: Sequence[Tool] | None = None,
    system_message: str | None = None,
    **kwargs: Any,
) -> str:
    """One question to a fresh agent; its answer's text."""
    async with OpenAIProvider(model=model) as provider:
        agent = Agent(provider=provider, tools=tools, system_message=system_message)
        return (await agent.run(prompt, **kwargs)).content or ""
