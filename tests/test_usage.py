"""The usage tracker: tokens and cost per role, model and run, prices from genai-prices and
LiteLLM's cost map (cached-token prices included), safe from many threads; limits."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from limelight._models import litellm_cost_map
from limelight.errors import ConfigError
from limelight.models import ModelProfile, register_model
from limelight.schemas import Usage
from limelight.usage import (
    DEFAULT_ROLE,
    UsageLimits,
    check_limits,
    configure_usage,
    cost_of,
    get_cost_by_role,
    get_run_usage,
    get_tokens_by_role,
    get_total_cost,
    get_usage_summary,
    model_price,
    print_usage_summary,
    record_usage,
    reset_usage,
    usage_run,
)


@pytest.fixture(autouse=True)
def fresh_tracker() -> Iterator[None]:
    reset_usage()
    configure_usage(enabled=True)
    yield
    configure_usage(enabled=True)
    reset_usage()


def genai_cost(model: str, prompt: int, completion: int, cached: int = 0) -> float:
    usage = PriceUsage(input_tokens=prompt, output_tokens=completion, cache_read_tokens=cached)
    return float(calc_price(usage, model).total_price)


def test_cost_comes_from_genai_prices() -> None:
    usage = Usage.of(1200, 345)
    cost = record_usage(usage, model="gpt-4o-mini", role="executor")
    assert cost == pytest.approx(genai_cost("gpt-4o-mini", 1200, 345))
    assert get_total_cost() == pytest.approx(cost)
    price = model_price("gpt-4o-mini")
    assert price is not None
    assert price.source == "genai-prices"


def test_cached_tokens_are_priced_as_cache_reads() -> None:
    usage = Usage.of(1000, 100)
    full = cost_of(usage, "gpt-4o-mini")
    cached = cost_of(usage, "gpt-4o-mini", cached_tokens=600)
    assert full is not None
    assert cached is not None
    assert cached < full
    assert cached == pytest.approx(genai_cost("gpt-4o-mini", 1000, 100, cached=600))
    recorded = record_usage(usage, model="gpt-4o-mini", cached_tokens=600)
    assert recorded == pytest.approx(cached)
    reported = Usage(
        prompt_tokens=1000, completion_tokens=100, total_tokens=1100, cached_tokens=600
    )
    assert record_usage(reported, model="gpt-4o-mini") == pytest.approx(cached)
    assert get_usage_summary().total.cached_tokens == 1200


def test_a_provider_prefix_is_understood() -> None:
    assert cost_of(Usage.of(10, 10), "openai/gpt-4o-mini") == pytest.approx(
        genai_cost("gpt-4o-mini", 10, 10)
    )


def test_litellm_cost_map_prices_what_genai_prices_does_not_know() -> None:
    """A chat model in LiteLLM's map that genai-prices cannot find, picked from the data."""
    for name, entry in litellm_cost_map().items():
        if not (isinstance(entry, dict) and entry.get("mode") == "chat" and "/" not in name):
            continue
        if not isinstance(entry.get("input_cost_per_token"), float):
            continue
        try:
            calc_price(PriceUsage(input_tokens=1, output_tokens=1), name)
        except LookupError:
            break
    else:
        pytest.fail("every chat model of LiteLLM's map is known to genai-prices")
    price = model_price(name)
    assert price is not None
    assert price.source == "litellm"
    usage = Usage.of(2000, 300)
    expected = 2000 * entry["input_cost_per_token"] + 300 * entry["output_cost_per_token"]
    assert cost_of(usage, name) == pytest.approx(expected)


def test_a_registered_profile_names_its_own_price() -> None:
    register_model(
        ModelProfile(name="acme-ft-7", context_window=4096, input_price=3.0, output_price=9.0)
    )
    cost = record_usage(Usage.of(1_000, 2_000), model="acme-ft-7", role="optimizer")
    assert cost == pytest.approx((1_000 * 3.0 + 2_000 * 9.0) / 1_000_000)


def test_unknown_models_are_counted_but_not_priced() -> None:
    assert record_usage(Usage.of(5, 7), model="/models/my-local-llama", role="x") is None
    totals = get_usage_summary().by_role["x"]
    assert totals.calls == 1
    assert totals.unpriced_calls == 1
    assert totals.cost == 0.0
    assert totals.total_tokens == 12


def test_a_given_cost_wins() -> None:
    assert record_usage(Usage.of(1, 1), model="gpt-4o-mini", cost=0.5) == 0.5
    assert get_total_cost() == 0.5


