"""What each model takes and costs: model profiles and prices.

This is the pure core behind :mod:`limelight.models` and the price lookup of
:mod:`limelight.usage`.

A profile says what a model can take (context window), what it costs and what it can do, in
a registry the user can extend. Conversations truncate to the context window; agents and
the usage tracker price calls with :func:`cost_of`.

Price lists are not kept here: prices come from profiles the user registers, else
genai-prices (the ``usage`` extra), else LiteLLM's model cost map when LiteLLM is installed
(read as a JSON file, without importing LiteLLM). The built-in profiles only say the context
window and capabilities (and, for reasoning and embedding models, the reasoning efforts and
the vector length).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

import msgspec

from .errors import ConfigError
from .schemas import Usage

__all__ = [
    "BUILTIN_PROFILES",
    "ModelProfile",
    "Price",
    "clear_price_cache",
    "cost_of",
    "get_model_profile",
    "litellm_cost_map",
    "model_price",
    "model_profiles",
    "register_model",
]


class ModelProfile(msgspec.Struct, frozen=True, kw_only=True):
    """What limelight knows about one model.

    :ivar name: the model name, or a prefix of dated variants (``gpt-4o`` matches
        ``gpt-4o-2024-08-06``).
    :ivar context_window: tokens of prompt plus answer the model accepts.
    :ivar max_output_tokens: the most tokens one answer may have, when limited.
    :ivar input_price: USD per million prompt tokens (``None``: unknown).
    :ivar output_price: USD per million completion tokens (``None``: unknown).
    :ivar capabilities: e.g. ``tools``, ``vision``, ``json_schema``, ``streaming``,
        ``embeddings``.
    :ivar reasoning_efforts: the ``reasoning_effort`` values the model accepts, lowest first
        (empty: not a reasoning model).
    :ivar default_reasoning_effort: the effort the model uses when a request names none.
    :ivar embedding_dimensions: the length of its vectors, for an embedding model.
    """

    name: str
    context_window: int
    max_output_tokens: int | None = None
    input_price: float | None = None
    output_price: float | None = None
    capabilities: frozenset[str] = frozenset()
    reasoning_efforts: tuple[str, ...] = ()
    default_reasoning_effort: str | None = None
    embedding_dimensions: int | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("a ModelProfile needs a name")
        if self.context_window < 1:
            raise ConfigError(
                f"model {self.name!r}: context_window must be >= 1, got {self.context_window}"
            )
        for label, price in (
            ("input_price", self.input_price),
            ("output_price", self.output_price),
        ):
            if price is not None and price < 0:
                raise ConfigError(f"model {self.name!r}: {label} must be >= 0, got {price}")
        if (
            self.default_reasoning_effort is not None
            and self.default_reasoning_effort not in self.reasoning_efforts
        ):
            raise ConfigError(
                f"model {self.name!r}: default_reasoning_effort "
                f"{self.default_reasoning_effort!r} is not one of reasoning_efforts "
                f"{self.reasoning_efforts}"
            )
        if self.embedding_dimensions is not None and self.embedding_dimensions < 1:
            raise ConfigError(
                f"model {self.name!r}: embedding_dimensions must be >= 1, "
                f"got {self.embedding_dimensions}"
            )

    def cost(self, usage: Usage) -> float | None:
        """The price of ``usage`` in USD; ``None`` when a price is unknown."""
        if self.input_price is None or self.output_price is None:
            return None
        return (
            usage.prompt_tokens * self.input_price + usage.completion_tokens * self.output_price
        ) / 1_000_000

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities


_CHAT: Final = frozenset({"tools", "streaming", "json_schema"})
_VISION: Final = _CHAT | {"vision"}


_EMBEDDING: Final = frozenset({"embeddings"})
# OpenAI's reasoning efforts: GPT-5 and GPT-5 mini / nano; GPT-5.1 adds "none" (its default);
# GPT-5.2 adds "xhigh".
_GPT5_EFFORTS: Final = ("minimal", "low", "medium", "high")
_GPT51_EFFORTS: Final = ("none", *_GPT5_EFFORTS)
_GPT52_EFFORTS: Final = (*_GPT51_EFFORTS, "xhigh")


def _p(name: str, window: int, out: int | None, caps: frozenset[str]) -> ModelProfile:
    return ModelProfile(name=name, context_window=window, max_output_tokens=out, capabilities=caps)


def _reasoning(name: str, efforts: tuple[str, ...], default: str | None) -> ModelProfile:
    """A GPT-5 family model: 400k tokens of prompt plus answer, answers of up to 128k."""
    return ModelProfile(
        name=name,
        context_window=400_000,
        max_output_tokens=128_000,
        capabilities=_VISION | {"reasoning"},
        reasoning_efforts=efforts,
        default_reasoning_effort=default,
    )


def _embedding(name: str, window: int, dimensions: int) -> ModelProfile:
    return ModelProfile(
        name=name, context_window=window, capabilities=_EMBEDDING, embedding_dimensions=dimensions
    )


#: Profiles shipped with limelight: context windows and capabilities of common models (their
#: prices come from genai-prices or LiteLLM's cost map, see :func:`get_model_profile`).
BUILTIN_PROFILES: Final[tuple[ModelProfile, ...]] = (
    _p("gpt-4o", 128_000, 16_384, _VISION),
    _p("gpt-4o-mini", 128_000, 16_384, _VISION),
    _p("gpt-4.1", 1_047_576, 32_768, _VISION),
    _p("gpt-4.1-mini", 1_047_576, 32_768, _VISION),
    _p("gpt-4.1-nano", 1_047_576, 32_768, _VISION),
    _p("o1", 200_000, 100_000, _VISION),
    _p("o3-mini", 200_000, 100_000, _CHAT),
    _reasoning("gpt-5", _GPT5_EFFORTS, "medium"),
    _reasoning("gpt-5-mini", _GPT5_EFFORTS, "medium"),
    _reasoning("gpt-5-nano", _GPT5_EFFORTS, "medium"),
    _reasoning("gpt-5.1", _GPT51_EFFORTS, "none"),
    _reasoning("gpt-5.2", _GPT52_EFFORTS, "none"),
    _embedding("text-embedding-3-small", 8_191, 1_536),
    _embedding("text-embedding-3-large", 8_191, 3_072),
    _p("claude-3-5-sonnet", 200_000, 8_192, _VISION),
    _p("claude-3-5-haiku", 200_000, 8_192, _CHAT),
    _p("claude-3-opus", 200_000, 4_096, _VISION),
    _p("claude-sonnet-4", 200_000, 64_000, _VISION),
    _p("claude-opus-4", 200_000, 32_000, _VISION),
    _p("gemini-1.5-pro", 2_097_152, 8_192, _VISION),
    _p("gemini-1.5-flash", 1_048_576, 8_192, _VISION),
    _p("gemini-2.0-flash", 1_048_576, 8_192, _VISION),
    # The test doubles: free, and large enough never to truncate by accident.
    ModelProfile(
        name="scripted",
        context_window=128_000,
        input_price=0.0,
        output_price=0.0,
        capabilities=_CHAT,
    ),
    ModelProfile(
        name="simulated",
        context_window=128_000,
        input_price=0.0,
        output_price=0.0,
        capabilities=_CHAT,
    ),
)


_COST_MAP_FILE: Final = "model_prices_and_context_window_backup.json"
_CAPABILITY_FLAGS: Final = {
    "supports_function_calling": "tools",
    "supports_vision": "vision",
    "supports_response_schema": "json_schema",
}


@functools.cache
def litellm_cost_map() -> dict[str, Any]:
    """LiteLLM's model cost map (``{}`` when LiteLLM is not installed), read from the JSON
    file it ships: importing LiteLLM would take seconds and may reach the network."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or spec.origin is None:
        return {}
    path = Path(spec.origin).parent / _COST_MAP_FILE
    try:
        data = msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _cost_entry(names: Iterable[str]) -> dict[str, Any] | None:
    cost_map = litellm_cost_map()
    for name in names:
        entry = cost_map.get(name)
        if isinstance(entry, dict) and entry.get("mode", "chat") == "chat":
            return entry
    return None


