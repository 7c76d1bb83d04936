"""Assembling an OpenAI-style SSE stream into limelight's stream events.

The stream is of chat or text completion chunks. The events are TOKEN as text arrives, one
TOOL_CALL per complete call, USAGE, then DONE with the assembled result. A stream that stops
before its end is reported, never passed off as done."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence

import anyio
import httpx
import msgspec
from httpx_sse import EventSource, SSEError

from ..errors import APIError, BadResponse, ServerError, api_error_for_status
from ..schemas import CompletionResult, StreamEvent, StreamEventType, ToolCall, Usage
from ..schemas._openai import ChatCompletionChunk, chat_chunk_decoder, error_body_decoder

__all__ = ["StreamAssembler", "sse_events"]

_DONE = "[DONE]"
_TOKEN = StreamEventType.TOKEN
_TOOL_CALL = StreamEventType.TOOL_CALL
_NONE: tuple[StreamEvent, ...] = ()


class _PartialCall:
    """A tool call whose pieces are still arriving (OpenAI splits the arguments over chunks)."""

    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


class StreamAssembler:
    """Turns the ``data`` of each SSE event into stream events, and builds the final result.

    Only the first choice (index 0) is followed. Tool calls are announced when the choice
    finishes, as a call is only known to be complete then. Feed every event's data to
    :meth:`feed`, then call :meth:`finish` once the body has ended.

    :param provider: the backend label put on the result.
    :param model: the model name to report when the server names none.
    :param metadata: labels copied from the request onto the result.
    :param rate_limit: the response's ``x-ratelimit-*`` headers, put on the result.
    :param started: :func:`time.perf_counter` when the request was sent, for ttft and latency.
    :param secret: the configured API key, removed from a mid-stream error whatever its shape.
    """

    __slots__ = (
        "_calls",
        "_done",
        "_finish_reason",
        "_id",
        "_metadata",
        "_model",
        "_parts",
        "_provider",
        "_rate_limit",
        "_secret",
        "_started",
        "_ttft",
        "_usage",
        "chunks",
    )

    def __init__(
        self,
        *,
        provider: str,
        model: str = "",
        metadata: dict[str, str] | None = None,
        rate_limit: dict[str, str] | None = None,
        started: float | None = None,
        secret: str | None = None,
    ) -> None:
        self._secret = secret
        self._provider = provider
        self._model = model
        self._metadata = metadata or {}
        self._rate_limit = rate_limit or {}
        self._started = time.perf_counter() if started is None else started
        self._ttft: float | None = None
        self._parts: list[str] = []
        self._calls: dict[int, _PartialCall] = {}
        self._finish_reason: str | None = None
        self._usage: Usage | None = None
        self._id: str | None = None
        self._done = False
        #: How many chunks were fed so far.
        self.chunks = 0

    @property
    def done(self) -> bool:
        """Whether the server's ``[DONE]`` marker has arrived."""
        return self._done

    def feed(self, data: str) -> Sequence[StreamEvent]:
        """Take one SSE event's data; return the events it completes (often one TOKEN).

        :raises BadResponse: the data is not a JSON chunk.
        :raises APIError: the server reported an error inside the stream.
        """
        if data == _DONE:
            self._done = True
            return _NONE
        if self._done or not data:  # nothing counts after the end marker; pings carry no data
            return _NONE
        try:
            chunk = chat_chunk_decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise BadResponse(
                f"stream chunk {self.chunks + 1} is not a valid completion chunk ({exc}): "
                f"{data[:200]!r}"
            ) from exc
        self.chunks += 1
        if self._id is None and chunk.id:
            self._id = chunk.id
            if chunk.model:
                self._model = chunk.model
        if chunk.usage is not None:
            self._usage = chunk.usage.to_usage()
        choices = chunk.choices
        if not choices:
            if chunk.usage is None:
                self._raise_if_error(data, chunk)
            return _NONE
        choice = choices[0]
        if choice.index != 0:  # n > 1: follow the first choice only
            for choice in choices:
                if choice.index == 0:
                    break
            else:
                return _NONE
        delta = choice.delta
        content = delta.content
        if content is None:
            content = choice.text  # text-completion chunks carry no delta
        if self._ttft is None and (content or delta.tool_calls or delta.reasoning_content):
            self._ttft = time.perf_counter() - self._started
        if delta.tool_calls:
            calls = self._calls
            for piece in delta.tool_calls:
                call = calls.get(piece.index)
                if call is None:
                    call = calls[piece.index] = _PartialCall()
                if piece.id:
                    call.id = piece.id
                function = piece.function
                if function is not None:
                    if function.name:
                        call.name += function.name
                    if function.arguments:
                        call.arguments.append(function.arguments)
        finish_reason = choice.finish_reason
        if not content:
            if finish_reason is None or self._finish_reason is not None:
                return _NONE
            self._finish_reason = finish_reason
            return self._tool_call_events()
        self._parts.append(content)
        token = StreamEvent(type=_TOKEN, content=content)
        if finish_reason is None or self._finish_reason is not None:
            return (token,)
        self._finish_reason = finish_reason
        return (token, *self._tool_call_events())

    def finish(self) -> Sequence[StreamEvent]:
        """The closing events, after the body ended: pending TOOL_CALLs, USAGE, then DONE.

        :raises BadResponse: the stream ended with neither ``[DONE]`` nor a finish reason
            (the connection was cut, or the server stopped mid-answer).
        """
        if not self._done and self._finish_reason is None:
            raise BadResponse(
                f"the stream was truncated: it ended after {self.chunks} chunks without "
                "[DONE] or a finish_reason"
            )
        events: list[StreamEvent] = []
        if self._finish_reason is None:
            events.extend(self._tool_call_events())
        if self._usage is not None:
            events.append(StreamEvent(type=StreamEventType.USAGE, usage=self._usage))
        events.append(StreamEvent(type=StreamEventType.DONE, result=self.result()))
        return events

    def result(self) -> CompletionResult:
        """The result assembled from what was fed so far."""
        return CompletionResult(
            content="".join(self._parts) if self._parts else None,
            tool_calls=[self._tool_call(i, c) for i, c in sorted(self._calls.items())],
            finish_reason=self._finish_reason,
            model=self._model,
            usage=self._usage,
            latency=time.perf_counter() - self._started,
            ttft=self._ttft,
            id=self._id,
            provider=self._provider,
            metadata=self._metadata,
            rate_limit=self._rate_limit,
        )

    @staticmethod
    def _tool_call(index: int, call: _PartialCall) -> ToolCall:
        # "" is never valid JSON; a call without arguments means "{}".
        return ToolCall(
            id=call.id or f"call_{index}",
            name=call.name,
            arguments="".join(call.arguments) or "{}",
        )

    def _tool_call_events(self) -> Sequence[StreamEvent]:
        if not self._calls:
            return _NONE
        return [
            StreamEvent(type=_TOOL_CALL, tool_call=self._tool_call(i, c))
            for i, c in sorted(self._calls.items())
        ]

    def _raise_if_error(self, data: str, chunk: ChatCompletionChunk) -> None:
        """A chunk with neither choices nor usage may be an error the server sent mid-stream."""
        if chunk.id:
            return
        try:
            error = error_body_decoder.decode(data).error
        except msgspec.DecodeError:
            return
        code = error.code
        status = (
            int(code) if isinstance(code, int) or (isinstance(code, str) and code.isdigit()) else 0
        )
        cls: type[APIError] = api_error_for_status(status) if status >= 400 else ServerError
        from .._secrets import redact, redact_text

        raise cls(
            redact_text(
                f"the server reported an error mid-stream: {error.message or '(no message)'}"
                + (f" (type: {error.type})" if error.type else ""),
                self._secret,
            ),
            status_code=status or 200,
            body=redact(msgspec.json.decode(data), self._secret),
        )


