"""OpenAI's HTTP API as msgspec Structs: the one model of its wire format.

Requests, answers, stream chunks and error bodies of chat and text completions, embeddings
and the model list. The provider, the sync client and the harness's lean client encode
requests and decode answers with it; the simulator server decodes requests and encodes
answers with it. Encoders and decoders are built once, here.

Decoding is lenient: unknown fields are ignored and most fields have a default, so the
answers of any OpenAI-compatible server decode. Encoding follows OpenAI's presence rules.
A request (:class:`_Sparse`) sends only the fields that were given, so the server applies
its own defaults for the rest. An answer (:class:`_Full`) sends every field, nulls included,
as OpenAI does; where OpenAI leaves a field out instead (a chunk's ``usage`` before the last,
a message's ``tool_calls`` when there are none), the encoder sets it to :data:`OMIT`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Generic, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from ._llm import ToolSpec, Usage

#: Set a field to this to leave it out of the encoded JSON (it is msgspec's ``UNSET``).
#: Decoding never produces it (a missing field takes its default), so readers never see it;
#: typed ``Any`` so that an encoder may put it in any field.
OMIT: Final[Any] = UNSET

_M = TypeVar("_M")
_C = TypeVar("_C")


class _Full(msgspec.Struct, frozen=True, kw_only=True):
    """Encodes every field, nulls included, except those set to :data:`OMIT`."""


class _Sparse(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Encodes only the fields that differ from their default."""


# --------------------------------------------------------------------------------------
# Pieces of requests and answers


class FunctionCall(_Full, frozen=True, kw_only=True):
    """The function a tool call calls: its name and its arguments as JSON text."""

    name: str = ""
    arguments: str = ""


class ChatToolCall(_Full, frozen=True, kw_only=True):
    """A tool call, in an assistant message of a request or of an answer."""

    id: str = ""
    type: str = "function"
    function: FunctionCall = FunctionCall()


class Tool(_Full, frozen=True, kw_only=True):
    """A tool a chat request offers; :class:`~limelight.schemas.ToolSpec` is OpenAI's
    function definition."""

    type: str = "function"
    function: ToolSpec


class StreamOptions(_Full, frozen=True, kw_only=True):
    include_usage: bool = False


# --------------------------------------------------------------------------------------
# Requests


class RequestMessage(_Sparse, frozen=True, kw_only=True):
    """One message of a chat request.

    :ivar content: :data:`~msgspec.UNSET` when the message has none (an assistant message
        with tool calls may leave it out); ``None`` is sent as null, which chat templates
        expect of such a message.
    """

    role: str
    content: str | list[Any] | UnsetType | None = UNSET
    tool_calls: list[ChatToolCall] | None = None
    name: str | None = None
    tool_call_id: str | None = None


class ChatBody(_Sparse, Generic[_M], frozen=True, kw_only=True):
    """``POST /chat/completions``. ``_M`` is the message type: :class:`RequestMessage` when
    decoding; any Struct that encodes as one (such as :class:`~limelight.schemas.Message`)
    when encoding.

    :ivar ignore_eos: vLLM's extension: generate ``max_tokens`` whatever the model says.
    """

    model: str = ""
    messages: Sequence[_M]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = 1
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    ignore_eos: bool | None = None


class TextBody(_Sparse, frozen=True, kw_only=True):
    """``POST /completions`` (legacy text completions).

    :ivar max_tokens: :data:`~msgspec.UNSET` when the request leaves it out, which OpenAI
        reads as 16 tokens; null sets no cap.
    """

    model: str = ""
    prompt: str | list[str]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | UnsetType | None = UNSET
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None


class EmbeddingBody(_Sparse, frozen=True, kw_only=True):
    """``POST /embeddings``. ``input``: a string, strings, a token list or token lists."""

    input: str | list[Any]
    model: str = ""
    dimensions: int | None = None
    encoding_format: str = "float"


# --------------------------------------------------------------------------------------
# Answers


class PromptTokensDetails(_Full, frozen=True, kw_only=True):
    cached_tokens: int | None = 0


