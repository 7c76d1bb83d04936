"""The messages every LLM call is made of: requests, results, stream events, usage.

These cross actor boundaries and wires, so they are frozen, keyword-only msgspec Structs.
"""

from __future__ import annotations

import enum
from typing import Any, Literal

import msgspec

from .._timeouts import warn_renamed

Role = Literal["system", "user", "assistant", "tool", "developer"]


class ToolCall(msgspec.Struct, gc=False, frozen=True, kw_only=True, omit_defaults=True):
    """A call the model asked for. ``arguments`` is the JSON text exactly as the model gave it
    (it may be invalid: validating it is the tool executor's job)."""

    id: str
    name: str
    arguments: str = "{}"


class Message(msgspec.Struct, gc=False, frozen=True, kw_only=True, omit_defaults=True):
    """One chat message."""

    role: Role
    content: str | None = None
    name: str | None = None
    tool_calls: list[ToolCall] = []
    tool_call_id: str | None = None

    @classmethod
    def system(cls, content: str) -> Message:
        return cls(role="system", content=content)

    @classmethod
    def user(cls, content: str, *, name: str | None = None) -> Message:
        return cls(role="user", content=content, name=name)

    @classmethod
    def assistant(
        cls, content: str | None = None, *, tool_calls: list[ToolCall] | None = None
    ) -> Message:
        return cls(role="assistant", content=content, tool_calls=tool_calls or [])

    @classmethod
    def tool(cls, content: str, *, tool_call_id: str, name: str | None = None) -> Message:
        return cls(role="tool", content=content, tool_call_id=tool_call_id, name=name)


class ToolSpec(msgspec.Struct, gc=False, frozen=True, kw_only=True, omit_defaults=True):
    """A tool offered to the model: its name, what it does and a JSON schema of its arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = msgspec.field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    strict: bool | None = None


class Usage(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    """Token counts of one call (or a sum of calls: ``a + b``).

    :ivar cached_tokens: prompt tokens the provider served from its prompt cache (part of
        ``prompt_tokens``; priced lower where the price source knows it).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
        )

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> Usage:
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )


class CompletionRequest(msgspec.Struct, gc=False, frozen=True, kw_only=True, omit_defaults=True):
    """One LLM call: chat (``messages``) or text completion (``prompt``).

    :ivar model: the backend's model name; empty means the backend's default.
    :ivar response_format: OpenAI's ``response_format`` object (``{"type": "json_schema", ...}``).
    :ivar metadata: free-form labels carried to results and analytics (role, run id, ...).
    :ivar extra: backend-specific body parameters, passed through unchanged.
    :ivar attempt_timeout: seconds for each attempt of this request; ``None`` means the
        pool's (or, called directly, the backend's) default. See :mod:`limelight._timeouts`.
    :ivar timeout: the deprecated name of ``attempt_timeout`` (warns; read back as ``None``).
    """

    model: str = ""
    messages: list[Message] = []
    prompt: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    tools: list[ToolSpec] = []
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    stream: bool = False
    metadata: dict[str, str] = {}
    extra: dict[str, Any] = {}
    attempt_timeout: float | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.timeout is not None:
            warn_renamed("CompletionRequest", "timeout", "attempt_timeout")
            if self.attempt_timeout is None:
                msgspec.structs.force_setattr(self, "attempt_timeout", self.timeout)
            msgspec.structs.force_setattr(self, "timeout", None)


class CompletionResult(msgspec.Struct, gc=False, frozen=True, kw_only=True, omit_defaults=True):
    """The outcome of one LLM call.

    :ivar latency: seconds from sending the request to the last byte of the answer.
    :ivar ttft: seconds to the first token, for streamed calls.
    :ivar cost: the call's price in USD, when the price of the model is known.
    :ivar rate_limit: the server's ``x-ratelimit-*`` headers, lower-cased.
    """

    content: str | None = None
    tool_calls: list[ToolCall] = []
    finish_reason: str | None = None
    model: str = ""
    usage: Usage | None = None
    latency: float | None = None
    ttft: float | None = None
    cost: float | None = None
    id: str | None = None
    provider: str | None = None
    metadata: dict[str, str] = {}
    rate_limit: dict[str, str] = {}

    def message(self) -> Message:
        """This result as an assistant message, ready to append to a conversation."""
        return Message(role="assistant", content=self.content, tool_calls=self.tool_calls)


class ToolResult(msgspec.Struct, gc=False, frozen=True, kw_only=True, omit_defaults=True):
    """The outcome of one tool call, as the model will see it.

    :ivar content: the tool's return value as text (JSON for structured values), or the
        error message when ``is_error``.
    :ivar is_error: the call failed; ``content`` says why and what to do instead.
    :ivar duration: seconds the call took, validation included.
    :ivar name: the tool called.
    :ivar tool_call_id: the id of the model's call this answers.
    :ivar usage: tokens spent inside the tool (a delegated child agent's, say).
    :ivar cost: USD spent inside the tool, when known.
    """

    content: str
    is_error: bool = False
    duration: float = 0.0
    name: str = ""
    tool_call_id: str | None = None
    usage: Usage | None = None
    cost: float | None = None


class StreamEventType(enum.Enum):
    TOKEN = "token"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    META = "meta"
    USAGE = "usage"
    DONE = "done"
    ERROR = "error"


class StreamEvent(msgspec.Struct, gc=False, frozen=True, kw_only=True, omit_defaults=True):
    """One event of a streamed call.

    TOKEN carries ``content``; TOOL_CALL a complete ``tool_call``; TOOL_RESULT (agents'
    streams) the ``tool_result`` of a call once the tool has run; USAGE ``usage``; META
    ``meta`` (model, id, headers); DONE the assembled ``result``; ERROR ``error`` (the message)
    and ``error_type`` (the exception class name).
    """

    type: StreamEventType
    content: str | None = None
    tool_call: ToolCall | None = None
    tool_result: ToolResult | None = None
    usage: Usage | None = None
    result: CompletionResult | None = None
    meta: dict[str, Any] = {}
    error: str | None = None
    error_type: str | None = None

    @classmethod
    def token(cls, content: str) -> StreamEvent:
        return cls(type=StreamEventType.TOKEN, content=content)

    @classmethod
    def done(cls, result: CompletionResult) -> StreamEvent:
        return cls(type=StreamEventType.DONE, result=result)


class EmbeddingRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    input: list[str]
    model: str = ""
    dimensions: int | None = None


class EmbeddingResult(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    embeddings: list[list[float]]
    model: str = ""
    usage: Usage | None = None


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    owned_by: str | None = None
    created: int | None = None


class ModelList(msgspec.Struct, frozen=True, kw_only=True):
    models: list[ModelInfo]

    def ids(self) -> list[str]:
        return [m.id for m in self.models]
