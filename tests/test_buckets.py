"""The rate limiter's pure arithmetic, against models: quota windows, the simulator's own
quota (OpenAI's rules) as the server, refunds, header adoption, the fair queue."""

from __future__ import annotations

import heapq
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from limelight._buckets import (
    MIN_PAUSE,
    Bucket,
    Budget,
    DeploymentLimits,
    Priority,
    Waiter,
    parse_duration,
)
from limelight.errors import ConfigError
from limelight.sim import Quota, format_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("120ms", 0.12),
        ("1h2m3.5s", 3723.5),
        ("0s", 0.0),
        ("2.5", 2.5),
        ("17us", 17e-6),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "1x", "1s2", "m1s"])
def test_parse_duration_rejects(text: str) -> None:
    assert parse_duration(text) is None


@given(st.floats(min_value=0, max_value=100_000, allow_nan=False))
def test_parse_duration_reads_the_simulators_format(seconds: float) -> None:
    parsed = parse_duration(format_duration(seconds))
    assert parsed is not None
    # OpenAI's format rounds up to the millisecond.
    assert seconds - 1e-9 <= parsed <= seconds + 0.001 + 1e-9


def test_limits_are_validated() -> None:
    with pytest.raises(ConfigError, match="rpm must be at least 1"):
        DeploymentLimits(rpm=0)


# -- admission against the quota --------------------------------------------------------

arrivals = st.lists(
    st.tuples(
        # Seconds since the previous call: bursts (0) drain the buckets to their edge.
        st.one_of(
            st.sampled_from([0.0, 0.0, 0.001, 0.05, 0.3]),
            st.floats(min_value=0, max_value=3.0, allow_nan=False),
        ),
        st.integers(min_value=1, max_value=400),  # tokens
    ),
    min_size=1,
    max_size=150,
)


@settings(max_examples=200, deadline=None)
@given(
    arrivals,
    st.integers(min_value=1, max_value=60),
    st.integers(min_value=100, max_value=5_000),
)
def test_never_admits_more_than_the_quota_in_any_window(
    calls: list[tuple[float, int]], rpm: int, tpm: int
) -> None:
    budget = Budget(DeploymentLimits(rpm=rpm, tpm=tpm), now=0.0, send_delay=0.0)
    now = 0.0
    admitted: list[tuple[float, float]] = []
    for gap, tokens in calls:
        now += gap
        reservation = budget.try_reserve(float(min(tokens, tpm)), now)
        if reservation is not None:
            admitted.append((now, reservation.tokens))
            budget.reconcile(reservation, now, total_tokens=tokens)
    for i, (start, _) in enumerate(admitted):
        used = 0.0
        for requests, (end, tokens) in enumerate(admitted[i:], start=1):
            used += tokens
            window = end - start
            assert requests <= rpm + rpm / 60 * window + 1e-6
            assert used <= tpm + tpm / 60 * window + 1e-6


@settings(max_examples=300, deadline=None)
@given(
    arrivals,
    st.integers(min_value=1, max_value=60),
    st.integers(min_value=400, max_value=5_000),
    st.lists(st.floats(min_value=0, max_value=1.0), min_size=1, max_size=10),
)
def test_the_simulators_quota_admits_whatever_the_budget_admits(
    calls: list[tuple[float, int]], rpm: int, tpm: int, delays: list[float]
) -> None:
    """The server (the simulator's OpenAI-exact quota: charging at admission, refunding
    nothing) receives each admitted call up to ``send_delay`` later, in any order, and
    answers with its headers after as long again; it never refuses one."""
    send_delay = max(delays)
    budget = Budget(
        DeploymentLimits(rpm=rpm, tpm=tpm, refund_unused=False), now=0.0, send_delay=send_delay
    )
    clock = [0.0]
    server = Quota(rpm=rpm, tpm=tpm, clock=lambda: clock[0])
    # (time, order, kind, payload): arrivals, deliveries to the server, answers.
    events: list[tuple[float, int, str, object]] = []
    now = 0.0
    for i, (gap, tokens) in enumerate(calls):
        now += gap
        heapq.heappush(events, (now, i, "arrive", tokens))
    order = len(calls)
    while events:
        at, _, kind, payload = heapq.heappop(events)
        clock[0] = at
        order += 1
        if kind == "arrive":
            assert isinstance(payload, int)
            reservation = budget.try_reserve(float(payload), at)
            if reservation is not None:
                delay = delays[order % len(delays)]
                heapq.heappush(events, (at + delay, order, "deliver", (reservation, payload)))
        elif kind == "deliver":
            reservation, tokens = payload  # type: ignore[misc]
            decision = server.try_acquire(tokens)
            assert decision.admitted, decision
            heapq.heappush(
                events,
                (
                    at + delays[-order % len(delays)],
                    order,
                    "answer",
                    (reservation, tokens, decision),
                ),
            )
        else:
            reservation, tokens, decision = payload  # type: ignore[misc]
            budget.reconcile(
                reservation,
                at,
                total_tokens=tokens // 2,
                completion_tokens=tokens // 2,
                headers=decision.headers,
            )


