"""Pusher Channels as a stream adapter: a stream of StreamEvents published to a channel.

The implementation behind :class:`limelight.streaming.PusherAdapter`. It speaks Pusher's HTTP
API (``POST /apps/{app_id}/events``, and ``/batch_events`` for several events in one request),
each request signed as Pusher specifies (:func:`sign_request`). Tokens are coalesced into
messages under Pusher's size limit, at most 10 events go in one request, and a token bucket
(:class:`~limelight._buckets.Bucket`) keeps to a message rate. Single events
(:meth:`PusherAdapter.publish`) take the same path.

One module: the messages the outbox builds (their envelope, coalescing, chunking, the byte
budget) and the requests that carry them (batching, rate, retries, what counts as delivered)
are one protocol, each half written against the other.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import math
import os
import re
import sys
import time
import uuid
from collections import deque
from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, TypeAlias

import anyio
import httpx
import msgspec

from ._buckets import EPSILON, Bucket
from ._httpx import LoopBoundTransport, make_async_transport, retry_after_seconds
from .errors import (
    ConfigError,
    DeadlineExceeded,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    StreamDeliveryError,
    api_error_for_status,
)
from .runtime import RetryPolicy
from .schemas import StreamEvent, StreamEventType

__all__ = [
    "DEFAULT_MAX_MESSAGES_PER_SECOND",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_PUSHER_RETRY",
    "DEFAULT_PUSHER_TIMEOUT",
    "MAX_BATCH_EVENTS",
    "MIN_MESSAGE_BYTES",
    "PusherAdapter",
    "PusherStatistics",
    "sign_request",
]

#: Pusher's limit on an event's ``data``, in bytes (10 KB; a dedicated cluster may allow more).
DEFAULT_MAX_MESSAGE_BYTES: Final = 10_240
#: The smallest ``max_message_bytes`` accepted: room for the envelope and a few characters.
MIN_MESSAGE_BYTES: Final = 256
#: Pusher's limit on the events of one ``batch_events`` request.
MAX_BATCH_EVENTS: Final = 10
#: Messages (Pusher events) per second. Pusher documents 10 per second for the events a client
#: sends, and counts every event against the plan's daily quota; 8 keeps below the former.
DEFAULT_MAX_MESSAGES_PER_SECOND: Final = 8.0
#: Seconds for each phase (connect, write, read) of one request.
DEFAULT_PUSHER_TIMEOUT: Final = 10.0
#: Retries of a failed request: connection errors, timeouts, 408, 409, 429 and 5xx.
DEFAULT_PUSHER_RETRY: Final = RetryPolicy(attempts=4, initial_delay=0.5, max_delay=10.0)

_CHANNEL: Final = re.compile(r"^[-a-zA-Z0-9_=@,.;]{1,200}$")
_NAME_SAFE: Final = re.compile(r"^[-a-zA-Z0-9_.:]*$")
_MAX_EVENT_NAME: Final = 200
#: Event names Pusher keeps for itself (``pusher:``) or for events clients send (``client-``).
_RESERVED: Final = ("pusher:", "pusher_internal:", "client-")
_CHUNKED: Final = "chunked-"
_MAX_BODY_TEXT: Final = 500
_encoder = msgspec.json.Encoder()


def sign_request(
    *, key: str, secret: str, path: str, body: bytes, timestamp: int
) -> dict[str, str]:
    """The query parameters of a signed Pusher HTTP API ``POST`` (``auth_signature`` last).

    ``body_md5`` is the MD5 (hex) of the body; ``auth_signature`` the HMAC-SHA256 (hex), keyed
    with the app's secret, of ``"POST\\n<path>\\n<the other parameters sorted by name,
    joined as key=value with & and not URL-escaped>"``.

    :param timestamp: Unix seconds; Pusher refuses a request more than 600 s off its clock.
    """
    params = {
        "auth_key": key,
        "auth_timestamp": str(timestamp),
        "auth_version": "1.0",
        "body_md5": hashlib.md5(body).hexdigest(),
    }
    query = "&".join(f"{name}={params[name]}" for name in sorted(params))
    signed = f"POST\n{path}\n{query}".encode()
    params["auth_signature"] = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return params


class PusherStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """What :meth:`PusherAdapter.send_stream` did with one stream.

    :ivar stream_id: the ``stream`` field of every message it published.
    :ivar events: stream events read from the source (an error of the source counts as the
        ERROR event it became).
    :ivar delivered: stream events published; ``events - skipped`` once the stream ended.
    :ivar skipped: META events, which are not published (they describe the transport: model,
        response id, headers).
    :ivar messages: Pusher events published: coalesced tokens, other events, chunks.
    :ivar requests: HTTP requests made, retries included.
    :ivar retries: requests that were retries of a failed one.
    :ivar source_error: ``"Type: message"`` of the exception that ended the source, if one
        did (it was published as an ERROR event).
    """

    stream_id: str
    events: int
    delivered: int
    skipped: int
    messages: int
    requests: int
    retries: int
    source_error: str | None = None


@dataclass(slots=True, eq=False)
class _Text:
    """A token waiting to be sent, or the rest of one that did not fit in a message."""

    text: str


class _Message(NamedTuple):
    """One Pusher event: its name, its data, and how many stream events it completes."""

    name: str
    data: bytes
    completes: int


_Item: TypeAlias = _Text | _Message | StreamEvent


def _json_size(text: str) -> int:
    """Bytes of ``text`` inside a JSON string (escapes and UTF-8 counted)."""
    return len(_encoder.encode(text)) - 2


def _split(text: str, budget: int) -> tuple[str, str]:
    """The longest non-empty head of ``text`` that takes at most ``budget`` bytes in a JSON
    string, and the rest. (A character takes at most 6: ``\\u001f``.)"""
    low, high = 1, len(text)  # the head of length `low` fits (budget >= 6); `high` does not
    while low < high:
        middle = (low + high + 1) // 2
        if _json_size(text[:middle]) <= budget:
            low = middle
        else:
            high = middle - 1
    return text[:low], text[low:]


def _chunks(name: str, text: str, message_id: str, max_bytes: int) -> list[_Message]:
    """``text`` as ``name`` events in Pusher's chunking protocol, each at most ``max_bytes``:
    data ``{"id", "index", "chunk", "final"}``, the chunks in order giving ``text``. The last
    chunk completes the event."""
    chunks: list[_Message] = []
    for index in itertools.count():
        empty = {"id": message_id, "index": index, "chunk": "", "final": False}
        piece, text = _split(text, max_bytes - len(_encoder.encode(empty)))
        chunk = {"id": message_id, "index": index, "chunk": piece, "final": not text}
        chunks.append(_Message(name, _encoder.encode(chunk), int(not text)))
        if not text:
            return chunks
    raise AssertionError("unreachable")  # pragma: no cover


def _check_channel(channel: object) -> str:
    """``channel`` if Pusher accepts it as a channel's name, else :class:`ConfigError`."""
    if not isinstance(channel, str) or not _CHANNEL.match(channel):
        raise ConfigError(
            f"invalid Pusher channel {channel!r}: use 1 to 200 letters, digits and "
            "-_=@,.; (such as 'chat-42' or 'private-user.7')"
        )
    return channel


