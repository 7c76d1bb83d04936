"""``limelight sim``: the simulated provider served as an OpenAI-compatible HTTP server.

A thin wire layer (aiohttp) over :class:`~limelight.providers._simulated.SimEngine`: it turns
OpenAI request bodies into requests, and plays each :class:`Plan` as OpenAI's JSON or SSE. The
bodies are :mod:`limelight.schemas._openai`'s, the wire model the clients use too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import signal
import socket
import struct
import sys
import threading
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from ..errors import ConfigError
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
    ModelsPage,
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
from ._simulated import (
    DEFAULT_EMBEDDING_DIMENSIONS,
    DEFAULT_MODEL,
    DEFAULT_OUTPUT_TOKENS,
    DEFAULT_SEED,
    DEFAULT_TOKENS_PER_SECOND,
    DEFAULT_TOOL_CALL_PROBABILITY,
    DEFAULT_TTFT,
    DEFAULT_TTFT_JITTER,
    INLINE_EMBEDDING_VALUES,
    MAX_EMBEDDING_INPUTS,
    MAX_MESSAGES,
    Outcome,
    Plan,
    SimEngine,
    SimulatedConfig,
    _too_long,
    parse_output_length,
)

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "MAX_BODY_BYTES",
    "SimServer",
    "add_arguments",
    "config_from_args",
    "run_from_args",
    "serve_in_thread",
    "serve_in_thread_async",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
#: Seconds a stopping server waits for requests in flight before cutting them.
SHUTDOWN_TIMEOUT = 1.0
#: Legacy ``/v1/completions`` answers 16 tokens when the request names no ``max_tokens``.
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
_FINGERPRINT = "fp_limelight_sim"
_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})
# Pieces due within this many seconds of each other go out in one socket write.
_COALESCE = 0.0005
# A stream due all at once (no decode delay) lets other requests in after this many chunks.
_CHUNKS_PER_TURN = 512
# Bodies larger than this are decoded in a worker thread: decoding and converting a body
# costs CPU in proportion to its size, which must not hold the event loop.
_INLINE_BODY_BYTES = 64 * 1024
#: The largest request body accepted (413 above it).
MAX_BODY_BYTES = 64 * 1024 * 1024


_Body = TypeVar("_Body", bound=msgspec.Struct)
_Parsed = TypeVar("_Parsed")
_encode = encoder.encode
_DONE = b"data: [DONE]\n\n"


class _BadBody(Exception):
    """A request body that is not a valid request; carries OpenAI's error body and the
    status to answer (400 unless said otherwise)."""

    def __init__(self, body: dict[str, Any], status: int = 400) -> None:
        super().__init__(body["error"]["message"])
        self.body = body
        self.status = status


def _too_large() -> _BadBody:
    return _BadBody(
        error_body(
            f"The request body is larger than the simulator accepts: {MAX_BODY_BYTES} bytes at "
            "most (MAX_BODY_BYTES).",
            code="request_too_large",
        ),
        status=413,
    )


def _decompress(raw: bytes, encoding: str) -> bytes:
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
        raise _BadBody(
            error_body(f"The request body is not valid {encoding} data: {exc}.")
        ) from None
    if len(body) > MAX_BODY_BYTES:
        raise _too_large()
    if not decoder.eof:
        raise _BadBody(error_body(f"The request body's {encoding} data is cut short."))
    return body


def _decode_error(exc: msgspec.DecodeError) -> _BadBody:
    if isinstance(exc, msgspec.ValidationError):
        text = str(exc)
        # msgspec says "Object missing required field `messages`" or "... - at `$.x`".
        if "missing required field" in text:
            field = text.split("`", 2)[1]
            where = text.rsplit("at `$", 1)[1].strip("`.") if "at `$" in text else ""
            missing = f"{where}.{field}" if where else field
            return _BadBody(
                error_body(
                    f"Missing required parameter: '{missing}'.",
                    param=missing,
                    code="missing_required_parameter",
                )
            )
        param = text.rsplit("at `$.", 1)[-1].rstrip("`") if "at `$." in text else None
        return _BadBody(error_body(f"Invalid request: {text}", param=param, code="invalid_type"))
    return _BadBody(
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


def _invalid_type(param: str, expected: str, value: object) -> _BadBody:
    return _BadBody(
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
        raise _BadBody(
            error_body(
                f"The simulator answers one choice per request: 'n' must be 1, got {n}.",
                param="n",
                code="unsupported_value",
            )
        )


def _chat_request(body: ChatBody[RequestMessage]) -> CompletionRequest:
    if len(body.messages) > MAX_MESSAGES:
        # Refused before the messages are converted: that work grows with their number.
        raise _BadBody(_too_long("messages", len(body.messages), MAX_MESSAGES, "MAX_MESSAGES"))
    _only_one_choice(body.n)
    messages = []
    for i, m in enumerate(body.messages):
        role = "tool" if m.role == "function" else m.role
        if role not in _ROLES:
            raise _BadBody(
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
        raise _BadBody(
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
        raise _BadBody(_too_long("input", len(raw), MAX_EMBEDDING_INPUTS, "MAX_EMBEDDING_INPUTS"))
    inputs = []
    for x in raw:
        if isinstance(x, str):
            inputs.append(x)
        elif isinstance(x, list) and all(_is_token(t) for t in x):
            inputs.append(" ".join(map(str, x)))
        else:
            raise _BadBody(
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
        raise _BadBody(
            error_body(
                "The request body is nested too deeply to be parsed: flatten it.",
                code="invalid_json",
            )
        ) from None


def _parse_chat(raw: bytes) -> tuple[ChatBody[RequestMessage], CompletionRequest]:
    body = _decode(chat_body_decoder, raw)
    return body, _chat_request(body)


def _parse_text(raw: bytes) -> tuple[TextBody, CompletionRequest]:
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


def _parse_embedding(raw: bytes) -> tuple[EmbeddingBody, EmbeddingRequest]:
    body = _decode(embedding_body_decoder, raw)
    if body.encoding_format not in ("float", "base64"):
        raise _BadBody(
            error_body(
                f"Invalid value: '{body.encoding_format}'. Supported values are: 'float' and "
                "'base64'.",
                param="encoding_format",
                code="invalid_value",
            )
        )
    inputs = _embedding_inputs(body.input)
    return body, EmbeddingRequest(input=inputs, model=body.model, dimensions=body.dimensions)


# --------------------------------------------------------------------------------------
# The server


def _require_aiohttp() -> None:
    try:
        import aiohttp.web  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the test extra installs aiohttp
        raise ImportError("`limelight sim` needs aiohttp: pip install 'limelight[sim]'") from exc


def _reset(request: web.BaseRequest) -> None:
    """Drop the connection with a TCP reset (SO_LINGER 0), as a crashed peer does."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class SimServer:
    """The aiohttp application serving one :class:`SimEngine`.

    :param config: the simulated behaviour; the defaults when ``None``.
    """

    def __init__(self, config: SimulatedConfig | None = None) -> None:
        _require_aiohttp()
        from aiohttp import web

        self.engine = SimEngine(config)
        # Set by runner(): request bodies are decoded here rather than by aiohttp.
        self._decodes_bodies = False
        self._AppRunner = web.AppRunner
        self._Application = web.Application
        self._Response = web.Response
        self._StreamResponse = web.StreamResponse
        self._PayloadError = web.RequestPayloadError
        self._TooLarge = web.HTTPRequestEntityTooLarge

    def runner(self) -> web.AppRunner:
        """A runner for a new :meth:`app`, set up as ``limelight sim`` serves it.

        It decodes ``gzip`` and ``deflate`` request bodies itself (aiohttp's decoder never ends
        a truncated deflate body: its request would wait forever), and answers other
        encodings 415."""
        self._decodes_bodies = True
        return self._AppRunner(
            self.app(),
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            # A client that hangs up frees its concurrency slot at once.
            handler_cancellation=True,
            auto_decompress=False,
        )

    def app(self) -> web.Application:
        """A new aiohttp application with the OpenAI routes."""
        app = self._Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/v1/models/{model}", self.model)
        app.router.add_get("/health", self.health)
        app.router.add_route("*", "/{tail:.*}", self.not_found)
        return app

    # -- helpers ---------------------------------------------------------------------

    def _json(
        self, body: bytes, *, status: int = 200, headers: dict[str, str] | None = None
    ) -> web.Response:
        return self._Response(
            body=body, status=status, headers=headers, content_type="application/json"
        )

    def _error_response(self, plan: Plan) -> web.Response:
        return self._json(_encode(plan.error), status=plan.status, headers=plan.headers)

    async def _sleep_until(self, deadline: float) -> None:
        delay = deadline - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _fault_plain(
        self, request: web.Request, plan: Plan, body: bytes
    ) -> web.StreamResponse:
        """Play a faulty non-streamed plan: ``body`` is the answer it would have given."""
        if plan.outcome is Outcome.SERVER_ERROR:
            return self._error_response(plan)
        if plan.outcome is Outcome.MALFORMED:
            # Complete, well-framed, but not JSON: the closing brace is missing.
            return self._json(body[:-1], headers=plan.headers)
        if plan.outcome is Outcome.TRUNCATED:
            # The headers promise the full body; half of it comes, then the connection ends.
            response = self._StreamResponse(headers=plan.headers)
            response.content_type = "application/json"
            response.content_length = len(body)
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
            # A clean close (FIN), so the client sees a body shorter than promised.
            if request.transport is not None:
                request.transport.close()
        else:
            _reset(request)
        return self._Response(status=500)  # never sent: the connection is gone

    async def _complete(
        self,
        request: web.Request,
        plan: Plan,
        body: ChatBody[RequestMessage] | TextBody,
        whole: Callable[[Plan], msgspec.Struct],
        pieces: Callable[..., Iterator[tuple[int, bytes]]],
    ) -> web.StreamResponse:
        """Answer a chat or text completion: ``whole`` encodes a non-streamed answer,
        ``pieces`` the SSE chunks of a streamed one; the plan is released either way."""
        try:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            answer = b"" if body.stream or plan.error else _encode(whole(plan))
            chunks = pieces(plan, include_usage=include_usage) if body.stream else iter(())
            return await self._answer(request, plan, answer, chunks, stream=body.stream)
        finally:
            self.engine.release(plan)

    async def _answer(
        self,
        request: web.Request,
        plan: Plan,
        body: bytes,
        chunks: Iterator[tuple[int, bytes]],
        *,
        stream: bool,
    ) -> web.StreamResponse:
        """Play ``plan``: an error, a JSON ``body`` after its duration, or the SSE ``chunks``
        (each due at piece number ``n``)."""
        start = asyncio.get_running_loop().time()
        if plan.outcome in (Outcome.BAD_REQUEST, Outcome.RATE_LIMITED):
            return self._error_response(plan)
        if not stream:
            if plan.outcome is not Outcome.OK:
                await self._sleep_until(start + plan.ttft)
                return await self._fault_plain(request, plan, body)
            await self._sleep_until(start + plan.duration)
            return self._json(body, headers=plan.headers)
        if plan.outcome is Outcome.SERVER_ERROR:
            await self._sleep_until(start + plan.ttft)
            return self._error_response(plan)
        return await self._play_stream(request, plan, chunks, start)

    async def _play_stream(
        self, request: web.Request, plan: Plan, chunks: Iterator[tuple[int, bytes]], start: float
    ) -> web.StreamResponse:
        """Send ``chunks`` as SSE, each when its piece is due; chunks due within
        ``_COALESCE`` of each other share one write. A mid-stream fault strikes at the first
        chunk of piece ``plan.fault_at``."""
        loop = asyncio.get_running_loop()
        response = self._StreamResponse(headers=plan.headers)
        response.content_type = "text/event-stream"
        response.headers["Cache-Control"] = "no-cache"
        await response.prepare(request)
        fault = None if plan.outcome is Outcome.OK else plan.outcome
        pending: list[bytes] = []
        try:
            for piece, chunk in chunks:
                due = start + plan.at(piece)
                if due - loop.time() > _COALESCE:
                    if pending:
                        await response.write(b"".join(pending))
                        pending.clear()
                    await self._sleep_until(due)
                elif len(pending) >= _CHUNKS_PER_TURN:
                    # A long answer due at once: send what is ready and let others in.
                    await response.write(b"".join(pending))
                    pending.clear()
                    await asyncio.sleep(0)
                if fault is not None and piece == plan.fault_at:
                    if fault is Outcome.MALFORMED:
                        # This chunk's JSON loses its closing brace; the stream goes on.
                        pending.append(chunk[:-3] + b"\n\n")
                        fault = None
                        continue
                    if pending:
                        await response.write(b"".join(pending))
                    if fault is Outcome.TRUNCATED:
                        await response.write_eof()
                    else:
                        _reset(request)
                    return response
                pending.append(chunk)
            if pending:
                await response.write(b"".join(pending))
            await response.write_eof()
        except ConnectionError:
            # The client went away mid-stream; nothing is left to answer.
            pass
        return response

    async def _read(
        self, request: web.Request, convert: Callable[[bytes], _Parsed]
    ) -> _Parsed | web.Response:
        """The request's body through ``convert`` (decode and check it), in a worker thread
        when it is large; a 4xx answer when it cannot be read or ``convert`` refuses it."""
        encoding = ""
        if self._decodes_bodies:
            encoding = request.headers.get("Content-Encoding", "").strip().lower()
            if encoding in ("identity", ""):
                encoding = ""
            elif encoding == "x-gzip":
                encoding = "gzip"
            elif encoding not in ("gzip", "deflate"):
                body = error_body(
                    f"Content-Encoding {encoding!r} is not supported: send the body as it is, or "
                    "in gzip or deflate.",
                    code="unsupported_content_encoding",
                )
                return self._json(_encode(body), status=415)
        try:
            raw = await request.read()
        except self._TooLarge:
            return self._json(_encode(_too_large().body), status=413)
        except self._PayloadError as exc:
            # A body its own headers do not describe: a Content-Encoding it is not in, say.
            cause = exc.__cause__ or exc
            reason = str(getattr(cause, "message", cause)).strip()
            body = error_body(f"The request body could not be read: {reason}.")
            response = self._json(_encode(body), status=400)
            # The rest of the body cannot be read either: the connection ends with this answer,
            # and the server does not try to read the rest first.
            response.force_close()
            request.content.feed_eof()
            return response
        try:
            if encoding:
                # Inflating is CPU work in proportion to the inflated size, whatever the
                # size sent: always in a worker thread.
                return await asyncio.to_thread(lambda: convert(_decompress(raw, encoding)))
            if len(raw) <= _INLINE_BODY_BYTES:
                return convert(raw)
            return await asyncio.to_thread(convert, raw)
        except _BadBody as exc:
            return self._json(_encode(exc.body), status=exc.status)

    # -- routes ----------------------------------------------------------------------

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/chat/completions``, streamed or not."""
        parsed = await self._read(request, _parse_chat)
        if not isinstance(parsed, tuple):
            return parsed
        body, completion_request = parsed
        plan = self.engine.plan(completion_request)
        return await self._complete(request, plan, body, _chat_completion, _chat_chunks)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/completions`` (legacy text completions), streamed or not."""
        parsed = await self._read(request, _parse_text)
        if not isinstance(parsed, tuple):
            return parsed
        body, completion_request = parsed
        plan = self.engine.plan(completion_request)
        return await self._complete(request, plan, body, _text_completion, _text_chunks)

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/embeddings``, as floats or base64 (what the openai SDK asks for)."""
        parsed = await self._read(request, _parse_embedding)
        if not isinstance(parsed, tuple):
            return parsed
        body, embedding_request = parsed
        plan = self.engine.plan_embedding(embedding_request)
        try:
            answer = b""
            if plan.error is None:
                base64_encoded = body.encoding_format == "base64"
                if plan.embedding_values <= INLINE_EMBEDDING_VALUES:
                    answer = _embedding_answer(plan, base64_encoded)
                else:
                    answer = await asyncio.to_thread(_embedding_answer, plan, base64_encoded)
            return await self._answer(request, plan, answer, iter(()), stream=False)
        finally:
            self.engine.release(plan)

    async def models(self, request: web.Request) -> web.Response:
        """``GET /v1/models``."""
        page = ModelsPage(data=[_model(m) for m in self.engine.list_models().models])
        return self._json(_encode(page))

    async def model(self, request: web.Request) -> web.Response:
        """``GET /v1/models/{model}``."""
        wanted = request.match_info["model"]
        for m in self.engine.list_models().models:
            if m.id == wanted:
                return self._json(_encode(_model(m)))
        body = error_body(
            f"The model '{wanted}' does not exist", param="model", code="model_not_found"
        )
        return self._json(_encode(body), status=404)

    async def health(self, request: web.Request) -> web.Response:
        """``GET /health``: always ``{"status": "ok"}`` while the server runs."""
        return self._json(b'{"status":"ok"}')

    async def not_found(self, request: web.Request) -> web.Response:
        body = error_body(f"Invalid URL ({request.method} {request.path})")
        return self._json(_encode(body), status=404)


# --------------------------------------------------------------------------------------
# Wire shapes of a plan


def _usage(plan: Plan) -> CompletionUsage:
    usage = plan.usage
    return CompletionUsage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        prompt_tokens_details=OMIT,
    )


def _model(info: ModelInfo) -> Model:
    return Model(id=info.id, created=info.created or 0, owned_by=info.owned_by or "")


def _chat_completion(plan: Plan) -> ChatCompletion:
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


def _chat_chunks(plan: Plan, *, include_usage: bool) -> Iterator[tuple[int, bytes]]:
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


def _text_completion(plan: Plan) -> TextCompletion:
    return TextCompletion(
        id=plan.id,
        created=plan.created,
        model=plan.model,
        system_fingerprint=_FINGERPRINT,
        choices=[TextChoice(text=plan.content or "", finish_reason=plan.finish_reason)],
        usage=_usage(plan),
    )


def _text_chunks(plan: Plan, *, include_usage: bool) -> Iterator[tuple[int, bytes]]:
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


def _embedding_answer(plan: Plan, base64_encoded: bool) -> bytes:
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


# --------------------------------------------------------------------------------------
# Running it: in a thread (tests, embedding) or as the `limelight sim` command


async def _start(config: SimulatedConfig | None, host: str, port: int) -> tuple[web.AppRunner, str]:
    _require_aiohttp()
    from aiohttp import web

    runner = SimServer(config).runner()
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=2048, reuse_address=True)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return runner, f"http://{shown}:{bound_port}/v1"


class _ThreadedServer:
    """A server on its own asyncio loop in a daemon thread."""

    def __init__(self, config: SimulatedConfig | None, host: str, port: int) -> None:
        self._args = (config, host, port)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.url = ""
        self._thread = threading.Thread(target=self._run, name="limelight-sim", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:
            # Re-raised in the thread that called start() or stop(): stored, not swallowed.
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner, self.url = await _start(*self._args)
        try:
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        if not self.url:
            raise RuntimeError("the simulator server thread ended before it started serving")

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop.set)
        self._thread.join()
        if self._error is not None:
            raise self._error


@contextlib.contextmanager
def serve_in_thread(
    config: SimulatedConfig | None = None, *, host: str = DEFAULT_HOST, port: int = 0
) -> Iterator[str]:
    """Run the simulator server on its own asyncio loop in a daemon thread, for tests and
    programs on any event loop (trio included). Stops it, and waits, on exit.

    :param config: the simulated behaviour; the defaults when ``None``.
    :param host: the address to listen on.
    :param port: the port; 0 picks a free one.
    :returns: a context manager yielding the base URL, such as ``"http://127.0.0.1:5123/v1"``.
    """
    server = _ThreadedServer(config, host, port)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def serve_in_thread_async(
    config: SimulatedConfig | None = None, *, host: str = DEFAULT_HOST, port: int = 0
) -> AsyncIterator[str]:
    """:func:`serve_in_thread` for async code: starting and stopping the thread happen in a
    worker thread, so the event loop (asyncio or trio) never blocks."""
    import anyio.to_thread

    server = _ThreadedServer(config, host, port)
    await anyio.to_thread.run_sync(server.start)
    try:
        yield server.url
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(server.stop)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``limelight sim`` options to ``parser``."""
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (%(default)s)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port; 0 picks a free one (%(default)s)"
    )
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="NAME",
        help=f"a model to serve; repeat for several; the first is the default ({DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--strict-models", action="store_true", help="answer 404 for models not served"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help="the same seed and the same requests give the same answers (%(default)s)",
    )
    parser.add_argument(
        "--ttft", type=float, default=DEFAULT_TTFT, help="mean seconds to first token (%(default)s)"
    )
    parser.add_argument(
        "--ttft-jitter",
        type=float,
        default=DEFAULT_TTFT_JITTER,
        help="the first token comes within ttft ± this (%(default)s)",
    )
    parser.add_argument(
        "--tps",
        type=float,
        default=DEFAULT_TOKENS_PER_SECOND,
        help="tokens per second after the first; 0 for no delay (%(default)s)",
    )
    parser.add_argument(
        "--output-tokens",
        default=str(DEFAULT_OUTPUT_TOKENS),
        metavar="N|LOW-HIGH|lognormal:MEAN:SD",
        help="answer length before max_tokens caps it (%(default)s)",
    )
    parser.add_argument(
        "--tool-call-probability",
        type=float,
        default=DEFAULT_TOOL_CALL_PROBABILITY,
        help="chance of a tool call when the request offers tools (%(default)s)",
    )
    parser.add_argument("--rpm", type=int, help="requests per minute quota")
    parser.add_argument("--tpm", type=int, help="tokens per minute quota")
    parser.add_argument("--max-concurrency", type=int, help="requests in flight at once")
    faults = parser.add_argument_group("fault injection (chance per request, 0 to 1)")
    faults.add_argument("--server-error-rate", type=float, default=0.0, help="5xx answers")
    faults.add_argument("--rate-limit-error-rate", type=float, default=0.0, help="429 answers")
    faults.add_argument("--connection-reset-rate", type=float, default=0.0, help="TCP resets")
    faults.add_argument("--truncated-rate", type=float, default=0.0, help="answers cut short")
    faults.add_argument("--malformed-rate", type=float, default=0.0, help="invalid JSON")
    parser.add_argument(
        "--embedding-dimensions",
        type=int,
        default=DEFAULT_EMBEDDING_DIMENSIONS,
        help="length of embedding vectors when a request names none (%(default)s)",
    )


