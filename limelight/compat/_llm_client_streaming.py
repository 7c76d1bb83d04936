"""The agent client's stream adapters, over its own events.

``SSEAdapter().transform(...)``, ``CallbackAdapter(on_token=...)``,
``BufferingAdapter().wrap(...)``, ``collect_stream``, ``stream_to_string``,
``format_sse_event``, ``encode_sse_event``, ``stream_as_sse``, and the ``EventSink``
protocol with ``stream_to_sink`` (``PusherSink`` is one, in ``_llm_client_pusher``).

They read the earlier package's :class:`StreamEvent` s (``type`` and ``data``), as an
``OpenAIProvider`` or an ``Agent`` of the facade streams them; limelight's own adapters
(:mod:`limelight.streaming`) read limelight's events. Each closes the stream it reads
however reading ends.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError
from ._llm_client_types import (
    CompletionResult,
    StreamEvent,
    StreamEventType,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "BufferingAdapter",
    "CallbackAdapter",
    "EventSink",
    "SSEAdapter",
    "collect_stream",
    "encode_sse_event",
    "event_data_text",
    "event_name",
    "format_sse_event",
    "stream_as_sse",
    "stream_to_sink",
    "stream_to_string",
]


def format_sse_event(event: str, data: Any) -> str:
    """One server-sent-event frame: ``event: <event>\\ndata: <data>\\n\\n``."""
    return f"event: {event}\ndata: {data if isinstance(data, str) else str(data)}\n\n"


def event_name(event: StreamEvent) -> str:
    """The event's type as a name: ``"token"``, ``"done"``... (a plain string type, as the
    earlier ``LLMEvent`` had, is taken as it is)."""
    kind: object = event.type
    return str(kind.value) if isinstance(kind, enum.Enum) else str(kind)


def _as_json(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def event_data_text(data: Any) -> str:
    """An event's ``data`` as text: a str as it is, anything else as ASCII JSON (as before),
    the facade's objects through their ``to_dict()`` (``Usage``, ``CompletionResult``,
    ``AgentResult``) or their fields (``ToolCall``, ``ToolCallDelta``).

    :raises ConfigError: ``data`` cannot be written as JSON.
    """
    if isinstance(data, str):
        return data
    try:
        return json.dumps(data, ensure_ascii=True, default=_as_json)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"an event's data of type {type(data).__name__} cannot be sent as JSON ({exc}): "
            "give a str, a dict or list of JSON values, or an object with to_dict()"
        ) from exc


def encode_sse_event(event: StreamEvent) -> str:
    """The event as one server-sent-event frame, its data as :func:`event_data_text` writes
    it: ``event: <type>\\ndata: <data>\\n\\n``."""
    return format_sse_event(event_name(event), event_data_text(event.data))


async def stream_as_sse(events: AsyncIterable[StreamEvent]) -> AsyncIterator[str]:
    """Each event of ``events`` as a frame of :func:`encode_sse_event`; closes ``events``
    however reading ends."""
    try:
        async for event in events:
            yield encode_sse_event(event)
    finally:
        await _aclose(events)


@runtime_checkable
class EventSink(Protocol):
    """Where :func:`stream_to_sink` sends a stream's events (a :class:`PusherSink`, say)."""

    async def emit(self, event: StreamEvent) -> None:
        """Send one event."""
        ...

    async def close(self) -> None:
        """Release what the sink holds."""
        ...


async def stream_to_sink(events: AsyncIterable[StreamEvent], sink: EventSink) -> None:
    """Send every event of ``events`` to ``sink``, in order, each after the previous one was
    sent. ``events`` is closed however it ends (an error of the sink propagates); the sink is
    not: it is the caller's, as before (``async with PusherSink(...)``)."""
    try:
        async for event in events:
            await sink.emit(event)
    finally:
        await _aclose(events)


async def _aclose(stream: object) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


async def _call(callback: Callable[[Any], Any] | None, value: Any) -> None:
    if callback is not None:
        outcome = callback(value)
        if inspect.isawaitable(outcome):
            await outcome


class SSEAdapter:
    """Events as server-sent-event frames, for an HTTP response."""

    def __init__(self) -> None:
        self._closed = False

    async def transform(self, stream: AsyncIterable[StreamEvent]) -> AsyncIterator[str]:
        try:
            async for event in stream:
                if self._closed:
                    break
                yield event.to_sse()
        finally:
            await _aclose(stream)

    async def emit(self, event: StreamEvent) -> str:
        return event.to_sse()

    async def close(self) -> None:
        self._closed = True


