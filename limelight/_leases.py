"""Leases from a quota shared by many processes: the leased budget, the store's protocol.

A process's budget spends units leased from a quota many processes share; the store that
leases them (Redis, a Ray actor) follows :class:`SharedQuota`.

A :class:`LeasedBudget` is a :class:`~limelight._buckets.Budget` whose buckets do not refill on
their own: they hold what this process leased (requests, tokens, concurrency slots) from the
one shared quota, and the rate limiter spends them on its waiters exactly as it spends a local
bucket. When the head of the queue needs more than is held, :meth:`LeasedBudget.need` says how
much, and the limiter's leaser asks the store (:class:`SharedQuota`) for it plus a chunk
ahead; units left unused once nobody waits go back (:meth:`LeasedBudget.surplus`). The store
refills the quota continuously and grants a lease only whole (every unit the head needs, or
nothing): processes never hoard fragments that none of them can use.

The server's ``x-ratelimit-*`` headers describe the whole quota of the key, so a leased budget
never adopts them into its own share: it queues a :class:`Correction` for the shared state
(:attr:`LeasedBudget.outbox`), which the store applies (a changed limit; a count lower than
what the store still has unleased; a pause after a 429). Pure, like the budget it extends:
every method takes the current time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final, Protocol

import msgspec

from ._buckets import (
    EPSILON,
    Bucket,
    Budget,
    DeploymentLimits,
    Reservation,
    _number,
    _server_level,
)

__all__ = [
    "DEFAULT_LEASE_FRACTION",
    "DEFAULT_LEASE_TTL",
    "DEFAULT_RETURN_AFTER",
    "Correction",
    "Grant",
    "LeasedBucket",
    "LeasedBudget",
    "QuotaLedger",
    "SharedQuota",
    "Units",
]

#: A lease asks for what the head of the queue needs plus this fraction of the limit: few
#: round trips to the store, and little held by one process that others could use.
DEFAULT_LEASE_FRACTION: Final = 0.05
#: Seconds units may stay unused in a process once nobody waits before they go back.
DEFAULT_RETURN_AFTER: Final = 0.25
#: Seconds the store keeps a silent holder's concurrency slots: a process that died (or lost
#: the store) gives them back this way. A live holder renews well before.
DEFAULT_LEASE_TTL: Final = 30.0


class Units(msgspec.Struct, frozen=True, kw_only=True):
    """Amounts of one deployment's quota: requests, tokens, concurrency slots."""

    requests: float = 0.0
    tokens: float = 0.0
    slots: int = 0

    def __bool__(self) -> bool:
        return bool(self.requests or self.tokens or self.slots)


class Grant(msgspec.Struct, frozen=True, kw_only=True):
    """The store's answer to a lease.

    :ivar units: what was leased (nothing when the need could not be met whole).
    :ivar retry_after: when nothing was leased, seconds until the need could be (the refill,
        or the end of a pause); 0 when granted.
    :ivar paused_for: seconds the shared quota stays paused after a 429 (0 when not).
    :ivar error: why the store could not be asked (it is down, say); nothing was leased.
    """

    units: Units = Units()
    retry_after: float = 0.0
    paused_for: float = 0.0
    error: str | None = None


class Correction(msgspec.Struct, frozen=True, kw_only=True):
    """What one process learned from the server about the whole quota, for the shared state.

    :ivar requests_limit: ``x-ratelimit-limit-requests`` (a changed quota).
    :ivar requests_remaining: the server's requests level when it admitted the call (from
        ``x-ratelimit-remaining-requests`` / ``-reset-requests``).
    :ivar age: seconds since the call was reserved: the refill the server may have added
        since its count.
    :ivar pause: seconds to pause the whole quota (a 429's ``Retry-After``).
    """

    requests_limit: float | None = None
    requests_remaining: float | None = None
    tokens_limit: float | None = None
    tokens_remaining: float | None = None
    age: float = 0.0
    pause: float | None = None


