"""How the HTTP backends translate HTTP failures into limelight's errors.

An error status becomes the :class:`~limelight.errors.APIError` it means (quoting OpenAI's
error body), a transport's exception a connection error or timeout, with the API key kept out
of every message. The connection pools and header parsing they use live in
:mod:`limelight._httpx`, re-exported here."""

from __future__ import annotations

import sys
from collections.abc import Iterable

import httpx
import msgspec

from .._httpx import DEFAULT_KEEPALIVE_EXPIRY as DEFAULT_KEEPALIVE_EXPIRY
from .._httpx import DEFAULT_MAX_CONNECTIONS as DEFAULT_MAX_CONNECTIONS
from .._httpx import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from .._httpx import SHARD_SIZE as SHARD_SIZE
from .._httpx import LoopBoundTransport as LoopBoundTransport
from .._httpx import PoolStatistics as PoolStatistics
from .._httpx import ShardedTransport as ShardedTransport
from .._httpx import make_async_client as make_async_client
from .._httpx import make_async_transport as make_async_transport
from .._httpx import pool_statistics as pool_statistics
from .._httpx import rate_limit_headers as rate_limit_headers
from .._httpx import retry_after_seconds as retry_after_seconds
from ..errors import (
    APIError,
    AuthenticationError,
    BadRequest,
    BadResponse,
    ConfigError,
    LimelightError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    api_error_for_status,
)
from ..schemas._openai import error_body_decoder

__all__ = [
    "DEFAULT_KEEPALIVE_EXPIRY",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_TIMEOUT",
    "LoopBoundTransport",
    "PoolStatistics",
    "ShardedTransport",
    "make_async_client",
    "make_async_transport",
    "pool_statistics",
    "rate_limit_headers",
    "rate_limit_pairs",
    "retry_after_seconds",
    "status_error",
    "transport_error",
]

_RETRY_HEADERS = (b"retry-after", b"retry-after-ms")
_RATE_LIMIT_PREFIX = b"x-ratelimit-"
_MAX_ERROR_TEXT = 1000


def _error_headers(headers: httpx.Headers) -> dict[str, str]:
    """Rate-limit and retry headers of a failing response, lower-cased (never auth headers)."""
    found = rate_limit_headers(headers)
    for key, value in headers.raw:
        lowered = key.lower()
        if lowered in _RETRY_HEADERS:
            found[lowered.decode("latin-1")] = value.decode("latin-1")
    return found


def rate_limit_pairs(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The ``x-ratelimit-*`` headers among raw ``(name, value)`` pairs (aiohttp's
    ``raw_headers``), names lower-cased: :func:`rate_limit_headers` without an httpx object."""
    found: dict[str, str] = {}
    for key, value in raw:
        if key[:12].lower() == _RATE_LIMIT_PREFIX:
            found[key.decode("latin-1").lower()] = value.decode("latin-1")
    return found


def _redact(text: str, secret: str | None) -> str:
    """``text`` without ``secret`` (the configured key) nor any other secret in it."""
    from .._secrets import redact_text

    return redact_text(text, secret)


def _redact_body(body: object, secret: str | None) -> object:
    """An error body without ``secret``, whatever its shape (APIError redacts the rest)."""
    from .._secrets import redact

    return redact(body, secret)


_HINTS: dict[type[APIError], str] = {
    BadRequest: "fix the request; retrying will not help",
    AuthenticationError: "check the API key and its permissions",
    ServerError: "a transient server failure; retrying may succeed",
}


def status_error(
    response: httpx.Response, content: bytes, *, secret: str | None = None
) -> APIError:
    """The :class:`~limelight.errors.APIError` for a response with an error status.

    The message quotes OpenAI's ``{"error": {"message", "type", "code"}}`` body when it is
    one, the raw text otherwise; ``.body`` keeps the decoded JSON (or the text).

    :param content: the response body, already read.
    :param secret: a string (the API key) that must not appear in the message.
    """
    status = response.status_code
    cls = api_error_for_status(status)
    body: object
    detail = ""
    try:
        body = msgspec.json.decode(content)
    except msgspec.DecodeError:
        body = content.decode("utf-8", "replace")
        detail = str(body)[:_MAX_ERROR_TEXT] or "(empty body)"
    else:
        try:
            error = error_body_decoder.decode(content).error
        except msgspec.DecodeError:
            detail = content.decode("utf-8", "replace")[:_MAX_ERROR_TEXT]
        else:
            detail = error.message or "(no message)"
            labels = [
                f"{name}: {value}"
                for name, value in (("type", error.type), ("code", error.code))
                if value is not None
            ]
            if labels:
                detail += f" ({', '.join(labels)})"
    headers = _error_headers(response.headers)
    retry_after = retry_after_seconds(response.headers)
    request = response.request
    message = f"{request.method} {request.url} answered {status}: {detail}"
    if cls is RateLimited:
        message += (
            f"; retry after {retry_after:g} s" if retry_after is not None else "; retry later"
        )
    elif cls in _HINTS:
        message += f"; {_HINTS[cls]}"
    return cls(
        _redact(message, secret),
        status_code=status,
        body=_redact_body(body, secret),
        retry_after=retry_after,
        headers=headers,
    )


def transport_error(
    exc: BaseException, method: str, url: object, *, secret: str | None = None
) -> LimelightError:
    """The limelight error for an exception a transport raised while sending ``method`` to
    ``url`` (or reading the answer).

    httpx-aiohttp maps aiohttp's connection errors (refused, reset, closed) to
    ``httpx.ConnectTimeout``, so the aiohttp cause decides when there is one.

    :param secret: a string (the API key) that must not appear in the message.
    """
    cause = exc.__cause__ if isinstance(exc, httpx.HTTPError) and exc.__cause__ else exc
    cls: type[ProviderError] = ProviderConnectionError
    what = "connection failed"
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None and isinstance(cause, aiohttp.ClientError):
        if isinstance(cause, TimeoutError):
            cls, what = ProviderTimeout, "timed out"
        elif isinstance(cause, aiohttp.InvalidURL):
            return ConfigError(_redact(f"invalid URL {url}: {cause}", secret))
    elif isinstance(exc, httpx.TimeoutException | TimeoutError):
        cls, what = ProviderTimeout, "timed out"
    elif isinstance(exc, httpx.DecodingError):
        cls, what = BadResponse, "could not decode the response body"
    elif isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return ConfigError(_redact(f"cannot send {method} {url}: {exc}", secret))
    detail = str(cause) or type(cause).__name__
    message = f"{method} {url} {what}: {type(cause).__name__}: {detail}"
    return cls(_redact(message, secret))
