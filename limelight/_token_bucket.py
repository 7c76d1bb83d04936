"""A quota as OpenAI documents it, and as both the simulator enforces it and the rate limiter
budgets for it: a bucket holding ``limit`` units that refills continuously at ``limit / 60``
per second, starting full. Pure arithmetic: every method takes the current time, so tests
drive it with any clock.
"""

from __future__ import annotations

from typing import Final

from .errors import ConfigError

__all__ = ["EPSILON", "Bucket"]

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
