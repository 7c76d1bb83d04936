"""OpenAI's wire shapes (chat completions, chunks, text completions, embeddings, models,
errors), shared by the HTTP client, the simulator server and the sync client's responses
(``response.choices[0].message.content``).

Decoding is lenient: unknown fields are ignored and optional ones default, so any
OpenAI-compatible server's answers decode. Encoders and decoders are built once, here.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ._llm import Usage


class _Wire(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    pass


class FunctionCall(_Wire, frozen=True):
    name: str = ""
    arguments: str = ""


class ChatToolCall(_Wire, frozen=True):
    id: str = ""
    type: str = "function"
    function: FunctionCall = FunctionCall()


class ChatMessage(_Wire, frozen=True):
    role: str = "assistant"
    content: str | list[Any] | None = None
    name: str | None = None
    tool_calls: list[ChatToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None


class PromptTokensDetails(_Wire, frozen=True):
    cached_tokens: int | None = 0


class CompletionUsage(_Wire, frozen=True):
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


class ChatChoice(_Wire, frozen=True):
    index: int = 0
    message: ChatMessage = ChatMessage()
    finish_reason: str | None = None
    logprobs: Any = None


class ChatCompletion(_Wire, frozen=True):
    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[ChatChoice] = []
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None


class DeltaFunction(_Wire, frozen=True):
    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(_Wire, frozen=True):
    index: int = 0
    id: str | None = None
    type: str | None = None
    function: DeltaFunction | None = None


class Delta(_Wire, frozen=True):
    role: str | None = None
    content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None
    reasoning_content: str | None = None


class ChunkChoice(_Wire, frozen=True):
    index: int = 0
    delta: Delta = Delta()
    finish_reason: str | None = None
    text: str | None = None  # text-completion chunks put the token here, without a delta


class ChatCompletionChunk(_Wire, frozen=True):
    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice] = []
    usage: CompletionUsage | None = None


class TextChoice(_Wire, frozen=True):
    index: int = 0
    text: str = ""
    finish_reason: str | None = None
    logprobs: Any = None


class TextCompletion(_Wire, frozen=True):
    id: str = ""
    object: str = "text_completion"
    created: int = 0
    model: str = ""
    choices: list[TextChoice] = []
    usage: CompletionUsage | None = None


class EmbeddingData(_Wire, frozen=True):
    index: int = 0
    embedding: list[float] = []
    object: str = "embedding"


class EmbeddingList(_Wire, frozen=True):
    object: str = "list"
    data: list[EmbeddingData] = []
    model: str = ""
    usage: CompletionUsage | None = None


class Model(_Wire, frozen=True):
    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = ""


class ModelsPage(_Wire, frozen=True):
    object: str = "list"
    data: list[Model] = []


class ErrorDetail(_Wire, frozen=True):
    message: str = ""
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


class ErrorBody(_Wire, frozen=True):
    error: ErrorDetail


encoder = msgspec.json.Encoder()
chat_completion_decoder = msgspec.json.Decoder(ChatCompletion)
chat_chunk_decoder = msgspec.json.Decoder(ChatCompletionChunk)
text_completion_decoder = msgspec.json.Decoder(TextCompletion)
embedding_list_decoder = msgspec.json.Decoder(EmbeddingList)
models_page_decoder = msgspec.json.Decoder(ModelsPage)
error_body_decoder = msgspec.json.Decoder(ErrorBody)
