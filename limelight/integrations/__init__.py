"""Analytics hooks for other frameworks: LangChain callbacks, a LiteLLM logger (also what
CrewAI uses), and the Google GenAI SDK (Vertex AI). Each loads its framework lazily, on first
access, so ``import limelight.integrations`` pulls in none of them."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .langchain import LimelightCallbackHandler as LimelightCallbackHandler
    from .litellm import LimelightLiteLLMLogger as LimelightLiteLLMLogger
    from .litellm import disable_litellm_analytics as disable_litellm_analytics
    from .litellm import enable_litellm_analytics as enable_litellm_analytics
    from .vertex import track_genai as track_genai

__all__ = [
    "LimelightCallbackHandler",
    "LimelightLiteLLMLogger",
    "disable_litellm_analytics",
    "enable_litellm_analytics",
    "track_genai",
]

_LAZY = {
    "LimelightCallbackHandler": ".langchain",
    "LimelightLiteLLMLogger": ".litellm",
    "disable_litellm_analytics": ".litellm",
    "enable_litellm_analytics": ".litellm",
    "track_genai": ".vertex",
}

#: The extra that installs what each module needs.
_EXTRAS = {".langchain": "integrations", ".litellm": "litellm", ".vertex": "integrations"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        loaded = importlib.import_module(module, __name__)
    except ImportError as exc:
        if (exc.name or "").startswith("limelight"):
            raise
        from ..errors import MissingExtra

        raise MissingExtra(
            f"limelight.integrations.{name}", missing=exc.name, extra=_EXTRAS[module]
        ) from exc
    value = getattr(loaded, name)
    globals()[name] = value
    return value
