"""The agent client's model profiles, read from limelight's model registry.

``GPT5Nano``, ``TextEmbedding3Small``... come from :mod:`limelight.models`.

A profile is a class, as before: ``GPT5Nano.context_window``, ``ModelProfile.get("gpt-5")``.
What the registry knows (context window, output limit, reasoning efforts, vector length) and
what limelight prices calls at (:func:`~limelight.usage.model_price`) is read from it when
first asked, so the facade and the native API never disagree. A subclass that states these
itself is registered with limelight too, so agents truncate and price its calls alike.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Final

from .._models import ModelProfile as NativeProfile
from .._models import get_model_profile, model_price, register_model
from ..actors._ratelimit import count_prompt_tokens
from ..errors import ConfigError
from ..schemas import CompletionRequest

__all__ = [
    "GPT5",
    "GPT5Mini",
    "GPT5Nano",
    "GPT5Point1",
    "GPT5Point2",
    "ModelProfile",
    "TextEmbedding3Large",
    "TextEmbedding3Small",
    "resolve_profile",
]

#: Attributes read from limelight's registry when a profile class does not set them.
_FROM_REGISTRY: Final = frozenset(
    {
        "context_window",
        "max_output",
        "output_dimensions",
        "reasoning_model",
        "reasoning_efforts",
        "default_reasoning_effort",
        "function_calling_support",
        "token_streaming_support",
        "usage_costs",
    }
)


def _native(key: str) -> NativeProfile | None:
    return get_model_profile(key)


class _ProfileType(type):
    """Answers the registry-backed attributes of a profile class that does not set them."""

    def __getattr__(cls, name: str) -> Any:
        if name not in _FROM_REGISTRY:
            raise AttributeError(f"type object {cls.__name__!r} has no attribute {name!r}")
        key = cls.__dict__.get("key") or getattr(cls, "key", None)
        native = _native(key) if isinstance(key, str) else None
        if name == "usage_costs":
            name = str(getattr(cls, "model_name", None) or key or "")
            price = model_price(name) or model_price(str(key or ""))
            if price is None:
                return {"input": 0.0, "output": 0.0, "cached_input": 0.0}
            cached = price.input if price.cached_input is None else price.cached_input
            return {
                "input": price.input / 1e6,
                "output": price.output / 1e6,
                "cached_input": cached / 1e6,
            }
        if native is None:
            raise AttributeError(
                f"model profile {cls.__name__} ({key!r}) does not set {name} and limelight's "
                "model registry has no profile of that name: set it on the class"
            )
        if name == "context_window":
            return native.context_window
        if name == "max_output":
            return native.max_output_tokens
        if name == "output_dimensions":
            return native.embedding_dimensions
        if name == "reasoning_model":
            return bool(native.reasoning_efforts)
        if name == "reasoning_efforts":
            return list(native.reasoning_efforts)
        if name == "default_reasoning_effort":
            return native.default_reasoning_effort
        if name == "function_calling_support":
            return native.supports("tools")
        return native.supports("streaming")


class ModelProfile(metaclass=_ProfileType):
    """A model, as a class: subclass it with a unique ``key`` to add one.

    ``key`` is the short name (``"gpt-5-nano"``), ``model_name`` what is sent to the API,
    ``category`` ``"completions"`` or ``"embeddings"``, ``rate_limits`` the requests and
    tokens per minute the rate limiter holds calls to. ``context_window``, ``max_output``,
    ``output_dimensions``, the reasoning attributes and ``usage_costs`` (USD per token) come
    from limelight's registry unless the class sets them.

    :raises ConfigError: (on subclassing) no ``key``, or one taken already.
    """

    supported_models: ClassVar[dict[str, list[str]]] = {"completions": [], "embeddings": []}

    key: ClassVar[str]
    model_name: ClassVar[str]
    category: ClassVar[str] = "completions"
    rate_limits: ClassVar[dict[str, int]] = {}
    encoding: ClassVar[str] = "o200k_base"
    # Read from limelight's registry unless a subclass sets them (see _ProfileType).
    context_window: ClassVar[int]
    max_output: ClassVar[int | None]
    output_dimensions: ClassVar[int | None]
    reasoning_model: ClassVar[bool]
    reasoning_efforts: ClassVar[list[str]]
    default_reasoning_effort: ClassVar[str | None]
    function_calling_support: ClassVar[bool]
    token_streaming_support: ClassVar[bool]
    usage_costs: ClassVar[dict[str, float]]

    _registry: ClassVar[dict[str, type[ModelProfile]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        key = cls.__dict__.get("key")
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(f"{cls.__name__} must define a non-empty string `key`")
        if key in ModelProfile._registry:
            raise ConfigError(f"duplicate model key {key!r}: {cls.__name__} needs another key")
        if "model_name" not in cls.__dict__:
            cls.model_name = key
        if cls.category not in ("completions", "embeddings"):
            raise ConfigError(
                f"{cls.__name__}.category must be 'completions' or 'embeddings', "
                f"got {cls.category!r}"
            )
        ModelProfile._registry[key] = cls
        ModelProfile.supported_models[cls.category].append(key)
        if "context_window" in cls.__dict__:
            _register_native(cls)

    @classmethod
    def get(cls, key: str) -> type[ModelProfile]:
        """The profile registered under ``key``.

        :raises ConfigError: no such key (a ``ValueError``, as before).
        """
        try:
            return cls._registry[key]
        except KeyError:
            known = ", ".join(sorted(cls._registry))
            raise ConfigError(
                f"unknown model key {key!r}; known keys: {known}. Subclass ModelProfile to add one"
            ) from None

    @classmethod
    def count_tokens(cls, context: Any) -> int:
        """Tokens of a text, a list of texts or a list of chat messages, counted as limelight's
        rate limiter counts them (tiktoken's ``o200k_base`` when installed, else characters
        / 4)."""
        if context is None:
            return 0
        if isinstance(context, str):
            texts = [context]
        elif isinstance(context, list):
            texts = []
            for item in context:
                if isinstance(item, dict):
                    texts.extend(str(v) for v in item.values())
                else:
                    texts.append(str(item))
        else:
            texts = [str(context)]
        return sum(count_prompt_tokens(CompletionRequest(prompt=t)) for t in texts if t)

    @classmethod
    def input_cost(cls, n_tokens: int) -> float:
        return n_tokens * cls.usage_costs["input"]

    @classmethod
    def output_cost(cls, n_tokens: int) -> float:
        if cls.category != "completions":
            return 0.0
        return n_tokens * cls.usage_costs.get("output", 0.0)

    @classmethod
    def cached_input_cost(cls, n_tokens: int) -> float:
        costs = cls.usage_costs
        return n_tokens * costs.get("cached_input", costs["input"])

    @classmethod
    def parse_usage(cls, usage: dict[str, Any]) -> dict[str, Any]:
        """OpenAI's usage object as the earlier package reported it: tokens and USD."""
        parsed: dict[str, Any] = {
            "input_tokens": usage.get("prompt_tokens", 0),
            "total_tokens": usage.get("total_tokens", 0),
        }
        if "completion_tokens" in usage:
            parsed["output_tokens"] = usage["completion_tokens"]
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0) or 0
        if cached > 0:
            parsed["input_tokens_cached"] = cached
            input_cost = cls.cached_input_cost(cached) + cls.input_cost(
                parsed["input_tokens"] - cached
            )
        else:
            input_cost = cls.input_cost(parsed["input_tokens"])
        parsed["input_cost"] = input_cost
        if "output_tokens" in parsed:
            parsed["output_cost"] = cls.output_cost(parsed["output_tokens"])
        parsed["total_cost"] = input_cost + parsed.get("output_cost", 0.0)
        return parsed


