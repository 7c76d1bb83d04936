"""Typed analytics events: what happened in an agent run, who asked, and what it cost.

An :class:`Event` carries a typed payload (one msgspec Struct per :class:`EventType`, tagged by
``kind`` on the wire), a stable ``event_id`` set once at creation (sinks dedupe on it), and the
links that rebuild a run's tree (``run_id``, ``session_id``, ``parent_event_id``). Secrets are
redacted when an event is built, so none reaches a sink.

One module: the schema is one tagged union. :class:`EventType`, its payload Structs, the
``PAYLOAD_TYPES`` table, :class:`Event`'s factories and the codec change together whenever an
event type is added.
"""

# The create_* stubs have docstrings for bodies; @_factory generates the real ones.
# mypy: disable-error-code="empty-body"

from __future__ import annotations

import enum
import inspect
import os
import random
import time
import traceback as _traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, TypedDict, TypeVar, Unpack, get_args, get_origin

import msgspec

from .._secrets import REDACTED as REDACTED
from .._secrets import redact as redact
from ..errors import ConfigError, EventDecodeError

__all__ = [
    "REDACTED",
    "APIRequestPayload",
    "APIResponsePayload",
    "AgentPlanningPayload",
    "AgentReasoningPayload",
    "AgentResponsePayload",
    "ErrorPayload",
    "Event",
    "EventLinks",
    "EventPayload",
    "EventType",
    "FunctionExecutionPayload",
    "LLMRequestPayload",
    "LLMResponsePayload",
    "LLMStreamingChunkPayload",
    "PAYLOAD_TYPES",
    "PerformanceMetricPayload",
    "SessionEndPayload",
    "SessionStartPayload",
    "TimeoutErrorPayload",
    "ToolCallPayload",
    "ToolResponsePayload",
    "UserFeedbackPayload",
    "UserInputPayload",
    "ValidationErrorPayload",
    "decode_event",
    "decode_events",
    "encode_event",
    "encode_events",
    "event_size",
    "new_event_id",
    "redact",
]


class EventType(enum.StrEnum):
    """What an event records; also the ``kind`` tag of its payload on the wire."""

    USER_INPUT = "user_input"
    USER_FEEDBACK = "user_feedback"
    AGENT_REASONING = "agent_reasoning"
    AGENT_PLANNING = "agent_planning"
    AGENT_RESPONSE = "agent_response"
    LLM_REQUEST = "llm_request"
    LLM_RESPONSE = "llm_response"
    LLM_STREAMING_CHUNK = "llm_streaming_chunk"
    TOOL_CALL = "tool_call"
    TOOL_RESPONSE = "tool_response"
    FUNCTION_EXECUTION = "function_execution"
    API_REQUEST = "api_request"
    API_RESPONSE = "api_response"
    ERROR = "error"
    VALIDATION_ERROR = "validation_error"
    TIMEOUT_ERROR = "timeout_error"
    SESSION_START = "session_start"
    SESSION_END = "session_end"
    PERFORMANCE_METRIC = "performance_metric"


# --- redaction ---------------------------------------------------------------------------------
# The rules live in limelight._secrets, shared with the errors (messages, server bodies).


def _redact_fields(struct: msgspec.Struct, names: Iterable[str]) -> None:
    for name in names:
        value = getattr(struct, name)
        if value is None or (isinstance(value, dict | list) and not value):
            continue
        cleaned = redact(value)
        if cleaned is not value:  # a new object: secrets replaced, or str subclasses made str
            msgspec.structs.force_setattr(struct, name, cleaned)


class _Payload(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="kind"):
    # Free-form fields (text, dicts) that may carry secrets, redacted at construction.
    _redacted: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        if self._redacted:
            _redact_fields(self, self._redacted)


# --- payloads ----------------------------------------------------------------------------------


class UserInputPayload(_Payload, frozen=True, tag="user_input"):
    """What a user typed or sent."""

    _redacted = ("text",)
    text: str
    input_type: str = "text"


