"""The earlier analytics SDK (``insidellm``), unchanged for its users, over limelight's analytics.

Change the import and nothing else::

    from insidellm import InsideLLMTracker          # before
    from limelight.compat.insidellm import InsideLLMTracker   # now
    import limelight.compat.insidellm as insidellm            # for `insidellm.initialize(...)`

What each part is now (the SDK's names, limelight's engine underneath; no second queue,
shipper or sink):

- ``initialize(api_key=, local_testing=, config=, base_url=, **config fields)`` → an
  :class:`InsideLLMClient` that is also limelight's process-wide analytics client
  (``limelight.analytics.initialize``); ``get_client()``, ``shutdown()``, ``log_event()``,
  ``start_run()``, ``end_run()``, ``flush()`` act on it.
- ``InsideLLMClient`` → a limelight ``AnalyticsClient``: the shipper actor, the durable spool
  (every accepted event survives a crash and is re-sent), batching, retries. Events go to:
  ``sinks=[...]`` if given; with ``local_testing=True`` a ``JSONLSink`` at
  ``<log_directory>/events.jsonl`` (the SDK's local files); with ``base_url`` (or
  ``INSIDELLM_BASE_URL``) the SDK's HTTP API, as limelight's ``HTTPSink`` POSTing JSON arrays
  of limelight events to ``<base_url>/v1/runs/ingest`` with the API key as a bearer token;
  otherwise limelight's default sinks (SQLite at ``~/.limelight/events.db``, or
  ``LIMELIGHT_DB_PATH``; plus HTTP to ``LIMELIGHT_ENDPOINT``). Only the HTTP API needs an API
  key (``api_key=`` or ``INSIDELLM_API_KEY``).
- ``InsideLLMConfig`` → ``AnalyticsConfig``: ``max_queue_size``, ``batch_size``,
  ``auto_flush_interval`` (→ ``flush_interval``), ``request_timeout`` (→ ``sink_timeout``),
  ``max_retries``; ``strict_validation`` decides whether a payload that does not fit its type
  raises; ``backoff_factor``, ``raise_on_error``, ``log_level``, ``enable_debug_logging`` are
  checked and kept, without effect (see :class:`InsideLLMConfig`). ``INSIDELLM_*``
  environment variables are read when no ``config`` is given; ``LIMELIGHT_*`` ones still set
  the spool and the SQLite file.
- ``client.queue_manager.get_statistics()`` → the SDK's dict (``events_queued``,
  ``events_sent``, ``events_failed``, ``queue_size``, ``success_rate`` in percent) from
  limelight's ``statistics()``.
- ``Event`` (dict ``payload``), ``EventType`` (the SDK's values, ``"llm.request"``...; the
  older ``"llm_request"`` spelling is accepted), the payload models and ``Event.create_*``
  factories (``input_text=``, ``error_message=``, ``error_code=``, ...) → converted, when
  logged, to limelight's typed events (:func:`limelight.schemas.Event`); fields with no typed
  place, and the SDK's event type, are kept in the event's metadata (``"insidellm.payload"``,
  ``"insidellm.event_type"``). Chain events become ``agent_planning`` / ``agent_response``.
- ``track_llm_call``, ``track_tool_use``, ``track_agent_step``, ``track_function_execution``
  → limelight's tracking records (sync and async functions).
- ``InsideLLMTracker`` → runs, events and ``with tracker.track_llm_call(model, provider,
  prompt) as log_response:`` blocks, as in the SDK (also ``async with``).
- ``InsideLLMCallback`` → :class:`limelight.integrations.LimelightCallbackHandler`;
  ``CrewAIInsideLLMCallbackHandler`` → :class:`limelight.integrations.LimelightLiteLLMLogger`;
  ``InsideLLMVertexAgentBuilderConversationalSearchClient`` → the recorder of
  :func:`limelight.integrations.vertex.track_conversational_search`. The first two load
  langchain-core and LiteLLM on first access.
- The SDK's errors are limelight's: ``InsideLLMError`` is ``LimelightError``,
  ``ConfigurationError`` and ``ValidationError`` are ``ConfigError`` (a ``ValueError``),
  ``NetworkError`` is ``SinkError``, ``QueueError`` is ``AnalyticsError`` (never raised: a full
  queue spools).

Not carried over: ``MistralAIWrapper`` (the SDK's Mistral client wrapper) and the multimodal
variant of the event models (``MultimodalContent``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes as _lazy_attributes
from ._insidellm._client import InsideLLMClient as InsideLLMClient
from ._insidellm._client import InsideLLMConfig as InsideLLMConfig
from ._insidellm._client import QueueManager as QueueManager
from ._insidellm._client import end_run as end_run
from ._insidellm._client import flush as flush
from ._insidellm._client import get_client as get_client
from ._insidellm._client import initialize as initialize
from ._insidellm._client import log_event as log_event
from ._insidellm._client import shutdown as shutdown
from ._insidellm._client import start_run as start_run
from ._insidellm._decorators import track_agent_step as track_agent_step
from ._insidellm._decorators import track_function_execution as track_function_execution
from ._insidellm._decorators import track_llm_call as track_llm_call
from ._insidellm._decorators import track_tool_use as track_tool_use
from ._insidellm._errors import ConfigurationError as ConfigurationError
from ._insidellm._errors import InsideLLMError as InsideLLMError
from ._insidellm._errors import NetworkError as NetworkError
from ._insidellm._errors import QueueError as QueueError
from ._insidellm._errors import ValidationError as ValidationError
from ._insidellm._events import Event as Event
from ._insidellm._payloads import AgentPlanningPayload as AgentPlanningPayload
from ._insidellm._payloads import AgentReasoningPayload as AgentReasoningPayload
from ._insidellm._payloads import AgentResponsePayload as AgentResponsePayload
from ._insidellm._payloads import APIRequestPayload as APIRequestPayload
from ._insidellm._payloads import APIResponsePayload as APIResponsePayload
from ._insidellm._payloads import ChainEndPayload as ChainEndPayload
from ._insidellm._payloads import ChainStartPayload as ChainStartPayload
from ._insidellm._payloads import ErrorPayload as ErrorPayload
from ._insidellm._payloads import EventType as EventType
from ._insidellm._payloads import FunctionExecutionPayload as FunctionExecutionPayload
from ._insidellm._payloads import LLMRequestPayload as LLMRequestPayload
from ._insidellm._payloads import LLMResponsePayload as LLMResponsePayload
from ._insidellm._payloads import LLMStreamingChunkPayload as LLMStreamingChunkPayload
from ._insidellm._payloads import PerformanceMetricPayload as PerformanceMetricPayload
from ._insidellm._payloads import SessionEndPayload as SessionEndPayload
from ._insidellm._payloads import SessionStartPayload as SessionStartPayload
from ._insidellm._payloads import TimeoutErrorPayload as TimeoutErrorPayload
from ._insidellm._payloads import ToolCallPayload as ToolCallPayload
from ._insidellm._payloads import ToolResponsePayload as ToolResponsePayload
from ._insidellm._payloads import UserFeedbackPayload as UserFeedbackPayload
from ._insidellm._payloads import UserInputPayload as UserInputPayload
from ._insidellm._payloads import ValidationErrorPayload as ValidationErrorPayload
from ._insidellm._payloads import generate_uuid as generate_uuid
from ._insidellm._payloads import get_iso_timestamp as get_iso_timestamp
from ._insidellm._tracker import InsideLLMTracker as InsideLLMTracker
from ._insidellm._vertex import (
    InsideLLMVertexAgentBuilderConversationalSearchClient as InsideLLMVertexAgentBuilderConversationalSearchClient,  # noqa: E501
)

if TYPE_CHECKING:
    from ._insidellm._crewai import (
        CrewAIInsideLLMCallbackHandler as CrewAIInsideLLMCallbackHandler,
    )
    from ._insidellm._langchain import InsideLLMCallback as InsideLLMCallback

__all__ = [
    "APIRequestPayload",
    "APIResponsePayload",
    "AgentPlanningPayload",
    "AgentReasoningPayload",
    "AgentResponsePayload",
    "ChainEndPayload",
    "ChainStartPayload",
    "ConfigurationError",
    "CrewAIInsideLLMCallbackHandler",
    "ErrorPayload",
    "Event",
    "EventType",
    "FunctionExecutionPayload",
    "InsideLLMCallback",
    "InsideLLMClient",
    "InsideLLMConfig",
    "InsideLLMError",
    "InsideLLMTracker",
    "InsideLLMVertexAgentBuilderConversationalSearchClient",
    "LLMRequestPayload",
    "LLMResponsePayload",
    "LLMStreamingChunkPayload",
    "NetworkError",
    "PerformanceMetricPayload",
    "QueueError",
    "QueueManager",
    "SessionEndPayload",
    "SessionStartPayload",
    "TimeoutErrorPayload",
    "ToolCallPayload",
    "ToolResponsePayload",
    "UserFeedbackPayload",
    "UserInputPayload",
    "ValidationError",
    "ValidationErrorPayload",
    "end_run",
    "flush",
    "generate_uuid",
    "get_client",
    "get_iso_timestamp",
    "initialize",
    "log_event",
    "shutdown",
    "start_run",
    "track_agent_step",
    "track_function_execution",
    "track_llm_call",
    "track_tool_use",
]

__getattr__, __dir__ = _lazy_attributes(
    __name__,
    {
        "limelight.compat._insidellm._langchain": ["InsideLLMCallback"],
        "limelight.compat._insidellm._crewai": ["CrewAIInsideLLMCallbackHandler"],
    },
    # Each needs its framework.
    extras={
        "limelight.compat._insidellm._langchain": "integrations",
        "limelight.compat._insidellm._crewai": "litellm",
    },
)