def _register_native(cls: type[ModelProfile]) -> None:
    """Tell limelight's registry about a profile a user defined, so agents and conversations
    see its window and price."""
    costs: dict[str, float] = cls.__dict__.get("usage_costs", {})
    efforts = tuple(cls.__dict__.get("reasoning_efforts", ()))
    caps = {"streaming", "tools"} if cls.category == "completions" else {"embeddings"}
    register_model(
        NativeProfile(
            name=cls.key,
            context_window=int(cls.__dict__["context_window"]),
            max_output_tokens=cls.__dict__.get("max_output"),
            input_price=costs["input"] * 1e6 if "input" in costs else None,
            output_price=costs.get("output", 0.0) * 1e6 if "input" in costs else None,
            capabilities=frozenset(caps),
            reasoning_efforts=efforts,
            default_reasoning_effort=cls.__dict__.get("default_reasoning_effort"),
            embedding_dimensions=cls.__dict__.get("output_dimensions"),
        )
    )


_GPT5_LIMITS: Final = {"tkn_per_min": 2_000_000, "req_per_min": 10_000}
_SMALL_LIMITS: Final = {"tkn_per_min": 10_000_000, "req_per_min": 10_000}
_EMBEDDING_LIMITS: Final = {"tkn_per_min": 1_000_000, "req_per_min": 5_000}


class GPT5Point2(ModelProfile):
    key = "gpt-5.2"
    model_name = "gpt-5.2-2025-12-11"
    rate_limits = _GPT5_LIMITS


class GPT5Point1(ModelProfile):
    key = "gpt-5.1"
    model_name = "gpt-5.1-2025-11-13"
    rate_limits = _GPT5_LIMITS


class GPT5(ModelProfile):
    key = "gpt-5"
    model_name = "gpt-5-2025-08-07"
    rate_limits = _GPT5_LIMITS


class GPT5Mini(ModelProfile):
    key = "gpt-5-mini"
    model_name = "gpt-5-mini-2025-08-07"
    rate_limits = _SMALL_LIMITS


class GPT5Nano(ModelProfile):
    key = "gpt-5-nano"
    model_name = "gpt-5-nano-2025-08-07"
    rate_limits = _SMALL_LIMITS


class TextEmbedding3Large(ModelProfile):
    key = "text-embedding-3-large"
    model_name = "text-embedding-3-large"
    category = "embeddings"
    rate_limits = _EMBEDDING_LIMITS
    encoding = "cl100k_base"


class TextEmbedding3Small(ModelProfile):
    key = "text-embedding-3-small"
    model_name = "text-embedding-3-small"
    category = "embeddings"
    rate_limits = _EMBEDDING_LIMITS
    encoding = "cl100k_base"


def resolve_profile(model: type[ModelProfile] | str | Any) -> type[ModelProfile]:
    """A profile class from a class or a key.

    :raises ConfigError: neither, or an unknown key.
    """
    if isinstance(model, type) and issubclass(model, ModelProfile):
        if model is ModelProfile:
            raise ConfigError("give a model profile (GPT5Nano, ...) or its key, not ModelProfile")
        return model
    if isinstance(model, str):
        return ModelProfile.get(model)
    raise ConfigError(
        "model must be a ModelProfile subclass (GPT5Nano, ...) or a model key such as "
        f"'gpt-5-nano', got {model!r}"
    )


def rate_limits_of(profile: type[ModelProfile]) -> tuple[int | None, int | None]:
    """The profile's requests and tokens per minute (``None``: no limit)."""
    limits = profile.rate_limits
    rpm, tpm = limits.get("req_per_min"), limits.get("tkn_per_min")
    return (
        None if rpm is None or rpm == math.inf else int(rpm),
        None if tpm is None or tpm == math.inf else int(tpm),
    )