def config_from_args(args: argparse.Namespace) -> SimulatedConfig:
    """The :class:`SimulatedConfig` the parsed ``limelight sim`` options describe.

    :raises ConfigError: when an option's value is invalid.
    """
    return SimulatedConfig(
        models=tuple(args.models or (DEFAULT_MODEL,)),
        strict_models=args.strict_models,
        seed=args.seed,
        ttft=args.ttft,
        ttft_jitter=args.ttft_jitter,
        tokens_per_second=args.tps or None,
        output_tokens=parse_output_length(args.output_tokens),
        tool_call_probability=args.tool_call_probability,
        rpm=args.rpm,
        tpm=args.tpm,
        max_concurrency=args.max_concurrency,
        server_error_rate=args.server_error_rate,
        rate_limit_error_rate=args.rate_limit_error_rate,
        connection_reset_rate=args.connection_reset_rate,
        truncated_rate=args.truncated_rate,
        malformed_rate=args.malformed_rate,
        embedding_dimensions=args.embedding_dimensions,
    )


async def _serve_forever(config: SimulatedConfig, host: str, port: int) -> None:
    runner, url = await _start(config, host, port)
    try:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows, threads
                loop.add_signal_handler(signum, stop.set)
        print(f"limelight sim listening on {url} (models: {', '.join(config.models)})", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``limelight sim`` until SIGINT or SIGTERM.

    :returns: the exit status: 0 after a clean stop, 2 for an invalid option.
    """
    try:
        config = config_from_args(args)
        _require_aiohttp()
    except (ConfigError, ImportError) as exc:
        print(f"limelight sim: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve_forever(config, args.host, args.port))
    except OSError as exc:
        print(f"limelight sim: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
