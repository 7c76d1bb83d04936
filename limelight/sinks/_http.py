"""A sink POSTing batches of events as a JSON array to an ingestion endpoint.

The API key travels as ``Authorization: Bearer <key>`` and appears in no message, log or
repr. Failures a later attempt may fix (connection refused or dropped, timeouts, 408, 429,
5xx) raise :class:`~limelight.errors.SinkUnavailable` with the server's ``Retry-After``; other
4xx raise :class:`~limelight.errors.SinkRejected`. The connection pool is the project's
(:mod:`limelight._httpx`): aiohttp's transport under httpx on asyncio, httpx's own on trio,
created in the event loop of the first write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import httpx

from .._httpx import LoopBoundTransport, make_async_transport, retry_after_seconds
from ..errors import ConfigError, SinkRejected, SinkUnavailable
from ..schemas._events import Event, encode_events

__all__ = ["DEFAULT_HTTP_TIMEOUT", "HTTPSink"]

#: Seconds for each phase of a POST (connect, write, read).
DEFAULT_HTTP_TIMEOUT = 10.0
_MAX_BODY_TEXT = 500


class HTTPSink:
    """POSTs each batch to ``endpoint`` as a JSON array of events.

    :param endpoint: the ingestion URL (``https://host/v1/events``).
    :param api_key: sent as a bearer token; never logged.
    :param timeout: seconds for each phase of a request.
    :param headers: extra request headers.
    :param dedupes: whether the endpoint stores an ``event_id`` once however often it is sent
        (limelight's ingestion protocol asks it to); say ``False`` for one that does not.
    :param max_connections: connections kept to the endpoint.
    :ivar sent: events the endpoint accepted.
    :ivar requests: POSTs made, failed ones included.
    """

    name = "http"

    def __init__(
        self,
        endpoint: str,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_HTTP_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        dedupes: bool = True,
        max_connections: int = 4,
    ) -> None:
        try:
            url = httpx.URL(endpoint)
        except httpx.InvalidURL as exc:
            raise ConfigError(f"invalid analytics endpoint {endpoint!r}: {exc}") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(
                f"the analytics endpoint must be an http(s) URL such as "
                f"'https://host/v1/events', not {endpoint!r}"
            )
        if timeout <= 0:
            raise ConfigError(f"timeout must be positive seconds, not {timeout}")
        self.endpoint = str(url)
        self.dedupes = dedupes
        self.sent = 0
        self.requests = 0
        self._url = url
        self._api_key = api_key
        base = {"content-type": "application/json", "user-agent": "limelight-analytics"}
        base.update(headers or {})
        if api_key:
            base["authorization"] = f"Bearer {api_key}"
        self._headers = httpx.Headers(base)
        self._extensions: dict[str, Any] = {"timeout": httpx.Timeout(timeout).as_dict()}

        def factory(backend: str) -> httpx.AsyncBaseTransport:
            return make_async_transport(
                max_connections=max_connections, keepalive_expiry=30.0, backend=backend
            )

        self._bound = LoopBoundTransport(repr(self), factory)

    def __repr__(self) -> str:
        return f"HTTPSink({self.endpoint!r})"

    def _safe(self, text: str) -> str:
        key = self._api_key
        return text.replace(key, "[redacted]") if key and key in text else text

    async def write(self, batch: Sequence[Event]) -> None:
        transport = self._bound.get()
        request = httpx.Request(
            "POST",
            self._url,
            headers=self._headers,
            content=encode_events(batch),
            extensions=self._extensions,
        )
        self.requests += 1
        errors = self._bound.errors
        try:
            response = await transport.handle_async_request(request)
            try:
                content = await response.aread()
            finally:
                with anyio.CancelScope(shield=True):
                    await response.aclose()
        except errors as exc:
            cause = exc.__cause__ or exc
            detail = str(cause) or "no detail"
            raise SinkUnavailable(
                self._safe(f"POST {self.endpoint} failed: {type(cause).__name__}: {detail}"),
                sink=self.name,
            ) from exc
        status = response.status_code
        if status < 300:
            self.sent += len(batch)
            return
        text = self._safe(content[:_MAX_BODY_TEXT].decode("utf-8", "replace"))
        if status in (408, 425, 429) or status >= 500:
            retry_after = retry_after_seconds(response.headers)
            wait = f"; retry after {retry_after:g} s" if retry_after is not None else ""
            raise SinkUnavailable(
                f"POST {self.endpoint} answered {status}{wait}: {text or '(empty body)'}",
                retry_after=retry_after,
                sink=self.name,
            )
        if status in (401, 403):
            hint = "check the analytics API key"
        elif status < 400:
            hint = "redirects are not followed: give the endpoint's final URL"
        else:
            hint = "the endpoint refused these events; retrying will not help"
        raise SinkRejected(
            f"POST {self.endpoint} answered {status}: {text or '(empty body)'}; {hint}",
            status=status,
            body=text,
            sink=self.name,
        )

    async def aclose(self) -> None:
        await self._bound.aclose()
