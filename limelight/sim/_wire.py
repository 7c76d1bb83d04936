"""The simulator's OpenAI wire: request bodies in, JSON answers and SSE chunks out.

Request bodies become requests, and each :class:`~limelight.sim.Plan` becomes OpenAI's JSON
answers and SSE chunks. The bodies are :mod:`limelight.schemas._openai`'s, the wire model the
clients use too."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Iterator
from typing import Any, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from ..schemas import CompletionRequest, EmbeddingRequest, Message, ModelInfo, ToolCall
from ..schemas._openai import (
    OMIT,
    ChatBody,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessage,
    ChatToolCall,
    ChunkChoice,
    CompletionUsage,
    Delta,
    DeltaFunction,
    DeltaToolCall,
    EmbeddingBody,
    EmbeddingData,
    EmbeddingList,
    FunctionCall,
    Model,
    RequestMessage,
    TextBody,
    TextChoice,
    TextCompletion,
    chat_body_decoder,
    embedding_body_decoder,
    encoder,
    error_body,
    text_body_decoder,
)
from ._checks import too_long
from ._config import MAX_EMBEDDING_INPUTS, MAX_MESSAGES
from ._engine import Plan

#: Legacy ``/v1/completions`` answers 16 tokens when the request names no ``max_tokens``.
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
_FINGERPRINT = "fp_limelight_sim"
_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})
#: The largest request body accepted (413 above it).
MAX_BODY_BYTES = 64 * 1024 * 1024


_Body = TypeVar("_Body", bound=msgspec.Struct)
_encode = encoder.encode
_DONE = b"data: [DONE]\n\n"


class BadBody(Exception):
    """A request body that is not a valid request; carries OpenAI's error body and the
    status to answer (400 unless said otherwise)."""

    def __init__(self, body: dict[str, Any], status: int = 400) -> None:
        super().__init__(body["error"]["message"])
        self.body = body
        self.status = status


def too_large() -> BadBody:
    return BadBody(
        error_body(
            f"The request body is larger than the simulator accepts: {MAX_BODY_BYTES} bytes at "
            "most (MAX_BODY_BYTES).",
            code="request_too_large",
        ),
        status=413,
    )


def decompress(raw: bytes, encoding: str) -> bytes:
    """A ``gzip`` or ``deflate`` (zlib, or raw as some clients send it) request body,
    inflated to at most :data:`MAX_BODY_BYTES`."""
    if encoding == "deflate":
        wbits = zlib.MAX_WBITS if raw[:1] and raw[0] & 0x0F == 8 else -zlib.MAX_WBITS
    else:
        wbits = 16 + zlib.MAX_WBITS
    decoder = zlib.decompressobj(wbits)
    try:
        body = decoder.decompress(raw, MAX_BODY_BYTES + 1)
    except zlib.error as exc:
        raise BadBody(
            error_body(f"The request body is not valid {encoding} data: {exc}.")
        ) from None
    if len(body) > MAX_BODY_BYTES:
        raise too_large()
    if not decoder.eof:
        raise BadBody(error_body(f"The request body's {encoding} data is cut short."))
    return body


def _decode_error(exc: msgspec.DecodeError) -> BadBody:
    if isinstance(exc, msgspec.ValidationError):
        text = str(exc)
        # msgspec says "Object missing required field `messages`" or "... - at `$.x`".
        if "missing required field" in text:
            field = text.split("`", 2)[1]
            where = text.rsplit("at `$", 1)[1].strip("`.") if "at `$" in text else ""
            missing = f"{where}.{field}" if where else field
            return BadBody(
                error_body(
                    f"Missing required parameter: '{missing}'.",
                    param=missing,
                    code="missing_required_parameter",
                )
            )
        param = text.rsplit("at `$.", 1)[-1].rstrip("`") if "at `$." in text else None
        return BadBody(error_body(f"Invalid request: {text}", param=param, code="invalid_type"))
    return BadBody(
        error_body(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON.)"
        )
    )


def _json_kind(value: object) -> str:
    """``value``'s JSON type, as OpenAI's messages name it."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _invalid_type(param: str, expected: str, value: object) -> BadBody:
    return BadBody(
        error_body(
            f"Invalid type for '{param}': expected {expected}, but got {_json_kind(value)} "
            "instead.",
            param=param,
            code="invalid_type",
        )
    )


def _text_of(content: str | list[Any] | UnsetType | None, where: str) -> str | None:
    if content is UNSET:
        return None
    if content is None or isinstance(content, str):
        return content
    # Content parts: objects; only the text ones count for the token estimate.
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict):
            raise _invalid_type(f"{where}[{j}]", "an object", part)
        if part.get("type") == "text" or "text" in part:
            text = part.get("text")
            if not isinstance(text, str):
                raise _invalid_type(f"{where}[{j}].text", "a string", text)
            texts.append(text)
    return "".join(texts)


