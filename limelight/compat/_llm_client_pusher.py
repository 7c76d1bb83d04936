"""The agent client's ``PusherStreamer`` and ``PusherSink``, over limelight's Pusher adapter.

Both publish single events through :meth:`~limelight.streaming.PusherAdapter.publish`: each
request signed, an event over Pusher's size limit sent in chunks, the adapter's rate limit
and retries applied. The settings come from the earlier variables (``PUSHER_AUTH_KEY``...),
else from limelight's (``PUSHER_KEY``...).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, Mapping
from typing import Any, TypedDict, Unpack

from .._pusher import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_MESSAGES_PER_SECOND,
    DEFAULT_PUSHER_RETRY,
    DEFAULT_PUSHER_TIMEOUT,
    PusherAdapter,
)
from ..errors import ConfigError
from ..runtime import RetryPolicy
from ._llm_client_streaming import _aclose, event_data_text, event_name
from ._llm_client_types import StreamEvent, StreamEventType

__all__ = ["PusherSink", "PusherStreamer"]


class _Settings(TypedDict, total=False):
    """What may be given instead of the environment, and the adapter's limits."""

    app_id: str
    key: str
    secret: str
    cluster: str
    host: str
    max_message_bytes: int
    max_messages_per_second: float
    retry: RetryPolicy
    timeout: float


def _first(given: str | None, *variables: str) -> str:
    """``given``, else the first of ``variables`` set in the environment, else ``""``."""
    if given:
        return given
    for variable in variables:
        value = os.environ.get(variable, "").strip()
        if value:
            return value
    return ""


def _required(owner: str, given: str | None, name: str, *variables: str) -> str:
    """:func:`_first`, or :class:`ConfigError` naming the variables to set."""
    found = _first(given, *variables)
    if not found:
        others = "".join(f" (or {variable})" for variable in variables[1:])
        raise ConfigError(
            f"{owner} needs the app's {'id' if name == 'app_id' else name}: set "
            f"{variables[0]}{others}, or pass {name}="
        )
    return found


