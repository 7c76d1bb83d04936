"""Stream adapters: turn a stream of StreamEvents (an agent's or a provider's) into
server-sent events, callbacks, websocket messages or one CompletionResult."""

from ._streaming import BufferingAdapter as BufferingAdapter
from ._streaming import CallbackAdapter as CallbackAdapter
from ._streaming import SSEAdapter as SSEAdapter
from ._streaming import StreamError as StreamError
from ._streaming import WebSocketAdapter as WebSocketAdapter
from ._streaming import collect_stream as collect_stream
from ._streaming import event_to_json as event_to_json

__all__ = [
    "BufferingAdapter",
    "CallbackAdapter",
    "SSEAdapter",
    "StreamError",
    "WebSocketAdapter",
    "collect_stream",
    "event_to_json",
]