class UserFeedbackPayload(_Payload, frozen=True, tag="user_feedback"):
    """A user's rating of an answer (``target_event_id``: the event rated)."""

    _redacted = ("comment",)
    rating: float | None = None
    comment: str | None = None
    target_event_id: uuid.UUID | None = None


class AgentReasoningPayload(_Payload, frozen=True, tag="agent_reasoning"):
    """An agent's thought at one step of its loop."""

    _redacted = ("content",)
    agent_name: str
    content: str = ""
    step: int | None = None


class AgentPlanningPayload(_Payload, frozen=True, tag="agent_planning"):
    """An agent's plan: the steps it means to take."""

    _redacted = ("steps", "content")
    agent_name: str
    steps: list[str] = []
    content: str = ""


class AgentResponsePayload(_Payload, frozen=True, tag="agent_response"):
    """An agent's answer at the end of a run (or a step)."""

    _redacted = ("content",)
    agent_name: str
    content: str = ""
    turns: int | None = None
    duration: float | None = None
    finish_reason: str | None = None


class LLMRequestPayload(_Payload, frozen=True, tag="llm_request"):
    """An LLM call about to be made. ``role`` is the role-router role (executor, ...)."""

    model: str
    provider: str = ""
    messages_count: int = 0
    tools_count: int = 0
    role: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stream: bool = False


class LLMResponsePayload(_Payload, frozen=True, tag="llm_response"):
    """An LLM call's outcome: tokens, cost (USD, when known), latency and TTFT (seconds)."""

    _redacted = ("content",)
    model: str
    provider: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost: float | None = None
    latency: float | None = None
    ttft: float | None = None
    finish_reason: str | None = None
    role: str | None = None
    content: str | None = None
    tool_calls_count: int = 0


class LLMStreamingChunkPayload(_Payload, frozen=True, tag="llm_streaming_chunk"):
    """One chunk of a streamed answer."""

    _redacted = ("content",)
    model: str
    provider: str = ""
    index: int = 0
    content: str = ""
    elapsed: float | None = None


class ToolCallPayload(_Payload, frozen=True, tag="tool_call"):
    """A tool about to run, with the arguments it got."""

    _redacted = ("arguments",)
    tool_name: str
    arguments: dict[str, Any] = {}
    tool_call_id: str | None = None
    tool_type: str | None = None


class ToolResponsePayload(_Payload, frozen=True, tag="tool_response"):
    """A tool's result (or its error, ``is_error``) and how long it ran (seconds)."""

    _redacted = ("result",)
    tool_name: str
    result: Any = None
    is_error: bool = False
    duration: float | None = None
    tool_call_id: str | None = None


class FunctionExecutionPayload(_Payload, frozen=True, tag="function_execution"):
    """A traced function call: its arguments, result or error, and duration (seconds)."""

    _redacted = ("arguments", "result", "error")
    function_name: str
    arguments: dict[str, Any] = {}
    result: Any = None
    error: str | None = None
    duration: float | None = None


class APIRequestPayload(_Payload, frozen=True, tag="api_request"):
    """An outgoing HTTP request (never its headers)."""

    _redacted = ("url",)
    method: str
    url: str
    body_size: int | None = None


class APIResponsePayload(_Payload, frozen=True, tag="api_response"):
    """An HTTP response to an :class:`APIRequestPayload`."""

    _redacted = ("url",)
    method: str
    url: str
    status_code: int
    duration: float | None = None
    body_size: int | None = None


class ErrorPayload(_Payload, frozen=True, tag="error"):
    """An error: its class name, message, and (optionally) traceback and context."""

    _redacted = ("message", "traceback", "context")
    error_type: str
    message: str = ""
    traceback: str | None = None
    context: dict[str, Any] = {}


class ValidationErrorPayload(_Payload, frozen=True, tag="validation_error"):
    """Data that failed validation (model output, tool arguments): where and why."""

    _redacted = ("message", "value")
    error_type: str = "ValidationError"
    message: str = ""
    field: str | None = None
    value: Any = None


