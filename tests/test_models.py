"""Model profiles: matching names, the registry, and where prices come from (the user's
profile, LiteLLM's cost map, genai-prices)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from limelight import _models
from limelight.errors import ConfigError
from limelight.models import ModelProfile, get_model_profile, register_model
from limelight.schemas import Usage


@pytest.fixture(autouse=True)
def own_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Profiles registered here (even over built-in names) are gone after the test."""
    monkeypatch.setattr(_models, "_registry", dict(_models._registry))
    get_model_profile.cache_clear()
    _models._registered_price.cache_clear()
    yield
    monkeypatch.undo()
    get_model_profile.cache_clear()
    _models._registered_price.cache_clear()


def cost_map(monkeypatch: pytest.MonkeyPatch, entries: dict[str, Any]) -> None:
    """Stand in for LiteLLM's cost map."""
    monkeypatch.setattr(_models, "litellm_cost_map", lambda: entries)
    get_model_profile.cache_clear()


@pytest.fixture
def no_cost_map(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_models, "litellm_cost_map", dict)
    get_model_profile.cache_clear()


@pytest.fixture
def no_genai_prices(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry makes `import genai_prices` raise ImportError: the extra not installed.
    monkeypatch.setitem(sys.modules, "genai_prices", None)
    get_model_profile.cache_clear()


def genai_price(model: str) -> tuple[float, float]:
    """What genai-prices itself says, USD per million input and output tokens."""
    genai_prices = pytest.importorskip("genai_prices", reason="needs the usage extra")
    calc = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1_000_000, output_tokens=1_000_000), model
    )
    return float(calc.input_price), float(calc.output_price)


def test_model_profiles_match_dated_and_prefixed_names_and_price_usage() -> None:
    assert get_model_profile("openai/gpt-4o") == get_model_profile("gpt-4o")
    assert get_model_profile("no-such-model") is None
    custom = register_model(
        ModelProfile(
            name="house-model",
            context_window=8_000,
            input_price=1.0,
            output_price=2.0,
            capabilities=frozenset({"tools"}),
        )
    )
    assert get_model_profile("house-model-v2") is custom
    assert custom.cost(Usage.of(1_000_000, 500_000)) == pytest.approx(2.0)
    assert custom.supports("tools")
    assert not custom.supports("vision")
    assert ModelProfile(name="free", context_window=10).cost(Usage.of(1, 1)) is None
    with pytest.raises(ConfigError, match="registered already"):
        register_model(custom, replace=False)
    with pytest.raises(ConfigError, match="context_window"):
        ModelProfile(name="x", context_window=0)
    with pytest.raises(ConfigError, match="input_price"):
        ModelProfile(name="x", context_window=10, input_price=-1)
    with pytest.raises(ConfigError, match="takes a ModelProfile"):
        register_model("gpt-4o")  # type: ignore[arg-type]


@pytest.mark.usefixtures("no_cost_map", "no_genai_prices")
def test_without_litellm_or_genai_prices_builtin_profiles_have_no_prices() -> None:
    profile = get_model_profile("gpt-4o-mini-2024-07-18")
    assert profile is not None
    assert profile.name == "gpt-4o-mini"
    assert profile.context_window == 128_000
    assert profile.supports("tools")
    assert profile.input_price is None
    assert profile.output_price is None
    assert profile.cost(Usage.of(10, 10)) is None


@pytest.mark.usefixtures("no_cost_map")
@pytest.mark.parametrize(
    ("model", "builtin"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai/gpt-4.1", "gpt-4.1"),
        ("claude-sonnet-4", "claude-sonnet-4"),
        ("gemini-2.0-flash", "gemini-2.0-flash"),
    ],
)
def test_without_litellm_prices_come_from_genai_prices(model: str, builtin: str) -> None:
    input_price, output_price = genai_price(model.rsplit("/", 1)[-1])
    profile = get_model_profile(model)
    assert profile is not None
    assert profile.name == builtin
    assert profile.context_window == _models._registry[builtin].context_window
    assert profile.input_price == pytest.approx(input_price)
    assert profile.output_price == pytest.approx(output_price)
    assert input_price > 0
    assert profile.cost(Usage.of(1_000_000, 1_000_000)) == pytest.approx(input_price + output_price)


