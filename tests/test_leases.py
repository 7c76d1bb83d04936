"""The lease core: a leased budget spends only what it leased and asks for what the head of
its queue lacks; the Python ledger (the Ray quota actor's) keeps the Redis scripts' rules, and
many holders leasing from it never get more than the quota offered."""

from __future__ import annotations

import math
import random

import pytest

from limelight._buckets import DeploymentLimits, Waiter
from limelight._leases import Correction, Grant, LeasedBudget, QuotaLedger, Units


def lease(ledger: QuotaLedger, holder: str, need: Units, want: Units, now: float) -> Grant:
    return ledger.lease(
        "d",
        DeploymentLimits(rpm=60, tpm=6_000, max_concurrency=3),
        holder=holder,
        need=need,
        want=want,
        now=now,
        send_delay=0.0,
        lease_ttl=1.0,
    )


def test_a_leased_budget_admits_only_what_it_holds_and_says_what_it_lacks() -> None:
    budget = LeasedBudget(DeploymentLimits(rpm=60, tpm=1_000, max_concurrency=2), now=0.0)
    waiter = Waiter(prompt_tokens=10, output_tokens=90)
    budget.enqueue(waiter, 0.0)
    assert budget.grant(0.0) == []  # nothing held: no refill of its own
    assert budget.grant(1_000.0) == []
    need = budget.need(0.0)
    assert need == Units(requests=1.0, tokens=100.0, slots=1)
    want = budget.want(need)
    assert (want.requests, want.tokens, want.slots) == (3.0, 100.0, 1)  # 5% of 60, of 1,000
    budget.deposit(Grant(units=Units(requests=3, tokens=150, slots=1)), 0.0)
    assert budget.grant(0.0) == [waiter]
    assert budget.need(0.0) is None  # nobody waits
    # Idle: what is held goes back, the slot in use stays.
    assert budget.surplus(0.0) == Units(requests=2.0, tokens=50.0, slots=0)
    assert budget.slots == 1


def test_headers_and_429s_become_corrections_for_the_shared_state() -> None:
    budget = LeasedBudget(DeploymentLimits(rpm=600), now=0.0)
    budget.deposit(Grant(units=Units(requests=10)), 0.0)
    reservation = budget.try_reserve(0.0, 0.0)
    assert reservation is not None
    headers = {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "3"}
    budget.reconcile(reservation, 2.0, total_tokens=5, headers=headers)
    [correction] = budget.take_outbox()
    assert correction.requests_limit == 60
    assert correction.requests_remaining == 3
    assert correction.age == 2.0
    assert budget.limits.rpm == 60  # followed locally too
    # Its own share is not touched by the server's count.
    assert budget.requests is not None
    assert budget.requests.level(2.0) == 9
    reservation = budget.try_reserve(0.0, 2.0)
    assert reservation is not None
    budget.rate_limited_by_server(reservation, 2.0, retry_after=4.0)
    assert budget.take_outbox() == [Correction(pause=4.0)]


def test_the_ledger_grants_whole_leases_and_takes_units_back() -> None:
    ledger = QuotaLedger()
    a = lease(ledger, "a", Units(requests=1, tokens=100), Units(requests=10, tokens=1_000), 0.0)
    assert a.units == Units(requests=10, tokens=1_000)
    b = lease(ledger, "b", Units(requests=52), Units(requests=60), 0.0)
    assert not b.units
    assert b.retry_after == pytest.approx(2.0)
    ledger.give_back("d", DeploymentLimits(), holder="a", units=Units(requests=9), now=0.0)
    assert ledger.levels("d", DeploymentLimits(), 0.0)["requests"] == 59
    ledger.correct("d", DeploymentLimits(), Correction(pause=2.0), 0.0)
    paused = lease(ledger, "b", Units(requests=1), Units(requests=1), 1.0)
    assert paused.paused_for == pytest.approx(1.0)
    assert not paused.units


def test_slots_of_a_silent_holder_expire() -> None:
    ledger = QuotaLedger()
    assert lease(ledger, "a", Units(slots=1), Units(slots=3), 0.0).units.slots == 3
    assert not lease(ledger, "b", Units(slots=1), Units(slots=1), 0.5).units
    assert lease(ledger, "b", Units(slots=1), Units(slots=1), 1.5).units.slots == 1


@pytest.mark.parametrize("seed", range(5))
def test_many_holders_never_get_more_than_the_quota_offered(seed: int) -> None:
    rng = random.Random(seed)
    ledger = QuotaLedger()
    limits = DeploymentLimits(rpm=120, tpm=10_000)
    granted = Units()
    now = 0.0
    for _ in range(2_000):
        now += rng.expovariate(20.0)
        holder = rng.choice("abcd")
        if rng.random() < 0.1:
            back = Units(requests=rng.uniform(0, 1), tokens=rng.uniform(0, 50))
            back = Units(
                requests=min(back.requests, granted.requests),
                tokens=min(back.tokens, granted.tokens),
            )
            ledger.give_back("d", limits, holder=holder, units=back, now=now)
            granted = Units(
                requests=granted.requests - back.requests, tokens=granted.tokens - back.tokens
            )
            continue
        need = Units(requests=1, tokens=rng.randint(10, 400))
        got = ledger.lease(
            "d", limits, holder=holder, need=need,
            want=Units(requests=rng.randint(1, 8), tokens=rng.randint(400, 1_200)),
            now=now, send_delay=0.0, lease_ttl=30.0,
        )  # fmt: skip
        if got.units:
            assert got.units.requests >= need.requests - 1e-9
            assert got.units.tokens >= need.tokens - 1e-9
        else:
            assert math.isfinite(got.retry_after)
            assert got.retry_after > 0
        granted = Units(
            requests=granted.requests + got.units.requests,
            tokens=granted.tokens + got.units.tokens,
        )
        assert granted.requests <= 120 + now * 2 + 1e-6
        assert granted.tokens <= 10_000 + now * 10_000 / 60 + 1e-6
