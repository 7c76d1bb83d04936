"""Stream adapters: a stream of StreamEvents as SSE, callbacks, websocket messages or a result.

The stream is an agent's or a provider's; it becomes server-sent events, callbacks,
websocket messages or one CompletionResult."""

from ._stream_adapters import BufferingAdapter as BufferingAdapter
from ._stream_adapters import CallbackAdapter as CallbackAdapter
from ._stream_adapters import SSEAdapter as SSEAdapter
from ._stream_adapters import WebSocketAdapter as WebSocketAdapter
from ._stream_adapters import collect_stream as collect_stream
from ._stream_adapters import event_to_json as event_to_json
from .errors import StreamError as StreamError

__all__ = [
    "BufferingAdapter",
    "CallbackAdapter",
    "SSEAdapter",
    "StreamError",
    "WebSocketAdapter",
    "collect_stream",
    "event_to_json",
]
