"""The rate limiter's leaser: the child that leases units of a shared quota for it.

With a shared quota (:class:`~limelight._leases.SharedQuota`: Redis, a Ray quota actor), each
deployment's budget is a :class:`~limelight._leases.LeasedBudget`. After every message the
limiter calls :func:`plan`, which looks at each budget and tells this child what to do: lease
what the head of a queue lacks (one lease at a time per deployment), give back what nobody
uses, renew held concurrency slots, send the server's corrections. The child talks to the
store and tells the limiter :class:`Deposit` with each grant; the store's latency never
blocks the limiter's mailbox.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import anyio
import msgspec

from .._buckets import DeploymentLimits
from .._leases import Correction, Grant, LeasedBudget, SharedQuota, Units
from ..runtime import Actor, ActorRef, Context

__all__ = ["Deposit", "Leaser", "give_back_all", "plan"]

#: Seconds to wait before asking a store that failed again.
_RETRY_FAILED = 0.5
#: Seconds the store gets to take back what a stopping limiter holds.
_GIVE_BACK_TIMEOUT = 2.0


class Deposit(msgspec.Struct, frozen=True, kw_only=True):
    """To the limiter: the store's grant for a deployment."""

    deployment: str
    grant: Grant


class _Lease(msgspec.Struct, frozen=True, kw_only=True):
    deployment: str
    limits: DeploymentLimits
    need: Units
    want: Units


class _GiveBack(msgspec.Struct, frozen=True, kw_only=True):
    deployment: str
    limits: DeploymentLimits
    units: Units


class _Correct(msgspec.Struct, frozen=True, kw_only=True):
    deployment: str
    limits: DeploymentLimits
    corrections: list[Correction]


class Leaser(Actor):
    """Speaks to the store for its parent limiter (see the module docs)."""

    def __init__(self, quota: SharedQuota, holder: str, limiter: ActorRef) -> None:
        self.quota = quota
        self.holder = holder
        self.limiter = limiter

    async def handle(self, message: Any, ctx: Context) -> Any:
        quota = self.quota
        match message:
            case _Lease(deployment=name, limits=limits, need=need, want=want):
                try:
                    grant = await quota.lease(
                        name, limits, holder=self.holder, need=need, want=want
                    )
                except Exception as exc:
                    ctx.log.warning("lease failed", deployment=name, error=repr(exc))
                    grant = Grant(retry_after=_RETRY_FAILED, error=repr(exc))
                await self.limiter.tell(Deposit(deployment=name, grant=grant))
            case _GiveBack(deployment=name, limits=limits, units=units):
                try:
                    await quota.give_back(name, limits, holder=self.holder, units=units)
                except Exception as exc:
                    ctx.log.warning("giving back a lease failed", deployment=name, error=repr(exc))
            case _Correct(deployment=name, limits=limits, corrections=corrections):
                for correction in corrections:
                    try:
                        await quota.correct(name, limits, correction)
                    except Exception as exc:
                        ctx.log.warning("correction failed", deployment=name, error=repr(exc))
            case _:
                raise TypeError(f"leaser got an unexpected message {message!r}")


def plan(
    leaser: ActorRef, quota: SharedQuota, name: str, budget: LeasedBudget, now: float
) -> float:
    """Tell ``leaser`` what ``budget`` needs now; returns when to look again (absolute time,
    ``math.inf`` for never)."""
    limits = budget.limits
    corrections = budget.take_outbox()
    if corrections:
        leaser.tell_nowait(_Correct(deployment=name, limits=limits, corrections=corrections))
    wake = math.inf
    if budget.waiting:
        budget.idle_since = now
        need = budget.need(now)
        if need is not None and not budget.leasing:
            if budget.lease_at <= now:
                budget.leasing = True
                budget.contacted = now
                leaser.tell_nowait(
                    _Lease(deployment=name, limits=limits, need=need, want=budget.want(need))
                )
            else:
                wake = budget.lease_at
        if budget.paused_until > now:
            wake = min(wake, budget.paused_until)
    elif not budget.leasing:
        held = _held(budget)
        if held:
            return_at = budget.idle_since + quota.return_after
            if return_at <= now:
                units = budget.surplus(now)
                if units:
                    leaser.tell_nowait(_GiveBack(deployment=name, limits=limits, units=units))
            else:
                wake = return_at
    if budget.slots and not budget.leasing:
        renew_at = budget.contacted + quota.lease_ttl / 3
        if renew_at <= now:
            budget.contacted = now
            leaser.tell_nowait(_Lease(deployment=name, limits=limits, need=Units(), want=Units()))
            renew_at = now + quota.lease_ttl / 3
        wake = min(wake, renew_at)
    return wake


def _held(budget: LeasedBudget) -> bool:
    levels = [b.level(0.0) for b in (budget.requests, budget.tokens) if b is not None]
    return any(level != 0.0 for level in levels) or budget.slots > budget.in_flight


async def give_back_all(
    quota: SharedQuota, holder: str, budgets: Iterable[tuple[str, LeasedBudget]], now: float
) -> None:
    """Give back everything the budgets hold (a limiter stopping), within a short timeout.
    Slots of calls still in flight go back too: nothing will spend them here any more."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(_GIVE_BACK_TIMEOUT):
        for name, budget in budgets:
            units = budget.surplus(now)
            units = msgspec.structs.replace(units, slots=units.slots + budget.in_flight)
            try:
                if units:
                    await quota.give_back(name, budget.limits, holder=holder, units=units)
            except Exception:  # the store is gone: its TTL frees the slots
                continue