def _event_text(data: object) -> str:
    """An event's ``data`` as the string Pusher carries: a str as it is, bytes as UTF-8 text,
    a mapping as its JSON."""
    if isinstance(data, str):
        return data
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"event data given as bytes must be UTF-8 text ({exc}); send binary data "
                "encoded, as base64 say"
            ) from exc
    if isinstance(data, Mapping):
        try:
            return _encoder.encode(dict(data)).decode()
        except (TypeError, msgspec.EncodeError) as exc:
            raise ConfigError(f"event data given as a mapping must be JSON: {exc}") from exc
    raise ConfigError(
        f"event data must be a str, bytes (UTF-8) or a mapping (sent as JSON), not "
        f"{type(data).__name__}"
    )


def _answer(content_type: str, content: bytes) -> dict[str, Any] | str:
    """A server's answer: its JSON object when it sent one, else its text."""
    if "json" in content_type.lower():
        try:
            value = msgspec.json.decode(content)
        except msgspec.DecodeError:
            value = None
        if isinstance(value, dict):
            return value
    return content.decode("utf-8", "replace")


class _Failed(Exception):
    """The delivery of a batch failed for good; ``send_stream`` turns it into a
    :class:`StreamDeliveryError` with the counts."""

    def __init__(self, cause: Exception, status_code: int | None) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.status_code = status_code


