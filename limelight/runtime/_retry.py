"""RetryPolicy: exponential backoff with jitter and a cap.

Server-given delays are honoured, and there is never a sleep past the caller's deadline."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

import anyio

from ._errors import ConfigError, DeadlineExceeded, LimelightError

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_ATTEMPTS = 3
DEFAULT_INITIAL_DELAY = 0.5
DEFAULT_MAX_DELAY = 30.0


def is_retryable(exc: BaseException) -> bool:
    """The default test: limelight errors say so themselves (``retryable``); plain timeouts
    and connection errors retry; anything else does not."""
    if isinstance(exc, LimelightError):
        return type(exc).retryable
    return isinstance(exc, (TimeoutError, ConnectionError))


def server_delay(exc: BaseException) -> float | None:
    """The delay the server asked for, if the error carries one (``retry_after`` seconds)."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, (int, float)) and value >= 0:
        return float(value)
    return None


def pushback(server: float | None, backoff: float) -> float:
    """The wait before a retry, given the server's delay (``Retry-After``, ``retry-after-ms``;
    ``None`` when it gave none) and the client's own backoff for this retry.

    A server may lengthen the wait, never shorten it: ``Retry-After: 0`` (or a few
    milliseconds) would otherwise turn backoff off and hammer a server that is already
    failing. Every place that honours a server delay goes through this function.
    """
    if server is None:
        return backoff
    return max(server, backoff)


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How to retry a failing async call.

    Delay before retry ``n`` (1-based): ``initial_delay * multiplier ** (n - 1)`` capped at
    ``max_delay``, then reduced by a random fraction of up to ``jitter`` (0 = none, 1 = "full
    jitter"). A server-given delay (the error's ``retry_after``, from ``Retry-After``) lengthens
    it when ``respect_retry_after`` (it never shortens it: ``Retry-After: 0`` still backs
    off); one longer than ``max_delay`` ends the retries at once, the
    error raised, so that the caller can decide (a ModelGroup fails over). If the next sleep
    would end past the caller's deadline (``anyio.current_effective_deadline()``), :meth:`run`
    raises
    :class:`~limelight.errors.DeadlineExceeded` at once instead of sleeping in vain.

    :param attempts: total attempts, the first one included.
    :param retry_on: exception types to retry, or a predicate; default :func:`is_retryable`.
    :param rng: the random source of the jitter (seed it for reproducible delays).
    """

    attempts: int = DEFAULT_ATTEMPTS
    initial_delay: float = DEFAULT_INITIAL_DELAY
    multiplier: float = 2.0
    max_delay: float = DEFAULT_MAX_DELAY
    jitter: float = 0.5
    retry_on: tuple[type[BaseException], ...] | Callable[[BaseException], bool] = is_retryable
    respect_retry_after: bool = True
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError(f"attempts must be >= 1 (the first call counts), got {self.attempts}")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ConfigError("initial_delay and max_delay must be >= 0")
        if self.multiplier < 1:
            raise ConfigError(f"multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"jitter must be between 0 and 1, got {self.jitter}")

    def should_retry(self, exc: BaseException) -> bool:
        if isinstance(self.retry_on, tuple):
            return isinstance(exc, self.retry_on)
        return self.retry_on(exc)

    def backoff(self, retry: int) -> float:
        """The delay before retry number ``retry`` (1-based), jitter applied."""
        try:
            base = min(self.max_delay, self.initial_delay * self.multiplier ** (retry - 1))
        except OverflowError:  # a very long run of failures: the cap was reached long ago
            base = self.max_delay
        if self.jitter:
            base *= 1.0 - self.jitter * self.rng.random()
        return base

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """The wait before retry number ``retry`` (1-based): :meth:`backoff`, lengthened to
        ``retry_after`` (the server's delay, seconds; ``None`` when it gave none) when the
        server asked for longer and ``respect_retry_after`` is set (:func:`pushback`).

        For loops that wait themselves (and decide what a wait longer than ``max_delay``
        means); :meth:`wait_to_retry` uses it.
        """
        backoff = self.backoff(retry)
        if self.respect_retry_after:
            return pushback(retry_after, backoff)
        return backoff

    def delay_for(self, retry: int, exc: BaseException) -> float:
        """The wait before retry ``retry`` after ``exc``: :meth:`delay`, with the server's delay
        that ``exc`` carries (``retry_after``), if any."""
        return self.delay(retry, server_delay(exc))

    async def run(
        self,
        func: Callable[P, Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Call ``await func(*args, **kwargs)`` until it succeeds, the error is not retryable,
        the attempts run out (the last error is raised, with a note), or the next sleep would
        pass the deadline (:class:`DeadlineExceeded`, the last error as its cause)."""
        attempt = 1
        while True:
            try:
                return await func(*args, **kwargs)
            except Exception as exc:
                await self.wait_to_retry(attempt, exc)
            attempt += 1

    async def wait_to_retry(self, attempt: int, exc: Exception) -> None:
        """Attempt number ``attempt`` failed with ``exc``: sleep before the next one, or
        raise when there is none (``exc`` itself, with a note saying why, or
        :class:`DeadlineExceeded` when the sleep would pass the deadline). For loops that
        run their attempts themselves; :meth:`run` is this loop."""
        if not self.should_retry(exc):
            raise exc
        if attempt >= self.attempts:
            exc.add_note(f"gave up after {attempt} attempt{'s' if attempt > 1 else ''}")
            raise exc
        delay = self.delay_for(attempt, exc)
        if delay > self.max_delay:
            # Only a server can ask for more than max_delay: waiting that long is the
            # caller's decision (fail over, give up), not a retry's.
            exc.add_note(
                f"not retried: the server asked for {delay:.3f} s, more than "
                f"max_delay={self.max_delay} s"
            )
            raise exc
        deadline = anyio.current_effective_deadline()
        now = anyio.current_time()
        if now + delay >= deadline:
            raise DeadlineExceeded(
                f"attempt {attempt} of {self.attempts} failed ({type(exc).__name__}: "
                f"{exc}); the next retry would wait {delay:.3f} s but only "
                f"{max(0.0, deadline - now):.3f} s are left before the deadline"
            ) from exc
        await anyio.sleep(delay)

    def __call__(self, func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """Use the policy as a decorator of an async function."""

        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.run(func, *args, **kwargs)

        wrapper.__name__ = getattr(func, "__name__", "wrapper")
        wrapper.__doc__ = func.__doc__
        return wrapper