class _StoppableBody(httpx.AsyncByteStream):
    """A response body that can be told to end early.

    httpx reads a body through a chain of async generators (the transport's, then
    ``aiter_raw`` → ``aiter_bytes`` → ``aiter_text`` → httpx-sse's); abandoning the chain
    halfway leaves generators to the garbage collector, which trio reports as a
    ResourceWarning. Ending the body instead lets every generator of the chain finish.
    """

    __slots__ = ("_exhausted", "_iterator", "_stopped", "_stream")

    def __init__(self, stream: httpx.AsyncByteStream) -> None:
        self._stream = stream
        self._iterator: AsyncIterator[bytes] | None = None
        self._stopped = False
        self._exhausted = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._stopped:
            raise StopAsyncIteration
        if self._iterator is None:
            self._iterator = self._stream.__aiter__()
        try:
            return await self._iterator.__anext__()
        except StopAsyncIteration:
            self._exhausted = True
            raise

    def stop(self) -> None:
        """Make the body end at the next read."""
        self._stopped = True

    async def aclose(self) -> None:
        self._stopped = True
        iterator, self._iterator = self._iterator, None
        if iterator is None or self._exhausted:
            return
        # Ended early: drop the connection, then let the transport's own generators run to
        # their end (reading a closed stream ends them at once) instead of leaving them to
        # the garbage collector.
        await self._stream.aclose()
        try:
            async for _ in iterator:
                pass
        except httpx.HTTPError:
            pass  # expected: the stream was closed under the reader, on purpose


async def sse_events(
    response: httpx.Response, assembler: StreamAssembler
) -> AsyncGenerator[StreamEvent, None]:
    """Read the SSE body of ``response`` (with httpx-sse) through ``assembler``: the events as
    they complete, ending with DONE. Never yields inside a cancel scope.

    The response is closed when the generator ends or is closed (early close ends the body:
    the connection is then closed, not reused). Transport errors propagate as httpx (or
    aiohttp) raised them: the caller knows the request to translate them against.

    :raises BadResponse: the body is not an event stream, holds invalid data or is truncated.
    """
    stream = response.stream
    if not isinstance(stream, httpx.AsyncByteStream):
        raise TypeError("sse_events reads responses of an async transport")
    body = _StoppableBody(stream)
    sse_response = httpx.Response(
        response.status_code,
        headers=response.headers,
        stream=body,
        extensions=response.extensions,
    )
    source = EventSource(sse_response).aiter_sse()
    try:
        async for sse in source:
            for event in assembler.feed(sse.data):
                yield event
    except SSEError as exc:
        raise BadResponse(f"expected an event stream: {exc}") from exc
    finally:
        # Shielded: even when cancelled, the reading generators must finish and the
        # connection must be released, or the pool leaks it.
        with anyio.CancelScope(shield=True):
            body.stop()
            async for _ in source:  # runs the rest of the (now ended) body through
                pass
            await body.aclose()
            await response.aclose()
    for event in assembler.finish():
        yield event
