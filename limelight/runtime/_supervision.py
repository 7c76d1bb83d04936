"""Supervision configuration and the pure decisions behind it (Erlang/OTP semantics).

The decisions here take the time as an argument and never wait, so they can be property
tested on their own; the actor cells do the stopping, sleeping and restarting.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from ._errors import ConfigError

K = TypeVar("K")

DEFAULT_MAX_RESTARTS = 3
DEFAULT_WITHIN = 5.0
DEFAULT_BACKOFF_INITIAL = 0.01
DEFAULT_BACKOFF_MAX = 2.0


class Strategy(enum.Enum):
    """Which children a supervisor restarts when one of them exits abnormally."""

    ONE_FOR_ONE = "one_for_one"
    """Only the child that exited."""
    ONE_FOR_ALL = "one_for_all"
    """Every child: the others are stopped (reverse start order), then all start again."""
    REST_FOR_ONE = "rest_for_one"
    """The child that exited and every child started after it."""


class Restart(enum.Enum):
    """A child's restart policy."""

    PERMANENT = "permanent"
    """Always restarted, even after a normal exit."""
    TRANSIENT = "transient"
    """Restarted only after a crash."""
    TEMPORARY = "temporary"
    """Never restarted."""


class Overflow(enum.Enum):
    """What a full mailbox does with one more message."""

    BLOCK = "block"
    """The sender waits for room (backpressure)."""
    DROP_NEWEST = "drop_newest"
    """The new message is dropped and counted; an ask fails with MailboxFull."""
    DROP_OLDEST = "drop_oldest"
    """The oldest queued message is dropped and counted to make room."""
    FAIL = "fail"
    """The sender gets MailboxFull at once."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Supervision:
    """How an actor (or the runtime) supervises its children.

    More than ``max_restarts`` restarts within ``within`` seconds make the supervisor give up:
    it stops its children and escalates to its own parent. Between restarts of a child it
    waits ``backoff_initial * 2 ** (n - 1)`` seconds, capped at ``backoff_max``, where ``n``
    counts that child's restarts inside the window.
    """

    strategy: Strategy = Strategy.ONE_FOR_ONE
    max_restarts: int = DEFAULT_MAX_RESTARTS
    within: float = DEFAULT_WITHIN
    backoff_initial: float = DEFAULT_BACKOFF_INITIAL
    backoff_max: float = DEFAULT_BACKOFF_MAX

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ConfigError(f"max_restarts must be >= 0, got {self.max_restarts}")
        if self.within <= 0:
            raise ConfigError(f"within must be a positive number of seconds, got {self.within}")
        if self.backoff_initial < 0 or self.backoff_max < 0:
            raise ConfigError(
                f"backoffs must be >= 0, got initial={self.backoff_initial} max={self.backoff_max}"
            )

    def backoff(self, restarts_in_window: int) -> float:
        """Seconds to wait before a child's ``restarts_in_window``-th restart in the window."""
        if restarts_in_window <= 0 or self.backoff_initial == 0:
            return 0.0
        return float(min(self.backoff_max, self.backoff_initial * 2 ** (restarts_in_window - 1)))


class RestartIntensity:
    """Restarts recorded in a sliding window of ``within`` seconds.

    :meth:`record` returns False once more than ``max_restarts`` restarts fall inside the
    window: the point where an OTP supervisor gives up.
    """

    __slots__ = ("_times", "max_restarts", "within")

    def __init__(self, max_restarts: int, within: float) -> None:
        self.max_restarts = max_restarts
        self.within = within
        self._times: deque[float] = deque()

    def _expire(self, now: float) -> None:
        times = self._times
        while times and times[0] <= now - self.within:
            times.popleft()

    def record(self, now: float) -> bool:
        """Record a restart at ``now``; False means the intensity is exceeded."""
        self._expire(now)
        self._times.append(now)
        return len(self._times) <= self.max_restarts

    def count(self, now: float) -> int:
        """Restarts inside the window ending at ``now``."""
        self._expire(now)
        return len(self._times)


def should_restart(policy: Restart, *, crashed: bool) -> bool:
    """Whether a child with this policy is restarted after a normal exit or a crash."""
    if policy is Restart.PERMANENT:
        return True
    if policy is Restart.TRANSIENT:
        return crashed
    return False


def restart_targets(strategy: Strategy, children: Sequence[K], failed: K) -> list[K]:
    """The children to restart, in start order, when ``failed`` exits and is to be restarted."""
    if strategy is Strategy.ONE_FOR_ONE:
        return [failed]
    if strategy is Strategy.ONE_FOR_ALL:
        return list(children)
    return list(children[children.index(failed) :])
