"""Every error limelight raises, rooted in :class:`LimelightError`.

Dependency errors (httpx, msgspec, backends) are translated at the boundary into the most
specific of these, with the original chained as ``__cause__``. Secrets (API keys, tokens) in
a message, or in the error body a server sent back, are replaced by ``[redacted]`` when the
error is built::

    LimelightError
    ├── ConfigError (ValueError)             bad argument or configuration
    │   └── ScriptExhausted                  a Scripted provider ran out of replies
    ├── MissingExtra (ImportError)           an optional dependency is not installed
    ├── RuntimeNotRunning (RuntimeError)     runtime not entered, or already shut down
    ├── DeadlineExceeded (TimeoutError)      work could not finish inside the deadline
    │   └── RateLimitTimeout                 waited for rate-limit capacity past the deadline
    ├── UsageLimitReached                    a run reached its usage limits (tokens, USD)
    ├── StreamError                          a stream sent an ERROR event (.error_type)
    │   └── StreamDeliveryError              an adapter could not deliver it (.undelivered)
    ├── ActorError                           about one actor (.path)
    │   ├── ActorNotFound (LookupError)      no live actor at this path
    │   ├── ActorStopped                     the actor stopped for good
    │   ├── MailboxFull                      overflow policy refused the message
    │   ├── AskTimeout (TimeoutError)        no reply before the ask's deadline
    │   ├── HostDied                         the Ray host running the actor died (.host)
    │   └── ActorCrashed                     handler raised (.cause, also __cause__)
    │       ├── ActorStartFailed             on_start raised
    │       └── RestartIntensityExceeded     a supervisor gave up and escalated
    ├── ProviderError                        an LLM backend call failed (.retry_after)
    │   ├── ProviderConnectionError          could not connect, or the connection dropped
    │   ├── ProviderTimeout (TimeoutError)   the backend did not answer in time
    │   ├── BadResponse                      unparseable body, truncated stream
    │   └── APIError                         the server answered an error (.status_code, .body)
    │       ├── BadRequest                   400, 404, 422: fix the request, do not retry
    │       ├── AuthenticationError          401, 403: check the API key
    │       ├── RateLimited                  429: retry after .retry_after seconds
    │       └── ServerError                  408, 409, 5xx: transient, retried
    ├── LLMError                             the sync client (limelight.client) failed
    │   ├── LLMConnectionError (ProviderConnectionError)  could not reach the server
    │   │   └── LLMTimeout (ProviderTimeout)              no answer within the timeout
    │   ├── LLMResponseError (BadResponse)                the answer could not be understood
    │   └── LLMAPIError (APIError)                        an error status (.status_code, .body)
    ├── JSONOutputError (ValueError)         no valid JSON after every attempt (limelight.roles)
    ├── CacheError                           a cache server failed an operation with no fallback
    └── AnalyticsError                       recording or shipping analytics events
        ├── EventDecodeError (ValueError)    bytes that are not valid events
        └── SinkError                        a sink could not store a batch (.sink)
            ├── SinkUnavailable              retryable: down, timeout, 429, 5xx (.retry_after)
            └── SinkRejected                 refused the data, not retried (.status, .body)

Each ``LLM*`` error of the sync client is also the matching :class:`ProviderError` (the class
in parentheses), so either family of ``except`` clauses catches it. The kernel's errors are
defined in :mod:`limelight.runtime` (which imports nothing above it) and re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from ._secrets import redact as _redact
from ._secrets import redact_text as _redact_text
from .runtime._errors import (
    ActorCrashed as ActorCrashed,
)
from .runtime._errors import (
    ActorError as ActorError,
)
from .runtime._errors import (
    ActorNotFound as ActorNotFound,
)
from .runtime._errors import (
    ActorStartFailed as ActorStartFailed,
)
from .runtime._errors import (
    ActorStopped as ActorStopped,
)
from .runtime._errors import (
    AskTimeout as AskTimeout,
)
from .runtime._errors import (
    ConfigError as ConfigError,
)
from .runtime._errors import (
    DeadlineExceeded as DeadlineExceeded,
)
from .runtime._errors import (
    LimelightError as LimelightError,
)
from .runtime._errors import (
    MailboxFull as MailboxFull,
)
from .runtime._errors import (
    RestartIntensityExceeded as RestartIntensityExceeded,
)
from .runtime._errors import (
    RuntimeNotRunning as RuntimeNotRunning,
)

__all__ = [
    "APIError",
    "ActorCrashed",
    "ActorError",
    "ActorNotFound",
    "ActorStartFailed",
    "ActorStopped",
    "AnalyticsError",
    "AskTimeout",
    "AuthenticationError",
    "BadRequest",
    "BadResponse",
    "CacheError",
    "ConfigError",
    "DeadlineExceeded",
    "JSONOutputError",
    "LLMAPIError",
    "LLMConnectionError",
    "LLMError",
    "LLMResponseError",
    "LLMTimeout",
    "EventDecodeError",
    "HostDied",
    "LimelightError",
    "MailboxFull",
    "MissingExtra",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeout",
    "RateLimitTimeout",
    "RateLimited",
    "RestartIntensityExceeded",
    "RuntimeNotRunning",
    "ScriptExhausted",
    "ServerError",
    "SinkError",
    "SinkRejected",
    "SinkUnavailable",
    "StreamDeliveryError",
    "StreamError",
    "UsageLimitReached",
    "api_error_for_status",
]


class MissingExtra(LimelightError, ImportError):
    """An optional dependency is missing; the message names the extra that installs it."""

    def __init__(self, feature: str, *, missing: str | None, extra: str) -> None:
        super().__init__(
            f"{feature} needs {missing or 'an optional dependency'}, which is not installed: "
            f"pip install 'limelight[{extra}]'",
            name=missing,
        )
        self.extra = extra


class ProviderError(LimelightError):
    """An LLM backend call failed.

    :ivar retry_after: seconds the server asked us to wait before retrying, when it said so
        (``Retry-After`` / ``retry-after-ms``); ``None`` otherwise.
    :ivar headers: rate-limit and retry headers of the failing response (never auth headers).

    Secrets in ``message`` (API keys, tokens, ``Bearer`` credentials a server quoted back)
    are replaced by ``[redacted]``.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(_redact_text(message))
        self.retry_after = retry_after
        self.headers: dict[str, str] = dict(headers or {})