def test_totals_per_role_model_and_run() -> None:
    record_usage(Usage.of(100, 10), model="gpt-4o-mini", role="executor", run_id="r1")
    record_usage(Usage.of(200, 20), model="gpt-4o", role="executor", run_id="r1")
    record_usage(Usage.of(300, 30), model="gpt-4o-mini", role="optimizer", run_id="r2")
    with usage_run("r3"):
        record_usage(Usage.of(1, 1), model="gpt-4o-mini")  # no role: the default role
    record_usage(Usage.of(1, 1), model="gpt-4o-mini")  # outside the block: no run

    tokens = get_tokens_by_role()
    assert tokens["executor"] == Usage.of(300, 30)
    assert tokens["optimizer"] == Usage.of(300, 30)
    assert tokens[DEFAULT_ROLE] == Usage.of(2, 2)
    costs = get_cost_by_role()
    assert costs["executor"] == pytest.approx(
        genai_cost("gpt-4o-mini", 100, 10) + genai_cost("gpt-4o", 200, 20)
    )
    assert sum(costs.values()) == pytest.approx(get_total_cost())
    summary = get_usage_summary()
    assert summary.by_model["gpt-4o-mini"].calls == 4
    assert summary.by_model["gpt-4o"].prompt_tokens == 200
    assert set(summary.by_run) == {"r1", "r2", "r3"}
    assert get_run_usage("r1").total_tokens == 330
    assert get_run_usage("r3").calls == 1
    assert get_run_usage("never").calls == 0
    assert summary.total.calls == 5


def test_disabled_records_nothing_and_reset_forgets() -> None:
    record_usage(Usage.of(1, 1), model="gpt-4o-mini")
    configure_usage(enabled=False)
    record_usage(Usage.of(1000, 1000), model="gpt-4o-mini")
    assert get_usage_summary().total.calls == 1
    configure_usage(enabled=True)
    reset_usage()
    assert get_usage_summary().total.calls == 0
    assert get_total_cost() == 0.0


def test_sixteen_threads_record_exactly() -> None:
    barrier = threading.Barrier(16)

    def work(i: int) -> None:
        barrier.wait()
        for n in range(500):
            record_usage(
                Usage.of(3, 2), model="gpt-4o-mini", role=f"role-{i % 4}", run_id=str(n % 5)
            )

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary = get_usage_summary()
    assert summary.total.calls == 8000
    assert summary.total.total_tokens == 8000 * 5
    assert {r: t.calls for r, t in summary.by_role.items()} == {f"role-{i}": 2000 for i in range(4)}
    assert all(t.calls == 1600 for t in summary.by_run.values())
    single = cost_of(Usage.of(3, 2), "gpt-4o-mini")
    assert single is not None
    assert summary.total.cost == pytest.approx(8000 * single)


def test_bad_records_are_refused() -> None:
    with pytest.raises(ConfigError, match="takes a Usage"):
        record_usage({"prompt_tokens": 1}, model="m")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cost"):
        record_usage(Usage.of(1, 1), model="m", cost=-1.0)
    with pytest.raises(ConfigError, match="run_id"), usage_run(""):
        pass


def test_print_usage_summary_is_a_table() -> None:
    record_usage(Usage.of(1234, 56), model="gpt-4o-mini", role="executor")
    record_usage(Usage.of(7, 8), model="/models/local", role="metaoptimizer")
    out = io.StringIO()
    print_usage_summary(file=out, width=160)
    text = out.getvalue()
    for expected in ("executor", "metaoptimizer", "gpt-4o-mini", "/models/local", "1234"):
        assert expected in text
    assert "1 unpriced" in text
    assert f"{get_total_cost():.6f}" in text


def test_limits() -> None:
    assert check_limits(None, 10**9, 10**9) is None
    assert check_limits(UsageLimits(), 10**9, 10**9) is None
    tokens = UsageLimits(max_tokens=100)
    assert check_limits(tokens, 99, None) is None
    reason = check_limits(tokens, 100, None)
    assert reason is not None
    assert "100 tokens" in reason
    assert "max_tokens" in reason
    cost = UsageLimits(max_cost=0.01)
    assert check_limits(cost, 10**6, 0.009) is None
    assert check_limits(cost, 0, None) is None  # an unknown cost passes no cost limit
    reason = check_limits(cost, 0, 0.02)
    assert reason is not None
    assert "max_cost" in reason
    with pytest.raises(ConfigError):
        UsageLimits(max_tokens=0)
    with pytest.raises(ConfigError):
        UsageLimits(max_cost=-1)


def test_genai_prices_decimal_matches_float_cost() -> None:
    """Our float arithmetic agrees with genai-prices' Decimal result to the cent's billionth."""
    usage = Usage.of(123_457, 98_765)
    exact = calc_price(PriceUsage(input_tokens=123_457, output_tokens=98_765), "gpt-4o")
    ours = cost_of(usage, "gpt-4o")
    assert ours is not None
    assert abs(Decimal(repr(ours)) - exact.total_price) < Decimal("1e-9")