def _adapter(owner: str, channel: str | None, settings: _Settings) -> PusherAdapter:
    """The :class:`PusherAdapter` of a streamer, from ``settings`` and the environment.

    :raises ConfigError: no channel, a missing or invalid setting, an unknown keyword.
    """
    unknown = sorted(set(settings) - _Settings.__optional_keys__)
    if unknown:
        raise ConfigError(
            f"{owner} got unknown settings {unknown}: use "
            f"{', '.join(sorted(_Settings.__optional_keys__))}"
        )
    if channel is None:
        raise ConfigError(
            f"{owner} needs a channel: {owner}('chat-42') (with none, Pusher has nowhere to "
            "publish the events)"
        )
    version = os.environ.get("PUSHER_AUTH_VERSION", "").strip()
    if version and version != "1.0":
        raise ConfigError(
            f"PUSHER_AUTH_VERSION is {version!r}, but Pusher's HTTP API signs with version "
            "1.0 only: set it to 1.0, or unset it"
        )
    app_id = _required(owner, settings.get("app_id"), "app_id", "PUSHER_APP_ID")
    key = _required(owner, settings.get("key"), "key", "PUSHER_AUTH_KEY", "PUSHER_KEY")
    secret = _required(
        owner, settings.get("secret"), "secret", "PUSHER_AUTH_SECRET", "PUSHER_SECRET"
    )
    host = _first(settings.get("host"), "PUSHER_HOST")
    cluster = _first(settings.get("cluster"), "PUSHER_APP_CLUSTER", "PUSHER_CLUSTER")
    if not host and not cluster:
        raise ConfigError(
            f"{owner} needs the app's cluster: set PUSHER_APP_CLUSTER (or PUSHER_CLUSTER), or "
            "PUSHER_HOST (the URL of a Pusher-compatible server), or pass cluster= or host="
        )
    return PusherAdapter(
        channel=channel,
        app_id=app_id,
        key=key,
        secret=secret,
        cluster=cluster,
        host=host,
        max_message_bytes=settings.get("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES),
        max_messages_per_second=settings.get(
            "max_messages_per_second", DEFAULT_MAX_MESSAGES_PER_SECOND
        ),
        retry=settings.get("retry", DEFAULT_PUSHER_RETRY),
        timeout=settings.get("timeout", DEFAULT_PUSHER_TIMEOUT),
    )


class PusherStreamer:
    """Publishes events to a Pusher channel, one request each (after the rate limit).

    ::

        async with PusherStreamer(channel) as streamer:
            await streamer.push_event("new-response", "")

    The app comes from ``PUSHER_APP_ID``, ``PUSHER_AUTH_KEY``, ``PUSHER_AUTH_SECRET`` and
    ``PUSHER_APP_CLUSTER`` (else ``PUSHER_KEY``, ``PUSHER_SECRET``, ``PUSHER_CLUSTER``);
    ``PUSHER_HOST`` (or ``host=``) points it at a Pusher-compatible server instead of the
    cluster's. ``PUSHER_AUTH_VERSION`` may only be ``1.0``, the one version Pusher signs
    with. Keywords override the environment and set the adapter's limits (``max_message_bytes``,
    ``max_messages_per_second``: 8 by default, Pusher's advice; ``retry``, ``timeout``).

    Unlike before, events are published with limelight's :class:`PusherAdapter`: an event
    larger than Pusher's 10 KB limit goes as ``chunked-<name>`` events (Pusher's chunking
    protocol) instead of being refused, failed requests are retried, and a failure is an
    error, not a returned string (see :meth:`push_event`). ``async with`` is optional: the
    connections open on first use; :meth:`close` (or leaving the ``async with``) closes them.

    :param channel: the channel (letters, digits and ``-_=@,.;``, at most 200 characters);
        :attr:`channel` may be changed between events.
    :raises ConfigError: no channel, or a setting is missing or invalid (the message names
        the variable to set).
    """

    def __init__(self, channel: str | None = None, **settings: Unpack[_Settings]) -> None:
        self.adapter = _adapter(type(self).__name__, channel, settings)
        self.channel: str = self.adapter.channel

    def __repr__(self) -> str:
        return f"PusherStreamer(channel={self.channel!r}, host={str(self.adapter.base_url)!r})"

    async def __aenter__(self) -> PusherStreamer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def push_event(
        self, name: str, data: str | bytes | Mapping[str, Any]
    ) -> dict[str, Any] | str:
        """Publish one event (``data`` as it is: a str, UTF-8 bytes, or a mapping as JSON).

        :returns: the server's answer, as before: its JSON object as a dict (Pusher answers
            ``{}``), else its text.
        :raises StreamDeliveryError: the event could not be published: the server refused it
            (``status_code`` 401 for a wrong key or secret, 403, 413...; its answer in the
            message) or could not be reached after the retries (``status_code`` None). The
            earlier streamer returned the text of a connection error, and a refusal's body,
            as if they were answers; a typed error cannot be mistaken for one.
        :raises ConfigError: a bad name (empty, over 200 characters, ``pusher:`` or
            ``client-``) or data.
        """
        return await self.adapter.publish(name, data, channel=self.channel)

    async def emit(self, event: StreamEvent) -> None:
        """Publish a stream event, named by its type (``token``, ``done``...); its data as
        text (a str as it is, else JSON: ``Usage``, ``CompletionResult``, ``AgentResult`` by
        their ``to_dict()``).

        :raises StreamDeliveryError: as :meth:`push_event`.
        """
        await self.push_event(event_name(event), event_data_text(event.data))

    async def consume(self, stream: AsyncIterable[StreamEvent]) -> Any:
        """Publish ``stream-start``, every event of ``stream``, then ``stream-end``; the last
        DONE event's data (None if none came). ``stream`` is closed however it ends.

        :raises StreamDeliveryError: as :meth:`push_event`; the events after the failed one
            were not published.
        """
        result = None
        try:
            await self.push_event("stream-start", "")
            async for event in stream:
                await self.emit(event)
                if event.type is StreamEventType.DONE:
                    result = event.data
            await self.push_event("stream-end", "")
        finally:
            await _aclose(stream)
        return result

    async def close(self) -> None:
        """Close the connections (a later event opens new ones)."""
        await self.adapter.aclose()


class PusherSink:
    """An :class:`EventSink` publishing each event to a Pusher channel, as
    :meth:`PusherStreamer.emit` does (the same settings)::

        async with PusherSink(channel) as sink:
            await stream_to_sink(agent.stream(prompt), sink)

    :raises ConfigError: no channel, or a setting is missing or invalid.
    """

    def __init__(self, channel: str | None = None, **settings: Unpack[_Settings]) -> None:
        self.streamer = PusherStreamer(channel, **settings)

    @property
    def channel(self) -> str:
        """The channel events go to; may be changed between events."""
        return self.streamer.channel

    @channel.setter
    def channel(self, channel: str) -> None:
        self.streamer.channel = channel

    def __repr__(self) -> str:
        return f"PusherSink(channel={self.channel!r})"

    async def __aenter__(self) -> PusherSink:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def emit(self, event: StreamEvent) -> None:
        """Publish one stream event.

        :raises StreamDeliveryError: it could not be published (see
            :meth:`PusherStreamer.push_event`).
        """
        await self.streamer.emit(event)

    async def close(self) -> None:
        """Close the connections (a later event opens new ones)."""
        await self.streamer.close()
