"""Building the agent client's requests, and translating limelight's answers back.

The earlier arguments (``tool_choice``, ``response_format``, ``reasoning_effort``,
``attempts``/``backoff``) become a :class:`~limelight.schemas.CompletionRequest` and a
:class:`~limelight.runtime.RetryPolicy`; failures and stream events become the earlier
statuses and events. Pure functions, used by ``OpenAIProvider``, ``OpenAIClient`` and
``Agent``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Final

import httpx
import msgspec

from .._tools import Tool as NativeTool
from ..actors._provider_worker import is_retryable_provider_error
from ..errors import (
    APIError,
    AskTimeout,
    BadResponse,
    ConfigError,
    DeadlineExceeded,
    ProviderTimeout,
    RateLimited,
)
from ..runtime import RetryPolicy
from ..schemas import StreamEvent as NativeEvent
from ..schemas import StreamEventType, ToolSpec
from ._llm_client_models import ModelProfile
from ._llm_client_types import (
    StreamEvent,
    ToolCallDelta,
    result_from_native,
    tool_call_from_native,
    usage_from_native,
)
from ._llm_client_types import StreamEventType as Kind

__all__ = [
    "FIELDS",
    "JSON_FORMATS",
    "api_key_for",
    "error_status",
    "normalized_json",
    "reasoning_effort_for",
    "response_format_for",
    "retry_policy",
    "tool_choice_for",
    "tool_specs",
    "translate_event",
]

#: Request fields a call's keyword arguments may set; any other goes into the body as is.
FIELDS: Final = ("top_p", "stop", "seed")
JSON_FORMATS: Final = ("json_object", "json_schema")


def error_status(exc: BaseException) -> tuple[int, str]:
    """The HTTP-like status and message the earlier package reported for a failure (the
    message with the error's notes: how many attempts were made)."""
    text = "; ".join([str(exc), *getattr(exc, "__notes__", ())])
    if isinstance(exc, RateLimited):
        return 429, f"Rate limit exceeded: {text}"
    if isinstance(exc, APIError):
        return exc.status_code, text
    if isinstance(exc, (ProviderTimeout, DeadlineExceeded, AskTimeout)):
        return 408, text or "Timeout"
    if isinstance(exc, BadResponse):
        return 502, text
    return 500, text


def retry_policy(attempts: int, backoff: float) -> RetryPolicy:
    """The earlier ``attempts``/``backoff``: that many tries, the delay doubling from
    ``backoff``; retried are 429s (after their ``Retry-After``), 408, 409, 5xx, timeouts and
    connection errors."""
    if not isinstance(attempts, int) or attempts < 1:
        raise ConfigError(f"attempts must be an int >= 1, got {attempts!r}")
    if backoff < 0:
        raise ConfigError(f"backoff must be >= 0 seconds, got {backoff!r}")
    return RetryPolicy(
        attempts=attempts,
        initial_delay=float(backoff),
        max_delay=max(60.0, float(backoff)),
        retry_on=is_retryable_provider_error,
    )


def tool_specs(tools: Any) -> list[ToolSpec]:
    if tools is None:
        return []
    items = getattr(tools, "tools", tools)  # a ToolRegistry
    specs: list[ToolSpec] = []
    for t in items:
        native = getattr(t, "native", t)
        if isinstance(native, NativeTool):
            specs.append(native.spec)
        elif isinstance(native, ToolSpec):
            specs.append(native)
        else:
            raise ConfigError(
                f"tools must be Tools (made with @tool, @sync_tool or Tool(...)), got {t!r}"
            )
    return specs


def tool_choice_for(choice: str | Mapping[str, Any] | None) -> str | dict[str, Any] | None:
    if choice is None or isinstance(choice, Mapping):
        return None if choice is None else dict(choice)
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def response_format_for(response_format: Any, messages: str) -> dict[str, Any] | None:
    """The earlier ``response_format`` as OpenAI's: ``"text"``, ``"json_object"``, a dict,
    or a pydantic model or msgspec Struct class (a JSON schema)."""
    if response_format is None or response_format == "text":
        return None
    if response_format == "json_object":
        if "json" not in messages.lower():
            raise ConfigError(
                "response_format='json_object' needs the word 'json' in the messages (OpenAI "
                "refuses JSON mode without it): say in the prompt that the answer is JSON"
            )
        return {"type": "json_object"}
    if isinstance(response_format, Mapping):
        return dict(response_format)
    if isinstance(response_format, type):
        schema_of = getattr(response_format, "model_json_schema", None)
        if callable(schema_of):
            schema = schema_of()
        elif issubclass(response_format, msgspec.Struct):
            schema = msgspec.json.schema(response_format)
        else:
            schema = None
        if schema is not None:
            return {
                "type": "json_schema",
                "json_schema": {"name": response_format.__name__, "schema": schema},
            }
    raise ConfigError(
        "response_format must be 'text', 'json_object', a dict, or a pydantic model or msgspec "
        f"Struct class, got {response_format!r}"
    )


def normalized_json(content: str | None) -> str | None:
    """A JSON answer re-encoded as the earlier package returned it (``json.dumps`` of the
    parsed value); text that is not JSON is kept as it came."""
    if content is None:
        return None
    try:
        return json.dumps(json.loads(content))
    except ValueError:
        return content


def reasoning_effort_for(
    profile: type[ModelProfile], effort: str | None, reasoning: Mapping[str, Any] | None
) -> str | None:
    """The one effort ``reasoning_effort`` / ``reasoning={"effort": ...}`` ask for, checked
    against the model's profile."""
    if effort is None and reasoning is None:
        return None
    if reasoning is not None:
        if not isinstance(reasoning, Mapping):
            raise ConfigError("`reasoning` must be an object like {'effort': '<level>'}")
        other = reasoning.get("effort")
        if effort is not None and other is not None and other != effort:
            raise ConfigError(
                "give only one of `reasoning` and `reasoning_effort`, or make them match"
            )
        effort = effort or other
    if not profile.reasoning_model:
        raise ConfigError(
            f"model {profile.key!r} does not reason, but reasoning parameters were given"
        )
    if effort not in profile.reasoning_efforts:
        raise ConfigError(
            f"invalid reasoning effort {effort!r} for {profile.key!r}: choose from "
            f"{profile.reasoning_efforts}"
        )
    return effort


def api_key_for(api_key: str | None, base_url: str) -> str | None:
    key = api_key or os.environ.get("OPENAI_API_KEY") or None
    if key is None and httpx.URL(base_url).host == "api.openai.com":
        raise ConfigError(
            "no OpenAI API key: set OPENAI_API_KEY (a .env file in the working directory is "
            "read on import) or pass api_key=; or point base_url= / OPENAI_BASE_URL at an "
            "OpenAI-compatible server"
        )
    return key


def translate_event(event: NativeEvent, index: int, model: str) -> list[StreamEvent]:
    """One of limelight's stream events as the earlier package's events (a complete tool
    call becomes its START, DELTA and END)."""
    kind = Kind
    match event.type:
        case StreamEventType.TOKEN:
            return [StreamEvent(type=kind.TOKEN, data=event.content or "")]
        case StreamEventType.TOOL_CALL if event.tool_call is not None:
            call = event.tool_call
            return [
                StreamEvent(
                    type=kind.TOOL_CALL_START,
                    data=ToolCallDelta(id=call.id, index=index, name=call.name),
                ),
                StreamEvent(
                    type=kind.TOOL_CALL_DELTA,
                    data=ToolCallDelta(id=call.id, index=index, arguments_delta=call.arguments),
                ),
                StreamEvent(type=kind.TOOL_CALL_END, data=tool_call_from_native(call)),
            ]
        case StreamEventType.USAGE if event.usage is not None:
            return [StreamEvent(type=kind.USAGE, data=usage_from_native(event.usage, model))]
        case StreamEventType.DONE if event.result is not None:
            return [StreamEvent(type=kind.DONE, data=result_from_native(event.result, model))]
        case StreamEventType.ERROR:
            return [StreamEvent(type=kind.ERROR, data={"status": 500, "error": event.error})]
    return []