class CallbackAdapter:
    """Calls a function (sync or async) per kind of event with its ``data``."""

    def __init__(
        self,
        on_token: Callable[[str], Any] | None = None,
        on_reasoning: Callable[[str], Any] | None = None,
        on_tool_call_start: Callable[[ToolCallDelta], Any] | None = None,
        on_tool_call_delta: Callable[[ToolCallDelta], Any] | None = None,
        on_tool_call_end: Callable[[ToolCall], Any] | None = None,
        on_usage: Callable[[Usage], Any] | None = None,
        on_done: Callable[[Any], Any] | None = None,
        on_error: Callable[[dict[str, Any]], Any] | None = None,
        on_meta: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self._handlers: dict[StreamEventType, Callable[[Any], Any] | None] = {
            StreamEventType.TOKEN: on_token,
            StreamEventType.REASONING: on_reasoning,
            StreamEventType.TOOL_CALL_START: on_tool_call_start,
            StreamEventType.TOOL_CALL_DELTA: on_tool_call_delta,
            StreamEventType.TOOL_CALL_END: on_tool_call_end,
            StreamEventType.USAGE: on_usage,
            StreamEventType.DONE: on_done,
            StreamEventType.ERROR: on_error,
            StreamEventType.META: on_meta,
        }

    async def emit(self, event: StreamEvent) -> None:
        await _call(self._handlers.get(event.type), event.data)

    async def consume(self, stream: AsyncIterable[StreamEvent]) -> Any:
        """Read the stream to its end, calling back; the last DONE event's data."""
        result = None
        try:
            async for event in stream:
                await self.emit(event)
                if event.type is StreamEventType.DONE:
                    result = event.data
        finally:
            await _aclose(stream)
        return result

    async def close(self) -> None:
        """Nothing to close."""


class BufferingAdapter:
    """Passes events through while keeping them: ``content``, ``tool_calls``, ``usage``,
    ``result``, ``events``; :meth:`get_result` assembles one when no DONE came."""

    def __init__(self) -> None:
        self.events: list[StreamEvent] = []
        self.content = ""
        self.reasoning = ""
        self.tool_calls: list[ToolCall] = []
        self.usage: Usage | None = None
        self.result: Any = None

    async def wrap(self, stream: AsyncIterable[StreamEvent]) -> AsyncIterator[StreamEvent]:
        try:
            async for event in stream:
                await self.emit(event)
                yield event
        finally:
            await _aclose(stream)

    async def emit(self, event: StreamEvent) -> None:
        self.events.append(event)
        match event.type:
            case StreamEventType.TOKEN:
                self.content += event.data
            case StreamEventType.REASONING:
                self.reasoning += event.data
            case StreamEventType.TOOL_CALL_END:
                self.tool_calls.append(event.data)
            case StreamEventType.USAGE:
                self.usage = event.data
            case StreamEventType.DONE:
                self.result = event.data

    async def close(self) -> None:
        self.events.clear()

    def get_result(self) -> CompletionResult:
        """The DONE event's result, else one made of what was buffered."""
        if isinstance(self.result, CompletionResult):
            return self.result
        return CompletionResult(
            content=self.content or None,
            tool_calls=self.tool_calls or None,
            usage=self.usage,
            reasoning=self.reasoning or None,
        )


async def collect_stream(stream: AsyncIterable[StreamEvent]) -> CompletionResult:
    """Read a stream to its end; its :class:`CompletionResult` (an ERROR event gives a result
    with its ``status`` and ``error``)."""
    buffer = BufferingAdapter()
    error: dict[str, Any] | None = None
    async for event in buffer.wrap(stream):
        if event.type is StreamEventType.ERROR:
            error = event.data
    if error is not None and buffer.result is None:
        return CompletionResult(
            content=buffer.content or None,
            status=int(error.get("status", 500)),
            error=str(error.get("error")),
        )
    return buffer.get_result()


async def stream_to_string(stream: AsyncIterable[StreamEvent]) -> str:
    """The text of a stream's TOKEN events."""
    try:
        parts = [event.data async for event in stream if event.type is StreamEventType.TOKEN]
    finally:
        await _aclose(stream)
    return "".join(parts)