class CompletionUsage(_Full, frozen=True, kw_only=True):
    """Token counts of an answer. An embedding answer leaves ``completion_tokens`` out."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None

    def to_usage(self) -> Usage:
        details = self.prompt_tokens_details
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            total_tokens=self.total_tokens,
            cached_tokens=(details.cached_tokens or 0) if details is not None else 0,
        )


class UsageOnly(_Full, frozen=True, kw_only=True):
    """The usage of any answer or chunk, decoded without the rest (cheaply: msgspec skips
    the other fields)."""

    usage: CompletionUsage | None = None


class ChatMessage(_Full, frozen=True, kw_only=True):
    """The message of a chat answer. OpenAI leaves ``tool_calls`` out when there are none,
    and never sends ``name``, ``tool_call_id`` or ``reasoning_content`` (vLLM's and
    DeepSeek's reasoning)."""

    role: str = "assistant"
    content: str | list[Any] | None = None
    refusal: str | None = None
    tool_calls: list[ChatToolCall] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None


class ChatChoice(_Full, frozen=True, kw_only=True):
    index: int = 0
    message: ChatMessage = ChatMessage()
    logprobs: Any = None
    finish_reason: str | None = None


class ChatCompletion(_Full, frozen=True, kw_only=True):
    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[ChatChoice] = []
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None


class DeltaFunction(_Sparse, frozen=True, kw_only=True):
    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(_Full, frozen=True, kw_only=True):
    """A piece of a streamed tool call: the first names its ``id``, ``type`` and function;
    the next ones (which leave ``id`` and ``type`` out) add to its arguments."""

    index: int = 0
    id: str | None = None
    type: str | None = None
    function: DeltaFunction | None = None


class Delta(_Sparse, frozen=True, kw_only=True):
    role: str | None = None
    content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None
    reasoning_content: str | None = None


class ChunkChoice(_Full, frozen=True, kw_only=True):
    """A choice of a streamed chunk. Text-completion chunks put the token in ``text``, without
    a delta; a chat chunk leaves ``text`` out."""

    index: int = 0
    delta: Delta = Delta()
    logprobs: Any = None
    finish_reason: str | None = None
    text: str | None = None


class TextChoice(_Full, frozen=True, kw_only=True):
    text: str = ""
    index: int = 0
    logprobs: Any = None
    finish_reason: str | None = None


class _Completion(_Full, Generic[_C], frozen=True, kw_only=True):
    """A streamed chat chunk or a text completion: they differ in ``object`` and their
    choices."""

    id: str = ""
    object: str = ""
    created: int = 0
    model: str = ""
    system_fingerprint: str | None = None
    choices: list[_C] = []
    usage: CompletionUsage | None = None


class ChatCompletionChunk(_Completion[ChunkChoice], frozen=True, kw_only=True):
    """A chunk of a streamed chat answer. OpenAI leaves ``usage`` out of every chunk but the
    last when ``stream_options.include_usage`` is set."""

    object: str = "chat.completion.chunk"


class TextCompletion(_Completion[TextChoice], frozen=True, kw_only=True):
    """A text completion, or a chunk of a streamed one (``usage`` left out but in the last)."""

    object: str = "text_completion"


class EmbeddingData(_Full, frozen=True, kw_only=True):
    """One embedding: floats, or their little-endian float32 bytes in base64 when the request
    asked for ``encoding_format="base64"``."""

    object: str = "embedding"
    index: int = 0
    embedding: list[float] | str = []


class EmbeddingList(_Full, frozen=True, kw_only=True):
    object: str = "list"
    data: list[EmbeddingData] = []
    model: str = ""
    usage: CompletionUsage | None = None


class Model(_Full, frozen=True, kw_only=True):
    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = ""


class ModelsPage(_Full, frozen=True, kw_only=True):
    object: str = "list"
    data: list[Model] = []


class ErrorDetail(_Full, frozen=True, kw_only=True):
    message: str = ""
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


class ErrorBody(_Full, frozen=True, kw_only=True):
    """The body of an error answer: ``{"error": {"message", "type", "param", "code"}}``."""

    error: ErrorDetail


def error_body(
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """An :class:`ErrorBody` as plain data (what a simulated error answers and carries)."""
    detail = ErrorDetail(message=message, type=type, param=param, code=code)
    body: dict[str, Any] = msgspec.to_builtins(ErrorBody(error=detail))
    return body


encoder = msgspec.json.Encoder()
chat_body_decoder = msgspec.json.Decoder(ChatBody[RequestMessage])
text_body_decoder = msgspec.json.Decoder(TextBody)
embedding_body_decoder = msgspec.json.Decoder(EmbeddingBody)
chat_completion_decoder = msgspec.json.Decoder(ChatCompletion)
chat_chunk_decoder = msgspec.json.Decoder(ChatCompletionChunk)
text_completion_decoder = msgspec.json.Decoder(TextCompletion)
embedding_list_decoder = msgspec.json.Decoder(EmbeddingList)
models_page_decoder = msgspec.json.Decoder(ModelsPage)
error_body_decoder = msgspec.json.Decoder(ErrorBody)
usage_only_decoder = msgspec.json.Decoder(UsageOnly)