class _Tally:
    """The requests made for one stream or one published event, and how many were retries."""

    def __init__(self) -> None:
        self.requests = self.retries = 0


class _Outbox(_Tally):
    """One stream's events between the task reading the source and the one sending them."""

    def __init__(self, stream_id: str, prefix: str, max_bytes: int) -> None:
        super().__init__()
        self.stream_id = stream_id
        self._sid = _encoder.encode(stream_id)
        self._prefix = prefix
        self._max_bytes = max_bytes
        self.items: deque[_Item] = deque()
        self.ended = False
        self._changed = anyio.Event()
        self._seq = itertools.count()
        self.read = self.skipped = self.delivered = self.messages = 0
        self.source_error: str | None = None

    def put(self, event: StreamEvent) -> None:
        self.read += 1
        if event.type is StreamEventType.TOKEN:
            self.items.append(_Text(event.content or ""))
        elif event.type is StreamEventType.META:
            self.skipped += 1
            return
        else:
            self.items.append(event)
        self._changed.set()

    def end(self) -> None:
        self.ended = True
        self._changed.set()

    async def wait(self) -> None:
        """Until something is waiting to be sent, or the source ended."""
        while not self.items and not self.ended:
            self._changed = anyio.Event()
            await self._changed.wait()

    def _data(self, seq: int, event: StreamEvent) -> bytes:
        return b'{"stream":%b,"seq":%d,%b' % (self._sid, seq, _encoder.encode(event)[1:])

    def take(self, count: int) -> list[_Message]:
        """Up to ``count`` messages from the front (fewer when less is waiting)."""
        messages: list[_Message] = []
        items = self.items
        while items and len(messages) < count:
            head = items[0]
            if isinstance(head, _Message):
                items.popleft()
                messages.append(head)
            elif isinstance(head, _Text):
                messages.append(self._tokens())
            else:
                items.popleft()
                items.extendleft(reversed(self._event_messages(head)))
        return messages

    def _tokens(self) -> _Message:
        """One message of the tokens at the front, as many as fit."""
        seq = next(self._seq)
        budget = self._max_bytes - len(self._data(seq, StreamEvent.token("")))
        items = self.items
        parts: list[str] = []
        used = completes = 0
        while items and isinstance(head := items[0], _Text):
            size = _json_size(head.text)
            if used + size <= budget:
                parts.append(head.text)
                used += size
                completes += 1
                items.popleft()
                continue
            if not parts:  # one token larger than a message: split it
                piece, head.text = _split(head.text, budget)
                parts.append(piece)
            break
        data = self._data(seq, StreamEvent.token("".join(parts)))
        return _Message(self._prefix + "token", data, completes)

    def _event_messages(self, event: StreamEvent) -> list[_Message]:
        """The message of a stream event other than a token; several when it is larger than
        a message, in Pusher's chunking protocol: ``chunked-<name>`` events with data
        ``{"id", "index", "chunk", "final"}``, the chunks joined giving the data."""
        seq = next(self._seq)
        name = self._prefix + event.type.value
        data = self._data(seq, event)
        if len(data) <= self._max_bytes:
            return [_Message(name, data, 1)]
        return _chunks(_CHUNKED + name, data.decode(), f"{self.stream_id}-{seq}", self._max_bytes)

    def statistics(self) -> PusherStatistics:
        return PusherStatistics(
            stream_id=self.stream_id,
            events=self.read,
            delivered=self.delivered,
            skipped=self.skipped,
            messages=self.messages,
            requests=self.requests,
            retries=self.retries,
            source_error=self.source_error,
        )


def _setting(value: str | None, variable: str, what: str, *, required: bool = True) -> str:
    """``value``, else the environment variable; :class:`ConfigError` naming both when
    neither is set."""
    found = value if value is not None else os.environ.get(variable, "").strip()
    if required and not found:
        raise ConfigError(f"PusherAdapter needs {what}: pass it, or set {variable}")
    return found or ""