def _price(entry: dict[str, Any], key: str) -> float | None:
    value = entry.get(key)
    return float(value) * 1_000_000 if isinstance(value, (int, float)) else None


def _from_cost_map(name: str, entry: dict[str, Any]) -> ModelProfile | None:
    window = entry.get("max_input_tokens") or entry.get("max_tokens")
    if not isinstance(window, int) or window < 1:
        return None
    out = entry.get("max_output_tokens")
    caps = {cap for flag, cap in _CAPABILITY_FLAGS.items() if entry.get(flag)}
    return ModelProfile(
        name=name,
        context_window=window,
        max_output_tokens=out if isinstance(out, int) else None,
        input_price=_price(entry, "input_cost_per_token"),
        output_price=_price(entry, "output_cost_per_token"),
        capabilities=frozenset(caps | {"streaming"}),
    )


def _genai_prices(names: Iterable[str]) -> tuple[float, float] | None:
    """USD per million input and output tokens from genai-prices (the usage tracker's
    lookup), ``None`` when it is not installed or knows none of ``names``."""
    for name in names:
        price = _from_genai_prices(name)
        if price is not None:
            return price.input, price.output
    return None


def _with_prices(profile: ModelProfile, names: list[str]) -> ModelProfile:
    """``profile`` with the prices it lacks from genai-prices, else from LiteLLM's cost map
    (the order the usage tracker prices calls in, so a profile and a call's cost agree); a
    price the profile has is kept."""
    if profile.input_price is not None and profile.output_price is not None:
        return profile
    names = list(dict.fromkeys([*names, profile.name]))
    prices: tuple[float | None, float | None] | None = _genai_prices(names)
    if prices is None:
        entry = _cost_entry(names)
        if entry is not None:
            prices = _price(entry, "input_cost_per_token"), _price(entry, "output_cost_per_token")
    if prices is None:
        return profile
    return msgspec.structs.replace(
        profile,
        input_price=profile.input_price if profile.input_price is not None else prices[0],
        output_price=profile.output_price if profile.output_price is not None else prices[1],
    )