@pytest.mark.usefixtures("no_cost_map")
def test_prices_the_user_registered_come_before_genai_prices() -> None:
    genai_input, genai_output = genai_price("gpt-4o-mini")
    register_model(
        ModelProfile(name="gpt-4o-mini", context_window=1_000, input_price=7.0, output_price=9.0)
    )
    profile = get_model_profile("gpt-4o-mini")
    assert profile is not None
    assert (profile.input_price, profile.output_price) == (7.0, 9.0)
    assert profile.context_window == 1_000
    # A profile with one price keeps it; the missing one is filled.
    register_model(ModelProfile(name="gpt-4o-mini", context_window=1_000, input_price=7.0))
    profile = get_model_profile("gpt-4o-mini")
    assert profile is not None
    assert profile.input_price == 7.0
    assert profile.output_price == pytest.approx(genai_output)
    assert genai_input != 7.0


def test_a_cost_map_entry_without_prices_takes_them_from_genai_prices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = "gpt-4o-mini-2024-07-18"  # no registered profile of this exact name
    input_price, output_price = genai_price(model)
    cost_map(monkeypatch, {model: {"max_input_tokens": 4_096, "mode": "chat"}})
    profile = get_model_profile(model)
    assert profile is not None
    assert profile.name == model
    assert profile.context_window == 4_096  # the map's window ...
    assert profile.input_price == pytest.approx(input_price)  # ... genai-prices' prices
    assert profile.output_price == pytest.approx(output_price)


def test_genai_prices_come_before_litellms_as_for_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("genai_prices")
    from limelight.usage import model_price

    entry = {
        "max_input_tokens": 4_096,
        "input_cost_per_token": 1e-6,
        "output_cost_per_token": 3e-6,
        "mode": "chat",
    }
    cost_map(monkeypatch, {"gpt-4o-mini": entry, "house-model-z": entry})
    genai = _models._genai_prices(["gpt-4o-mini"])
    assert genai is not None
    assert genai != (1.0, 3.0)  # the stand-in map's prices differ from genai-prices'
    profile = get_model_profile("gpt-4o-mini")
    assert profile is not None
    assert (profile.input_price, profile.output_price) == pytest.approx(genai)
    # The same price a call of that model is charged.
    price = model_price("gpt-4o-mini")
    assert price is not None
    assert (price.input, price.output) == pytest.approx(genai)
    # A model genai-prices does not know is priced from LiteLLM's map.
    assert _models._genai_prices(["house-model-z"]) is None
    local = get_model_profile("house-model-z")
    assert local is not None
    assert (local.input_price, local.output_price) == pytest.approx((1.0, 3.0))
    assert local.context_window == 4_096


@pytest.mark.usefixtures("no_cost_map")
def test_a_model_neither_source_knows_keeps_its_profile_unpriced() -> None:
    register_model(ModelProfile(name="house-finetune-x9", context_window=2_048))
    profile = get_model_profile("house-finetune-x9")
    assert profile is not None
    assert profile.input_price is None
    assert profile.cost(Usage.of(1, 1)) is None


def test_prices_come_from_litellms_cost_map() -> None:
    entry = _models.litellm_cost_map().get("gpt-4o")
    if entry is None:
        pytest.skip("litellm is not installed: no cost map")
    profile = get_model_profile("gpt-4o")
    assert profile is not None
    assert profile.input_price == pytest.approx(entry["input_cost_per_token"] * 1e6)
    assert profile.output_price == pytest.approx(entry["output_cost_per_token"] * 1e6)
    assert profile.cost(Usage.of(1_000_000, 0)) == pytest.approx(profile.input_price)