# -- refunds and corrections ------------------------------------------------------------

operations = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.integers(1, 500)),
        st.tuples(st.just("reconcile"), st.integers(0, 2_000)),
        st.tuples(st.just("release"), st.just(0)),
        st.tuples(st.just("fail"), st.just(0)),
        st.tuples(st.just("429"), st.integers(0, 5)),
        st.tuples(st.just("headers"), st.integers(-100, 3_000)),
        st.tuples(st.just("wait"), st.integers(0, 5_000)),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(operations, st.booleans())
def test_refunds_never_fill_a_bucket_beyond_its_limit(
    ops: list[tuple[str, int]], refund_unused: bool
) -> None:
    limits = DeploymentLimits(rpm=30, tpm=1_000, max_concurrency=5, refund_unused=refund_unused)
    budget = Budget(limits, now=0.0)
    now = 0.0
    held = []
    for op, value in ops:
        if op == "reserve":
            reservation = budget.try_reserve(float(min(value, 1_000)), now)
            if reservation is not None:
                held.append(reservation)
        elif op == "wait":
            now += value / 1000
        elif op == "headers":
            budget.adopt_headers(
                {"x-ratelimit-remaining-tokens": str(value)},
                now,
                reservation=held[-1] if held else None,
            )
        elif held:
            reservation = held.pop(0)
            if op == "reconcile":
                budget.reconcile(reservation, now, total_tokens=value, completion_tokens=value)
            elif op == "release":
                budget.release(reservation, now)
                budget.release(reservation, now)  # twice is harmless
            elif op == "fail":
                budget.fail(reservation, now)
            else:
                budget.rate_limited_by_server(reservation, now, retry_after=float(value))
        assert budget.requests is not None
        assert budget.tokens is not None
        assert budget.requests.level(now) <= 30 + 1e-9
        assert budget.tokens.level(now) <= 1_000 + 1e-9
        assert budget.in_flight == len(held)
        assert 0 <= budget.in_flight <= 5


def test_a_bucket_gives_back_at_most_up_to_its_limit() -> None:
    bucket = Bucket(100, now=0.0)
    bucket.take(30, 0.0)
    assert bucket.give(50, 0.0) == pytest.approx(30)
    assert bucket.level(0.0) == pytest.approx(100)


def test_a_reservation_from_a_full_bucket_holds_the_refill_for_the_send_delay() -> None:
    bucket = Bucket(60, now=0.0, send_delay=0.5)  # refills 1 unit per second
    bucket.take(10, 0.0)
    assert bucket.level(0.5) == pytest.approx(50)
    assert bucket.level(2.5) == pytest.approx(52)


def test_usage_beyond_the_reservation_is_charged_and_unused_tokens_refunded() -> None:
    budget = Budget(DeploymentLimits(tpm=6_000, refund_unused=True), now=0.0, send_delay=0.0)
    assert budget.tokens is not None
    first = budget.try_reserve(1_000.0, 0.0)
    assert first is not None
    budget.reconcile(first, 0.0, total_tokens=1_500)
    assert budget.tokens.level(0.0) == pytest.approx(4_500)
    second = budget.try_reserve(1_000.0, 0.0)
    assert second is not None
    budget.reconcile(second, 0.0, total_tokens=200)
    assert budget.tokens.level(0.0) == pytest.approx(4_300)


def test_unused_tokens_are_kept_when_the_server_does_not_refund() -> None:
    budget = Budget(DeploymentLimits(tpm=6_000), now=0.0, send_delay=0.0)
    assert budget.tokens is not None
    reservation = budget.try_reserve(1_000.0, 0.0)
    assert reservation is not None
    budget.reconcile(reservation, 0.0, total_tokens=200)
    assert budget.tokens.level(0.0) == pytest.approx(5_000)


