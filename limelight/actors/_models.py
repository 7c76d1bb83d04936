"""Model profiles: what a model can take (context window), what it costs and what it can do,
in a registry the user can extend. Conversations truncate to the context window; agents
price their usage with it."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Final

import msgspec

from ..errors import ConfigError
from ..schemas import Usage

__all__ = [
    "BUILTIN_PROFILES",
    "ModelProfile",
    "get_model_profile",
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
    :ivar capabilities: e.g. ``tools``, ``vision``, ``json_schema``, ``streaming``.
    """

    name: str
    context_window: int
    max_output_tokens: int | None = None
    input_price: float | None = None
    output_price: float | None = None
    capabilities: frozenset[str] = frozenset()

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


def _p(
    name: str, window: int, out: int | None, price_in: float, price_out: float, caps: frozenset[str]
) -> ModelProfile:
    return ModelProfile(
        name=name,
        context_window=window,
        max_output_tokens=out,
        input_price=price_in,
        output_price=price_out,
        capabilities=caps,
    )


#: Profiles shipped with limelight (list prices as published by the vendors, late 2025).
BUILTIN_PROFILES: Final[tuple[ModelProfile, ...]] = (
    _p("gpt-4o", 128_000, 16_384, 2.50, 10.00, _VISION),
    _p("gpt-4o-mini", 128_000, 16_384, 0.15, 0.60, _VISION),
    _p("gpt-4.1", 1_047_576, 32_768, 2.00, 8.00, _VISION),
    _p("gpt-4.1-mini", 1_047_576, 32_768, 0.40, 1.60, _VISION),
    _p("gpt-4.1-nano", 1_047_576, 32_768, 0.10, 0.40, _VISION),
    _p("o1", 200_000, 100_000, 15.00, 60.00, _VISION),
    _p("o3-mini", 200_000, 100_000, 1.10, 4.40, _CHAT),
    _p("claude-3-5-sonnet", 200_000, 8_192, 3.00, 15.00, _VISION),
    _p("claude-3-5-haiku", 200_000, 8_192, 0.80, 4.00, _CHAT),
    _p("claude-3-opus", 200_000, 4_096, 15.00, 75.00, _VISION),
    _p("claude-sonnet-4", 200_000, 64_000, 3.00, 15.00, _VISION),
    _p("claude-opus-4", 200_000, 32_000, 15.00, 75.00, _VISION),
    _p("gemini-1.5-pro", 2_097_152, 8_192, 1.25, 5.00, _VISION),
    _p("gemini-1.5-flash", 1_048_576, 8_192, 0.075, 0.30, _VISION),
    _p("gemini-2.0-flash", 1_048_576, 8_192, 0.10, 0.40, _VISION),
    # The test doubles: free, and large enough never to truncate by accident.
    _p("scripted", 128_000, None, 0.0, 0.0, _CHAT),
    _p("simulated", 128_000, None, 0.0, 0.0, _CHAT),
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
    return profile


def model_profiles() -> Iterable[ModelProfile]:
    """Every registered profile."""
    return tuple(_registry.values())


# Cached: agents look their model up on every turn, and the prefix scan is not free.
@functools.lru_cache(maxsize=1024)
def get_model_profile(model: str) -> ModelProfile | None:
    """The profile of ``model``: an exact match, else the longest registered name that
    prefixes it (dated variants), also after a ``provider/`` prefix; ``None`` if unknown."""
    names = [model]
    if "/" in model:
        names.append(model.rsplit("/", 1)[1])
    for name in names:
        exact = _registry.get(name)
        if exact is not None:
            return exact
    best: ModelProfile | None = None
    for name in names:
        for key, profile in _registry.items():
            if name.startswith(key + "-") and (best is None or len(key) > len(best.name)):
                best = profile
    return best