def _only_one_choice(n: int) -> None:
    if n != 1:
        raise BadBody(
            error_body(
                f"The simulator answers one choice per request: 'n' must be 1, got {n}.",
                param="n",
                code="unsupported_value",
            )
        )


def _chat_request(body: ChatBody[RequestMessage]) -> CompletionRequest:
    if len(body.messages) > MAX_MESSAGES:
        # Refused before the messages are converted: that work grows with their number.
        raise BadBody(too_long("messages", len(body.messages), MAX_MESSAGES, "MAX_MESSAGES"))
    _only_one_choice(body.n)
    messages = []
    for i, m in enumerate(body.messages):
        role = "tool" if m.role == "function" else m.role
        if role not in _ROLES:
            raise BadBody(
                error_body(
                    f"Invalid value: '{m.role}'. Supported values are: 'system', 'assistant', "
                    "'user', 'tool', 'function', and 'developer'.",
                    param=f"messages[{i}].role",
                    code="invalid_value",
                )
            )
        messages.append(
            Message(
                role=role,  # type: ignore[arg-type]  # checked against _ROLES above
                content=_text_of(m.content, f"messages[{i}].content"),
                name=m.name,
                tool_calls=[
                    ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
                    for c in m.tool_calls or ()
                ],
                tool_call_id=m.tool_call_id,
            )
        )
    if not messages:
        raise BadBody(
            error_body("[] is too short - 'messages'", param="messages", code="empty_array")
        )
    return CompletionRequest(
        model=body.model,
        messages=messages,
        max_tokens=(
            body.max_tokens if body.max_completion_tokens is None else body.max_completion_tokens
        ),
        tools=[t.function for t in body.tools or ()],
        tool_choice=body.tool_choice,
        response_format=body.response_format,
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed,
        stream=body.stream,
    )


def _is_token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32


def _embedding_inputs(raw: str | list[Any]) -> list[str]:
    """OpenAI's ``input``: a string, a list of strings, a token list or a list of token
    lists (token lists are embedded by their text, such as ``"1 2 3"``)."""
    if isinstance(raw, str):
        return [raw]
    if raw and all(_is_token(x) for x in raw):
        return [" ".join(map(str, raw))]
    if len(raw) > MAX_EMBEDDING_INPUTS:
        # Refused before the inputs are converted: that work grows with their number.
        raise BadBody(too_long("input", len(raw), MAX_EMBEDDING_INPUTS, "MAX_EMBEDDING_INPUTS"))
    inputs = []
    for x in raw:
        if isinstance(x, str):
            inputs.append(x)
        elif isinstance(x, list) and all(_is_token(t) for t in x):
            inputs.append(" ".join(map(str, x)))
        else:
            raise BadBody(
                error_body(
                    "'input' must be a string, an array of strings, an array of tokens or an "
                    "array of token arrays (tokens are integers from 0 to 2^32 - 1).",
                    param="input",
                )
            )
    return inputs


def _decode(decoder: msgspec.json.Decoder[_Body], raw: bytes) -> _Body:
    try:
        return decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise _decode_error(exc) from None
    except RecursionError:
        # msgspec refuses JSON nested deeper than the interpreter's recursion limit.
        raise BadBody(
            error_body(
                "The request body is nested too deeply to be parsed: flatten it.",
                code="invalid_json",
            )
        ) from None


def parse_chat(raw: bytes) -> tuple[ChatBody[RequestMessage], CompletionRequest]:
    body = _decode(chat_body_decoder, raw)
    return body, _chat_request(body)


def parse_text(raw: bytes) -> tuple[TextBody, CompletionRequest]:
    body = _decode(text_body_decoder, raw)
    _only_one_choice(body.n)
    prompt = body.prompt if isinstance(body.prompt, str) else "".join(body.prompt)
    request = CompletionRequest(
        model=body.model,
        prompt=prompt,
        max_tokens=COMPLETIONS_DEFAULT_MAX_TOKENS if body.max_tokens is UNSET else body.max_tokens,
        temperature=body.temperature,
        seed=body.seed,
        stream=body.stream,
    )
    return body, request


def parse_embedding(raw: bytes) -> tuple[EmbeddingBody, EmbeddingRequest]:
    body = _decode(embedding_body_decoder, raw)
    if body.encoding_format not in ("float", "base64"):
        raise BadBody(
            error_body(
                f"Invalid value: '{body.encoding_format}'. Supported values are: 'float' and "
                "'base64'.",
                param="encoding_format",
                code="invalid_value",
            )
        )
    inputs = _embedding_inputs(body.input)
    return body, EmbeddingRequest(input=inputs, model=body.model, dimensions=body.dimensions)


def _usage(plan: Plan) -> CompletionUsage:
    usage = plan.usage
    return CompletionUsage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        prompt_tokens_details=OMIT,
    )


def model_object(info: ModelInfo) -> Model:
    return Model(id=info.id, created=info.created or 0, owned_by=info.owned_by or "")