def test_a_lowered_quota_in_the_headers_is_followed_at_once() -> None:
    budget = Budget(DeploymentLimits(rpm=600, tpm=60_000), now=0.0, send_delay=0.0)
    budget.adopt_headers(
        {"x-ratelimit-limit-tokens": "6000", "x-ratelimit-limit-requests": "60"},
        1.0,
        reservation=None,
    )
    assert budget.limits.tpm == 6_000
    assert budget.limits.rpm == 60
    assert budget.tokens is not None
    assert budget.tokens.level(1.0) == pytest.approx(6_000)
    assert budget.try_reserve(7_000.0, 1.0) is None
    assert budget.wait_time(100.0, 1.0) == 0.0


def test_headers_of_an_unconfigured_deployment_create_its_quota() -> None:
    budget = Budget(DeploymentLimits(), now=0.0)
    assert budget.try_reserve(10**9, 0.0) is not None
    budget.adopt_headers(
        {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "1m0s",
        },
        0.0,
        reservation=None,
    )
    assert budget.limits.rpm == 60
    assert budget.wait_time(1.0, 0.0) == pytest.approx(1.0)


def test_an_isolated_response_corrects_the_level_to_the_servers() -> None:
    budget = Budget(DeploymentLimits(tpm=60_000), now=0.0, send_delay=0.0)
    assert budget.tokens is not None
    reservation = budget.try_reserve(1_000.0, 10.0)
    assert reservation is not None
    # The server counted 3,000 more than this budget knew (another client on the key).
    budget.reconcile(
        reservation,
        10.0,
        total_tokens=1_000,
        headers={"x-ratelimit-remaining-tokens": "56000"},
    )
    assert budget.tokens.level(10.0) == pytest.approx(56_000)


def test_a_response_amid_other_reservations_does_not_move_the_level() -> None:
    budget = Budget(DeploymentLimits(tpm=60_000), now=0.0, send_delay=0.05)
    assert budget.tokens is not None
    first = budget.try_reserve(1_000.0, 10.0)
    second = budget.try_reserve(1_000.0, 10.01)
    assert first is not None
    assert second is not None
    before = budget.tokens.level(10.02)
    budget.reconcile(
        first, 10.02, total_tokens=1_000, headers={"x-ratelimit-remaining-tokens": "50000"}
    )
    # The server may have seen the second call first: its count is not this call's alone.
    assert budget.tokens.level(10.02) == pytest.approx(before)


def test_a_429_pauses_for_retry_after_or_a_doubling_backoff() -> None:
    budget = Budget(DeploymentLimits(rpm=600), now=0.0)
    reservation = budget.try_reserve(1.0, 0.0)
    budget.rate_limited_by_server(reservation, 0.0, retry_after=2.0)
    assert budget.in_flight == 0
    assert budget.wait_time(1.0, 0.0) == pytest.approx(2.0)
    assert budget.try_reserve(1.0, 1.9) is None
    answered = budget.try_reserve(1.0, 2.0)
    assert answered is not None
    budget.reconcile(answered, 2.5, total_tokens=1)  # a success ends the run of 429s
    budget.rate_limited_by_server(None, 3.0, retry_after=None)
    budget.rate_limited_by_server(None, 3.0, retry_after=None)
    assert budget.wait_time(1.0, 3.0) == pytest.approx(2.0)
    assert budget.rate_limited == 3


@pytest.mark.parametrize(
    ("retry_after", "pause"), [(0.0, MIN_PAUSE), (MIN_PAUSE / 10, MIN_PAUSE), (3.0, 3.0)]
)
def test_a_server_delay_shorter_than_the_floor_still_pauses(
    retry_after: float, pause: float
) -> None:
    """``Retry-After: 0`` must not release every queued call onto a server that has just
    refused one; a longer delay is honoured as given."""
    budget = Budget(DeploymentLimits(rpm=600), now=0.0)
    for _ in range(3):  # a run of 429s does not lengthen a pause the server named
        budget.rate_limited_by_server(budget.try_reserve(1.0, 10.0), 10.0, retry_after=retry_after)
    assert budget.paused_until == pytest.approx(10.0 + pause)
    assert budget.wait_time(1.0, 10.0) == pytest.approx(pause)
    assert budget.try_reserve(1.0, 10.0 + pause * 0.99) is None
    assert budget.try_reserve(1.0, 10.0 + pause) is not None