_registry: dict[str, ModelProfile] = {p.name: p for p in BUILTIN_PROFILES}


def register_model(profile: ModelProfile, *, replace: bool = True) -> ModelProfile:
    """Add (or, with ``replace``, overwrite) a profile in the process-wide registry.

    :raises ConfigError: a profile of that name exists and ``replace`` is false.
    """
    if not isinstance(profile, ModelProfile):
        raise ConfigError(f"register_model takes a ModelProfile, got {type(profile).__name__}")
    if not replace and profile.name in _registry:
        raise ConfigError(f"a profile named {profile.name!r} is registered already")
    _registry[profile.name] = profile
    get_model_profile.cache_clear()
    _registered_price.cache_clear()
    return profile


def _name_forms(model: str) -> list[str]:
    """``model`` as given, then after a ``provider/`` prefix."""
    return [model, model.rsplit("/", 1)[1]] if "/" in model else [model]


def _longest_prefixing(
    names: list[str], accept: Callable[[ModelProfile], bool] = lambda p: True
) -> ModelProfile | None:
    """The accepted registered profile whose name, followed by ``-``, is the longest prefix
    of one of ``names`` (dated variants: ``gpt-4o`` for ``gpt-4o-2024-08-06``)."""
    best: ModelProfile | None = None
    for name in names:
        for key, candidate in _registry.items():
            if (
                name.startswith(key + "-")
                and accept(candidate)
                and (best is None or len(key) > len(best.name))
            ):
                best = candidate
    return best


def _priced(profile: ModelProfile) -> bool:
    return profile.input_price is not None and profile.output_price is not None


@functools.lru_cache(maxsize=1024)
def _registered_price(model: str) -> ModelProfile | None:
    """The registered profile with both prices for ``model``: this name (also after a
    ``provider/`` prefix), else the longest registered name prefixing it (dated variants);
    ``None`` when there is none. Cached: agents price every call; cleared on registering."""
    names = _name_forms(model)
    for name in names:
        profile = _registry.get(name)
        if profile is not None and profile.input_price is not None:
            return profile if profile.output_price is not None else None
    return _longest_prefixing(names, _priced)


def model_profiles() -> Iterable[ModelProfile]:
    """Every registered profile."""
    return tuple(_registry.values())


# Cached: agents look their model up on every turn, and the prefix scan is not free.
@functools.lru_cache(maxsize=1024)
def get_model_profile(model: str) -> ModelProfile | None:
    """The profile of ``model``, ``None`` if unknown.

    A registered profile of that exact name (also after a ``provider/`` prefix) comes first;
    then LiteLLM's cost map; then the registered profile with the longest name prefixing it
    (dated variants: ``gpt-4o`` for ``gpt-4o-2024-08-06``). Prices the profile does not
    give come from genai-prices, else from LiteLLM's cost map, when either knows the model
    (by its own name first, then the profile's); prices registered by the user come first.
    """
    names = _name_forms(model)
    profile = next((_registry[n] for n in names if n in _registry), None)
    if profile is None:
        entry = _cost_entry(names)
        if entry is not None:
            from_map = _from_cost_map(model, entry)
            if from_map is not None:
                # Its prices as a fallback only: genai-prices comes first, as for calls.
                unpriced = msgspec.structs.replace(from_map, input_price=None, output_price=None)
                return _with_prices(unpriced, names)
        profile = _longest_prefixing(names)
    if profile is None:
        return None
    return _with_prices(profile, names)


# --------------------------------------------------------------------------------------
# Prices


