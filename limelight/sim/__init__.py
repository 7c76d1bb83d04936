"""The simulated LLM: OpenAI-like latency, answers, tool calls, quotas and faults.

It needs no model, and runs in-process (:class:`Simulated`, a provider) or over HTTP
(:class:`SimServer`, ``limelight sim``).

:class:`SimEngine` decides everything about request N as pure data (a :class:`Plan`) from a
:class:`SimulatedConfig`; the provider and the server only play plans. The modules:
``_config`` (the configuration and caps), ``_quotas`` (requests, tokens and concurrency over
the shared token bucket), ``_generate`` (text, token estimates, embeddings, tool arguments),
``_checks`` (what a request may ask), ``_engine``, ``_provider``, ``_wire`` (OpenAI's bodies
and chunks) and ``_server``.
"""

from ._checks import check_request as check_request
from ._config import CHARS_PER_TOKEN as CHARS_PER_TOKEN
from ._config import DEFAULT_EMBEDDING_DIMENSIONS as DEFAULT_EMBEDDING_DIMENSIONS
from ._config import DEFAULT_FAULT_RETRY_AFTER as DEFAULT_FAULT_RETRY_AFTER
from ._config import DEFAULT_MODEL as DEFAULT_MODEL
from ._config import DEFAULT_OUTPUT_BUDGET as DEFAULT_OUTPUT_BUDGET
from ._config import DEFAULT_OUTPUT_TOKENS as DEFAULT_OUTPUT_TOKENS
from ._config import DEFAULT_SEED as DEFAULT_SEED
from ._config import DEFAULT_TOKENS_PER_SECOND as DEFAULT_TOKENS_PER_SECOND
from ._config import DEFAULT_TOOL_CALL_PROBABILITY as DEFAULT_TOOL_CALL_PROBABILITY
from ._config import DEFAULT_TTFT as DEFAULT_TTFT
from ._config import DEFAULT_TTFT_JITTER as DEFAULT_TTFT_JITTER
from ._config import INLINE_EMBEDDING_VALUES as INLINE_EMBEDDING_VALUES
from ._config import MAX_ARGUMENTS_LENGTH as MAX_ARGUMENTS_LENGTH
from ._config import MAX_EMBEDDING_DIMENSIONS as MAX_EMBEDDING_DIMENSIONS
from ._config import MAX_EMBEDDING_INPUTS as MAX_EMBEDDING_INPUTS
from ._config import MAX_EMBEDDING_VALUES as MAX_EMBEDDING_VALUES
from ._config import MAX_MESSAGE_TOOL_CALLS as MAX_MESSAGE_TOOL_CALLS
from ._config import MAX_MESSAGES as MAX_MESSAGES
from ._config import MAX_OUTPUT_TOKENS as MAX_OUTPUT_TOKENS
from ._config import MAX_SCHEMA_ARRAY_ITEMS as MAX_SCHEMA_ARRAY_ITEMS
from ._config import MAX_SCHEMA_DEPTH as MAX_SCHEMA_DEPTH
from ._config import MAX_SCHEMA_NODES as MAX_SCHEMA_NODES
from ._config import MAX_SCHEMA_STRING_LENGTH as MAX_SCHEMA_STRING_LENGTH
from ._config import MAX_TOOLS as MAX_TOOLS
from ._config import FixedLength as FixedLength
from ._config import LogNormalLength as LogNormalLength
from ._config import OutputLength as OutputLength
from ._config import SimulatedConfig as SimulatedConfig
from ._config import UniformLength as UniformLength
from ._config import parse_output_length as parse_output_length
from ._engine import Outcome as Outcome
from ._engine import Plan as Plan
from ._engine import SimEngine as SimEngine
from ._engine import plan_error as plan_error
from ._generate import embed_text as embed_text
from ._generate import estimate_prompt_tokens as estimate_prompt_tokens
from ._generate import estimate_tokens as estimate_tokens
from ._provider import Simulated as Simulated
from ._quotas import Quota as Quota
from ._quotas import QuotaDecision as QuotaDecision
from ._quotas import format_duration as format_duration
from ._server import DEFAULT_HOST as DEFAULT_HOST
from ._server import DEFAULT_PORT as DEFAULT_PORT
from ._server import SimServer as SimServer
from ._server import serve_forever as serve_forever
from ._server import serve_in_thread as serve_in_thread
from ._server import serve_in_thread_async as serve_in_thread_async
from ._wire import MAX_BODY_BYTES as MAX_BODY_BYTES

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_EMBEDDING_DIMENSIONS",
    "DEFAULT_FAULT_RETRY_AFTER",
    "DEFAULT_HOST",
    "DEFAULT_MODEL",
    "DEFAULT_OUTPUT_BUDGET",
    "DEFAULT_OUTPUT_TOKENS",
    "DEFAULT_PORT",
    "DEFAULT_SEED",
    "DEFAULT_TOKENS_PER_SECOND",
    "DEFAULT_TOOL_CALL_PROBABILITY",
    "DEFAULT_TTFT",
    "DEFAULT_TTFT_JITTER",
    "INLINE_EMBEDDING_VALUES",
    "MAX_ARGUMENTS_LENGTH",
    "MAX_BODY_BYTES",
    "MAX_EMBEDDING_DIMENSIONS",
    "MAX_EMBEDDING_INPUTS",
    "MAX_EMBEDDING_VALUES",
    "MAX_MESSAGES",
    "MAX_MESSAGE_TOOL_CALLS",
    "MAX_OUTPUT_TOKENS",
    "MAX_SCHEMA_ARRAY_ITEMS",
    "MAX_SCHEMA_DEPTH",
    "MAX_SCHEMA_NODES",
    "MAX_SCHEMA_STRING_LENGTH",
    "MAX_TOOLS",
    "FixedLength",
    "LogNormalLength",
    "Outcome",
    "OutputLength",
    "Plan",
    "Quota",
    "QuotaDecision",
    "SimEngine",
    "SimServer",
    "Simulated",
    "SimulatedConfig",
    "UniformLength",
    "check_request",
    "embed_text",
    "estimate_prompt_tokens",
    "estimate_tokens",
    "format_duration",
    "parse_output_length",
    "plan_error",
    "serve_forever",
    "serve_in_thread",
    "serve_in_thread_async",
]
