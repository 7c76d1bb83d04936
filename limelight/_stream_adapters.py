"""Stream adapters, the implementation behind :mod:`limelight.streaming`.

They turn a stream of :class:`StreamEvent` (an agent's or a provider's) into server-sent
events, callbacks, websocket messages or one :class:`CompletionResult`."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import msgspec

from .errors import BadResponse, StreamError
from .schemas import CompletionResult, StreamEvent, StreamEventType, ToolCall, ToolResult, Usage

__all__ = [
    "BufferingAdapter",
    "CallbackAdapter",
    "SSEAdapter",
    "WebSocketAdapter",
    "collect_stream",
    "event_to_json",
]

_encoder = msgspec.json.Encoder()


def event_to_json(event: StreamEvent) -> str:
    """One event as compact JSON text (``type`` is its string value)."""
    return _encoder.encode(event).decode()


async def _aclose(events: object) -> None:
    """Close a source left before its end now, not when collected (trio warns then)."""
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()


def _error_event(exc: BaseException) -> StreamEvent:
    return StreamEvent(type=StreamEventType.ERROR, error=str(exc), error_type=type(exc).__name__)


class SSEAdapter:
    """Server-sent events for a web response: one ``event: <type>`` / ``data: <json>`` frame
    per stream event. An exception from the source ends the stream with an ``error`` frame
    (the response must end cleanly; the client learns what happened)::

        return StreamingResponse(SSEAdapter(agent_stream), media_type="text/event-stream")
    """

    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterable[StreamEvent]) -> None:
        self._events = events

    @staticmethod
    def format(event: StreamEvent) -> str:
        """The SSE frame of one event."""
        return f"event: {event.type.value}\ndata: {event_to_json(event)}\n\n"

    def __aiter__(self) -> AsyncIterator[str]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[str]:
        try:
            async for event in self._events:
                yield self.format(event)
        except Exception as exc:
            yield self.format(_error_event(exc))
        finally:
            await _aclose(self._events)


Callback: TypeAlias = Callable[[Any], Any]


async def _call(callback: Callback | None, value: Any) -> None:
    if callback is not None:
        outcome = callback(value)
        if inspect.isawaitable(outcome):
            await outcome


class CallbackAdapter:
    """Calls a function (sync or async) per kind of event.

    :param on_token: gets each token's text.
    :param on_tool_call: gets each :class:`ToolCall`.
    :param on_tool_result: gets the :class:`~limelight.schemas.ToolResult` of each tool call
        once it has run (agents' streams).
    :param on_done: gets the final :class:`CompletionResult`.
    :param on_error: gets the error (a :class:`StreamError` for an ERROR event, else the
        exception the source raised). Without it, errors are raised from :meth:`consume`.
    """

    def __init__(
        self,
        *,
        on_token: Callback | None = None,
        on_tool_call: Callback | None = None,
        on_tool_result: Callback | None = None,
        on_done: Callback | None = None,
        on_error: Callback | None = None,
    ) -> None:
        self.on_token = on_token
        self.on_tool_call = on_tool_call
        self.on_tool_result = on_tool_result
        self.on_done = on_done
        self.on_error = on_error

    async def consume(self, events: AsyncIterable[StreamEvent]) -> CompletionResult | None:
        """Read ``events`` to the end, calling the callbacks; the DONE event's result.

        :raises StreamError: an ERROR event arrived and there is no ``on_error``.
        """
        result: CompletionResult | None = None
        try:
            async for event in events:
                if event.type is StreamEventType.DONE:
                    result = event.result
                await self._dispatch(event)
        except StreamError:
            raise
        except Exception as exc:
            if self.on_error is None:
                raise
            await _call(self.on_error, exc)
        finally:
            await _aclose(events)
        return result

    async def _dispatch(self, event: StreamEvent) -> None:
        match event.type:
            case StreamEventType.TOKEN:
                await _call(self.on_token, event.content or "")
            case StreamEventType.TOOL_CALL:
                await _call(self.on_tool_call, event.tool_call)
            case StreamEventType.TOOL_RESULT:
                await _call(self.on_tool_result, event.tool_result)
            case StreamEventType.ERROR:
                error = StreamError(event.error or "", error_type=event.error_type)
                if self.on_error is None:
                    raise error
                await _call(self.on_error, error)
            case StreamEventType.DONE:
                await _call(self.on_done, event.result)


class BufferingAdapter:
    """Passes a stream through while keeping all of it: iterate it, then read :attr:`text`,
    :attr:`tool_calls`, :attr:`tool_results`, :attr:`events` and :attr:`result`."""

    def __init__(self, events: AsyncIterable[StreamEvent]) -> None:
        self._source = events
        self.events: list[StreamEvent] = []
        self.result: CompletionResult | None = None
        self._tokens: list[str] = []
        self.tool_calls: list[ToolCall] = []
        self.tool_results: list[ToolResult] = []

    @property
    def text(self) -> str:
        """The tokens so far, joined."""
        return "".join(self._tokens)

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._pass()

    async def _pass(self) -> AsyncIterator[StreamEvent]:
        try:
            async for event in self._source:
                self._keep(event)
                yield event
        finally:
            await _aclose(self._source)

    def _keep(self, event: StreamEvent) -> None:
        self.events.append(event)
        if event.type is StreamEventType.TOKEN and event.content:
            self._tokens.append(event.content)
        elif event.type is StreamEventType.TOOL_CALL and event.tool_call is not None:
            self.tool_calls.append(event.tool_call)
        elif event.type is StreamEventType.TOOL_RESULT and event.tool_result is not None:
            self.tool_results.append(event.tool_result)
        elif event.type is StreamEventType.DONE:
            self.result = event.result

    async def consume(self) -> str:
        """Read the stream to the end; the full text. The source is closed however reading
        ends (its end, an exception, cancellation)."""
        try:
            async for event in self._source:
                self._keep(event)
        finally:
            await _aclose(self._source)
        return self.text


async def collect_stream(events: AsyncIterable[StreamEvent]) -> CompletionResult:
    """Read a stream to the end and return its result: the DONE event's, or else one
    assembled from its tokens, tool calls and usage.

    :raises StreamError: the stream had an ERROR event.
    :raises BadResponse: the stream was empty.
    """
    tokens: list[str] = []
    calls: list[ToolCall] = []
    usage: Usage | None = None
    seen = False
    try:
        async for event in events:
            seen = True
            match event.type:
                case StreamEventType.TOKEN:
                    tokens.append(event.content or "")
                case StreamEventType.TOOL_CALL if event.tool_call is not None:
                    calls.append(event.tool_call)
                case StreamEventType.USAGE:
                    usage = event.usage
                case StreamEventType.ERROR:
                    raise StreamError(event.error or "", error_type=event.error_type)
                case StreamEventType.DONE if event.result is not None:
                    return event.result
    finally:
        await _aclose(events)
    if not seen:
        raise BadResponse("the stream ended without any event")
    return CompletionResult(
        content="".join(tokens) if tokens else None,
        tool_calls=calls,
        finish_reason="tool_calls" if calls else "stop",
        usage=usage,
    )


class WebSocketAdapter:
    """Sends each event as one JSON text message over a websocket.

    :param send: the socket's send-text coroutine function: Starlette's
        ``websocket.send_text``, a ``websockets`` connection's ``send``, or any
        ``async (str) -> None``.
    """

    def __init__(self, send: Callable[[str], Awaitable[Any]]) -> None:
        if not callable(send):
            raise TypeError(f"WebSocketAdapter needs a send function, got {send!r}")
        self._send = send

    async def send_stream(self, events: AsyncIterable[StreamEvent]) -> int:
        """Send every event of ``events``; an exception from the source is sent as an ERROR
        event and ends the stream. Returns the number of messages sent. The source is closed
        however sending ends (its end, its error, a failing socket, cancellation)."""
        sent = 0
        iterator = aiter(events)
        try:
            while True:
                try:
                    event = await anext(iterator)
                except StopAsyncIteration:
                    break
                except Exception as exc:  # the source failed; a failing socket still raises
                    await self._send(event_to_json(_error_event(exc)))
                    return sent + 1
                await self._send(event_to_json(event))
                sent += 1
        finally:
            await _aclose(iterator)
        return sent