class ProviderConnectionError(ProviderError):
    """Could not connect to the backend, or the connection dropped mid-response."""

    retryable: ClassVar[bool] = True


class ProviderTimeout(ProviderError, TimeoutError):
    """The backend did not answer within the per-attempt timeout."""

    retryable: ClassVar[bool] = True


class BadResponse(ProviderError):
    """The backend's answer could not be understood: malformed JSON, a truncated stream,
    a missing field. Retried, since a fresh attempt usually succeeds."""

    retryable: ClassVar[bool] = True


class APIError(ProviderError):
    """The server answered with an error status.

    :ivar status_code: the HTTP status.
    :ivar body: the decoded error body (OpenAI's ``{"error": {...}}`` shape when it is one),
        or the raw text, with the secrets in it replaced by ``[redacted]`` (servers quote the
        key back: "Incorrect API key provided: Bearer sk-...").
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: object = None,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after, headers=headers)
        self.status_code = status_code
        self.body: object = _redact(body)


class BadRequest(APIError):
    """The request was rejected as invalid (400, 404, 422): fix it; retrying will not help."""


class AuthenticationError(APIError):
    """The API key was missing, wrong or lacks permission (401, 403)."""


class RateLimited(APIError):
    """The server's quota was exceeded (429); wait ``retry_after`` seconds."""

    retryable: ClassVar[bool] = True


class ServerError(APIError):
    """A transient server-side failure (408, 409, 5xx)."""

    retryable: ClassVar[bool] = True


def api_error_for_status(status_code: int) -> type[APIError]:
    """The most specific :class:`APIError` subclass for an HTTP status code."""
    if status_code == 429:
        return RateLimited
    if status_code in (401, 403):
        return AuthenticationError
    if status_code in (408, 409) or status_code >= 500:
        return ServerError
    if 400 <= status_code < 500:
        return BadRequest
    return APIError


# --- limits: rate and usage -----------------------------------------------------------------


class RateLimitTimeout(DeadlineExceeded):
    """A call waited for rate-limit capacity until its deadline and left the queue without
    being sent. Not retried: raise the deployment's quota, send less, give the call a longer
    timeout, or add a deployment to fail over to."""


class UsageLimitReached(LimelightError):
    """A run reached its :class:`~limelight.usage.UsageLimits` (the message says which)."""


# --- testing --------------------------------------------------------------------------------


class StreamError(LimelightError):
    """A stream reported an error (an ERROR event).

    :ivar error_type: the class name of the error at the source.
    """

    def __init__(self, message: str, *, error_type: str | None = None) -> None:
        super().__init__(f"{error_type}: {message}" if error_type else message)
        self.error_type = error_type


