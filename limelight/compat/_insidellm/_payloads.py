"""The SDK's event types and payload models (its fields and defaults), and its id helpers.

A payload model is what an event's dict ``payload`` must fit; ``.dict()`` gives the dict to
pass."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

__all__ = [
    "APIRequestPayload",
    "APIResponsePayload",
    "AgentPlanningPayload",
    "AgentReasoningPayload",
    "AgentResponsePayload",
    "ChainEndPayload",
    "ChainStartPayload",
    "ErrorPayload",
    "EventType",
    "FunctionExecutionPayload",
    "LLMRequestPayload",
    "LLMResponsePayload",
    "LLMStreamingChunkPayload",
    "PAYLOAD_MODELS",
    "Payload",
    "PerformanceMetricPayload",
    "SessionEndPayload",
    "SessionStartPayload",
    "TimeoutErrorPayload",
    "ToolCallPayload",
    "ToolResponsePayload",
    "UserFeedbackPayload",
    "UserInputPayload",
    "ValidationErrorPayload",
    "generate_uuid",
    "get_iso_timestamp",
]


def generate_uuid() -> str:
    """A random UUID as a string (the SDK's ids)."""
    return str(uuid.uuid4())


def get_iso_timestamp() -> str:
    """Now, in ISO 8601 UTC with a ``Z`` (the SDK's timestamps)."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class EventType(str, enum.Enum):  # noqa: UP042 (str() gives "EventType.X", as the SDK's)
    """The SDK's event types, with its values (``"llm.request"``, ``"run.start"``, ...).

    The earlier spelling (``"llm_request"``, ``"session_start"``: each member's name in lower
    case, which is also limelight's event type) is accepted too: ``EventType("user_input")``
    is :attr:`USER_INPUT`.
    """

    USER_INPUT = "user.input"
    USER_FEEDBACK = "user.feedback"
    AGENT_REASONING = "agent.reasoning"
    AGENT_PLANNING = "agent.planning"
    AGENT_RESPONSE = "agent.response"
    CHAIN_START = "chain.start"
    CHAIN_END = "chain.end"
    LLM_REQUEST = "llm.request"
    LLM_RESPONSE = "llm.response"
    LLM_STREAMING_CHUNK = "llm.streaming_chunk"
    TOOL_CALL = "tool.call"
    TOOL_RESPONSE = "tool.response"
    FUNCTION_EXECUTION = "function_execution"
    API_REQUEST = "api.request"
    API_RESPONSE = "api.response"
    ERROR = "error"
    VALIDATION_ERROR = "validation_error"
    TIMEOUT_ERROR = "timeout_error"
    SESSION_START = "run.start"
    SESSION_END = "run.end"
    PERFORMANCE_METRIC = "performance_metric"
    CUSTOM_EVENT = "custom.event"

    @classmethod
    def _missing_(cls, value: object) -> EventType | None:
        if isinstance(value, str):
            for member in cls:
                if member.name.lower() == value.lower():
                    return member
        return None


# -- payload models (the SDK's fields and defaults) ------------------------------------------


class Payload(msgspec.Struct, kw_only=True):
    def dict(self) -> dict[str, Any]:
        """The fields as a dict (``None`` values included), to pass as an event's payload."""
        return msgspec.structs.asdict(self)

    model_dump = dict


class UserInputPayload(Payload, kw_only=True):
    input_text: str
    input_type: str = "text"
    channel: str | None = None
    session_context: dict[str, Any] | None = None


class UserFeedbackPayload(Payload, kw_only=True):
    feedback_type: str
    feedback_value: str | int | float | bool
    target_event_id: str | None = None
    feedback_text: str | None = None


class AgentReasoningPayload(Payload, kw_only=True):
    reasoning_type: str
    reasoning_steps: list[str]
    confidence_score: float | None = None
    reasoning_time_ms: int | None = None


class AgentPlanningPayload(Payload, kw_only=True):
    plan_type: str
    planned_actions: list[dict[str, Any]]
    planning_time_ms: int | None = None
    plan_confidence: float | None = None


class AgentResponsePayload(Payload, kw_only=True):
    response_text: str
    response_type: str = "text"
    response_confidence: float | None = None
    response_metadata: dict[str, Any] | None = None


class ChainStartPayload(Payload, kw_only=True):
    chain_name: str
    inputs: dict[str, Any]
    parameters: dict[str, Any] | None = None
    chain_type: str | None = None
    chain_metadata: dict[str, Any] | None = None


class ChainEndPayload(Payload, kw_only=True):
    chain_name: str
    outputs: dict[str, Any]
    execution_time_ms: int | None = None
    chain_type: str | None = None
    chain_metadata: dict[str, Any] | None = None
    success: bool = True
    error_message: str | None = None


class LLMRequestPayload(Payload, kw_only=True):
    model_name: str
    provider: str
    prompt: str
    parameters: dict[str, Any] | None = None
    system_message: str | None = None
    messages: list[dict[str, Any]] | None = None


class LLMResponsePayload(Payload, kw_only=True):
    model_name: str
    provider: str
    response_text: str
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    response_time_ms: int | None = None
    cost: float | None = None


class LLMStreamingChunkPayload(Payload, kw_only=True):
    model_name: str
    provider: str
    chunk_text: str
    chunk_index: int
    is_final: bool = False
    chunk_metadata: dict[str, Any] | None = None


class ToolCallPayload(Payload, kw_only=True):
    tool_name: str
    tool_type: str
    parameters: dict[str, Any]
    call_id: str | None = None


class ToolResponsePayload(Payload, kw_only=True):
    tool_name: str
    tool_type: str
    call_id: str | None = None
    response_data: Any
    execution_time_ms: int | None = None
    success: bool = True
    error_message: str | None = None


class FunctionExecutionPayload(Payload, kw_only=True):
    function_name: str
    function_args: dict[str, Any]
    return_value: Any
    execution_time_ms: int | None = None
    success: bool = True
    error_message: str | None = None


class APIRequestPayload(Payload, kw_only=True):
    api_name: str
    endpoint: str
    method: str
    headers: dict[str, str] | None = None
    parameters: dict[str, Any] | None = None
    request_body: Any = None


class APIResponsePayload(Payload, kw_only=True):
    api_name: str
    endpoint: str
    status_code: int
    response_headers: dict[str, str] | None = None
    response_body: Any = None
    response_time_ms: int | None = None


class ErrorPayload(Payload, kw_only=True):
    error_type: str
    error_message: str
    error_code: str | None = None
    stack_trace: str | None = None
    context: dict[str, Any] | None = None
    severity: str = "error"


class ValidationErrorPayload(Payload, kw_only=True):
    validation_target: str
    validation_rules: list[str]
    failed_rules: list[str]
    validation_details: dict[str, Any] | None = None


class TimeoutErrorPayload(Payload, kw_only=True):
    timeout_type: str
    timeout_duration_ms: int
    expected_duration_ms: int | None = None
    operation_context: dict[str, Any] | None = None


class SessionStartPayload(Payload, kw_only=True):
    session_id: str
    session_type: str | None = None
    initial_context: dict[str, Any] | None = None


class SessionEndPayload(Payload, kw_only=True):
    session_id: str
    session_duration_ms: int | None = None
    session_summary: dict[str, Any] | None = None
    exit_reason: str | None = None


class PerformanceMetricPayload(Payload, kw_only=True):
    metric_name: str
    metric_value: int | float
    metric_unit: str | None = None
    metric_type: str = "gauge"
    additional_metrics: dict[str, int | float] | None = None


PAYLOAD_MODELS: dict[EventType, type[Payload]] = {
    EventType.USER_INPUT: UserInputPayload,
    EventType.USER_FEEDBACK: UserFeedbackPayload,
    EventType.AGENT_REASONING: AgentReasoningPayload,
    EventType.AGENT_PLANNING: AgentPlanningPayload,
    EventType.AGENT_RESPONSE: AgentResponsePayload,
    EventType.CHAIN_START: ChainStartPayload,
    EventType.CHAIN_END: ChainEndPayload,
    EventType.LLM_REQUEST: LLMRequestPayload,
    EventType.LLM_RESPONSE: LLMResponsePayload,
    EventType.LLM_STREAMING_CHUNK: LLMStreamingChunkPayload,
    EventType.TOOL_CALL: ToolCallPayload,
    EventType.TOOL_RESPONSE: ToolResponsePayload,
    EventType.FUNCTION_EXECUTION: FunctionExecutionPayload,
    EventType.API_REQUEST: APIRequestPayload,
    EventType.API_RESPONSE: APIResponsePayload,
    EventType.ERROR: ErrorPayload,
    EventType.VALIDATION_ERROR: ValidationErrorPayload,
    EventType.TIMEOUT_ERROR: TimeoutErrorPayload,
    EventType.SESSION_START: SessionStartPayload,
    EventType.SESSION_END: SessionEndPayload,
    EventType.PERFORMANCE_METRIC: PerformanceMetricPayload,
}
