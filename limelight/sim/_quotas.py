"""The simulator's quotas: requests and tokens per minute, and concurrency.

They refill continuously as OpenAI's do, over the shared token bucket
(:mod:`limelight._buckets`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from .._buckets import EPSILON, Bucket
from ..errors import (
    ConfigError,
)
from ..schemas._openai import error_body

ORGANIZATION = "org-sim"


def format_duration(seconds: float) -> str:
    """A duration the way OpenAI's ``x-ratelimit-reset-*`` headers write it (Go's format,
    milliseconds rounded up): ``"120ms"``, ``"1s"``, ``"1.5s"``, ``"6m0s"``, ``"1h0m0s"``."""
    if seconds <= 0:
        return "0s"
    ms = math.ceil(seconds * 1000 - 1e-6)
    if ms < 1000:
        return f"{max(ms, 1)}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = str(rest // 1000) if rest % 1000 == 0 else f"{rest / 1000:.3f}".rstrip("0")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


class QuotaDecision(msgspec.Struct, frozen=True, kw_only=True):
    """The answer of :meth:`Quota.try_acquire`.

    :ivar ticket: on admission, what to hand to :meth:`Quota.release` when the request ends.
    :ivar limited_by: on refusal, which limit refused.
    :ivar too_large: the request costs more tokens than the per-minute limit: it can never be
        admitted, so there is no ``retry_after``.
    :ivar headers: the ``x-ratelimit-*`` headers after the decision (plus ``retry-after`` and
        ``retry-after-ms`` on refusal).
    """

    admitted: bool
    ticket: int | None = None
    limited_by: Literal["requests", "tokens", "concurrency"] | None = None
    limit: int = 0
    used: int = 0
    requested: int = 0
    retry_after: float | None = None
    too_large: bool = False
    headers: dict[str, str] = {}


class Quota:
    """Requests-per-minute, tokens-per-minute and concurrency limits, enforced as OpenAI
    does: a request is admitted when the requests bucket holds 1 and the tokens bucket holds
    its estimated cost, and both are charged at once; nothing is refunded afterwards.

    :param rpm: requests per minute, or ``None``.
    :param tpm: tokens per minute, or ``None``.
    :param max_concurrency: requests in flight at once, or ``None``.
    :param clock: returns the current time in seconds (monotonic).
    """

    def __init__(
        self,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        max_concurrency: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self._clock = clock
        self._rpm = rpm
        self._tpm = tpm
        self._requests: Bucket | None = None
        self._tokens: Bucket | None = None
        self.max_concurrency = max_concurrency
        # ticket -> when that request is expected to end, to tell a refused caller when a
        # slot frees up.
        self._in_flight: dict[int, float] = {}
        self._next_ticket = 0

    @property
    def in_flight(self) -> int:
        """Admitted requests not yet released."""
        return len(self._in_flight)

    def _buckets(self, now: float) -> tuple[Bucket | None, Bucket | None]:
        # Buckets start full at their first use, so the clock is only read inside a loop.
        if self._requests is None and self._rpm is not None:
            self._requests = Bucket(self._rpm, now=now)
        if self._tokens is None and self._tpm is not None:
            self._tokens = Bucket(self._tpm, now=now)
        return self._requests, self._tokens

    def headers(self) -> dict[str, str]:
        """The current ``x-ratelimit-*`` headers (none for a limit that is not set)."""
        return self._headers(self._clock())

    def _headers(self, now: float) -> dict[str, str]:
        requests, tokens = self._buckets(now)
        headers: dict[str, str] = {}
        if requests is not None:
            headers["x-ratelimit-limit-requests"] = str(int(requests.limit))
            headers["x-ratelimit-remaining-requests"] = str(math.floor(requests.level(now)))
            headers["x-ratelimit-reset-requests"] = format_duration(requests.reset_time(now))
        if tokens is not None:
            headers["x-ratelimit-limit-tokens"] = str(int(tokens.limit))
            headers["x-ratelimit-remaining-tokens"] = str(math.floor(tokens.level(now)))
            headers["x-ratelimit-reset-tokens"] = format_duration(tokens.reset_time(now))
        return headers

    def try_acquire(self, tokens: int, *, expected_duration: float = 0.0) -> QuotaDecision:
        """Admit a request costing one request and ``tokens`` tokens, or say why not.

        :param tokens: the request's estimated token cost (prompt + output budget).
        :param expected_duration: how long the request will hold its concurrency slot, used
            to tell refused callers when to retry.
        """
        now = self._clock()
        requests, token_bucket = self._buckets(now)
        refusal: QuotaDecision | None = None
        request_wait = 0.0 if requests is None else requests.wait_time(1, now)
        token_wait = 0.0 if token_bucket is None else token_bucket.wait_time(tokens, now)
        if token_bucket is not None and tokens > token_bucket.limit:
            refusal = QuotaDecision(
                admitted=False,
                limited_by="tokens",
                limit=int(token_bucket.limit),
                used=math.ceil(token_bucket.limit - token_bucket.level(now) - EPSILON),
                requested=tokens,
                too_large=True,
            )
        elif request_wait > 0 or token_wait > 0:
            # Name the limit that binds longest; the hint covers both, so that a retry after
            # it is admitted.
            bucket, requested = (
                (requests, 1) if request_wait >= token_wait else (token_bucket, tokens)
            )
            assert bucket is not None
            refusal = QuotaDecision(
                admitted=False,
                limited_by="requests" if bucket is requests else "tokens",
                limit=int(bucket.limit),
                used=math.ceil(bucket.limit - bucket.level(now) - EPSILON),
                requested=requested,
                retry_after=max(request_wait, token_wait),
            )
        elif self.max_concurrency is not None and len(self._in_flight) >= self.max_concurrency:
            soonest = min(self._in_flight.values())
            refusal = QuotaDecision(
                admitted=False,
                limited_by="concurrency",
                limit=self.max_concurrency,
                used=len(self._in_flight),
                requested=1,
                # A slot that should have freed already frees any moment: say 1 ms.
                retry_after=max(soonest - now, 0.001),
            )
        if refusal is not None:
            headers = self._headers(now)
            if refusal.retry_after is not None:
                headers["retry-after"] = str(max(1, math.ceil(refusal.retry_after)))
                headers["retry-after-ms"] = str(max(1, math.ceil(refusal.retry_after * 1000)))
            return msgspec.structs.replace(refusal, headers=headers)
        for bucket, amount in ((requests, 1), (token_bucket, tokens)):
            if bucket is not None:
                # OpenAI's bucket stops at empty: an amount admitted within the slack of the
                # level empties it.
                bucket.take(min(amount, bucket.level(now)), now)
        ticket = self._next_ticket
        self._next_ticket += 1
        self._in_flight[ticket] = now + expected_duration
        return QuotaDecision(admitted=True, ticket=ticket, headers=self._headers(now))

    def release(self, ticket: int) -> None:
        """End an admitted request: its concurrency slot frees. Releasing twice is harmless."""
        self._in_flight.pop(ticket, None)


def rate_limit_body(model: str, decision: QuotaDecision) -> dict[str, Any]:
    """OpenAI's 429 body for a quota refusal."""
    if decision.limited_by == "concurrency":
        message = (
            f"Rate limit reached for {model} in organization {ORGANIZATION} on concurrent "
            f"requests: Limit {decision.limit}, Current {decision.used}. Please try again in "
            f"{format_duration(decision.retry_after or 0.0)}."
        )
        return error_body(message, type="requests", code="rate_limit_exceeded")
    unit = "requests per min (RPM)" if decision.limited_by == "requests" else "tokens per min (TPM)"
    if decision.too_large:
        message = (
            f"Request too large for {model} in organization {ORGANIZATION} on {unit}: "
            f"Limit {decision.limit}, Requested {decision.requested}. The input or output "
            "tokens must be reduced in order to run successfully. (limelight simulator)"
        )
    else:
        message = (
            f"Rate limit reached for {model} in organization {ORGANIZATION} on {unit}: "
            f"Limit {decision.limit}, Used {decision.used}, Requested {decision.requested}. "
            f"Please try again in {format_duration(decision.retry_after or 0.0)}. "
            "(limelight simulator)"
        )
    return error_body(message, type=str(decision.limited_by), code="rate_limit_exceeded")
