"""The simulator's quota arithmetic: OpenAI-style refilling buckets, driven by a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from limelight._buckets import Bucket
from limelight.errors import ConfigError
from limelight.schemas import CompletionRequest, Message
from limelight.sim import (
    Outcome,
    Quota,
    SimEngine,
    SimulatedConfig,
    format_duration,
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-1, "0s"),
        (0.0001, "1ms"),
        (0.12, "120ms"),
        (0.9994, "1s"),
        (1, "1s"),
        (1.5, "1.5s"),
        (8.64, "8.64s"),
        (59.999, "59.999s"),
        (60, "1m0s"),
        (360, "6m0s"),
        (61.25, "1m1.25s"),
        (3600, "1h0m0s"),
        (3723, "1h2m3s"),
    ],
)
def test_format_duration_writes_openai_style(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_bucket_starts_full_and_refills_at_limit_per_minute() -> None:
    bucket = Bucket(60, now=0.0)
    assert bucket.level(0.0) == 60
    bucket.take(60, 0.0)
    assert bucket.level(0.0) == 0
    assert bucket.level(1.0) == pytest.approx(1.0)  # 60 per minute: 1 per second
    assert bucket.level(30.0) == pytest.approx(30.0)
    assert bucket.level(500.0) == 60  # never above the limit
    assert bucket.reset_time(500.0) == 0


def test_bucket_wait_time_and_reset_time() -> None:
    bucket = Bucket(120, now=0.0)  # 2 per second
    bucket.take(120, 0.0)
    assert bucket.wait_time(10, 0.0) == pytest.approx(5.0)
    assert bucket.reset_time(0.0) == pytest.approx(60.0)
    assert not bucket.can_take(10, 4.9)
    assert bucket.can_take(10, 5.0)


def test_bucket_ignores_a_clock_going_backwards() -> None:
    bucket = Bucket(60, now=100.0)
    bucket.take(30, 100.0)
    assert bucket.level(50.0) == pytest.approx(30.0)
    assert bucket.level(101.0) == pytest.approx(31.0)


def test_bucket_rejects_a_limit_below_one() -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        Bucket(0, now=0.0)


def test_a_cost_admitted_within_the_slack_empties_the_bucket_never_below() -> None:
    clock = FakeClock(0.0)
    quota = Quota(tpm=60, clock=clock)  # 1 token per second
    assert quota.try_acquire(60).admitted
    clock.now = 10 - 5e-10  # a hair short of 10 tokens, within the arithmetic's slack
    decision = quota.try_acquire(10)
    assert decision.admitted
    assert decision.headers["x-ratelimit-remaining-tokens"] == "0"
    assert decision.headers["x-ratelimit-reset-tokens"] == "1m0s"


def test_requests_quota_refuses_after_the_limit_with_openai_headers() -> None:
    clock = FakeClock()
    quota = Quota(rpm=3, clock=clock)
    admitted = [quota.try_acquire(10) for _ in range(3)]
    assert all(d.admitted for d in admitted)
    assert [d.headers["x-ratelimit-remaining-requests"] for d in admitted] == ["2", "1", "0"]
    refused = quota.try_acquire(10)
    assert not refused.admitted
    assert refused.limited_by == "requests"
    assert (refused.limit, refused.used, refused.requested) == (3, 3, 1)
    assert refused.retry_after == pytest.approx(20.0)  # 3 per minute: one every 20 s
    assert refused.headers["retry-after"] == "20"
    assert refused.headers["retry-after-ms"] == "20000"
    assert refused.headers["x-ratelimit-limit-requests"] == "3"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"] == "1m0s"
    assert "x-ratelimit-limit-tokens" not in refused.headers  # no tpm set
    clock.advance(19.9)
    assert not quota.try_acquire(10).admitted
    clock.advance(0.1)
    assert quota.try_acquire(10).admitted


def test_tokens_quota_charges_the_estimate_and_refuses_when_short() -> None:
    clock = FakeClock()
    quota = Quota(tpm=600, clock=clock)  # 10 tokens per second
    assert quota.try_acquire(500).admitted
    decision = quota.try_acquire(200)
    assert not decision.admitted
    assert decision.limited_by == "tokens"
    assert (decision.limit, decision.used, decision.requested) == (600, 500, 200)
    assert decision.retry_after == pytest.approx(10.0)
    assert decision.headers["x-ratelimit-remaining-tokens"] == "100"
    assert decision.headers["x-ratelimit-reset-tokens"] == "50s"
    assert decision.headers["retry-after-ms"] == "10000"


def test_a_refused_request_charges_nothing() -> None:
    clock = FakeClock()
    quota = Quota(rpm=10, tpm=100, clock=clock)
    assert quota.try_acquire(90).admitted
    for _ in range(5):
        assert not quota.try_acquire(50).admitted  # tokens refuse; requests untouched
    headers = quota.headers()
    assert headers["x-ratelimit-remaining-requests"] == "9"
    assert headers["x-ratelimit-remaining-tokens"] == "10"


def test_a_request_larger_than_the_tokens_limit_can_never_pass() -> None:
    quota = Quota(tpm=100, clock=FakeClock())
    decision = quota.try_acquire(101)
    assert not decision.admitted
    assert decision.too_large
    assert decision.retry_after is None
    assert "retry-after" not in decision.headers


def test_concurrency_cap_refuses_until_a_slot_is_released() -> None:
    clock = FakeClock()
    quota = Quota(max_concurrency=2, clock=clock)
    first = quota.try_acquire(1, expected_duration=5.0)
    second = quota.try_acquire(1, expected_duration=3.0)
    assert first.admitted
    assert second.admitted
    assert quota.in_flight == 2
    refused = quota.try_acquire(1)
    assert not refused.admitted
    assert refused.limited_by == "concurrency"
    assert refused.retry_after == pytest.approx(3.0)  # when the soonest one should end
    assert second.ticket is not None
    quota.release(second.ticket)
    quota.release(second.ticket)  # twice is harmless
    assert quota.in_flight == 1
    assert quota.try_acquire(1).admitted


def test_no_limits_admit_everything_without_headers() -> None:
    quota = Quota(clock=FakeClock())
    decisions = [quota.try_acquire(10**9) for _ in range(1000)]
    assert all(d.admitted for d in decisions)
    assert quota.headers() == {}


def _plan(engine: SimEngine) -> Outcome:
    return engine.plan(CompletionRequest(messages=[Message.user("hi")], max_tokens=4)).outcome


def test_engine_refusal_carries_openai_429_body() -> None:
    clock = FakeClock()
    engine = SimEngine(
        SimulatedConfig(rpm=2, ttft=0, tokens_per_second=None, output_tokens=4), clock=clock
    )
    assert [_plan(engine), _plan(engine)] == [Outcome.OK, Outcome.OK]
    plan = engine.plan(CompletionRequest(model="gpt-x", messages=[Message.user("hi")]))
    assert plan.outcome is Outcome.RATE_LIMITED
    assert plan.status == 429
    assert plan.error == {
        "error": {
            "message": (
                "Rate limit reached for gpt-x in organization org-sim on requests per min "
                "(RPM): Limit 2, Used 2, Requested 1. Please try again in 30s. "
                "(limelight simulator)"
            ),
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert plan.retry_after == pytest.approx(30.0)
    assert plan.headers["retry-after"] == "30"


def test_engine_tokens_refusal_names_tpm() -> None:
    clock = FakeClock()
    # "hi" is 1 prompt token; max_tokens 4: each request costs 5 of 10 tokens per minute.
    engine = SimEngine(SimulatedConfig(tpm=10, ttft=0, output_tokens=4), clock=clock)
    assert [_plan(engine), _plan(engine)] == [Outcome.OK, Outcome.OK]
    plan = engine.plan(CompletionRequest(messages=[Message.user("hi")], max_tokens=4))
    assert plan.outcome is Outcome.RATE_LIMITED
    assert plan.error is not None
    assert plan.error["error"]["type"] == "tokens"
    assert (
        "on tokens per min (TPM): Limit 10, Used 10, Requested 5."
        in (plan.error["error"]["message"])
    )


_steps = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=30.0, allow_nan=False),  # time passing before
        st.integers(min_value=1, max_value=400),  # token cost
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=200, deadline=None)
@given(
    rpm=st.integers(min_value=1, max_value=50),
    tpm=st.integers(min_value=1, max_value=2000),
    steps=_steps,
)
def test_never_admits_more_than_burst_plus_refill_in_any_window(
    rpm: int, tpm: int, steps: list[tuple[float, int]]
) -> None:
    clock = FakeClock(0.0)
    quota = Quota(rpm=rpm, tpm=tpm, clock=clock)
    admitted: list[tuple[float, int]] = []
    for dt, cost in steps:
        clock.advance(dt)
        decision = quota.try_acquire(cost)
        if decision.admitted:
            admitted.append((clock.now, cost))
    for i, (start, _) in enumerate(admitted):
        tokens = 0
        for count, (end, cost) in enumerate(admitted[i:], start=1):
            tokens += cost
            window = end - start
            # Burst (a full bucket) plus what refills during the window, and no more.
            assert count <= rpm + rpm * window / 60 + 1e-6
            assert tokens <= tpm + tpm * window / 60 + 1e-6
            if window <= 60:
                assert count <= 2 * rpm
                assert tokens <= 2 * tpm


@settings(max_examples=200, deadline=None)
@given(
    rpm=st.integers(min_value=1, max_value=50),
    tpm=st.integers(min_value=1, max_value=2000),
    steps=_steps,
)
def test_waiting_retry_after_then_admits(
    rpm: int, tpm: int, steps: list[tuple[float, int]]
) -> None:
    clock = FakeClock(0.0)
    quota = Quota(rpm=rpm, tpm=tpm, clock=clock)
    for dt, cost in steps:
        clock.advance(dt)
        decision = quota.try_acquire(cost)
        if decision.admitted or decision.too_large:
            continue
        assert decision.retry_after is not None
        assert decision.retry_after > 0
        # Not admitted a little before the hint (unless the hint is tiny)...
        if decision.retry_after > 1e-3:
            clock.advance(decision.retry_after * 0.5)
            assert not quota.try_acquire(cost).admitted
            clock.advance(decision.retry_after * 0.5)
        else:
            clock.advance(decision.retry_after)
        # ...and admitted once it has passed: the hint is neither early nor late.
        assert quota.try_acquire(cost).admitted


def test_headers_report_remaining_and_reset_as_the_bucket_refills() -> None:
    clock = FakeClock()
    quota = Quota(rpm=60, tpm=6000, clock=clock)
    quota.try_acquire(3000)
    headers = quota.headers()
    assert headers["x-ratelimit-remaining-requests"] == "59"
    assert headers["x-ratelimit-remaining-tokens"] == "3000"
    assert headers["x-ratelimit-reset-requests"] == "1s"
    assert headers["x-ratelimit-reset-tokens"] == "30s"
    clock.advance(15)
    headers = quota.headers()
    assert headers["x-ratelimit-remaining-requests"] == "60"
    assert headers["x-ratelimit-remaining-tokens"] == "4500"
    assert headers["x-ratelimit-reset-tokens"] == "15s"


def test_refusal_hint_covers_both_limits_and_names_the_binding_one() -> None:
    clock = FakeClock()
    quota = Quota(rpm=1, tpm=600, clock=clock)  # one request a minute, 10 tokens a second
    assert quota.try_acquire(500).admitted
    # Requests free up in 60 s, tokens in 40 s: requests bind.
    decision = quota.try_acquire(500)
    assert decision.limited_by == "requests"
    assert decision.retry_after == pytest.approx(60.0)
    clock.advance(60)
    assert quota.try_acquire(600).admitted
    # 30 s later both buckets are half full: each needs 30 s more.
    clock.advance(30)
    decision = quota.try_acquire(600)
    assert decision.retry_after == pytest.approx(30.0)
    quota2 = Quota(rpm=60, tpm=60, clock=clock)
    assert quota2.try_acquire(60).admitted
    decision = quota2.try_acquire(30)  # a request is free in 0 s, 30 tokens in 30 s
    assert decision.limited_by == "tokens"
    assert decision.retry_after == pytest.approx(30.0)