class SharedQuota(Protocol):
    """A store that leases one quota to many processes (:class:`~limelight.cluster.RedisQuota`,
    the Ray quota actor). Each method names the deployment and its configured limits (used
    when the store has none yet) and the holder (one per limiter), and is safe to call from
    many processes at once.
    """

    lease_fraction: float
    return_after: float
    lease_ttl: float

    async def lease(
        self,
        deployment: str,
        limits: DeploymentLimits,
        *,
        holder: str,
        need: Units,
        want: Units,
    ) -> Grant:
        """Lease ``want`` (at least ``need``, else nothing); a ``need`` and ``want`` of nothing
        only renews the holder's slots."""
        ...

    async def give_back(
        self, deployment: str, limits: DeploymentLimits, *, holder: str, units: Units
    ) -> None:
        """Return unused units (negative requests or tokens pay a debt)."""
        ...

    async def correct(
        self, deployment: str, limits: DeploymentLimits, correction: Correction
    ) -> None:
        """Apply what a process learned from the server to the shared state."""
        ...

    async def aclose(self) -> None:
        """Close the connections to the store."""
        ...


class LeasedBucket(Bucket):
    """A bucket holding leased units: no refill of its own (the store refills the quota);
    deposits add to it; a missing amount can only come from a lease."""

    __slots__ = ()

    def __init__(self, limit: float, *, now: float) -> None:
        super().__init__(limit, now=now)
        self._level = 0.0

    def _refill(self, now: float) -> None:
        pass

    def wait_time(self, amount: float, now: float) -> float:
        return 0.0 if self._level + EPSILON >= amount else math.inf

    def deposit(self, amount: float) -> None:
        """Add leased units (they pay any debt first)."""
        self._level += amount

    def withdraw(self) -> float:
        """Take out everything held (a negative amount: the debt), to give back."""
        level, self._level = self._level, 0.0
        return level


