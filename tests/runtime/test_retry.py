"""RetryPolicy: attempts, what is retried, the backoff sequence and its jitter, server-given
delays, and never sleeping past the caller's deadline (virtual time on trio)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from limelight.errors import BadRequest, RateLimited, ServerError
from limelight.runtime import ConfigError, DeadlineExceeded, RetryPolicy
from limelight.runtime._retry import pushback

pytestmark = pytest.mark.anyio
VIRTUAL_TIME = True  # trio runs these on a MockClock (conftest.py)


@pytest.fixture
def unit(virtual_time: bool) -> float:
    """One "second" of backoff: a real one in virtual time, a millisecond in real time."""
    return 1.0 if virtual_time else 0.001


class Flaky:
    """Fails with the given errors, one per call, then returns "ok"; records when it ran."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls: list[float] = []

    async def __call__(self) -> str:
        self.calls.append(anyio.current_time())
        if self.errors:
            raise self.errors.pop(0)
        return "ok"

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.calls, self.calls[1:], strict=False)]


# -- attempts and what is retried ----------------------------------------------------------


async def test_retries_until_success_and_counts_attempts(unit: float) -> None:
    func = Flaky(ConnectionError("reset"), TimeoutError("slow"))
    policy = RetryPolicy(attempts=3, initial_delay=unit, jitter=0)
    assert await policy.run(func) == "ok"
    assert len(func.calls) == 3


async def test_gives_up_after_the_last_attempt_with_a_note(unit: float) -> None:
    errors = [ConnectionError(f"reset {i}") for i in range(5)]
    func = Flaky(*errors)
    policy = RetryPolicy(attempts=3, initial_delay=unit, jitter=0)
    with pytest.raises(ConnectionError) as info:
        await policy.run(func)
    assert info.value is errors[2]  # the last error, as it was raised
    assert info.value.__notes__ == ["gave up after 3 attempts"]
    assert len(func.calls) == 3


async def test_one_attempt_means_no_retry() -> None:
    func = Flaky(ConnectionError("reset"))
    with pytest.raises(ConnectionError):
        await RetryPolicy(attempts=1).run(func)
    assert len(func.calls) == 1


@pytest.mark.parametrize(
    "error",
    [
        ValueError("a bug"),
        BadRequest("bad", status_code=400),
        KeyError("missing"),
    ],
)
async def test_non_retryable_errors_are_raised_at_once(error: Exception) -> None:
    func = Flaky(error)
    with pytest.raises(type(error)) as info:
        await RetryPolicy(attempts=5, initial_delay=0).run(func)
    assert info.value is error
    assert len(func.calls) == 1
    assert not getattr(error, "__notes__", [])


@pytest.mark.parametrize(
    "error",
    [
        ConnectionError("reset"),
        TimeoutError("slow"),
        ServerError("503", status_code=503),
        RateLimited("429", status_code=429),
    ],
)
async def test_retryable_by_default(error: Exception) -> None:
    func = Flaky(error)
    assert await RetryPolicy(attempts=2, initial_delay=0, respect_retry_after=False).run(func)
    assert len(func.calls) == 2


async def test_retry_on_a_tuple_of_types_replaces_the_default() -> None:
    policy = RetryPolicy(attempts=3, initial_delay=0, retry_on=(KeyError,))
    assert await policy.run(Flaky(KeyError("a"), KeyError("b"))) == "ok"
    func = Flaky(ConnectionError("retryable by default, but not listed"))
    with pytest.raises(ConnectionError):
        await policy.run(func)
    assert len(func.calls) == 1


async def test_retry_on_a_predicate() -> None:
    policy = RetryPolicy(attempts=3, initial_delay=0, retry_on=lambda e: "again" in str(e))
    assert await policy.run(Flaky(ValueError("try again"), RuntimeError("again"))) == "ok"
    func = Flaky(ValueError("final"))
    with pytest.raises(ValueError, match="final"):
        await policy.run(func)
    assert len(func.calls) == 1


async def test_cancellation_is_not_retried() -> None:
    calls = []

    async def waits() -> None:
        calls.append(1)
        await anyio.sleep_forever()

    with anyio.CancelScope() as scope:
        scope.cancel()
        await RetryPolicy(attempts=5, initial_delay=0, retry_on=lambda e: True).run(waits)
    assert scope.cancelled_caught
    assert calls == [1]


# -- backoff -------------------------------------------------------------------------------


def test_backoff_without_jitter_is_exponential_and_capped() -> None:
    policy = RetryPolicy(initial_delay=0.5, multiplier=3.0, max_delay=10.0, jitter=0)
    assert [policy.backoff(n) for n in range(1, 6)] == [0.5, 1.5, 4.5, 10.0, 10.0]
    assert RetryPolicy(initial_delay=2.0, multiplier=1.0, jitter=0).backoff(7) == 2.0


