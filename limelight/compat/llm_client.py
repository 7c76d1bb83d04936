"""The earlier agent client (package ``llm_client``), as a thin facade over limelight.

Change one line and keep the rest of the code::

    from limelight.compat.llm_client import Agent, OpenAIProvider, tool

Importing it loads the nearest ``.env`` (variables already set win). What maps to what:

===========================================  ===============================================
the agent client                             limelight underneath
===========================================  ===============================================
``OpenAIProvider(model=...)``:               an :class:`~limelight.providers.OpenAICompatible`
``complete`` / ``stream`` / ``embed``        backend driven by a
                                             :class:`~limelight.actors.ProviderPool` (retries,
                                             attempt hooks, analytics, usage), with a
                                             :class:`~limelight.actors.RateLimiter` holding
                                             the profile's ``rate_limits``; base URL from
                                             ``base_url=`` or ``OPENAI_BASE_URL``
``Agent``, ``AgentConfig``, ``AgentResult``  :class:`~limelight.agents.Agent` (an actor), its
                                             config and result; ``stream`` events rebuilt
                                             (``turn_start``, ``tool_result`` META events)
``@tool``, ``@sync_tool``, ``Tool``,         :class:`~limelight.tools.Tool` and
``ToolRegistry``, ``ToolResult``             :class:`~limelight.tools.ToolRegistry`
``Conversation``                             :class:`~limelight.conversation.Conversation`
``GPT5Nano``, ..., ``TextEmbedding3Small``   :func:`~limelight.models.get_model_profile` and
                                             :func:`~limelight.usage.model_price`
``cache_backend="fs"`` / ``"pg_redis"`` /    :class:`~limelight.cache.SQLiteCache` per
``"qdrant"``                                 collection / ``PostgresRedisCache`` /
                                             ``QdrantSemanticCache`` (and ``"memory"``)
``SSEAdapter``, ``CallbackAdapter``,         the same adapters over the earlier events;
``BufferingAdapter``, ``collect_stream``,    ``stream_to_sink`` feeds any ``EventSink``
``stream_as_sse``, ``stream_to_sink``,
``EventSink``
``PusherStreamer(channel).push_event``,      :meth:`PusherAdapter.publish
``PusherSink(channel)``                      <limelight.streaming.PusherAdapter.publish>`:
                                             signed, rate-limited, retried, big events
                                             chunked; ``PUSHER_AUTH_*`` / ``PUSHER_APP_*``
                                             variables, else limelight's ``PUSHER_*``; a
                                             failure raises ``StreamDeliveryError``
``OpenAIClient(...).get_response(...)``      ``OpenAIProvider``, answering the earlier dict
===========================================  ===============================================

The actors run in a background runtime of the facade (or in the runtime of a rate limiter
given as ``limiter=``); calls and streams reach it from asyncio or trio. Not provided:
``AnthropicProvider``, the cache classes by their earlier names (use ``cache_backend=``),
``Limiter``/``TokenBucket`` (limelight's rate limiter), ``BatchManager``
(:func:`limelight.batch.run_batch`), the Responses API, and ``OpenAIClient``'s file and batch
API methods.
"""

from ._llm_client_agent import Agent as Agent
from ._llm_client_agent import AgentConfig as AgentConfig
from ._llm_client_agent import AgentResult as AgentResult
from ._llm_client_agent import TurnResult as TurnResult
from ._llm_client_agent import quick_agent as quick_agent
from ._llm_client_client import OpenAIClient as OpenAIClient
from ._llm_client_conversation import Conversation as Conversation
from ._llm_client_conversation import ConversationConfig as ConversationConfig
from ._llm_client_dotenv import DOTENV_LOADED as DOTENV_LOADED
from ._llm_client_models import GPT5 as GPT5
from ._llm_client_models import GPT5Mini as GPT5Mini
from ._llm_client_models import GPT5Nano as GPT5Nano
from ._llm_client_models import GPT5Point1 as GPT5Point1
from ._llm_client_models import GPT5Point2 as GPT5Point2
from ._llm_client_models import ModelProfile as ModelProfile
from ._llm_client_models import TextEmbedding3Large as TextEmbedding3Large
from ._llm_client_models import TextEmbedding3Small as TextEmbedding3Small
from ._llm_client_provider import OpenAIProvider as OpenAIProvider
from ._llm_client_pusher import PusherSink as PusherSink
from ._llm_client_pusher import PusherStreamer as PusherStreamer
from ._llm_client_streaming import BufferingAdapter as BufferingAdapter
from ._llm_client_streaming import CallbackAdapter as CallbackAdapter
from ._llm_client_streaming import EventSink as EventSink
from ._llm_client_streaming import SSEAdapter as SSEAdapter
from ._llm_client_streaming import collect_stream as collect_stream
from ._llm_client_streaming import encode_sse_event as encode_sse_event
from ._llm_client_streaming import format_sse_event as format_sse_event
from ._llm_client_streaming import stream_as_sse as stream_as_sse
from ._llm_client_streaming import stream_to_sink as stream_to_sink
from ._llm_client_streaming import stream_to_string as stream_to_string
from ._llm_client_tools import Tool as Tool
from ._llm_client_tools import ToolRegistry as ToolRegistry
from ._llm_client_tools import ToolResult as ToolResult
from ._llm_client_tools import sync_tool as sync_tool
from ._llm_client_tools import tool as tool
from ._llm_client_tools import tool_from_function as tool_from_function
from ._llm_client_types import CompletionResult as CompletionResult
from ._llm_client_types import EmbeddingResult as EmbeddingResult
from ._llm_client_types import Message as Message
from ._llm_client_types import MessageInput as MessageInput
from ._llm_client_types import Role as Role
from ._llm_client_types import StreamEvent as StreamEvent
from ._llm_client_types import StreamEventType as StreamEventType
from ._llm_client_types import ToolCall as ToolCall
from ._llm_client_types import ToolCallDelta as ToolCallDelta
from ._llm_client_types import Usage as Usage
from ._llm_client_types import normalize_messages as normalize_messages

__all__ = [
    "DOTENV_LOADED",
    "GPT5",
    "Agent",
    "AgentConfig",
    "AgentResult",
    "BufferingAdapter",
    "CallbackAdapter",
    "CompletionResult",
    "Conversation",
    "ConversationConfig",
    "EmbeddingResult",
    "EventSink",
    "GPT5Mini",
    "GPT5Nano",
    "GPT5Point1",
    "GPT5Point2",
    "Message",
    "MessageInput",
    "ModelProfile",
    "OpenAIClient",
    "OpenAIProvider",
    "PusherSink",
    "PusherStreamer",
    "Role",
    "SSEAdapter",
    "StreamEvent",
    "StreamEventType",
    "TextEmbedding3Large",
    "TextEmbedding3Small",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolRegistry",
    "ToolResult",
    "TurnResult",
    "Usage",
    "collect_stream",
    "encode_sse_event",
    "format_sse_event",
    "normalize_messages",
    "quick_agent",
    "stream_as_sse",
    "stream_to_sink",
    "stream_to_string",
    "sync_tool",
    "tool",
    "tool_from_function",
]