class LeasedBudget(Budget):
    """A deployment's budget spent from leases of a shared quota (see the module docs).

    :ivar slots: concurrency slots held (when the quota limits concurrency).
    :ivar leasing: a lease is being asked for; no second one is sent meanwhile.
    :ivar lease_at: when to ask again after the store said to wait.
    :ivar idle_since: when the queue last emptied: units held go back
        :attr:`SharedQuota.return_after` seconds later.
    :ivar contacted: when the store last heard from this budget (slots are renewed).
    :ivar outbox: corrections for the shared state, taken by the leaser.
    """

    def __init__(
        self,
        limits: DeploymentLimits,
        *,
        now: float,
        promote_after: float | None = None,
        lease_fraction: float = DEFAULT_LEASE_FRACTION,
    ) -> None:
        self.lease_fraction = lease_fraction
        self.slots = 0
        self.leasing = False
        self.lease_at = -math.inf
        self.idle_since = now
        self.contacted = now
        self.outbox: list[Correction] = []
        if promote_after is None:
            super().__init__(limits, now=now, send_delay=0.0)
        else:
            super().__init__(limits, now=now, send_delay=0.0, promote_after=promote_after)

    def _bucket(self, bucket: Bucket | None, limit: int | None, now: float) -> Bucket | None:
        if limit is None:
            return None
        if bucket is None:
            return LeasedBucket(limit, now=now)
        bucket.set_limit(limit, now)
        return bucket

    def wait_time(self, tokens: float, now: float) -> float:
        if self.limits.max_concurrency is not None and self.in_flight >= self.slots:
            return math.inf
        wait = max(0.0, self.paused_until - now)
        for bucket, amount in ((self.requests, 1.0), (self.tokens, tokens)):
            if bucket is not None:
                wait = max(wait, bucket.wait_time(amount, now))
        return wait

    # -- leasing ------------------------------------------------------------------------

    def need(self, now: float) -> Units | None:
        """What the head of the queue lacks to be admitted, ``None`` when nothing is needed
        now (nobody waits, a pause is on, or the head can go)."""
        head = self._head(now)
        if head is None or self.paused_until > now:
            return None
        tokens = self.cost(head)
        need = Units(
            requests=0.0 if self.requests is None else max(0.0, 1.0 - self.requests.level(now)),
            tokens=0.0 if self.tokens is None else max(0.0, tokens - self.tokens.level(now)),
            slots=int(self.limits.max_concurrency is not None and self.in_flight >= self.slots),
        )
        return need if need else None

    def want(self, need: Units) -> Units:
        """``need`` plus a chunk ahead (:attr:`lease_fraction` of each limit), so that a busy
        process asks the store only now and then."""
        chunk = self.lease_fraction
        return Units(
            requests=0.0
            if self.requests is None
            else max(need.requests, math.ceil(self.requests.limit * chunk)),
            tokens=0.0
            if self.tokens is None
            else max(need.tokens, math.ceil(self.tokens.limit * chunk)),
            slots=0
            if self.limits.max_concurrency is None
            else max(
                need.slots,
                min(self.waiting, math.ceil(self.limits.max_concurrency * chunk)),
            ),
        )

    def deposit(self, grant: Grant, now: float) -> None:
        """Add a lease's units; follow the store's pause and when to ask again."""
        self.leasing = False
        self.contacted = now
        units = grant.units
        for bucket, amount in ((self.requests, units.requests), (self.tokens, units.tokens)):
            if isinstance(bucket, LeasedBucket) and amount:
                bucket.deposit(amount)
        self.slots += units.slots
        if grant.paused_for > 0:
            self.paused_until = max(self.paused_until, now + grant.paused_for)
        self.lease_at = now + grant.retry_after if not units else -math.inf

    def surplus(self, now: float) -> Units:
        """Take out every unit held that no call uses, to give back (a debt comes out as a
        negative amount, paid to the store)."""
        requests = self.requests.withdraw() if isinstance(self.requests, LeasedBucket) else 0.0
        tokens = self.tokens.withdraw() if isinstance(self.tokens, LeasedBucket) else 0.0
        free = max(0, self.slots - self.in_flight)
        self.slots -= free
        self.contacted = now
        return Units(requests=requests, tokens=tokens, slots=free)

    # -- what the server says is for the shared state -------------------------------------

    def adopt_headers(
        self, headers: Mapping[str, str], now: float, *, reservation: Reservation | None
    ) -> None:
        found: dict[str, float | None] = {}
        for name, unit in (("requests", "requests"), ("tokens", "tokens")):
            limit = _number(headers.get(f"x-ratelimit-limit-{unit}"))
            found[f"{name}_limit"] = limit if limit is not None and limit >= 1 else None
            bucket: Bucket | None = getattr(self, name)
            reference = (
                bucket
                if bucket is not None
                else (Bucket(limit, now=now) if limit is not None and limit >= 1 else None)
            )
            found[f"{name}_remaining"] = (
                None if reference is None else _server_level(reference, headers, unit)
            )
        if not any(v is not None for v in found.values()):
            return
        age = 0.0 if reservation is None else max(0.0, now - reservation.at)
        self.outbox.append(Correction(age=age, **found))
        # A changed quota is followed here too (the chunk sizes, the local caps).
        changed = {
            "rpm": found["requests_limit"],
            "tpm": found["tokens_limit"],
        }
        updates = {
            key: int(value)
            for key, value in changed.items()
            if value is not None and getattr(self.limits, key) != int(value)
        }
        if updates:
            self.configure(msgspec.structs.replace(self.limits, **updates), now=now)

    def rate_limited_by_server(
        self,
        reservation: Reservation | None,
        now: float,
        *,
        retry_after: float | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().rate_limited_by_server(reservation, now, retry_after=retry_after, headers=headers)
        self.outbox.append(Correction(pause=max(0.0, self.paused_until - now)))

    def take_outbox(self) -> list[Correction]:
        """The corrections queued since the last call."""
        outbox, self.outbox = self.outbox, []
        return outbox


# -- the store's side, in Python (the Ray quota actor's) ----------------------------------


class _Account:
    """One deployment's shared state: the buckets' levels (refilled continuously from the
    time of their last change), the pause, the slots each holder has and until when."""

    __slots__ = ("max_concurrency", "paused_until", "requests", "seen", "slots", "tokens")

    def __init__(self, limits: DeploymentLimits, now: float) -> None:
        self.requests = _SharedBucket(limits.rpm or 0, now)
        self.tokens = _SharedBucket(limits.tpm or 0, now)
        self.slots: dict[str, int] = {}
        self.seen: dict[str, float] = {}
        self.paused_until = -math.inf
        self.max_concurrency = limits.max_concurrency or 0


class _SharedBucket:
    __slots__ = ("at", "level", "limit")

    def __init__(self, limit: float, now: float) -> None:
        self.limit = float(limit)
        self.level = self.limit
        self.at = now

    def refill(self, now: float) -> None:
        if self.limit > 0 and now > self.at:
            self.level = min(self.limit, self.level + (now - self.at) * self.limit / 60.0)
            self.at = now

    def lacks(self, need: float, now: float) -> float:
        if self.limit <= 0 or need <= self.level + EPSILON:
            return 0.0
        return (need - self.level) * 60.0 / self.limit + max(0.0, self.at - now)

    def take(self, need: float, want: float, hold: float, now: float) -> float:
        if self.limit <= 0:
            return 0.0
        granted = max(need, min(want, max(self.level, 0.0)))
        if granted > 0 and self.level >= self.limit - hold * self.limit / 60.0:
            self.at = max(self.at, now + hold)
        self.level -= granted
        return granted

    def follow(self, limit: float | None, remaining: float | None, age: float, now: float) -> None:
        if limit is not None and limit >= 1 and limit != self.limit:
            if self.limit <= 0:
                self.level, self.at = limit, now
            self.limit = limit
            self.level = min(self.level, limit)
        if remaining is not None and self.limit > 0:
            self.level = min(self.level, remaining + age * self.limit / 60.0)


class QuotaLedger:
    """Shared quotas kept in one process (the Ray quota actor's), by the rules of the Redis
    scripts (:mod:`limelight.cluster._redis_quota`): the configured limits of the first caller
    stand until a server's headers change them; leases are whole or nothing; a silent
    holder's slots expire after ``lease_ttl``. Pure: every method takes the time."""

    def __init__(self) -> None:
        self._accounts: dict[str, _Account] = {}

    def _account(self, deployment: str, limits: DeploymentLimits, now: float) -> _Account:
        account = self._accounts.get(deployment)
        if account is None:
            account = self._accounts[deployment] = _Account(limits, now)
        account.requests.refill(now)
        account.tokens.refill(now)
        return account

    def lease(
        self,
        deployment: str,
        limits: DeploymentLimits,
        *,
        holder: str,
        need: Units,
        want: Units,
        now: float,
        send_delay: float,
        lease_ttl: float,
    ) -> Grant:
        """See :meth:`SharedQuota.lease`."""
        account = self._account(deployment, limits, now)
        used = 0
        if account.max_concurrency:
            for other, expiry in list(account.seen.items()):
                if expiry < now and other != holder:
                    account.seen.pop(other, None)
                    account.slots.pop(other, None)
            used = sum(account.slots.values())
            account.seen[holder] = now + lease_ttl
        if account.paused_until > now:
            pause = account.paused_until - now
            return Grant(retry_after=pause, paused_for=pause)
        wait = max(
            account.requests.lacks(need.requests, now), account.tokens.lacks(need.tokens, now)
        )
        free = account.max_concurrency - used
        if account.max_concurrency and need.slots > free:
            wait = max(wait, 0.05)
        if wait > 0:
            return Grant(retry_after=wait)
        requests = account.requests.take(need.requests, want.requests, send_delay, now)
        tokens = account.tokens.take(need.tokens, want.tokens, send_delay, now)
        slots = 0
        if account.max_concurrency:
            slots = max(need.slots, min(want.slots, free))
            if slots > 0:
                account.slots[holder] = account.slots.get(holder, 0) + slots
        return Grant(units=Units(requests=requests, tokens=tokens, slots=slots))

    def give_back(
        self, deployment: str, limits: DeploymentLimits, *, holder: str, units: Units, now: float
    ) -> None:
        """See :meth:`SharedQuota.give_back`."""
        account = self._account(deployment, limits, now)
        for bucket, amount in ((account.requests, units.requests), (account.tokens, units.tokens)):
            if bucket.limit > 0:
                bucket.level = min(bucket.limit, bucket.level + amount)
        if units.slots > 0:
            left = account.slots.get(holder, 0) - units.slots
            if left <= 0:
                account.slots.pop(holder, None)
                account.seen.pop(holder, None)
            else:
                account.slots[holder] = left

    def correct(
        self, deployment: str, limits: DeploymentLimits, correction: Correction, now: float
    ) -> None:
        """See :meth:`SharedQuota.correct`."""
        account = self._account(deployment, limits, now)
        account.requests.follow(
            correction.requests_limit, correction.requests_remaining, correction.age, now
        )
        account.tokens.follow(
            correction.tokens_limit, correction.tokens_remaining, correction.age, now
        )
        if correction.pause is not None:
            account.paused_until = max(account.paused_until, now + correction.pause)

    def levels(self, deployment: str, limits: DeploymentLimits, now: float) -> dict[str, float]:
        """The state now, as :meth:`RedisQuota.levels` reports it."""
        account = self._account(deployment, limits, now)
        return {
            "rpm": account.requests.limit,
            "requests": account.requests.level,
            "tpm": account.tokens.limit,
            "tokens": account.tokens.level,
            "max_concurrency": float(account.max_concurrency),
            "slots_held": float(sum(account.slots.values())),
            "paused_for": max(0.0, account.paused_until - now),
        }