async def test_sleeps_follow_the_backoff(virtual_time: bool, unit: float) -> None:
    func = Flaky(*(ConnectionError() for _ in range(5)))
    policy = RetryPolicy(
        attempts=6, initial_delay=unit, multiplier=2.0, max_delay=5 * unit, jitter=0
    )
    assert await policy.run(func) == "ok"
    assert len(func.calls) == 6
    if virtual_time:
        assert func.gaps() == pytest.approx([1.0, 2.0, 4.0, 5.0, 5.0])


@given(
    seed=st.integers(0, 2**32),
    jitter=st.floats(0, 1),
    initial=st.floats(0, 10),
    multiplier=st.floats(1, 4),
    retry=st.integers(1, 12),
)
def test_jitter_stays_within_bounds_and_is_reproducible(
    seed: int, jitter: float, initial: float, multiplier: float, retry: int
) -> None:
    def policy() -> RetryPolicy:
        return RetryPolicy(
            initial_delay=initial,
            multiplier=multiplier,
            max_delay=30.0,
            jitter=jitter,
            rng=random.Random(seed),
        )

    base = min(30.0, initial * multiplier ** (retry - 1))
    delay = policy().backoff(retry)
    assert base * (1 - jitter) <= delay <= base
    assert policy().backoff(retry) == delay  # the same seed, the same delay


def test_backoff_after_a_very_long_run_of_failures_is_the_cap() -> None:
    # 2.0 ** 1100 overflows a float: a long outage must not crash the caller.
    assert RetryPolicy(initial_delay=1.0, max_delay=60.0, jitter=0).backoff(1100) == 60.0
    policy = RetryPolicy(initial_delay=1.0, max_delay=60.0, jitter=0.5, rng=random.Random(1))
    assert 30.0 <= policy.backoff(5000) <= 60.0


def test_jitter_varies_between_draws() -> None:
    policy = RetryPolicy(initial_delay=1.0, jitter=1.0, rng=random.Random(7))
    delays = {policy.backoff(1) for _ in range(20)}
    assert len(delays) == 20
    assert all(0 <= d <= 1.0 for d in delays)


# -- server-given delays -------------------------------------------------------------------


async def test_a_longer_server_delay_is_honoured(virtual_time: bool, unit: float) -> None:
    func = Flaky(RateLimited("quota", status_code=429, retry_after=20 * unit))
    policy = RetryPolicy(attempts=2, initial_delay=unit, max_delay=30 * unit, jitter=0)
    assert policy.delay_for(1, func.errors[0]) == 20 * unit
    assert await policy.run(func) == "ok"
    if virtual_time:
        assert func.gaps() == [20.0]


@pytest.mark.parametrize("server", [0.0, 0.5])
async def test_a_shorter_server_delay_does_not_shorten_the_backoff(
    virtual_time: bool, unit: float, server: float
) -> None:
    """``Retry-After: 0`` (or anything shorter than the backoff) still backs off: a server
    that is failing is not hammered (11 POSTs in 17 ms were measured before this rule)."""
    errors = [RateLimited("quota", status_code=429, retry_after=server * unit) for _ in range(3)]
    func = Flaky(*errors)
    policy = RetryPolicy(attempts=4, initial_delay=unit, multiplier=2.0, jitter=0)
    assert [policy.delay_for(n, e) for n, e in enumerate(errors, 1)] == [unit, 2 * unit, 4 * unit]
    assert await policy.run(func) == "ok"
    if virtual_time:
        assert func.gaps() == [1.0, 2.0, 4.0]
    else:
        waits = [unit, 2 * unit, 4 * unit]
        assert all(gap >= wait - 1e-6 for gap, wait in zip(func.gaps(), waits, strict=True))


@given(
    server=st.one_of(st.none(), st.floats(0, 1e6)),
    backoff=st.floats(0, 1e6),
)
def test_pushback_lengthens_the_backoff_and_never_shortens_it(
    server: float | None, backoff: float
) -> None:
    wait = pushback(server, backoff)
    assert wait >= backoff
    assert wait == (backoff if server is None else max(server, backoff))


@pytest.mark.parametrize("retry_after", [None, 0.0, 0.3, 2.5, 100.0])
def test_delay_is_the_backoff_lengthened_by_the_server(retry_after: float | None) -> None:
    def policy(**options: Any) -> RetryPolicy:
        return RetryPolicy(initial_delay=0.5, max_delay=8.0, rng=random.Random(5), **options)

    for retry in range(1, 7):
        backoff = policy().backoff(retry)
        expected = backoff if retry_after is None else max(retry_after, backoff)
        assert policy().delay(retry, retry_after) == expected
        assert policy(respect_retry_after=False).delay(retry, retry_after) == backoff
        error = RateLimited("quota", status_code=429, retry_after=retry_after)
        assert policy().delay_for(retry, error) == expected


