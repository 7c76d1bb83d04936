"""Harness runs against targets other than a server: a local MLX model (``mlx:PATH``, the
tiny model the tests build) and a LiteLLM model string, driven offline by LiteLLM's own
``mock_response``; on asyncio and trio."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from limelight.errors import ConfigError
from limelight.harness import (
    BenchConfig,
    ClosedLoop,
    ConstantRate,
    Target,
    Workload,
    open_target,
    run,
)
from limelight.models import get_model_profile

pytestmark = pytest.mark.anyio

ANSWER = "The quick brown fox jumps over the lazy dog."


@pytest.mark.parametrize("kind", ["chat", "stream"])
async def test_a_local_mlx_model(tiny_model: Path, kind: str) -> None:
    config = BenchConfig(
        target=Target(model=f"mlx:{tiny_model}"),
        workload=Workload(kind=kind, prompt_tokens="8", output_tokens="4"),  # type: ignore[arg-type]
        load=ClosedLoop(concurrency=2),
        requests=3,
        slos={"e2el": 60_000},
    )
    result = await run(config)
    s = result.summary
    assert (s.completed, s.failed, s.errors) == (3, 0, {})
    assert result.target == f"mlx:{tiny_model}"
    assert "MLX.stream" in result.client  # the backend itself, no HTTP in between
    requests = [r for r in result.records if r.kind == "request"]
    # The tiny model's random weights may end early, never past max_tokens.
    assert all(1 <= r.output_tokens <= 4 for r in requests)
    assert all(r.prompt_tokens > 0 for r in requests)
    assert s.output_tokens == sum(r.output_tokens for r in requests)
    if kind == "stream":
        assert s.ttft is not None
        assert s.ttft.count == 3
        assert all(r.sent < (r.first or 0) <= (r.end or 0) for r in requests)
    else:
        assert s.ttft is None
    assert s.cost is None  # a local model has no price data


async def test_mlx_conversations_with_explicit_prices(tiny_model: Path) -> None:
    config = BenchConfig(
        target=Target(model=f"mlx:{tiny_model}", price_input=1.0, price_output=2.0),
        workload=Workload(kind="multiturn", turns=2, prompt_tokens="6", output_tokens="3"),
        load=ConstantRate(rate=20.0),
        requests=2,
    )
    result = await run(config)
    s = result.summary
    assert (s.tasks, s.completed, s.failed) == (2, 4, 0)
    requests = [r for r in result.records if r.kind == "request"]
    assert s.cost == pytest.approx(
        sum(r.prompt_tokens + 2 * r.output_tokens for r in requests) / 1e6
    )


def _litellm() -> None:
    if importlib.util.find_spec("litellm") is None:  # importorskip would import it too early
        pytest.skip("pip install 'limelight[litellm]'")


async def test_backend_options_are_for_model_strings_only() -> None:
    target = Target(model="m", base_url="http://127.0.0.1:9/v1", options={"api_base": "x"})
    with pytest.raises(ConfigError, match="backend options"):
        async with open_target(target):
            pass


async def test_a_litellm_model_string_resolves_to_litellm() -> None:
    _litellm()
    from limelight.providers import LiteLLM

    # Opening it sends nothing (no network here): the run's first request would.
    async with open_target(Target(model="gpt-4o-mini")) as target:
        assert isinstance(target.provider, LiteLLM)
        assert target.base_url is None
        assert target.prices is not None


@pytest.mark.parametrize("kind", ["chat", "stream", "agent"])
async def test_a_litellm_model_with_its_mock_response(kind: str) -> None:
    # The model string resolves to LiteLLM, given LiteLLM's mock_response as a backend
    # option: it answers without a network, through LiteLLM's own code.
    _litellm()
    config = BenchConfig(
        target=Target(model="gpt-4o-mini", options={"mock_response": ANSWER}),
        workload=Workload(kind=kind, output_tokens="16", tools=1, max_turns=2),  # type: ignore[arg-type]
        load=ClosedLoop(concurrency=2),
        requests=4,
    )
    result = await run(config)
    s = result.summary
    assert s.failed == 0
    assert s.errors == {}
    assert "LiteLLM" in result.client
    profile = get_model_profile("gpt-4o-mini")
    assert profile is not None
    assert profile.input_price is not None
    assert profile.output_price is not None
    if kind == "agent":
        # The mock answers text: each task ends after one model call.
        assert s.tasks == 4
        assert s.calls == 4
        units = [r for r in result.records if r.kind == "task"]
        assert all(r.ok and r.turns == 1 for r in units)
    else:
        units = [r for r in result.records if r.kind == "request"]
        assert s.completed == 4
        assert (s.ttft is not None) is (kind == "stream")
    assert all(r.output_tokens > 0 for r in units)
    # Priced from LiteLLM's cost map, as a real gpt-4o-mini answer would be.
    expected = sum(
        r.prompt_tokens * profile.input_price + r.output_tokens * profile.output_price
        for r in units
    )
    assert s.cost == pytest.approx(expected / 1e6)
    assert s.cost is not None
    assert s.cost > 0
