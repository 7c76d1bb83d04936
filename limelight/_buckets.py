"""The token buckets: a quota as OpenAI documents it, and the rate limiter's arithmetic over it.

A :class:`Bucket` holds ``limit`` units and refills continuously at ``limit / 60`` per second,
starting full; the simulator enforces it and the rate limiter budgets for it. A
:class:`Budget` is one deployment's buckets and its queue of waiters. Pure: every method takes
the current time, nothing waits, nothing reads a clock, so property tests drive it with any
clock; :class:`~limelight.actors.RateLimiter` does the waiting.

One module: one thing. The budget is the buckets' only client in the limiter, and its
reservation, refund and header-adoption rules are written against the bucket's refill and
send-delay arithmetic.
"""

from __future__ import annotations

import enum
import math
import re
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

import msgspec

from .errors import ConfigError
from .runtime._retry import RetryPolicy, pushback

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_MAX_BACKOFF",
    "DEFAULT_OUTPUT_GUESS",
    "DEFAULT_PROMOTE_AFTER",
    "DEFAULT_SEND_DELAY",
    "EPSILON",
    "MIN_PAUSE",
    "Bucket",
    "Budget",
    "DeploymentLimits",
    "Priority",
    "Reservation",
    "Waiter",
    "parse_duration",
]

#: Slack when comparing a bucket's level with an amount: refill arithmetic can land a hair
#: below an integer it should have reached.
EPSILON: Final = 1e-9