class TimeoutErrorPayload(_Payload, frozen=True, tag="timeout_error"):
    """An operation that ran out of time (``timeout``: the limit, seconds)."""

    _redacted = ("message",)
    operation: str
    timeout: float | None = None
    elapsed: float | None = None
    message: str = ""
    error_type: str = "TimeoutError"


class SessionStartPayload(_Payload, frozen=True, tag="session_start"):
    """A session (a user's run of an app) began."""

    _redacted = ("attributes",)
    attributes: dict[str, Any] = {}


class SessionEndPayload(_Payload, frozen=True, tag="session_end"):
    """A session ended, after ``duration`` seconds."""

    duration: float | None = None
    status: str = "ok"


class PerformanceMetricPayload(_Payload, frozen=True, tag="performance_metric"):
    """A named measurement (``value`` in ``unit``)."""

    name: str
    value: float
    unit: str = ""
    tags: dict[str, str] = {}


EventPayload = (
    UserInputPayload
    | UserFeedbackPayload
    | AgentReasoningPayload
    | AgentPlanningPayload
    | AgentResponsePayload
    | LLMRequestPayload
    | LLMResponsePayload
    | LLMStreamingChunkPayload
    | ToolCallPayload
    | ToolResponsePayload
    | FunctionExecutionPayload
    | APIRequestPayload
    | APIResponsePayload
    | ErrorPayload
    | ValidationErrorPayload
    | TimeoutErrorPayload
    | SessionStartPayload
    | SessionEndPayload
    | PerformanceMetricPayload
)

#: The event type each payload class records.
PAYLOAD_TYPES: dict[type[msgspec.Struct], EventType] = {
    cls: EventType(cls.__struct_config__.tag) for cls in get_args(EventPayload)
}


# --- the event ---------------------------------------------------------------------------------


class EventLinks(TypedDict, total=False):
    """The keywords every ``Event.create_*`` factory takes besides its payload's fields."""

    #: the run (one ``start_run`` .. ``end_run``) the event belongs to
    run_id: str | None
    user_id: str | None
    session_id: str | None
    #: the event this one happened inside
    parent_event_id: uuid.UUID | None
    #: free-form labels; secrets in them are redacted
    metadata: Mapping[str, Any] | None


_Factory = TypeVar("_Factory", bound=Callable[..., "Event"])


def _factory(payload: type[_Payload]) -> Callable[[_Factory], _Factory]:
    """Give a typed ``create_<event type>`` stub its body: build ``payload`` from the stub's
    arguments (mappings copied into dicts, iterables into lists, where the payload holds one)
    and wrap it in an :class:`Event` with the links.

    The stub's parameters (besides ``cls`` and ``**links``) must be exactly the payload's
    fields; its signature, defaults and docstring are kept. The body is compiled from source,
    as :mod:`dataclasses` does for ``__init__``, so a call costs what a handwritten one does.
    """
    event_type = PAYLOAD_TYPES[payload]
    types = {field.name: field.type for field in msgspec.structs.fields(payload)}

    def fill(stub: _Factory) -> _Factory:
        _, *params, links = inspect.signature(stub).parameters.values()
        names = [param.name for param in params]
        if (
            stub.__name__ != f"create_{event_type}"
            or sorted(names) != sorted(types)
            or links.kind is not inspect.Parameter.VAR_KEYWORD
        ):
            raise TypeError(
                f"{stub.__name__} must be named create_{event_type} and take exactly the "
                f"fields of {payload.__name__} ({', '.join(types)}), then **links"
            )
        values = []
        for name in names:
            origin = get_origin(types[name]) or types[name]
            if origin is dict:
                values.append(f"{name}=dict({name}) if {name} else {{}}")
            elif origin is list:
                values.append(f"{name}=list({name})")
            else:
                values.append(f"{name}={name}")
        positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
        keyword = [p.name for p in params if p.kind is p.KEYWORD_ONLY]
        star = ["*", *keyword] if keyword else []
        signature = ", ".join(["cls", *positional, *star, "**links"])
        source = (
            f"def make(payload, event_type):\n"
            f"    def {stub.__name__}({signature}):\n"
            f"        return cls._make(event_type, payload({', '.join(values)}), links)\n"
            f"    return {stub.__name__}\n"
        )
        namespace: dict[str, Any] = {}
        exec(source, globals(), namespace)  # only names checked above go into the source
        made = namespace["make"](payload, event_type)
        made.__defaults__ = stub.__defaults__
        made.__kwdefaults__ = stub.__kwdefaults__
        for attribute in ("__module__", "__qualname__", "__doc__", "__annotations__"):
            setattr(made, attribute, getattr(stub, attribute))
        return made  # type: ignore[no-any-return]

    return fill


