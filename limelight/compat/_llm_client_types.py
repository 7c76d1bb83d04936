"""The agent client's data types, and their translation to and from limelight's.

Messages, usage, results and stream events, against :mod:`~limelight.schemas`.

The earlier package's users hold mutable dataclasses with enum roles and event types; the
engine speaks frozen msgspec Structs. These converters are the only place the two meet.
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from .._models import model_price
from ..errors import ConfigError
from ..schemas import CompletionResult as NativeResult
from ..schemas import Message as NativeMessage
from ..schemas import ToolCall as NativeToolCall
from ..schemas import Usage as NativeUsage

__all__ = [
    "CompletionResult",
    "EmbeddingResult",
    "Message",
    "MessageInput",
    "Role",
    "StreamEvent",
    "StreamEventType",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "native_messages",
    "normalize_messages",
    "result_from_native",
    "usage_from_native",
]


class Role(str, enum.Enum):  # noqa: UP042 - str() as before: "Role.USER"
    """Message roles in a conversation."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class StreamEventType(str, enum.Enum):  # noqa: UP042 - as before
    """Kinds of events a stream emits (REASONING is never emitted: limelight's streams do not
    carry reasoning text)."""

    TOKEN = "token"
    REASONING = "reasoning"
    TOOL_CALL_START = "tool_call_start"
    TOOL_CALL_DELTA = "tool_call_delta"
    TOOL_CALL_END = "tool_call_end"
    META = "meta"
    USAGE = "usage"
    DONE = "done"
    ERROR = "error"


@dataclass
class ToolCall:
    """A tool call the model made; ``arguments`` is its JSON text."""

    id: str
    name: str
    arguments: str

    def parse_arguments(self) -> dict[str, Any]:
        """The arguments as a dict.

        :raises ValueError: they are not JSON (``json.JSONDecodeError``).
        """
        parsed: dict[str, Any] = json.loads(self.arguments) if self.arguments else {}
        return parsed


@dataclass
class ToolCallDelta:
    """Part of a tool call while it streams."""

    id: str
    index: int
    name: str | None = None
    arguments_delta: str = ""


@dataclass
class Message:
    """One chat message."""

    role: Role
    content: str | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The message in OpenAI's wire shape."""
        d: dict[str, Any] = {"role": self.role.value}
        if self.content is not None:
            d["content"] = self.content
        if self.name is not None:
            d["name"] = self.name
        if self.tool_calls:
            d["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in self.tool_calls
            ]
        if self.tool_call_id is not None:
            d["tool_call_id"] = self.tool_call_id
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        """:raises ConfigError: not a chat message (no or an unknown ``role``)."""
        try:
            role = Role(data["role"])
        except (KeyError, ValueError) as exc:
            raise ConfigError(
                f"a message needs a role of {', '.join(r.value for r in Role)}, got "
                f"{data.get('role')!r}"
            ) from exc
        calls = [
            ToolCall(id=c["id"], name=c["function"]["name"], arguments=c["function"]["arguments"])
            for c in data.get("tool_calls") or []
        ]
        content = data.get("content")
        if content is not None and not isinstance(content, str):
            raise ConfigError(
                "message content must be text here (limelight's engine sends text content), "
                f"got {type(content).__name__}"
            )
        return cls(
            role=role,
            content=content,
            name=data.get("name"),
            tool_calls=calls or None,
            tool_call_id=data.get("tool_call_id"),
        )

    @classmethod
    def user(cls, content: str) -> Message:
        return cls(role=Role.USER, content=content)

    @classmethod
    def assistant(
        cls, content: str | None = None, tool_calls: list[ToolCall] | None = None
    ) -> Message:
        return cls(role=Role.ASSISTANT, content=content, tool_calls=tool_calls)

    @classmethod
    def system(cls, content: str) -> Message:
        return cls(role=Role.SYSTEM, content=content)

    @classmethod
    def tool_result(cls, tool_call_id: str, content: str, name: str | None = None) -> Message:
        return cls(role=Role.TOOL, content=content, tool_call_id=tool_call_id, name=name)

    def to_native(self) -> NativeMessage:
        """This message as limelight's :class:`~limelight.schemas.Message`."""
        return NativeMessage(
            role=self.role.value,
            content=self.content,
            name=self.name,
            tool_calls=[
                NativeToolCall(id=c.id, name=c.name, arguments=c.arguments)
                for c in self.tool_calls or ()
            ],
            tool_call_id=self.tool_call_id,
        )

    @classmethod
    def from_native(cls, message: NativeMessage) -> Message:
        role = "system" if message.role == "developer" else message.role
        return cls(
            role=Role(role),
            content=message.content,
            name=message.name,
            tool_calls=[tool_call_from_native(c) for c in message.tool_calls] or None,
            tool_call_id=message.tool_call_id,
        )


def tool_call_from_native(call: NativeToolCall) -> ToolCall:
    return ToolCall(id=call.id, name=call.name, arguments=call.arguments)