class StreamDeliveryError(StreamError):
    """A stream adapter could not deliver a stream's events (to a Pusher channel, say), after
    its retries; the last failure is chained as ``__cause__``.

    :ivar delivered: stream events (tokens, tool calls, ...) published before the failure.
    :ivar undelivered: stream events read from the source and not published: none is lost
        without being counted here.
    :ivar status_code: the HTTP status of the last answer; ``None`` when none came.
    """

    def __init__(
        self, message: str, *, delivered: int, undelivered: int, status_code: int | None = None
    ) -> None:
        super().__init__(_redact_text(message))
        self.delivered = delivered
        self.undelivered = undelivered
        self.status_code = status_code


class ScriptExhausted(ConfigError):
    """A :class:`~limelight.providers.Scripted` provider got more requests than it had
    scripted replies.

    :ivar scripted: how many replies were scripted.
    :ivar request_number: the 1-based number of the request that found none.
    """

    def __init__(self, *, scripted: int, request_number: int) -> None:
        super().__init__(
            f"Scripted provider got request #{request_number} but only {scripted} "
            f"repl{'y was' if scripted == 1 else 'ies were'} scripted: script one reply per "
            "complete/stream call, or pass a callable that answers every request"
        )
        self.scripted = scripted
        self.request_number = request_number


class HostDied(ActorError):
    """The Ray host (a process of :mod:`limelight.cluster`) running the actor died, or could
    not be reached: a request in flight there may or may not have been handled. The host is
    restarted, and its actors with it, per their restart policy.

    :ivar host: the host's index in its cluster.
    """

    def __init__(self, message: str, *, path: str, host: int) -> None:
        super().__init__(message, path=path)
        self.host = host

    def __reduce__(self) -> tuple[object, ...]:
        return (_host_died, (str(self), self.path, self.host))


def _host_died(message: str, path: str, host: int) -> HostDied:
    return HostDied(message, path=path, host=host)


class CacheError(LimelightError):
    """A response cache's server failed an operation that has no fallback (``clear()``).

    Lookups and stores never raise it: a server that fails them answers as a miss or skips
    the store, with a logged warning and a counted error (``statistics().errors``).
    """


# --- analytics: events and sinks ------------------------------------------------------------


class AnalyticsError(LimelightError):
    """Recording or shipping analytics events failed."""


class EventDecodeError(AnalyticsError, ValueError):
    """Bytes that should hold events are not valid JSON events (a corrupt spool or file)."""


class SinkError(AnalyticsError):
    """A sink could not store a batch of events.

    :ivar sink: the name of the sink.
    """

    def __init__(self, message: str, *, sink: str = "") -> None:
        super().__init__(_redact_text(message))
        self.sink = sink


class SinkUnavailable(SinkError):
    """A retryable failure: the sink is down, timed out, or said 429 / 5xx.

    :ivar retry_after: seconds the sink asked us to wait (``Retry-After``), or ``None``.
    """

    retryable: ClassVar[bool] = True

    def __init__(self, message: str, *, retry_after: float | None = None, sink: str = "") -> None:
        super().__init__(message, sink=sink)
        self.retry_after = retry_after


class SinkRejected(SinkError):
    """The sink refused the data (a 4xx other than 429, a constraint): retrying will not help.

    :ivar status: the HTTP status, when the sink speaks HTTP; ``None`` otherwise.
    :ivar body: the sink's explanation (response body text), possibly empty; secrets in it
        are replaced by ``[redacted]``.
    """

    retryable: ClassVar[bool] = False

    def __init__(
        self, message: str, *, status: int | None = None, body: str = "", sink: str = ""
    ) -> None:
        super().__init__(message, sink=sink)
        self.status = status
        self.body: str = _redact_text(body)


# -- the sync client (limelight.client) and the role router's JSON output (limelight.roles) --


class LLMError(LimelightError):
    """A call of the sync client (:class:`limelight.client.LLM`) failed. Each subclass is also
    the matching :class:`ProviderError`, so either family of ``except`` clauses catches it."""


class LLMConnectionError(LLMError, ProviderConnectionError):
    """Could not reach the server, or the connection dropped; retried before it is raised."""


class LLMTimeout(LLMConnectionError, ProviderTimeout):
    """The server did not answer within the client's ``timeout``; retried before it is raised."""


class LLMResponseError(LLMError, BadResponse):
    """The server's answer could not be understood (not JSON, a missing field)."""


class LLMAPIError(LLMError, APIError):
    """The server answered with an error status (``.status_code``, ``.body``); statuses 429,
    500, 502, 503 and 504 were retried before it is raised."""


class JSONOutputError(LimelightError, ValueError):
    """The model gave no JSON value valid against the schema, after every attempt.

    :ivar attempts: how many answers were asked for.
    :ivar text: the last answer's text.
    :ivar reason: why the last answer was refused (no JSON found, or the validation error).
    """

    def __init__(self, message: str, *, attempts: int, text: str, reason: str) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.text = text
        self.reason = reason