class Bucket:
    """``limit`` units refilling continuously at ``limit / 60`` per second, starting full.

    The level may go below zero: a call that used more than it reserved leaves a debt that
    later refills pay. It never goes above ``limit``: refunds are capped there.

    :param limit: the per-minute limit, also the largest burst.
    :param now: the time the bucket starts (full).
    :param send_delay: how long :meth:`take` holds back the refill (the rate limiter's; a
        server's bucket has none).
    :ivar consumed: units taken minus units given back, over the bucket's life.
    """

    __slots__ = (
        "_level",
        "_updated",
        "consumed",
        "corrections",
        "limit",
        "rate",
        "send_delay",
        "started",
    )

    def __init__(self, limit: float, *, now: float, send_delay: float = 0.0) -> None:
        if limit < 1:
            raise ConfigError(f"a bucket's limit must be at least 1, got {limit}")
        if send_delay < 0:
            raise ConfigError(f"send_delay must be >= 0, got {send_delay}")
        self.send_delay = send_delay
        self.limit = float(limit)
        self.rate = self.limit / 60.0
        self._level = self.limit
        self._updated = now
        self.started = now
        self.consumed = 0.0
        #: The sum of every change to the level that is neither a reservation nor a refill
        #: (refunds, charges, adopted headers): how an adopted header discounts what was
        #: already corrected since the reservation it reports on.
        self.corrections = 0.0

    def _refill(self, now: float) -> None:
        # A clock that went backwards (another event loop's clock) refills nothing.
        if now > self._updated:
            self._level = min(self.limit, self._level + (now - self._updated) * self.rate)
            self._updated = now

    def level(self, now: float) -> float:
        """Units available at ``now`` (negative while in debt)."""
        self._refill(now)
        return self._level

    def can_take(self, amount: float, now: float) -> bool:
        """Whether ``amount`` units are there at ``now``."""
        return self.level(now) + EPSILON >= amount

    def wait_time(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` units are there (0 when they are now)."""
        missing = amount - self.level(now)
        return 0.0 if missing <= EPSILON else missing / self.rate

    def reset_time(self, now: float) -> float:
        """Seconds until the bucket is full again (OpenAI's ``x-ratelimit-reset-*``)."""
        return (self.limit - self.level(now)) / self.rate

    def take(self, amount: float, now: float) -> None:
        """Remove ``amount`` units (a reservation; the caller checked :meth:`can_take`).

        Taken from a bucket within :attr:`send_delay` of refill of full, the refill pauses
        for :attr:`send_delay`: the server's bucket, still full until the call reaches it,
        gains nothing meanwhile either."""
        self._refill(now)
        if self.send_delay and self._level >= self.limit - self.send_delay * self.rate:
            self._updated = max(self._updated, now + self.send_delay)
        self._level -= amount
        self.consumed += amount

    def end_hold(self, now: float) -> None:
        """An answer came: the server has seen a call, so the refill held back by
        :meth:`take` resumes now."""
        if self._updated > now:
            self._updated = now

    def charge(self, amount: float, now: float) -> None:
        """Remove ``amount`` more units after the fact; the level may go into debt (down to
        ``-limit``)."""
        self._refill(now)
        before = self._level
        self._level = max(-self.limit, self._level - amount)
        self.consumed += before - self._level
        self.corrections -= before - self._level

    def give(self, amount: float, now: float) -> float:
        """Give back ``amount`` units, never beyond ``limit``; returns what was given."""
        self._refill(now)
        given = max(0.0, min(amount, self.limit - self._level))
        self._level += given
        self.consumed -= given
        self.corrections += given
        return given

    def adjust(self, delta: float, now: float) -> None:
        """Move the level by ``delta`` (a correction from the server's headers), within
        ``[-limit, limit]``."""
        self._refill(now)
        before = self._level
        self._level = min(self.limit, max(-self.limit, self._level + delta))
        self.corrections += self._level - before

    def set_limit(self, limit: float, now: float) -> None:
        """Follow a changed quota: the refill rate changes, and a lowered limit caps the
        level at once."""
        if limit < 1:
            return
        self._refill(now)
        self.limit = float(limit)
        self.rate = self.limit / 60.0
        if self._level > self.limit:
            self.corrections += self.limit - self._level
            self._level = self.limit

    def capacity(self, now: float) -> float:
        """Units the quota offered from the start up to ``now``: the first full bucket plus
        the refill since (the theoretical maximum that utilisation is measured against)."""
        return self.limit + max(0.0, now - self.started) * self.rate


#: Seconds a deployment pauses after a 429 that named no delay; doubled for each further
#: 429 in a row, up to :data:`DEFAULT_MAX_BACKOFF`.
DEFAULT_BACKOFF: Final = 1.0
DEFAULT_MAX_BACKOFF: Final = 60.0
_PAUSE: Final = RetryPolicy(
    initial_delay=DEFAULT_BACKOFF, max_delay=DEFAULT_MAX_BACKOFF, multiplier=2.0, jitter=0.0
)
#: The shortest pause after a 429 that named a delay: ``Retry-After: 0`` (or a few
#: milliseconds) must not let every queued call rush a server that has just refused one.
MIN_PAUSE: Final = 0.25
#: Output tokens reserved for a request without ``max_tokens`` before any answer was seen.
DEFAULT_OUTPUT_GUESS: Final = 256
#: A batch waiter that waited this long is served as if it were interactive: no starvation.
DEFAULT_PROMOTE_AFTER: Final = 10.0
#: Seconds a call may take from its reservation here to its admission by the server. Two
#: things follow from it. The server's bucket stays full (gaining nothing) until it sees a
#: call that this budget already charged, while this budget's bucket refills: so a
#: reservation made from a (nearly) full bucket holds back the refill for this long (or until
#: the first answer shows that the server has seen a call), or the budget would run ahead of
#: the server. And the ``x-ratelimit-remaining-*`` of a response
#: is adopted only when no other reservation was made within this long of its own: calls
#: reserved closer together may reach the server in another order, and its count would then
#: include (or miss) them.
DEFAULT_SEND_DELAY: Final = 1.0

_UNITS: Final = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_DURATION: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)")


def parse_duration(text: str) -> float | None:
    """Seconds in an OpenAI ``x-ratelimit-reset-*`` value (Go's duration format: ``"1s"``,
    ``"6m0s"``, ``"120ms"``, ``"1h2m3.5s"``); a bare number is seconds. ``None`` when
    ``text`` is neither."""
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    total, end = 0.0, 0
    for match in _DURATION.finditer(text):
        if match.start() != end:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        end = match.end()
    return total if end == len(text) and end > 0 else None


class Priority(enum.IntEnum):
    """Who waits first: interactive traffic (a user is waiting) is served ahead of batch."""

    INTERACTIVE = 0
    BATCH = 1


class DeploymentLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The quota of one deployment (provider + model + key).

    :ivar rpm: requests per minute; ``None`` for no limit.
    :ivar tpm: tokens (prompt + output) per minute; ``None`` for no limit.
    :ivar max_concurrency: requests in flight at once; ``None`` for no limit.
    :ivar refund_unused: after a call, give back the reserved tokens it did not use. Off by
        default: OpenAI (and ``limelight sim``) charge the prompt plus ``max_tokens`` at
        admission and give nothing back, and a limiter that refunded would admit more than
        such a server does. Turn it on for servers that count real usage; unused tokens are
        then refunded, never beyond the bucket.
    :ivar default_output_tokens: output tokens reserved for a request without ``max_tokens``;
        ``None`` reserves the running average of the answers seen so far (OpenAI-like servers
        charge a fixed budget: give that here).
    """

    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None
    refund_unused: bool = False
    default_output_tokens: int | None = None

    def __post_init__(self) -> None:
        for name, value in (
            ("rpm", self.rpm),
            ("tpm", self.tpm),
            ("max_concurrency", self.max_concurrency),
        ):
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1 (or None for no limit), got {value}")
        if self.default_output_tokens is not None and self.default_output_tokens < 0:
            raise ConfigError(
                f"default_output_tokens must be >= 0, got {self.default_output_tokens}"
            )


@dataclass(slots=True)
class Reservation:
    """What one admitted call holds: 1 request, ``tokens`` tokens and a concurrency slot,
    with what is needed to reconcile it later.

    :ivar seq: the order of admission within the deployment.
    """

    seq: int
    tokens: float
    at: float
    prompt_tokens: int = 0
    # The buckets' levels and correction totals right after this reservation: a response's
    # x-ratelimit-remaining-* is compared with them.
    snapshot: dict[str, tuple[float, float]] = field(default_factory=dict)
    previous_at: float = -math.inf
    settled: bool = False
    #: The budget that made it: another budget (after a restart of the limiter) ignores it.
    budget: object = None


@dataclass(slots=True, eq=False)
class Waiter:
    """A call queued for capacity. The budget sets :attr:`reservation` when it is admitted;
    the owner sets :attr:`abandoned` when the caller leaves, and the budget then skips it."""

    prompt_tokens: int
    output_tokens: int | None
    priority: Priority = Priority.INTERACTIVE
    enqueued_at: float = 0.0
    seq: int = 0
    reservation: Reservation | None = None
    abandoned: bool = False
    #: Whatever the owner needs to find its own record of this waiter (the actor's ticket).
    owner: object = None
    _counted: bool = False


class Budget:
    """One deployment's quota: the requests and tokens buckets, the concurrency count, a
    pause after a 429, and the waiters, served FIFO per priority (interactive first; a batch
    waiter that waited :attr:`promote_after` seconds is served as interactive, so none
    starves). The head of the queue is never overtaken: a large request is not starved by
    smaller ones behind it.

    :param limits: the quota; ``None`` fields are not limited.
    :param now: the current time.
    """

    def __init__(
        self,
        limits: DeploymentLimits,
        *,
        now: float,
        promote_after: float = DEFAULT_PROMOTE_AFTER,
        send_delay: float = DEFAULT_SEND_DELAY,
    ) -> None:
        self.send_delay = send_delay
        self.limits = limits
        self.promote_after = promote_after
        self.requests: Bucket | None = None
        self.tokens: Bucket | None = None
        self.in_flight = 0
        self.paused_until = -math.inf
        self.rate_limited = 0
        self._consecutive_429 = 0
        self._queues: tuple[deque[Waiter], ...] = tuple(deque() for _ in Priority)
        self._waiting = 0
        self._seq = 0
        self._waiter_seq = 0
        self._last_reserved_at = -math.inf
        # Reservation times by seq, to tell whether a later one came within the settle time.
        self._times: deque[tuple[int, float]] = deque(maxlen=4096)
        self._output_sum = 0.0
        self._output_count = 0
        self.configure(limits, now=now)

    # -- configuration -----------------------------------------------------------------

    def configure(self, limits: DeploymentLimits, *, now: float) -> None:
        """Apply a new quota, keeping what is in flight and the current levels (capped)."""
        self.limits = limits
        self.requests = self._bucket(self.requests, limits.rpm, now)
        self.tokens = self._bucket(self.tokens, limits.tpm, now)

    def _bucket(self, bucket: Bucket | None, limit: int | None, now: float) -> Bucket | None:
        if limit is None:
            return None
        if bucket is None:
            return Bucket(limit, now=now, send_delay=self.send_delay)
        bucket.set_limit(limit, now)
        return bucket

    # -- estimates ----------------------------------------------------------------------

    def output_estimate(self, max_tokens: int | None) -> int:
        """Output tokens to reserve: ``max_tokens``, else the configured default, else the
        running average of the answers seen (:data:`DEFAULT_OUTPUT_GUESS` before any)."""
        if max_tokens is not None:
            return max_tokens
        if self.limits.default_output_tokens is not None:
            return self.limits.default_output_tokens
        if not self._output_count:
            return DEFAULT_OUTPUT_GUESS
        return math.ceil(self._output_sum / self._output_count)

    def cost(self, waiter: Waiter) -> float:
        """Tokens a waiter reserves, capped at the tokens limit: a request larger than the
        whole bucket is admitted when the bucket is full (the server then says whether it is
        too large), instead of waiting for ever."""
        tokens = float(waiter.prompt_tokens + self.output_estimate(waiter.output_tokens))
        if self.tokens is not None:
            tokens = min(tokens, self.tokens.limit)
        return tokens

    # -- admission ----------------------------------------------------------------------

    def wait_time(self, tokens: float, now: float) -> float:
        """Seconds until ``tokens`` (and one request) could be reserved: 0 when now,
        ``math.inf`` when only a finishing call can free a concurrency slot."""
        if (
            self.limits.max_concurrency is not None
            and self.in_flight >= self.limits.max_concurrency
        ):
            return math.inf
        wait = max(0.0, self.paused_until - now)
        if self.requests is not None:
            wait = max(wait, self.requests.wait_time(1, now))
        if self.tokens is not None:
            wait = max(wait, self.tokens.wait_time(tokens, now))
        return wait

    def try_reserve(
        self, tokens: float, now: float, *, prompt_tokens: int = 0
    ) -> Reservation | None:
        """Reserve one request and ``tokens`` tokens now, or return ``None``."""
        if self.wait_time(tokens, now) > 0:
            return None
        return self._reserve(tokens, now, prompt_tokens)

    def _reserve(self, tokens: float, now: float, prompt_tokens: int) -> Reservation:
        reservation = Reservation(
            seq=self._seq, tokens=tokens, at=now, prompt_tokens=prompt_tokens, budget=self
        )
        self._seq += 1
        for name, bucket, amount in (
            ("requests", self.requests, 1.0),
            ("tokens", self.tokens, tokens),
        ):
            if bucket is not None:
                bucket.take(amount, now)
                reservation.snapshot[name] = (bucket.level(now), bucket.corrections)
        reservation.previous_at = self._last_reserved_at
        self._last_reserved_at = now
        self._times.append((reservation.seq, now))
        self.in_flight += 1
        return reservation

    # -- the queue -----------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """Waiters in the queue that have not left."""
        return self._waiting

    def enqueue(self, waiter: Waiter, now: float) -> None:
        """Queue a waiter behind those of its priority; :meth:`grant` admits it in turn."""
        waiter.enqueued_at = now
        waiter._counted = True
        waiter.seq = self._waiter_seq
        self._waiter_seq += 1
        self._queues[waiter.priority].append(waiter)
        self._waiting += 1

    def abandon(self, waiter: Waiter) -> Reservation | None:
        """The waiter leaves (deadline, cancellation). Returns the reservation it already
        holds, if it was admitted meanwhile, for the caller to :meth:`release`.

        Setting :attr:`Waiter.abandoned` alone (from the waiter's side) already keeps it from
        being admitted; this also updates the count of waiters."""
        if waiter.reservation is not None:
            return waiter.reservation
        waiter.abandoned = True
        self._uncount(waiter)
        return None

    def _uncount(self, waiter: Waiter) -> None:
        if waiter._counted:
            waiter._counted = False
            self._waiting -= 1

    def _head(self, now: float) -> Waiter | None:
        best: Waiter | None = None
        best_key: tuple[int, int] = (len(Priority), 0)
        for queue in self._queues:
            while queue and queue[0].abandoned:
                self._uncount(queue.popleft())
            if not queue:
                continue
            head = queue[0]
            effective = (
                Priority.INTERACTIVE
                if now - head.enqueued_at >= self.promote_after
                else head.priority
            )
            key = (int(effective), head.seq)
            if key < best_key:
                best, best_key = head, key
        return best

    def grant(self, now: float) -> list[Waiter]:
        """Admit waiters in turn while capacity allows; returns those admitted (each with
        its :attr:`Waiter.reservation` set)."""
        granted: list[Waiter] = []
        while True:
            head = self._head(now)
            if head is None:
                return granted
            tokens = self.cost(head)
            if self.wait_time(tokens, now) > 0:
                return granted
            self._queues[head.priority].popleft()
            self._uncount(head)
            head.reservation = self._reserve(tokens, now, head.prompt_tokens)
            granted.append(head)

    def next_wake(self, now: float) -> float:
        """When :meth:`grant` could admit the head of the queue: an absolute time,
        ``math.inf`` when nobody waits or only a finishing call can help."""
        head = self._head(now)
        if head is None:
            return math.inf
        return now + self.wait_time(self.cost(head), now)

    def waiters(self) -> Iterator[Waiter]:
        """The waiters still queued, in no particular order."""
        for queue in self._queues:
            yield from (w for w in queue if not w.abandoned)

    # -- after the call ---------------------------------------------------------------

    def release(self, reservation: Reservation, now: float) -> None:
        """The call was never sent (cancelled, refused before sending): give everything
        back."""
        if reservation.settled or reservation.budget is not self:
            return
        reservation.settled = True
        self.in_flight -= 1
        if self.requests is not None:
            self.requests.give(1.0, now)
        if self.tokens is not None:
            self.tokens.give(reservation.tokens, now)

    def reconcile(
        self,
        reservation: Reservation,
        now: float,
        *,
        total_tokens: int | None = None,
        completion_tokens: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """The call ended with an answer: free its slot, charge what it used beyond the
        reservation (or refund the rest, when the quota refunds), learn the output length,
        and adopt the server's ``x-ratelimit-*`` headers."""
        if reservation.settled or reservation.budget is not self:
            return
        reservation.settled = True
        self.in_flight -= 1
        self._consecutive_429 = 0
        self._answered(now)
        if completion_tokens is not None:
            self._output_sum += completion_tokens
            self._output_count += 1
        if self.tokens is not None and total_tokens is not None:
            difference = total_tokens - reservation.tokens
            if difference > 0:
                self.tokens.charge(difference, now)
            elif difference < 0 and self.limits.refund_unused:
                self.tokens.give(-difference, now)
        if headers:
            self.adopt_headers(headers, now, reservation=reservation)

    def fail(self, reservation: Reservation, now: float) -> None:
        """The call failed after it was sent: free its slot, keep the charge (the server may
        have counted it)."""
        if reservation.settled or reservation.budget is not self:
            return
        reservation.settled = True
        self.in_flight -= 1
        self._answered(now)

    def _answered(self, now: float) -> None:
        for bucket in (self.requests, self.tokens):
            if bucket is not None:
                bucket.end_hold(now)

    def rate_limited_by_server(
        self,
        reservation: Reservation | None,
        now: float,
        *,
        retry_after: float | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """A 429: the server refused (and so did not charge) the call. Give the reservation
        back, take the server's lower counts, and pause admissions for ``retry_after`` (at
        least :data:`MIN_PAUSE`), or a doubling backoff when the server named no delay."""
        self.rate_limited += 1
        self._consecutive_429 += 1
        self._answered(now)
        if reservation is not None:
            self.release(reservation, now)
        if headers:
            self.adopt_headers(headers, now, reservation=None)
        if retry_after is None:
            pause = _PAUSE.backoff(self._consecutive_429)
        else:
            pause = pushback(retry_after, MIN_PAUSE)
        self.paused_until = max(self.paused_until, now + pause)

    def adopt_headers(
        self, headers: Mapping[str, str], now: float, *, reservation: Reservation | None
    ) -> None:
        """Follow the server's ``x-ratelimit-limit-*`` (a changed quota is adopted at once,
        creating the bucket of a limit not configured) and ``x-ratelimit-remaining-*``.

        The remaining count describes the server when it admitted ``reservation``: the
        difference from this budget's level right after that reservation, less what was
        corrected since and less the refill since the reservation (the server may have
        counted the call just now), is the error to correct now. It is adopted only for a
        reservation with no other within :attr:`send_delay` seconds, which the server cannot have
        counted in another order. Without a reservation (a refusal), or when the quota
        changed, a lower count is adopted at once.
        """
        for name, unit in (("requests", "requests"), ("tokens", "tokens")):
            limit = _number(headers.get(f"x-ratelimit-limit-{unit}"))
            changed = False
            if limit is not None and limit >= 1:
                current = getattr(self, name)
                if current is None:
                    setattr(self, name, Bucket(limit, now=now, send_delay=self.send_delay))
                    changed = True
                    self.limits = msgspec.structs.replace(
                        self.limits, **{"rpm" if name == "requests" else "tpm": int(limit)}
                    )
                elif current.limit != limit:
                    current.set_limit(limit, now)
                    changed = True
                    self.limits = msgspec.structs.replace(
                        self.limits, **{"rpm" if name == "requests" else "tpm": int(limit)}
                    )
            bucket: Bucket | None = getattr(self, name)
            if bucket is None:
                continue
            remaining = _server_level(bucket, headers, unit)
            if remaining is None:
                continue
            if reservation is None or changed:
                # A refusal, or a new quota: the server's count is the truth when lower.
                level = bucket.level(now)
                if remaining < level:
                    bucket.adjust(remaining - level, now)
                continue
            if name not in reservation.snapshot or not self._isolated(reservation):
                continue
            level_then, corrections_then = reservation.snapshot[name]
            # The server counted the call at some moment between its reservation and now;
            # assuming the latest (the least refill on its side) errs on the safe side.
            error = (
                remaining
                - level_then
                - (bucket.corrections - corrections_then)
                - bucket.rate * max(0.0, now - reservation.at)
            )
            # The header is floored to an integer: an error under one unit is that rounding.
            if abs(error) >= 1.0:
                bucket.adjust(error, now)

    def _isolated(self, reservation: Reservation) -> bool:
        if reservation.at - reservation.previous_at < self.send_delay:
            return False
        if not self._times:
            return True
        index = reservation.seq + 1 - self._times[0][0]
        if index < 0:
            return False  # so old that its neighbours are forgotten: do not trust it
        if index >= len(self._times):
            return True
        return self._times[index][1] - reservation.at >= self.send_delay


def _server_level(bucket: Bucket, headers: Mapping[str, str], unit: str) -> float | None:
    """The server's level from ``x-ratelimit-remaining-*`` (floored to an integer) and
    ``x-ratelimit-reset-*`` (the time to full, rounded up): both are lower bounds, so the
    higher of the two is the tighter."""
    remaining = _number(headers.get(f"x-ratelimit-remaining-{unit}"))
    reset_text = headers.get(f"x-ratelimit-reset-{unit}")
    reset = None if reset_text is None else parse_duration(reset_text)
    from_reset = None if reset is None else bucket.limit - reset * bucket.rate
    if remaining is None:
        return from_reset
    if from_reset is None:
        return remaining
    return max(remaining, min(from_reset, remaining + 1.0 - 1e-6))


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