# Event ids are version-7 UUIDs (RFC 9562): the creation time in milliseconds, then 74 random
# bits. Time-ordered ids keep a store's primary-key index append-mostly (random ones scatter
# writes over the whole B-tree as it grows). The random bits come from a private generator
# (uuid.uuid4() reads os.urandom on every call, ~3x slower), so an app calling random.seed()
# cannot make two runs reuse ids (sinks dedupe on them); reseeded in a forked child too.
_id_random = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_id_random.seed)
_LOW62 = (1 << 62) - 1
_VERSION_7 = (0x7 << 76) | (0b10 << 62)  # version nibble and RFC variant bits
_new_uuid = object.__new__
_set = object.__setattr__
_SAFE_UNKNOWN = uuid.SafeUUID.unknown


def new_event_id() -> uuid.UUID:
    """A new event id: a version-7 UUID (time-ordered, 74 random bits)."""
    rand = _id_random.getrandbits(74)
    millis = time.time_ns() // 1_000_000
    value = _new_uuid(uuid.UUID)
    _set(value, "int", (millis << 80) | _VERSION_7 | ((rand >> 62) << 64) | (rand & _LOW62))
    _set(value, "is_safe", _SAFE_UNKNOWN)
    return value


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One analytics event.

    :ivar event_type: what happened; must match the payload's class.
    :ivar payload: the typed details (``kind`` on the wire is the event type).
    :ivar event_id: set once at creation, kept across retries and spooling: sinks dedupe on it.
    :ivar run_id: the run (one ``start_run`` .. ``end_run``) this event belongs to.
    :ivar parent_event_id: the event this one happened inside (a tool call inside an agent step).
    :ivar timestamp: unix seconds at creation.
    :ivar metadata: free-form labels; secrets in it are redacted.
    """

    event_type: EventType
    payload: EventPayload
    event_id: uuid.UUID = msgspec.field(default_factory=new_event_id)
    run_id: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    parent_event_id: uuid.UUID | None = None
    timestamp: float = msgspec.field(default_factory=time.time)
    metadata: dict[str, Any] = {}

    def __post_init__(self) -> None:
        expected = PAYLOAD_TYPES.get(type(self.payload))
        if expected != self.event_type:
            raise ConfigError(
                f"event_type {str(self.event_type)!r} does not match the payload "
                f"{type(self.payload).__name__} (which records {str(expected)!r}); build events "
                "with the Event.create_* factories"
            )
        if self.metadata:
            _redact_fields(self, ("metadata",))

    # -- factories: one per event type, named create_<event type>. Each is written once, as a
    # typed stub (its signature and docstring are what users, IDEs and mypy see); @_factory
    # generates its body from the payload class. create_error is written out: it reads an
    # exception.

    @classmethod
    def _make(cls, event_type: EventType, payload: EventPayload, links: EventLinks) -> Event:
        if "metadata" in links:
            metadata = links["metadata"]
            links = {**links, "metadata": dict(metadata) if metadata else {}}
        # Unknown keywords (a typo) raise TypeError here, from the constructor.
        return cls(event_type=event_type, payload=payload, **links)  # type: ignore[arg-type]

    @classmethod
    @_factory(UserInputPayload)
    def create_user_input(
        cls, text: str, *, input_type: str = "text", **links: Unpack[EventLinks]
    ) -> Event:
        """What a user typed or sent."""

    @classmethod
    @_factory(UserFeedbackPayload)
    def create_user_feedback(
        cls,
        *,
        rating: float | None = None,
        comment: str | None = None,
        target_event_id: uuid.UUID | None = None,
        **links: Unpack[EventLinks],
    ) -> Event:
        """A user's rating of an answer (``target_event_id``: the event rated)."""

    @classmethod
    @_factory(AgentReasoningPayload)
    def create_agent_reasoning(
        cls, agent_name: str, content: str, *, step: int | None = None, **links: Unpack[EventLinks]
    ) -> Event:
        """An agent's thought at one step of its loop."""

    @classmethod
    @_factory(AgentPlanningPayload)
    def create_agent_planning(
        cls,
        agent_name: str,
        *,
        steps: Iterable[str] = (),
        content: str = "",
        **links: Unpack[EventLinks],
    ) -> Event:
        """An agent's plan: the steps it means to take."""

    @classmethod
    @_factory(AgentResponsePayload)
    def create_agent_response(
        cls,
        agent_name: str,
        content: str,
        *,
        turns: int | None = None,
        duration: float | None = None,
        finish_reason: str | None = None,
        **links: Unpack[EventLinks],
    ) -> Event:
        """An agent's answer at the end of a run (or a step); ``duration`` in seconds."""

    @classmethod
    @_factory(LLMRequestPayload)
    def create_llm_request(
        cls,
        model: str,
        *,
        provider: str = "",
        messages_count: int = 0,
        tools_count: int = 0,
        role: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stream: bool = False,
        **links: Unpack[EventLinks],
    ) -> Event:
        """An LLM call about to be made. ``role`` is the role-router role (executor, ...)."""

    @classmethod
    @_factory(LLMResponsePayload)
    def create_llm_response(
        cls,
        model: str,
        *,
        provider: str = "",
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_tokens: int = 0,
        cost: float | None = None,
        latency: float | None = None,
        ttft: float | None = None,
        finish_reason: str | None = None,
        role: str | None = None,
        content: str | None = None,
        tool_calls_count: int = 0,
        **links: Unpack[EventLinks],
    ) -> Event:
        """An LLM call's outcome: tokens, cost (USD, when known), latency and TTFT (seconds)."""

    @classmethod
    @_factory(LLMStreamingChunkPayload)
    def create_llm_streaming_chunk(
        cls,
        model: str,
        content: str,
        *,
        provider: str = "",
        index: int = 0,
        elapsed: float | None = None,
        **links: Unpack[EventLinks],
    ) -> Event:
        """One chunk of a streamed answer (``elapsed``: seconds since the call began)."""

    @classmethod
    @_factory(ToolCallPayload)
    def create_tool_call(
        cls,
        tool_name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        tool_call_id: str | None = None,
        tool_type: str | None = None,
        **links: Unpack[EventLinks],
    ) -> Event:
        """A tool about to run, with the arguments it got."""

    @classmethod
    @_factory(ToolResponsePayload)
    def create_tool_response(
        cls,
        tool_name: str,
        result: Any = None,
        *,
        is_error: bool = False,
        duration: float | None = None,
        tool_call_id: str | None = None,
        **links: Unpack[EventLinks],
    ) -> Event:
        """A tool's result (or its error, ``is_error``) and how long it ran (seconds)."""

    @classmethod
    @_factory(FunctionExecutionPayload)
    def create_function_execution(
        cls,
        function_name: str,
        *,
        arguments: Mapping[str, Any] | None = None,
        result: Any = None,
        error: str | None = None,
        duration: float | None = None,
        **links: Unpack[EventLinks],
    ) -> Event:
        """A traced function call: its arguments, result or error, and duration (seconds)."""

    @classmethod
    @_factory(APIRequestPayload)
    def create_api_request(
        cls, method: str, url: str, *, body_size: int | None = None, **links: Unpack[EventLinks]
    ) -> Event:
        """An outgoing HTTP request (never its headers)."""

    @classmethod
    @_factory(APIResponsePayload)
    def create_api_response(
        cls,
        method: str,
        url: str,
        status_code: int,
        *,
        duration: float | None = None,
        body_size: int | None = None,
        **links: Unpack[EventLinks],
    ) -> Event:
        """An HTTP response to a request (``duration`` in seconds)."""

    @classmethod
    def create_error(
        cls,
        error: BaseException | str,
        *,
        error_type: str | None = None,
        context: Mapping[str, Any] | None = None,
        include_traceback: bool = True,
        **links: Unpack[EventLinks],
    ) -> Event:
        """An error event from an exception (its class name, message and traceback) or a
        message (``error_type`` defaults to ``"Error"``)."""
        if isinstance(error, BaseException):
            kind = error_type or type(error).__name__
            message = str(error)
            tb = (
                "".join(_traceback.format_exception(error))
                if include_traceback and error.__traceback__ is not None
                else None
            )
        else:
            kind, message, tb = error_type or "Error", error, None
        return cls._make(
            EventType.ERROR,
            ErrorPayload(
                error_type=kind,
                message=message,
                traceback=tb,
                context=dict(context) if context else {},
            ),
            links,
        )

    @classmethod
    @_factory(ValidationErrorPayload)
    def create_validation_error(
        cls,
        message: str,
        *,
        error_type: str = "ValidationError",
        field: str | None = None,
        value: Any = None,
        **links: Unpack[EventLinks],
    ) -> Event:
        """Data that failed validation (model output, tool arguments): where and why."""

    @classmethod
    @_factory(TimeoutErrorPayload)
    def create_timeout_error(
        cls,
        operation: str,
        *,
        timeout: float | None = None,
        elapsed: float | None = None,
        message: str = "",
        error_type: str = "TimeoutError",
        **links: Unpack[EventLinks],
    ) -> Event:
        """An operation that ran out of time (``timeout``: the limit, seconds)."""

    @classmethod
    @_factory(SessionStartPayload)
    def create_session_start(
        cls, *, attributes: Mapping[str, Any] | None = None, **links: Unpack[EventLinks]
    ) -> Event:
        """A session (a user's run of an app) began."""

    @classmethod
    @_factory(SessionEndPayload)
    def create_session_end(
        cls, *, duration: float | None = None, status: str = "ok", **links: Unpack[EventLinks]
    ) -> Event:
        """A session ended, after ``duration`` seconds."""

    @classmethod
    @_factory(PerformanceMetricPayload)
    def create_performance_metric(
        cls,
        name: str,
        value: float,
        *,
        unit: str = "",
        tags: Mapping[str, str] | None = None,
        **links: Unpack[EventLinks],
    ) -> Event:
        """A named measurement (``value`` in ``unit``)."""


# --- wire format -------------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)
_list_decoder = msgspec.json.Decoder(list[Event])


def encode_event(event: Event) -> bytes:
    """One event as JSON."""
    return _encoder.encode(event)


def encode_events(events: Iterable[Event]) -> bytes:
    """Events as a JSON array."""
    return _encoder.encode(events if isinstance(events, list) else list(events))


def _decode_error(exc: msgspec.DecodeError, what: str) -> EventDecodeError:
    return EventDecodeError(
        f"could not decode {what}: {exc}; the data is corrupt or was not written by "
        "limelight's encode_event(s)"
    )


def decode_event(data: bytes | str) -> Event:
    """One event from JSON; :class:`~limelight.errors.EventDecodeError` when it is not one."""
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise _decode_error(exc, "an event") from exc


def decode_events(data: bytes | str) -> list[Event]:
    """Events from a JSON array; :class:`~limelight.errors.EventDecodeError` when it is not."""
    try:
        return _list_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise _decode_error(exc, "a list of events") from exc


def event_size(event: Event) -> int:
    """The event's size in bytes on the wire (its JSON length)."""
    return len(_encoder.encode(event))
