"""Stream adapters: turn a stream of StreamEvents (an agent's or a provider's) into
server-sent events, callbacks, websocket messages or one CompletionResult."""

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
