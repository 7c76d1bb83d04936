"""msgspec Structs for every message that crosses an actor boundary or a wire.

The analytics events load on first use (``import limelight`` does not need them).
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes as _lazy_attributes

if TYPE_CHECKING:
    from ._events import REDACTED as REDACTED
    from ._events import AgentPlanningPayload as AgentPlanningPayload
    from ._events import AgentReasoningPayload as AgentReasoningPayload
    from ._events import AgentResponsePayload as AgentResponsePayload
    from ._events import APIRequestPayload as APIRequestPayload
    from ._events import APIResponsePayload as APIResponsePayload
    from ._events import ErrorPayload as ErrorPayload
    from ._events import Event as Event
    from ._events import EventLinks as EventLinks
    from ._events import EventPayload as EventPayload
    from ._events import EventType as EventType
    from ._events import FunctionExecutionPayload as FunctionExecutionPayload
    from ._events import LLMRequestPayload as LLMRequestPayload
    from ._events import LLMResponsePayload as LLMResponsePayload
    from ._events import LLMStreamingChunkPayload as LLMStreamingChunkPayload
    from ._events import PerformanceMetricPayload as PerformanceMetricPayload
    from ._events import SessionEndPayload as SessionEndPayload
    from ._events import SessionStartPayload as SessionStartPayload
    from ._events import TimeoutErrorPayload as TimeoutErrorPayload
    from ._events import ToolCallPayload as ToolCallPayload
    from ._events import ToolResponsePayload as ToolResponsePayload
    from ._events import UserFeedbackPayload as UserFeedbackPayload
    from ._events import UserInputPayload as UserInputPayload
    from ._events import ValidationErrorPayload as ValidationErrorPayload
    from ._events import decode_event as decode_event
    from ._events import decode_events as decode_events
    from ._events import encode_event as encode_event
    from ._events import encode_events as encode_events
    from ._events import event_size as event_size
    from ._events import redact as redact

from ._llm import CompletionRequest as CompletionRequest
from ._llm import CompletionResult as CompletionResult
from ._llm import EmbeddingRequest as EmbeddingRequest
from ._llm import EmbeddingResult as EmbeddingResult
from ._llm import Message as Message
from ._llm import ModelInfo as ModelInfo
from ._llm import ModelList as ModelList
from ._llm import Role as Role
from ._llm import StreamEvent as StreamEvent
from ._llm import StreamEventType as StreamEventType
from ._llm import ToolCall as ToolCall
from ._llm import ToolResult as ToolResult
from ._llm import ToolSpec as ToolSpec
from ._llm import Usage as Usage

__all__ = [
    "APIRequestPayload",
    "APIResponsePayload",
    "AgentPlanningPayload",
    "AgentReasoningPayload",
    "AgentResponsePayload",
    "CompletionRequest",
    "CompletionResult",
    "EmbeddingRequest",
    "EmbeddingResult",
    "ErrorPayload",
    "Event",
    "EventLinks",
    "EventPayload",
    "EventType",
    "FunctionExecutionPayload",
    "LLMRequestPayload",
    "LLMResponsePayload",
    "LLMStreamingChunkPayload",
    "Message",
    "ModelInfo",
    "ModelList",
    "PerformanceMetricPayload",
    "REDACTED",
    "Role",
    "SessionEndPayload",
    "SessionStartPayload",
    "StreamEvent",
    "StreamEventType",
    "TimeoutErrorPayload",
    "ToolCall",
    "ToolCallPayload",
    "ToolResponsePayload",
    "ToolResult",
    "ToolSpec",
    "Usage",
    "UserFeedbackPayload",
    "UserInputPayload",
    "ValidationErrorPayload",
    "decode_event",
    "decode_events",
    "encode_event",
    "encode_events",
    "event_size",
    "redact",
]

__getattr__, __dir__ = _lazy_attributes(
    __name__,
    {
        "._events": [
            "REDACTED",
            "AgentPlanningPayload",
            "AgentReasoningPayload",
            "AgentResponsePayload",
            "APIRequestPayload",
            "APIResponsePayload",
            "ErrorPayload",
            "Event",
            "EventLinks",
            "EventPayload",
            "EventType",
            "FunctionExecutionPayload",
            "LLMRequestPayload",
            "LLMResponsePayload",
            "LLMStreamingChunkPayload",
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
            "redact",
        ],
    },
)
