"""Analytics hooks for other frameworks: LangChain, LiteLLM (and CrewAI), Google GenAI.

There are LangChain callbacks, a LiteLLM logger (also what CrewAI uses), and a hook for the
Google GenAI SDK (Vertex AI). Each loads its framework lazily, on first access, so
``import limelight.integrations`` pulls in none of them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes as _lazy_attributes

if TYPE_CHECKING:
    from .langchain import LimelightCallbackHandler as LimelightCallbackHandler
    from .litellm import LimelightLiteLLMLogger as LimelightLiteLLMLogger
    from .litellm import disable_litellm_analytics as disable_litellm_analytics
    from .litellm import enable_litellm_analytics as enable_litellm_analytics
    from .vertex import track_conversational_search as track_conversational_search
    from .vertex import track_genai as track_genai

__all__ = [
    "LimelightCallbackHandler",
    "LimelightLiteLLMLogger",
    "disable_litellm_analytics",
    "enable_litellm_analytics",
    "track_conversational_search",
    "track_genai",
]

__getattr__, __dir__ = _lazy_attributes(
    __name__,
    {
        ".langchain": ["LimelightCallbackHandler"],
        ".litellm": [
            "LimelightLiteLLMLogger",
            "disable_litellm_analytics",
            "enable_litellm_analytics",
        ],
        ".vertex": ["track_conversational_search", "track_genai"],
    },
    # Each module needs its framework.
    extras={".langchain": "integrations", ".litellm": "litellm", ".vertex": "integrations"},
)