def _base_url(host: str, cluster: str) -> httpx.URL:
    """Where the API is: ``host`` (a URL, or a host[:port] reached over HTTPS), else
    Pusher's host of ``cluster``."""
    if host:
        text = host if "://" in host else f"https://{host}"
    elif cluster:
        if not re.fullmatch(r"[a-z0-9-]+", cluster):
            raise ConfigError(
                f"cluster must be a Pusher cluster name such as 'eu', not {cluster!r}"
            )
        text = f"https://api-{cluster}.pusher.com"
    else:
        raise ConfigError(
            "PusherAdapter needs the app's cluster (cluster='eu', 'mt1', ...; or set "
            "PUSHER_CLUSTER) or host= (the API's URL; or set PUSHER_HOST)"
        )
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"invalid Pusher host {host!r}: {exc}") from exc
    if url.scheme not in ("http", "https") or not url.host or url.path not in ("", "/"):
        raise ConfigError(
            f"host must be a host[:port] or an http(s) URL without a path, not {host!r}"
        )
    return url.copy_with(path="/", query=None)


class PusherAdapter:
    """Publishes a stream (an agent's or a provider's) to a Pusher channel.

    Every Pusher event's ``data`` is the JSON of the :class:`StreamEvent` (as the other
    adapters send it) with two fields in front: ``stream`` (one id per stream) and ``seq``
    (0, 1, 2... across all its messages, so clients can order them and drop a duplicate,
    which a retry after a lost answer can produce). Events are named ``<event_prefix><type>``:

    - ``token``: the tokens that arrived while the previous request was on its way or the
      rate limit held the next one, joined (``content``), each message at most
      ``max_message_bytes``; a single token larger than that is split;
    - ``tool_call``, ``tool_result``, ``usage``, ``error``, ``done``: one event each. One
      larger than ``max_message_bytes`` (a long tool result, the ``done`` of a long answer)
      is sent as ``chunked-<name>`` events, Pusher's chunking protocol: data
      ``{"id", "index", "chunk", "final"}``, the chunks in order giving the data. META
      events are not published (:attr:`PusherStatistics.skipped` counts them).

    A request carries up to ``max_batch_events`` events (``/batch_events``, one at a time
    in order), and at most ``max_messages_per_second`` are sent, with bursts of at most
    ``max_batch_events``. A failed request is retried with ``retry`` (connection errors,
    timeouts, 408, 409, 429 with its ``Retry-After``, 5xx); when it fails for good,
    :meth:`send_stream` raises :class:`~limelight.errors.StreamDeliveryError` saying how
    many stream events were not published. Nothing is dropped silently. (:meth:`publish`
    sends a single event of your own the same way.) A stream::

        async with PusherAdapter(channel="chat-42", cluster="eu") as pusher:
            async with agent.stream(prompt) as events:
                stats = await pusher.send_stream(events)

    :param app_id: the app's id; default ``$PUSHER_APP_ID``.
    :param key: the app's key; default ``$PUSHER_KEY``.
    :param secret: the app's secret, which signs every request and appears in no message,
        log or repr; default ``$PUSHER_SECRET``.
    :param cluster: the app's cluster (``eu``, ``mt1``, ...; the API is
        ``https://api-<cluster>.pusher.com``); default ``$PUSHER_CLUSTER``.
    :param host: the API's address instead (a URL such as ``http://127.0.0.1:8080``, or a
        host[:port] reached over HTTPS): a Pusher-compatible server; default ``$PUSHER_HOST``.
    :param channel: the channel (letters, digits and ``-_=@,.;``, at most 200 characters).
    :param event_prefix: put before each event's name (``"agent-"`` gives ``agent-token``).
    :param max_message_bytes: the most bytes of an event's data (Pusher's 10 KB by default).
    :param max_batch_events: the most events per request (1 to 10).
    :param max_messages_per_second: the message rate (Pusher events, not requests).
    :param retry: how failed requests are retried.
    :param timeout: seconds for each phase (connect, write, read) of a request.
    :raises ConfigError: a setting is missing or invalid (the message says which).
    """

    def __init__(
        self,
        *,
        channel: str,
        app_id: str | None = None,
        key: str | None = None,
        secret: str | None = None,
        cluster: str | None = None,
        host: str | None = None,
        event_prefix: str = "",
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_batch_events: int = MAX_BATCH_EVENTS,
        max_messages_per_second: float = DEFAULT_MAX_MESSAGES_PER_SECOND,
        retry: RetryPolicy = DEFAULT_PUSHER_RETRY,
        timeout: float = DEFAULT_PUSHER_TIMEOUT,
    ) -> None:
        self.app_id = _setting(app_id, "PUSHER_APP_ID", "the app's id (app_id=)")
        self.key = _setting(key, "PUSHER_KEY", "the app's key (key=)")
        self._secret = _setting(secret, "PUSHER_SECRET", "the app's secret (secret=)")
        cluster = _setting(cluster, "PUSHER_CLUSTER", "", required=False)
        self.base_url = _base_url(_setting(host, "PUSHER_HOST", "", required=False), cluster)
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.app_id):
            raise ConfigError(f"app_id must be the app's id (such as '1234567'), not {app_id!r}")
        _check_channel(channel)
        longest = _CHUNKED + event_prefix + StreamEventType.TOOL_RESULT.value
        reserved = event_prefix.startswith(_RESERVED)
        if reserved or not _NAME_SAFE.match(event_prefix) or len(longest) > _MAX_EVENT_NAME:
            raise ConfigError(
                f"invalid event_prefix {event_prefix!r}: use up to 150 letters, digits and "
                "-_.:, not starting with a prefix Pusher reserves (pusher:, client-)"
            )
        if max_message_bytes < MIN_MESSAGE_BYTES:
            raise ConfigError(
                f"max_message_bytes must be >= {MIN_MESSAGE_BYTES}, not {max_message_bytes}"
            )
        if not 1 <= max_batch_events <= MAX_BATCH_EVENTS:
            raise ConfigError(
                f"max_batch_events must be 1 to 10 (Pusher's limit), not {max_batch_events}"
            )
        if not (math.isfinite(max_messages_per_second) and max_messages_per_second > 0):
            raise ConfigError(
                f"max_messages_per_second must be positive, not {max_messages_per_second}"
            )
        if not timeout > 0:
            raise ConfigError(f"timeout must be positive seconds, not {timeout}")
        self.channel = channel
        self.event_prefix = event_prefix
        self.max_message_bytes = max_message_bytes
        self.max_messages_per_second = float(max_messages_per_second)
        self.retry = retry
        # A Bucket holds a minute of its limit and refills it in 60 of its seconds. Limit it
        # to the burst and run its clock `_scale` times faster than ours: it then refills at
        # `max_messages_per_second`. A batch is at most one burst.
        self._burst = max(1.0, min(self.max_messages_per_second, float(max_batch_events)))
        self.max_batch_events = int(self._burst)
        self._scale = 60.0 * self.max_messages_per_second / self._burst
        self._bucket: Bucket | None = None
        self._headers = httpx.Headers(
            {"content-type": "application/json", "user-agent": "limelight-pusher"}
        )
        self._extensions: dict[str, Any] = {"timeout": httpx.Timeout(timeout).as_dict()}

        def factory(backend: str) -> httpx.AsyncBaseTransport:
            return make_async_transport(max_connections=4, keepalive_expiry=30.0, backend=backend)

        self._bound = LoopBoundTransport(repr(self), factory)

    def __repr__(self) -> str:
        return (
            f"PusherAdapter(app_id={self.app_id!r}, channel={self.channel!r}, "
            f"host={str(self.base_url)!r})"
        )

    async def __aenter__(self) -> PusherAdapter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections (a later stream opens new ones)."""
        await self._bound.aclose()
        self._bucket = None

    # -- the stream -----------------------------------------------------------------------

    async def send_stream(
        self, events: AsyncIterable[StreamEvent], *, stream_id: str | None = None
    ) -> PusherStatistics:
        """Publish every event of ``events`` to the channel, in order; returns what was done.

        The source is read while earlier events are being sent, and closed however sending
        ends. An exception from the source is published as an ERROR event and ends the
        stream (:attr:`PusherStatistics.source_error` says which). Several streams may go
        through one adapter at once; they share its rate limit.

        :param stream_id: the ``stream`` field of the messages (default: a random id).
        :raises StreamDeliveryError: a request failed for good (a wrong key or secret, the
            server down after every retry); ``undelivered`` counts the stream events read
            and not published, and the source was closed.
        """
        if stream_id is None:
            stream_id = uuid.uuid4().hex[:16]
        elif not re.fullmatch(r"[-A-Za-z0-9_.:]{1,64}", stream_id):
            raise ConfigError(
                f"stream_id must be 1 to 64 letters, digits and -_.:, not {stream_id!r}"
            )
        outbox = _Outbox(stream_id, self.event_prefix, self.max_message_bytes)
        failed: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._read, events, outbox)
            try:
                await self._pump(outbox)
            except Exception as exc:  # raised below, not from the group (no ExceptionGroup)
                failed = exc
                tg.cancel_scope.cancel()  # stops reading; the source is closed
        if failed is not None and not isinstance(failed, _Failed):
            raise failed
        if failed is not None:
            undelivered = outbox.read - outbox.skipped - outbox.delivered
            raise StreamDeliveryError(
                f"publishing to Pusher channel {self.channel!r} failed: {failed}; "
                f"{outbox.delivered} stream event(s) published, {undelivered} not",
                delivered=outbox.delivered,
                undelivered=undelivered,
                status_code=failed.status_code,
            ) from failed.cause
        return outbox.statistics()

    # -- one event --------------------------------------------------------------------------

    async def publish(
        self, name: str, data: str | bytes | Mapping[str, Any], *, channel: str | None = None
    ) -> dict[str, Any] | str:
        """Publish one event to the channel; the server's answer.

        The event goes as it is: ``name`` without :attr:`event_prefix`, ``data`` without the
        ``stream``/``seq`` envelope of :meth:`send_stream` (a str as it is, bytes as UTF-8
        text, a mapping as its JSON). Data larger than ``max_message_bytes`` is sent as
        ``chunked-<name>`` events, Pusher's chunking protocol (as :meth:`send_stream` does),
        up to ``max_batch_events`` per request. The requests are signed, rate-limited (the
        adapter's one limit, shared with its streams) and retried as a stream's are.

        :param channel: a channel other than the adapter's.
        :returns: the server's answer to the (last) request: its JSON object as a dict
            (Pusher answers ``{}``), else its text.
        :raises ConfigError: a bad name, channel or data (the message says which); nothing
            was sent.
        :raises StreamDeliveryError: a request failed for good (a wrong key or secret, the
            server down after every retry): ``undelivered`` is 1, ``status_code`` the last
            answer's, the failure chained as ``__cause__``.
        """
        target = self.channel if channel is None else _check_channel(channel)
        if (
            not isinstance(name, str)
            or not 1 <= len(name) <= _MAX_EVENT_NAME
            or name.startswith(_RESERVED)
        ):
            raise ConfigError(
                f"invalid Pusher event name {name!r}: use 1 to 200 characters, not starting "
                "with a prefix Pusher reserves (pusher:, pusher_internal:, client-)"
            )
        text = _event_text(data)
        encoded = text.encode()
        if len(encoded) <= self.max_message_bytes:
            messages = [_Message(name, encoded, 1)]
        elif len(_CHUNKED + name) > _MAX_EVENT_NAME:
            raise ConfigError(
                f"event {name[:40]!r}... has {len(encoded)} bytes of data, more than "
                f"max_message_bytes={self.max_message_bytes}: it goes in chunks, and "
                f"{_CHUNKED!r} + its name must fit in {_MAX_EVENT_NAME} characters; shorten it"
            )
        else:
            message_id = uuid.uuid4().hex[:16]
            messages = _chunks(_CHUNKED + name, text, message_id, self.max_message_bytes)
        tally = _Tally()
        sent = 0
        try:
            for start in range(0, len(messages), self.max_batch_events):
                batch = messages[start : start + self.max_batch_events]
                answer = await self._deliver(batch, tally, target)
                sent += len(batch)
        except _Failed as failed:
            chunks = f" ({sent} of its {len(messages)} chunks published)" if sent else ""
            raise StreamDeliveryError(
                f"publishing event {name!r} to Pusher channel {target!r} failed{chunks}: {failed}",
                delivered=0,
                undelivered=1,
                status_code=failed.status_code,
            ) from failed.cause
        return _answer(*answer)

    @staticmethod
    async def _read(events: AsyncIterable[StreamEvent], outbox: _Outbox) -> None:
        iterator = aiter(events)
        try:
            while True:
                try:
                    event = await anext(iterator)
                except StopAsyncIteration:
                    break
                except Exception as exc:  # the source failed: its clients hear about it
                    outbox.source_error = f"{type(exc).__name__}: {exc}"
                    outbox.put(
                        StreamEvent(
                            type=StreamEventType.ERROR,
                            error=str(exc),
                            error_type=type(exc).__name__,
                        )
                    )
                    break
                outbox.put(event)
        finally:
            outbox.end()
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _pump(self, outbox: _Outbox) -> None:
        """Send what the source gives, as the rate allows, until it ended and all is sent."""
        while True:
            await outbox.wait()
            if not outbox.items:
                return
            # Waiting for capacity lets tokens gather into fewer messages.
            await self._wait_capacity(1)
            level = self._get_bucket().level(self._now())
            count = min(self.max_batch_events, max(1, math.floor(level + EPSILON)))
            messages = outbox.take(count)
            await self._deliver(messages, outbox, self.channel)
            outbox.messages += len(messages)
            outbox.delivered += sum(m.completes for m in messages)

    def _now(self) -> float:
        return anyio.current_time() * self._scale

    def _get_bucket(self) -> Bucket:
        if self._bucket is None:
            self._bucket = Bucket(self._burst, now=self._now())
        return self._bucket

    async def _wait_capacity(self, count: int) -> None:
        bucket = self._get_bucket()
        while True:
            wait = bucket.wait_time(count, self._now())
            if wait <= 0:
                return
            await anyio.sleep(wait / self._scale)

    async def _deliver(
        self, messages: list[_Message], tally: _Tally, channel: str
    ) -> tuple[str, bytes]:
        """POST ``messages`` to ``channel`` in one request, retried per :attr:`retry`; the
        answer's content type and body.

        :raises _Failed: the last failure, once the policy gives up."""
        if len(messages) == 1:
            path = f"/apps/{self.app_id}/events"
            name, data, _ = messages[0]
            body = _encoder.encode({"name": name, "channel": channel, "data": data.decode()})
        else:
            path = f"/apps/{self.app_id}/batch_events"
            batch = [
                {"channel": channel, "name": m.name, "data": m.data.decode()} for m in messages
            ]
            body = _encoder.encode({"batch": batch})
        for attempt in itertools.count(1):
            await self._wait_capacity(len(messages))
            self._get_bucket().take(len(messages), self._now())
            tally.requests += 1
            if attempt > 1:
                tally.retries += 1
            try:
                return await self._post(path, body)
            except ProviderError as exc:
                try:
                    await self.retry.wait_to_retry(attempt, exc)
                except (ProviderError, DeadlineExceeded) as final:
                    raise _Failed(final, getattr(exc, "status_code", None)) from final
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post(self, path: str, body: bytes) -> tuple[str, bytes]:
        params = sign_request(
            key=self.key, secret=self._secret, path=path, body=body, timestamp=int(time.time())
        )
        url = self.base_url.copy_with(path=path, params=params)
        request = httpx.Request(
            "POST", url, headers=self._headers, content=body, extensions=self._extensions
        )
        transport = self._bound.get()
        try:
            response = await transport.handle_async_request(request)
            try:
                content = await response.aread()
            finally:
                with anyio.CancelScope(shield=True):
                    await response.aclose()
        except self._bound.errors as exc:
            cause = exc.__cause__ or exc
            detail = f"POST {path} failed: {type(cause).__name__}: {cause or 'no detail'}"
            # httpx-aiohttp reports aiohttp's refused or reset connections as
            # httpx.ConnectTimeout: an aiohttp cause decides when there is one.
            aiohttp = sys.modules.get("aiohttp")
            if aiohttp is not None and isinstance(cause, aiohttp.ClientError):
                timed_out = isinstance(cause, TimeoutError)
            else:
                timed_out = isinstance(exc, (httpx.TimeoutException, TimeoutError))
            if timed_out:
                raise ProviderTimeout(self._safe(detail)) from exc
            raise ProviderConnectionError(self._safe(detail)) from exc
        status = response.status_code
        if status < 300:
            return response.headers.get("content-type", ""), content
        text = self._safe(content[:_MAX_BODY_TEXT].decode("utf-8", "replace")) or "(empty body)"
        hint = _HINTS.get(status, "")
        raise api_error_for_status(status)(
            f"POST {path} answered {status}: {text}{hint}",
            status_code=status,
            body=text,
            retry_after=retry_after_seconds(response.headers),
        )

    def _safe(self, text: str) -> str:
        return text.replace(self._secret, "[redacted]") if self._secret in text else text


_HINTS: Final[Mapping[int, str]] = {
    401: "; check the app's key and secret (PUSHER_KEY, PUSHER_SECRET) and the clock",
    403: "; the app is disabled or over its message quota",
    404: "; check the app id (PUSHER_APP_ID) and the cluster or host",
    413: "; an event's data is larger than the app allows: lower max_message_bytes",
}
