"""Stream adapters: StreamEvents as SSE, callbacks, websocket or Pusher messages, a result.

The stream is an agent's or a provider's; it becomes server-sent events, callbacks,
websocket messages, events on a Pusher channel or one CompletionResult. The Pusher adapter
loads on first access (it needs the ``http`` extra)."""

from typing import TYPE_CHECKING

from ._lazy import lazy_attributes as _lazy_attributes
from ._stream_adapters import BufferingAdapter as BufferingAdapter
from ._stream_adapters import CallbackAdapter as CallbackAdapter
from ._stream_adapters import SSEAdapter as SSEAdapter
from ._stream_adapters import WebSocketAdapter as WebSocketAdapter
from ._stream_adapters import collect_stream as collect_stream
from ._stream_adapters import event_to_json as event_to_json
from .errors import StreamDeliveryError as StreamDeliveryError
from .errors import StreamError as StreamError

if TYPE_CHECKING:
    from ._pusher import PusherAdapter as PusherAdapter
    from ._pusher import PusherStatistics as PusherStatistics

__all__ = [
    "BufferingAdapter",
    "CallbackAdapter",
    "PusherAdapter",
    "PusherStatistics",
    "SSEAdapter",
    "StreamDeliveryError",
    "StreamError",
    "WebSocketAdapter",
    "collect_stream",
    "event_to_json",
]

__getattr__, __dir__ = _lazy_attributes(
    __name__,
    {"limelight._pusher": ["PusherAdapter", "PusherStatistics"]},
    extras={"limelight._pusher": "http"},
)