def chat_completion(plan: Plan) -> ChatCompletion:
    calls = [
        ChatToolCall(id=c.id, function=FunctionCall(name=c.name, arguments=c.arguments))
        for c in plan.tool_calls
    ]
    message = ChatMessage(
        content=plan.content,
        tool_calls=calls or OMIT,
        name=OMIT,
        tool_call_id=OMIT,
        reasoning_content=OMIT,
    )
    return ChatCompletion(
        id=plan.id,
        created=plan.created,
        model=plan.model,
        choices=[ChatChoice(message=message, finish_reason=plan.finish_reason)],
        usage=_usage(plan),
        system_fingerprint=_FINGERPRINT,
    )


def chat_chunks(plan: Plan, *, include_usage: bool) -> Iterator[tuple[int, bytes]]:
    """The SSE events of a streamed chat answer, each with the piece number it is due at:
    a role chunk, one chunk per token, per tool call a header chunk (id, name) and one chunk
    per argument fragment, the finish chunk, the usage chunk when asked, ``[DONE]``."""

    def chunk(
        delta: Delta | None, finish_reason: str | None = None, usage: CompletionUsage = OMIT
    ) -> bytes:
        choices = (
            []
            if delta is None
            else [ChunkChoice(delta=delta, finish_reason=finish_reason, text=OMIT)]
        )
        return _sse(
            ChatCompletionChunk(
                id=plan.id,
                created=plan.created,
                model=plan.model,
                system_fingerprint=_FINGERPRINT,
                choices=choices,
                usage=usage,
            )
        )

    # Token chunks are the hot path: a prefix and suffix around the token's JSON string.
    prefix, suffix = chunk(Delta(content="\x00")).split(b'"\\u0000"')
    yield (
        0,
        chunk(Delta(role="assistant", content="" if plan.tokens or not plan.tool_calls else None)),
    )
    piece = 0
    for token in plan.tokens:
        yield piece, prefix + _encode(token) + suffix
        piece += 1
    for index, (call, fragments) in enumerate(
        zip(plan.tool_calls, plan.tool_call_pieces, strict=True)
    ):
        header = DeltaToolCall(
            index=index,
            id=call.id,
            type="function",
            function=DeltaFunction(name=call.name, arguments=""),
        )
        yield piece, chunk(Delta(tool_calls=[header]))
        for fragment in fragments:
            more = DeltaToolCall(
                index=index, id=OMIT, type=OMIT, function=DeltaFunction(arguments=fragment)
            )
            yield piece, chunk(Delta(tool_calls=[more]))
            piece += 1
    last = max(piece - 1, 0)
    yield last, chunk(Delta(), plan.finish_reason)
    if include_usage:
        yield last, chunk(None, usage=_usage(plan))
    yield last, _DONE


def text_completion(plan: Plan) -> TextCompletion:
    return TextCompletion(
        id=plan.id,
        created=plan.created,
        model=plan.model,
        system_fingerprint=_FINGERPRINT,
        choices=[TextChoice(text=plan.content or "", finish_reason=plan.finish_reason)],
        usage=_usage(plan),
    )


def text_chunks(plan: Plan, *, include_usage: bool) -> Iterator[tuple[int, bytes]]:
    """The SSE events of a streamed text completion: one per token, the finish event, the
    usage event when asked, ``[DONE]``."""

    def chunk(text: str, finish_reason: str | None = None, usage: CompletionUsage = OMIT) -> bytes:
        choices = [] if usage else [TextChoice(text=text, finish_reason=finish_reason)]
        return _sse(
            TextCompletion(
                id=plan.id,
                created=plan.created,
                model=plan.model,
                system_fingerprint=_FINGERPRINT,
                choices=choices,
                usage=usage,
            )
        )

    prefix, suffix = chunk("\x00").split(b'"\\u0000"')
    for piece, token in enumerate(plan.tokens):
        yield piece, prefix + _encode(token) + suffix
    last = max(len(plan.tokens) - 1, 0)
    yield last, chunk("", plan.finish_reason)
    if include_usage:
        yield last, chunk("", usage=_usage(plan))
    yield last, _DONE


def embedding_answer(plan: Plan, base64_encoded: bool) -> bytes:
    """The JSON answer to an embedding plan: CPU work in proportion to
    ``plan.embedding_values`` (a large one runs in a worker thread)."""

    def wire(vector: list[float]) -> list[float] | str:
        if not base64_encoded:
            return vector
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()

    tokens = plan.prompt_tokens
    answer = EmbeddingList(
        data=[EmbeddingData(index=i, embedding=wire(v)) for i, v in enumerate(plan.embeddings())],
        model=plan.model,
        usage=CompletionUsage(
            prompt_tokens=tokens,
            completion_tokens=OMIT,
            total_tokens=tokens,
            prompt_tokens_details=OMIT,
        ),
    )
    return _encode(answer)


def _sse(event: msgspec.Struct) -> bytes:
    return b"data: " + _encode(event) + b"\n\n"