class Price(msgspec.Struct, frozen=True, kw_only=True):
    """USD per million tokens of one model, and where the figures come from.

    :ivar cached_input: the price of prompt tokens read from the provider's cache, when the
        source knows it (else cached tokens cost ``input``).
    :ivar source: ``"profile"`` (a registered :class:`~limelight.models.ModelProfile`),
        ``"genai-prices"`` or ``"litellm"``.
    """

    input: float
    output: float
    cached_input: float | None = None
    source: str = ""

    def cost(self, usage: Usage, cached_tokens: int = 0) -> float:
        """The price of ``usage`` in USD; ``cached_tokens`` of its prompt tokens were cache
        reads."""
        cached = min(max(cached_tokens, 0), usage.prompt_tokens)
        cached_price = self.input if self.cached_input is None else self.cached_input
        return (
            (usage.prompt_tokens - cached) * self.input
            + cached * cached_price
            + usage.completion_tokens * self.output
        ) / 1_000_000


def _names(model: str) -> list[tuple[str | None, str]]:
    """``(provider, model)`` pairs to look ``model`` up by: as given, then the part after a
    LiteLLM-style ``provider/`` prefix, with and without that provider."""
    pairs: list[tuple[str | None, str]] = [(None, model)]
    if "/" in model:
        provider, _, rest = model.partition("/")
        pairs += [(provider, rest), (None, model.rsplit("/", 1)[1])]
    return pairs


def _from_profiles(model: str) -> Price | None:
    """A profile registered with both prices under this name, or under the longest
    registered name prefixing it (``house-model`` for ``house-model-v2``, as
    :func:`~limelight.models.get_model_profile` matches dated variants): the user's word
    comes first (the test doubles, a user's own fine-tune)."""
    profile = _registered_price(model)
    if profile is None or profile.input_price is None or profile.output_price is None:
        return None
    return Price(input=profile.input_price, output=profile.output_price, source="profile")


def _from_genai_prices(model: str) -> Price | None:
    try:
        from genai_prices import Usage as PriceUsage
        from genai_prices import calc_price
    except ImportError:
        return None
    million = 1_000_000
    for provider, name in _names(model):
        try:
            calc = calc_price(
                PriceUsage(input_tokens=million, output_tokens=million, cache_read_tokens=0),
                name,
                provider_id=provider,
            )
        except (LookupError, ValueError):
            continue
        cached: float | None = None
        try:
            half = calc_price(
                PriceUsage(input_tokens=million, cache_read_tokens=million, output_tokens=0),
                name,
                provider_id=provider,
            )
            cached = float(half.input_price)
        except (LookupError, ValueError):
            cached = None
        return Price(
            input=float(calc.input_price),
            output=float(calc.output_price),
            cached_input=cached,
            source="genai-prices",
        )
    return None


def _from_litellm(model: str) -> Price | None:
    cost_map = litellm_cost_map()
    for name in dict.fromkeys([model, *(n for _, n in _names(model))]):
        entry = cost_map.get(name)
        if not isinstance(entry, dict):
            continue
        inp, out = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
        if not isinstance(inp, (int, float)) or not isinstance(out, (int, float)):
            continue
        cached = entry.get("cache_read_input_token_cost")
        return Price(
            input=float(inp) * 1_000_000,
            output=float(out) * 1_000_000,
            cached_input=float(cached) * 1_000_000 if isinstance(cached, (int, float)) else None,
            source="litellm",
        )
    return None


# Cached: the price lists do not change while the process runs (profiles are not cached,
# so a profile registered later is seen at once).
@functools.lru_cache(maxsize=512)
def _lookup(model: str) -> Price | None:
    return _from_genai_prices(model) or _from_litellm(model)


def model_price(model: str) -> Price | None:
    """The price of ``model``: from a registered profile with prices, else genai-prices (a
    maintained price list, with cache-read prices), else LiteLLM's cost map; ``None`` when
    no source knows it (local models)."""
    if not model:
        return None
    return _from_profiles(model) or _lookup(model)


def load_price_lists() -> None:
    """Read the price lists now: the first lookup takes ~150 ms (genai-prices' data, then
    LiteLLM's cost map), which a pool runs in a worker thread at its start rather than on
    its event loop at its first answer. Thread-safe; later calls return at once."""
    _from_genai_prices("limelight-price-lists")
    litellm_cost_map()


def clear_price_cache() -> None:
    """Forget prices looked up in the price lists (after updating them)."""
    _lookup.cache_clear()


def cost_of(usage: Usage, model: str, *, cached_tokens: int = 0) -> float | None:
    """The price of ``usage`` of ``model`` in USD, ``None`` when the price is unknown."""
    price = model_price(model)
    return None if price is None else price.cost(usage, cached_tokens)
