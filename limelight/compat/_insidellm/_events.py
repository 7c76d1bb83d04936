"""The SDK's ``Event`` (dict ``payload``, ``create_*`` factories), converted to limelight's.

An SDK event becomes one :class:`limelight.schemas.Event`: its payload's fields map onto the
typed payload of the matching event type (``input_text`` → ``text``, ``response_time_ms`` →
``latency`` in seconds, ``usage`` → token counts, ...). What has no typed field (a prompt's
text, ``channel``, ``error_code``, ...) is kept in the event's metadata under
``"insidellm.payload"``, and the SDK's own event type under ``"insidellm.event_type"``, so
nothing the SDK recorded is lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Self, Union, get_args, get_origin

import msgspec

from ..._tracking import jsonable
from ...errors import ConfigError
from ...schemas import _events as native
from ._payloads import (
    PAYLOAD_MODELS,
    EventType,
    LLMRequestPayload,
    LLMResponsePayload,
    Payload,
    UserFeedbackPayload,
    generate_uuid,
    get_iso_timestamp,
)

__all__ = ["PAYLOAD_KEY", "TYPE_KEY", "Event", "to_native"]

# Event has a method named ``dict``: its field annotations use this alias, so that they never
# resolve to the method.
_Mapping = dict[str, Any]

#: Where the SDK's event type and its untyped payload fields go in a limelight event.
TYPE_KEY = "insidellm.event_type"
PAYLOAD_KEY = "insidellm.payload"


# -- the event ----------------------------------------------------------------------------


def _uuid_text(value: Any, name: str) -> str:
    try:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
    except ValueError:
        raise ConfigError(
            f"Event.{name} must be a UUID string (as generate_uuid() makes), got {value!r}"
        ) from None


def _timestamp(value: str) -> float:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class Event(msgspec.Struct, kw_only=True):
    """One SDK event: ``event_type``, a dict ``payload`` shaped by the type's payload model,
    and its links. Mutable, as the SDK's (the client fills ``run_id``, ``user_id`` and the
    run's metadata in when they are missing).

    ``event_id`` and ``parent_event_id`` are UUID strings; ``timestamp`` is ISO 8601.
    ``run_id`` may be any string (the SDK insisted on a UUID). A bad value raises
    :class:`~limelight.errors.ConfigError` (the SDK's ``ValidationError``, a ``ValueError``).
    """

    event_id: str = msgspec.field(default_factory=generate_uuid)
    run_id: str | None = None
    timestamp: str = msgspec.field(default_factory=get_iso_timestamp)
    event_type: EventType
    user_id: str | None = None
    parent_event_id: str | None = None
    metadata: _Mapping | None = None
    payload: _Mapping

    def __post_init__(self) -> None:
        try:
            self.event_type = EventType(self.event_type)
        except ValueError:
            allowed = ", ".join(repr(t.value) for t in EventType)
            raise ConfigError(
                f"Event.event_type {self.event_type!r} is not an event type: use EventType "
                f"or one of {allowed}"
            ) from None
        payload: Any = self.payload
        if isinstance(payload, Payload):
            payload = payload.dict()
        if not isinstance(payload, Mapping):
            raise ConfigError(
                f"Event.payload must be a dict (or a payload model), got {type(payload).__name__}"
            )
        self.payload = dict(payload)
        self.event_id = _uuid_text(self.event_id, "event_id")
        if self.parent_event_id is not None:
            self.parent_event_id = _uuid_text(self.parent_event_id, "parent_event_id")
        run_id: Any = self.run_id
        if isinstance(run_id, uuid.UUID):
            self.run_id = str(run_id)
        stamp: Any = self.timestamp
        if isinstance(stamp, datetime):
            self.timestamp = stamp.isoformat()
        try:
            _timestamp(self.timestamp)
        except (TypeError, ValueError):
            raise ConfigError(
                f"Event.timestamp must be ISO 8601 (as get_iso_timestamp() makes), got "
                f"{self.timestamp!r}"
            ) from None
        if self.metadata is not None:
            if not isinstance(self.metadata, Mapping):
                raise ConfigError(
                    f"Event.metadata must be a dict, got {type(self.metadata).__name__}"
                )
            self.metadata = dict(self.metadata)

    def validate(self) -> None:
        """Check the payload against its event type's model.

        :raises ConfigError: a required field is missing or has the wrong type (the message
            says which).
        """
        _typed(self, strict=True)

    def to_dict(self) -> _Mapping:
        """The event as a dict, ``None`` fields left out (the SDK's wire form)."""
        data = {k: v for k, v in msgspec.structs.asdict(self).items() if v is not None}
        data["event_type"] = self.event_type.value
        return data

    def dict(self, *, exclude_none: bool = False) -> _Mapping:
        """The event as a dict (as pydantic's ``.dict()``)."""
        if exclude_none:
            return self.to_dict()
        return {**msgspec.structs.asdict(self), "event_type": self.event_type.value}

    model_dump = dict

    def to_native(self, *, strict: bool = True) -> native.Event:
        """This event as limelight's typed :class:`limelight.schemas.Event` (see
        :func:`to_native`)."""
        return to_native(self, strict=strict)

    # -- the SDK's factories --------------------------------------------------------------

    @classmethod
    def _create(
        cls,
        event_type: EventType,
        run_id: str | None,
        user_id: str | None,
        fields: _Mapping,
        kwargs: _Mapping,
    ) -> Self:
        links = {k: kwargs.pop(k) for k in list(kwargs) if k in _EVENT_FIELDS}
        # Keywords that are no payload field are kept in the payload too (the SDK dropped
        # them): they travel in the limelight event's metadata.
        event = cls(
            run_id=run_id,
            user_id=user_id,
            event_type=event_type,
            payload={**fields, **kwargs},
            **links,
        )
        typed = _typed(event, strict=True)
        if typed is not None:  # the payload as the SDK made it: every field, defaults too
            known = set(typed.__struct_fields__)
            event.payload = {
                **typed.dict(),
                **{k: v for k, v in event.payload.items() if k not in known},
            }
        return event

    @classmethod
    def create_user_input(
        cls,
        run_id: str | None,
        user_id: str | None,
        input_text: str,
        input_type: str = "text",
        **kwargs: Any,
    ) -> Self:
        """A user input event (payload keywords: ``channel``, ``session_context``)."""
        fields = {"input_text": input_text, "input_type": input_type}
        return cls._create(EventType.USER_INPUT, run_id, user_id, fields, kwargs)

    @classmethod
    def create_llm_request(
        cls,
        run_id: str | None,
        user_id: str | None,
        model_name: str,
        provider: str,
        prompt: str,
        **kwargs: Any,
    ) -> Self:
        """An LLM request event (payload keywords: ``parameters``, ``system_message``,
        ``messages``)."""
        fields = {"model_name": model_name, "provider": provider, "prompt": prompt}
        return cls._create(EventType.LLM_REQUEST, run_id, user_id, fields, kwargs)

    @classmethod
    def create_llm_response(
        cls,
        run_id: str | None,
        user_id: str | None,
        model_name: str,
        provider: str,
        response_text: str,
        parent_event_id: str | None = None,
        **kwargs: Any,
    ) -> Self:
        """An LLM response event (payload keywords: ``finish_reason``, ``usage``,
        ``response_time_ms``, ``cost``)."""
        fields = {"model_name": model_name, "provider": provider, "response_text": response_text}
        kwargs["parent_event_id"] = parent_event_id
        return cls._create(EventType.LLM_RESPONSE, run_id, user_id, fields, kwargs)

    @classmethod
    def create_error(
        cls,
        run_id: str | None,
        user_id: str | None,
        error_type: str,
        error_message: str,
        parent_event_id: str | None = None,
        **kwargs: Any,
    ) -> Self:
        """An error event (payload keywords: ``error_code``, ``stack_trace``, ``context``,
        ``severity``)."""
        fields = {"error_type": error_type, "error_message": error_message}
        kwargs["parent_event_id"] = parent_event_id
        return cls._create(EventType.ERROR, run_id, user_id, fields, kwargs)

    @classmethod
    def create_chain_start(
        cls,
        run_id: str | None,
        user_id: str | None,
        chain_name: str,
        inputs: _Mapping,
        **kwargs: Any,
    ) -> Self:
        """A chain start event (payload keywords: ``parameters``, ``chain_type``,
        ``chain_metadata``)."""
        fields = {"chain_name": chain_name, "inputs": inputs}
        return cls._create(EventType.CHAIN_START, run_id, user_id, fields, kwargs)

    @classmethod
    def create_chain_end(
        cls,
        run_id: str | None,
        user_id: str | None,
        chain_name: str,
        outputs: _Mapping,
        parent_event_id: str | None = None,
        **kwargs: Any,
    ) -> Self:
        """A chain end event (payload keywords: ``execution_time_ms``, ``success``,
        ``error_message``, ...)."""
        fields = {"chain_name": chain_name, "outputs": outputs}
        kwargs["parent_event_id"] = parent_event_id
        return cls._create(EventType.CHAIN_END, run_id, user_id, fields, kwargs)


_EVENT_FIELDS = frozenset(Event.__struct_fields__) - {"payload", "event_type", "run_id", "user_id"}


# -- conversion to limelight's typed events -----------------------------------------------


def _typed(event: Event, *, strict: bool) -> Payload | None:
    """The payload as its model; ``None`` when it does not fit and ``strict`` is off."""
    model = PAYLOAD_MODELS.get(event.event_type)
    if model is None:
        return None
    try:
        return msgspec.convert(event.payload, model, strict=False)
    except msgspec.ValidationError as exc:
        if not strict:
            return None
        fields = ", ".join(
            f"{f.name}{'' if f.required else '?'}" for f in msgspec.structs.fields(model)
        )
        raise ConfigError(
            f"invalid payload for event type {event.event_type.value!r}: {exc}; "
            f"{model.__name__} has the fields {fields} (? = optional)"
        ) from exc


def _zero(tp: Any) -> Any:
    origin = get_origin(tp) or tp
    if origin is Union or isinstance(tp, type(int | None)):
        return _zero(next(a for a in get_args(tp) if a is not type(None)))
    return {str: "", int: 0, float: 0.0, bool: False, list: [], dict: {}}.get(origin)


def _blank(model: type[Payload]) -> Payload:
    """A payload of ``model`` with empty values (for one that did not fit its model)."""
    required = {f.name: _zero(f.type) for f in msgspec.structs.fields(model) if f.required}
    return model(**required)


def _secs(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return msgspec.json.encode(jsonable(value)).decode()


def _id(value: str | None) -> uuid.UUID | None:
    try:
        return None if value is None else uuid.UUID(str(value))
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else None


Built = tuple[Any, tuple[str, ...]]  # the typed payload, and the SDK fields it carries


def _user_feedback(p: UserFeedbackPayload) -> Built:
    rating, target = _number(p.feedback_value), _id(p.target_event_id)
    carried: tuple[str, ...] = ("feedback_text",)
    carried += ("feedback_value",) * (rating is not None) + ("target_event_id",) * bool(target)
    return native.UserFeedbackPayload(
        rating=rating, comment=p.feedback_text, target_event_id=target
    ), carried


def _llm_request(p: LLMRequestPayload) -> Built:
    params = p.parameters or {}
    count = len(p.messages) if p.messages else int(bool(p.prompt))
    max_tokens = params.get("max_tokens")
    return native.LLMRequestPayload(
        model=p.model_name,
        provider=p.provider,
        messages_count=count,
        temperature=_number(params.get("temperature")),
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        stream=params.get("stream") is True,
    ), ("model_name", "provider")


def _llm_response(p: LLMResponsePayload) -> Built:
    usage = p.usage or {}
    tokens_in = usage.get("prompt_tokens", usage.get("input_tokens"))
    tokens_out = usage.get("completion_tokens", usage.get("output_tokens"))
    return native.LLMResponsePayload(
        model=p.model_name,
        provider=p.provider,
        input_tokens=tokens_in if isinstance(tokens_in, int) else 0,
        output_tokens=tokens_out if isinstance(tokens_out, int) else 0,
        cost=p.cost,
        latency=_secs(p.response_time_ms),
        finish_reason=p.finish_reason,
        content=p.response_text,
    ), ("model_name", "provider", "response_text", "finish_reason", "response_time_ms", "cost")


_BUILDERS: dict[EventType, Callable[[Any], Built]] = {
    EventType.USER_INPUT: lambda p: (
        native.UserInputPayload(text=p.input_text, input_type=p.input_type),
        ("input_text", "input_type"),
    ),
    EventType.USER_FEEDBACK: _user_feedback,
    EventType.AGENT_REASONING: lambda p: (
        native.AgentReasoningPayload(
            agent_name=p.reasoning_type, content="\n".join(p.reasoning_steps)
        ),
        ("reasoning_type", "reasoning_steps"),
    ),
    EventType.AGENT_PLANNING: lambda p: (
        native.AgentPlanningPayload(
            agent_name=p.plan_type, steps=[_text(a) for a in p.planned_actions]
        ),
        ("plan_type", "planned_actions"),
    ),
    EventType.AGENT_RESPONSE: lambda p: (
        native.AgentResponsePayload(agent_name="agent", content=p.response_text),
        ("response_text",),
    ),
    EventType.CHAIN_START: lambda p: (
        native.AgentPlanningPayload(agent_name=p.chain_name, content=_text(p.inputs)),
        ("chain_name", "inputs"),
    ),
    EventType.CHAIN_END: lambda p: (
        native.AgentResponsePayload(
            agent_name=p.chain_name,
            content=_text(p.outputs),
            duration=_secs(p.execution_time_ms),
            finish_reason="completed" if p.success else "error",
        ),
        ("chain_name", "outputs", "execution_time_ms", "success"),
    ),
    EventType.LLM_REQUEST: _llm_request,
    EventType.LLM_RESPONSE: _llm_response,
    EventType.LLM_STREAMING_CHUNK: lambda p: (
        native.LLMStreamingChunkPayload(
            model=p.model_name, provider=p.provider, index=p.chunk_index, content=p.chunk_text
        ),
        ("model_name", "provider", "chunk_index", "chunk_text"),
    ),
    EventType.TOOL_CALL: lambda p: (
        native.ToolCallPayload(
            tool_name=p.tool_name,
            arguments=jsonable(p.parameters),
            tool_call_id=p.call_id,
            tool_type=p.tool_type,
        ),
        ("tool_name", "parameters", "call_id", "tool_type"),
    ),
    EventType.TOOL_RESPONSE: lambda p: (
        native.ToolResponsePayload(
            tool_name=p.tool_name,
            result=jsonable(p.response_data),
            is_error=not p.success,
            duration=_secs(p.execution_time_ms),
            tool_call_id=p.call_id,
        ),
        ("tool_name", "response_data", "success", "execution_time_ms", "call_id"),
    ),
    EventType.FUNCTION_EXECUTION: lambda p: (
        native.FunctionExecutionPayload(
            function_name=p.function_name,
            arguments=jsonable(p.function_args),
            result=jsonable(p.return_value),
            error=None if p.success else (p.error_message or "failed"),
            duration=_secs(p.execution_time_ms),
        ),
        ("function_name", "function_args", "return_value", "execution_time_ms", "success"),
    ),
    EventType.API_REQUEST: lambda p: (
        native.APIRequestPayload(method=p.method, url=p.endpoint),
        ("method", "endpoint"),
    ),
    EventType.API_RESPONSE: lambda p: (
        native.APIResponsePayload(
            method="",
            url=p.endpoint,
            status_code=p.status_code,
            duration=_secs(p.response_time_ms),
        ),
        ("endpoint", "status_code", "response_time_ms"),
    ),
    EventType.ERROR: lambda p: (
        native.ErrorPayload(
            error_type=p.error_type,
            message=p.error_message,
            traceback=p.stack_trace,
            context=jsonable(p.context or {}),
        ),
        ("error_type", "error_message", "stack_trace", "context"),
    ),
    EventType.VALIDATION_ERROR: lambda p: (
        native.ValidationErrorPayload(
            message="failed: " + ", ".join(p.failed_rules), field=p.validation_target
        ),
        ("validation_target",),
    ),
    EventType.TIMEOUT_ERROR: lambda p: (
        native.TimeoutErrorPayload(operation=p.timeout_type, timeout=_secs(p.timeout_duration_ms)),
        ("timeout_type", "timeout_duration_ms"),
    ),
    EventType.SESSION_START: lambda p: (
        native.SessionStartPayload(attributes=jsonable(p.initial_context or {})),
        ("initial_context",),
    ),
    EventType.SESSION_END: lambda p: (
        native.SessionEndPayload(
            duration=_secs(p.session_duration_ms), status=p.exit_reason or "ok"
        ),
        ("session_duration_ms", "exit_reason"),
    ),
    EventType.PERFORMANCE_METRIC: lambda p: (
        native.PerformanceMetricPayload(
            name=p.metric_name, value=float(p.metric_value), unit=p.metric_unit or ""
        ),
        ("metric_name", "metric_value", "metric_unit"),
    ),
}


def to_native(event: Event, *, strict: bool = True) -> native.Event:
    """``event`` as limelight's typed event (the module docstring says how fields map).

    :param strict: raise on a payload that does not fit its event type's model; when off,
        such an event is still converted, with empty typed fields and the whole payload
        kept in ``metadata["insidellm.payload"]``.
    :raises ConfigError: ``strict`` and the payload does not fit; or a link is malformed.
    """
    kind = EventType(event.event_type)
    model = PAYLOAD_MODELS.get(kind)
    typed = _typed(event, strict=strict)
    carried: tuple[str, ...] = ()
    if model is None:  # CUSTOM_EVENT: no model, no typed fields; all in the metadata
        name = event.payload.get("custom_event_type") or event.payload.get("name")
        payload: Any = native.AgentReasoningPayload(agent_name=str(name or "custom_event"))
    elif typed is None:
        payload = _BUILDERS[kind](_blank(model))[0]
    else:
        payload, carried = _BUILDERS[kind](typed)
    extras = {k: v for k, v in event.payload.items() if k not in carried and v is not None}
    metadata: dict[str, Any] = {**(event.metadata or {}), TYPE_KEY: kind.value}
    if extras:
        metadata[PAYLOAD_KEY] = extras
    return native.Event(
        event_type=native.PAYLOAD_TYPES[type(payload)],
        payload=payload,
        event_id=uuid.UUID(_uuid_text(event.event_id, "event_id")),
        run_id=event.run_id,
        user_id=event.user_id,
        parent_event_id=_id(event.parent_event_id),
        timestamp=_timestamp(event.timestamp),
        metadata=jsonable(metadata),
    )