@dataclass
class Usage:
    """Tokens and USD of one call (or of a run: the sum of its calls)."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    input_tokens_cached: int = 0
    input_cost: float = 0.0
    output_cost: float = 0.0
    total_cost: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "input_tokens_cached": self.input_tokens_cached,
            "input_cost": self.input_cost,
            "output_cost": self.output_cost,
            "total_cost": self.total_cost,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        return cls(
            input_tokens=data.get("input_tokens", 0),
            output_tokens=data.get("output_tokens", 0),
            total_tokens=data.get("total_tokens", 0),
            input_tokens_cached=data.get("input_tokens_cached", 0),
            input_cost=data.get("input_cost", 0.0),
            output_cost=data.get("output_cost", 0.0),
            total_cost=data.get("total_cost", 0.0),
        )


def usage_from_native(usage: NativeUsage | None, model: str) -> Usage | None:
    """``usage`` with its cost, priced as limelight prices every call
    (:func:`~limelight.usage.model_price`: a registered profile, genai-prices, LiteLLM's
    map); costs are 0.0 when no source knows ``model``'s price."""
    if usage is None:
        return None
    price = model_price(model)
    input_cost = output_cost = 0.0
    if price is not None:
        cached = min(max(usage.cached_tokens, 0), usage.prompt_tokens)
        cached_price = price.input if price.cached_input is None else price.cached_input
        input_cost = ((usage.prompt_tokens - cached) * price.input + cached * cached_price) / 1e6
        output_cost = usage.completion_tokens * price.output / 1e6
    return Usage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
        input_tokens_cached=usage.cached_tokens,
        input_cost=input_cost,
        output_cost=output_cost,
        total_cost=input_cost + output_cost,
    )


@dataclass
class CompletionResult:
    """The outcome of one completion; a failed call has ``status`` != 200 and ``error``."""

    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    usage: Usage | None = None
    reasoning: str | None = None
    model: str | None = None
    finish_reason: str | None = None
    status: int = 200
    error: str | None = None
    raw_response: Any | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None

    @property
    def has_tool_calls(self) -> bool:
        return bool(self.tool_calls)

    def to_message(self) -> Message:
        return Message.assistant(content=self.content, tool_calls=self.tool_calls)

    def to_dict(self) -> dict[str, Any]:
        return {
            "content": self.content,
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": c.arguments}
                for c in self.tool_calls or ()
            ],
            "usage": self.usage.to_dict() if self.usage else None,
            "reasoning": self.reasoning,
            "model": self.model,
            "finish_reason": self.finish_reason,
            "status": self.status,
            "error": self.error,
        }


def result_from_native(result: NativeResult, model: str) -> CompletionResult:
    """``result`` as the agent client's result; ``raw_response`` keeps the native one."""
    return CompletionResult(
        content=result.content,
        tool_calls=[tool_call_from_native(c) for c in result.tool_calls] or None,
        usage=usage_from_native(result.usage, result.model or model),
        model=result.model or model,
        finish_reason=result.finish_reason,
        raw_response=result,
    )


@dataclass
class EmbeddingResult:
    """The outcome of one embedding request."""

    embeddings: list[list[float]]
    usage: Usage | None = None
    model: str | None = None
    status: int = 200
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None

    @property
    def embedding(self) -> list[float] | None:
        """The one vector of a single-input request."""
        return self.embeddings[0] if self.embeddings else None


def _data_text(data: Any) -> str:
    if isinstance(data, str):
        return data
    to_dict = getattr(data, "to_dict", None)
    if callable(to_dict):
        return json.dumps(to_dict())
    if isinstance(data, (dict, list)):
        return json.dumps(data)
    return str(data)


@dataclass
class StreamEvent:
    """One event of a stream. ``data`` by type: TOKEN the text, TOOL_CALL_START and
    TOOL_CALL_DELTA a :class:`ToolCallDelta`, TOOL_CALL_END a :class:`ToolCall`, META a dict,
    USAGE a :class:`Usage`, DONE the :class:`CompletionResult` (an agent's last DONE: its
    ``AgentResult``), ERROR a dict with ``status`` and ``error``."""

    type: StreamEventType
    data: Any
    timestamp: float = field(default_factory=time.time)

    def to_sse(self) -> str:
        """The event as one server-sent-event frame."""
        return f"event: {self.type.value}\ndata: {_data_text(self.data)}\n\n"


_OneMessage: TypeAlias = str | Mapping[str, Any] | Message | NativeMessage
MessageInput: TypeAlias = _OneMessage | Sequence[_OneMessage]


def normalize_messages(messages: MessageInput) -> list[Message]:
    """Messages given as a string (one user message), a dict, a :class:`Message`, or a list
    of those, as a list of :class:`Message`.

    :raises ConfigError: something else was given.
    """
    items: Sequence[_OneMessage]
    if isinstance(messages, (str, Mapping, Message, NativeMessage)):
        items = [messages]
    elif isinstance(messages, Sequence):
        items = messages
    else:
        raise ConfigError(
            "messages must be a string, a dict, a Message or a list of them, got "
            f"{type(messages).__name__}"
        )
    out: list[Message] = []
    for i, m in enumerate(items):
        if isinstance(m, str):
            out.append(Message.user(m))
        elif isinstance(m, Message):
            out.append(m)
        elif isinstance(m, NativeMessage):
            out.append(Message.from_native(m))
        elif isinstance(m, Mapping):
            out.append(Message.from_dict(m))
        else:
            raise ConfigError(
                f"messages[{i}] must be a string, a dict or a Message, got {type(m).__name__}"
            )
    return out


def native_messages(messages: MessageInput) -> list[NativeMessage]:
    """:func:`normalize_messages`, as limelight's messages.

    :raises ConfigError: not messages, or none at all.
    """
    out = [m.to_native() for m in normalize_messages(messages)]
    if not out:
        raise ConfigError("there are no messages to send: give a prompt or a list of messages")
    return out