def test_a_jittered_backoff_is_the_floor_of_a_zero_server_delay() -> None:
    policy = RetryPolicy(initial_delay=0.25, jitter=0.5, rng=random.Random(3))
    expected = RetryPolicy(initial_delay=0.25, jitter=0.5, rng=random.Random(3)).backoff(1)
    error = RateLimited("quota", status_code=429, retry_after=0.0)
    assert policy.delay_for(1, error) == expected
    assert 0.125 <= expected <= 0.25


async def test_server_delay_ignored_when_not_respected(virtual_time: bool, unit: float) -> None:
    error = RateLimited("quota", status_code=429, retry_after=20 * unit)
    func = Flaky(error)
    policy = RetryPolicy(
        attempts=2, initial_delay=unit, max_delay=30 * unit, jitter=0, respect_retry_after=False
    )
    assert policy.delay_for(1, error) == unit
    assert await policy.run(func) == "ok"
    if virtual_time:
        assert func.gaps() == [1.0]


async def test_server_delay_longer_than_max_delay_ends_the_retries(virtual_time: bool) -> None:
    error = RateLimited("quota", status_code=429, retry_after=60.0)
    func = Flaky(error)
    before = anyio.current_time()
    with pytest.raises(RateLimited) as info:
        await RetryPolicy(attempts=5, max_delay=30.0).run(func)
    assert info.value is error
    assert len(func.calls) == 1
    assert any("more than max_delay" in note for note in info.value.__notes__)
    if virtual_time:
        assert anyio.current_time() == before


@pytest.mark.parametrize("retry_after", [-1.0, "soon", None])
def test_invalid_server_delays_fall_back_to_the_backoff(retry_after: Any) -> None:
    error = ConnectionError()
    error.retry_after = retry_after  # type: ignore[attr-defined]
    policy = RetryPolicy(initial_delay=0.25, jitter=0)
    assert policy.delay_for(1, error) == 0.25


# -- deadlines -----------------------------------------------------------------------------


@pytest.mark.parametrize("scope_kind", ["move_on_after", "fail_after"])
async def test_never_sleeps_past_the_deadline(virtual_time: bool, scope_kind: str) -> None:
    error = ConnectionError("reset")
    func = Flaky(error)
    policy = RetryPolicy(attempts=5, initial_delay=5.0, jitter=0)
    scope_factory: Callable[[float], Any] = getattr(anyio, scope_kind)
    before = anyio.current_time()
    with scope_factory(1.0) as scope, pytest.raises(DeadlineExceeded) as info:
        await policy.run(func)
    assert not scope.cancelled_caught  # it did not sleep until the scope ran out
    assert info.value.__cause__ is error
    assert isinstance(info.value, TimeoutError)
    assert "would wait 5.000 s" in str(info.value)
    assert len(func.calls) == 1
    if virtual_time:
        assert anyio.current_time() == before


async def test_retries_that_fit_run_and_the_first_that_does_not_raises(virtual_time: bool) -> None:
    scale = 1.0 if virtual_time else 0.01
    errors = [ConnectionError(f"reset {i}") for i in range(10)]
    func = Flaky(*errors)
    policy = RetryPolicy(attempts=10, initial_delay=scale, multiplier=2.0, jitter=0)
    before = anyio.current_time()
    with anyio.fail_after(10 * scale), pytest.raises(DeadlineExceeded) as info:
        await policy.run(func)
    assert info.value.__cause__ is errors[len(func.calls) - 1]
    if virtual_time:
        # Delays 1, 2, 4 fit in 10; after the fourth failure, 8 more would not.
        assert len(func.calls) == 4
        assert anyio.current_time() - before == pytest.approx(7.0)
    else:
        # In real time the sleeps may overrun a little, so a retry may not fit any more.
        assert 1 <= len(func.calls) <= 4


# -- decorator and configuration -----------------------------------------------------------


async def test_policy_as_a_decorator() -> None:
    calls: list[tuple[int, str]] = []

    @RetryPolicy(attempts=3, initial_delay=0)
    async def fetch(n: int, *, label: str) -> str:
        """Fetches things."""
        calls.append((n, label))
        if len(calls) < 3:
            raise ConnectionError("reset")
        return f"{label}{n}"

    assert await fetch(7, label="item-") == "item-7"
    assert calls == [(7, "item-")] * 3
    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetches things."


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"attempts": 0}, "attempts must be >= 1"),
        ({"initial_delay": -1}, "initial_delay and max_delay"),
        ({"max_delay": -0.5}, "initial_delay and max_delay"),
        ({"multiplier": 0.5}, "multiplier must be >= 1"),
        ({"jitter": 1.5}, "jitter must be between 0 and 1"),
        ({"jitter": -0.1}, "jitter must be between 0 and 1"),
    ],
)
def test_invalid_configuration(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        RetryPolicy(**options)
    assert isinstance(info.value, ValueError)


def test_policies_compare_by_configuration() -> None:
    assert RetryPolicy(attempts=2, rng=random.Random(1)) == RetryPolicy(
        attempts=2, rng=random.Random(2)
    )
    assert RetryPolicy(attempts=2) != RetryPolicy(attempts=3)