def test_the_output_estimate_learns_the_average_answer() -> None:
    budget = Budget(DeploymentLimits(), now=0.0)
    assert budget.output_estimate(50) == 50
    first = budget.try_reserve(1.0, 0.0)
    second = budget.try_reserve(1.0, 0.0)
    assert first is not None
    assert second is not None
    budget.reconcile(first, 0.0, total_tokens=110, completion_tokens=100)
    budget.reconcile(second, 0.0, total_tokens=311, completion_tokens=301)
    assert budget.output_estimate(None) == 201
    fixed = Budget(DeploymentLimits(default_output_tokens=256), now=0.0)
    assert fixed.output_estimate(None) == 256


# -- the queue ------------------------------------------------------------------------

queue_ops = st.lists(
    st.one_of(
        st.tuples(st.just("enqueue"), st.sampled_from(Priority), st.integers(1, 300)),
        st.tuples(st.just("wait"), st.just(Priority.INTERACTIVE), st.integers(0, 3_000)),
        st.tuples(st.just("finish"), st.just(Priority.INTERACTIVE), st.integers(0, 10)),
        st.tuples(st.just("abandon"), st.just(Priority.INTERACTIVE), st.integers(0, 50)),
    ),
    max_size=150,
)


@settings(max_examples=300, deadline=None)
@given(queue_ops)
def test_waiters_are_served_fifo_per_priority_and_none_starves(
    ops: list[tuple[str, Priority, int]],
) -> None:
    promote_after = 5.0
    budget = Budget(
        DeploymentLimits(rpm=20, tpm=1_000, max_concurrency=3),
        now=0.0,
        promote_after=promote_after,
        send_delay=0.0,
    )
    now = 0.0
    queued: list[Waiter] = []
    order: list[Waiter] = []
    in_flight: list[Waiter] = []

    def grant() -> None:
        for waiter in budget.grant(now):
            assert not waiter.abandoned
            if waiter.priority is Priority.BATCH and now - waiter.enqueued_at < promote_after:
                # A batch call goes only when no interactive call is waiting.
                assert not any(
                    w.priority is Priority.INTERACTIVE and w.reservation is None
                    for w in queued
                    if not w.abandoned
                )
            order.append(waiter)
            in_flight.append(waiter)

    for op, priority, value in ops:
        if op == "enqueue":
            waiter = Waiter(prompt_tokens=value, output_tokens=0, priority=priority)
            budget.enqueue(waiter, now)
            queued.append(waiter)
        elif op == "wait":
            now += value / 100
        elif op == "finish" and in_flight:
            finished = in_flight.pop(value % len(in_flight))
            assert finished.reservation is not None
            budget.reconcile(finished.reservation, now, total_tokens=finished.prompt_tokens)
        elif op == "abandon" and queued:
            target = queued[value % len(queued)]
            held = budget.abandon(target)
            assert held is target.reservation
            if held is not None and target in in_flight:
                budget.release(held, now)
                in_flight.remove(target)
        grant()
        assert budget.waiting == sum(1 for w in queued if w.reservation is None and not w.abandoned)

    # Within a priority, admission follows arrival.
    for level in Priority:
        seqs = [w.seq for w in order if w.priority is level]
        assert seqs == sorted(seqs)

    # Once arrivals stop and calls finish, everyone still waiting is served in bounded time.
    for _ in range(len(queued) + 1):
        for waiter in in_flight:
            assert waiter.reservation is not None
            budget.reconcile(waiter.reservation, now, total_tokens=waiter.prompt_tokens)
        in_flight.clear()
        wake = budget.next_wake(now)
        if math.isinf(wake):
            break
        now = max(now, wake)
        grant()
    assert budget.waiting == 0
    assert all(w.reservation is not None or w.abandoned for w in queued)


def test_a_budget_ignores_a_reservation_it_did_not_make() -> None:
    """A restarted limiter starts with fresh budgets; late answers for calls the old one
    admitted must not free slots the new one never gave."""
    old = Budget(DeploymentLimits(max_concurrency=1), now=0.0)
    new = Budget(DeploymentLimits(max_concurrency=1), now=0.0)
    stale = old.try_reserve(1.0, 0.0)
    assert stale is not None
    current = new.try_reserve(1.0, 0.0)
    assert current is not None
    new.reconcile(stale, 0.0, total_tokens=1)
    new.release(stale, 0.0)
    assert new.in_flight == 1
    assert new.try_reserve(1.0, 0.0) is None
