"""Backends a ProviderWorker drives.

Backends with optional dependencies load lazily, on first access, so
``from limelight.providers import Scripted`` needs no HTTP stack installed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes as _lazy_attributes
from ._base import Provider as Provider

if TYPE_CHECKING:
    from ..sim._config import FixedLength as FixedLength
    from ..sim._config import LogNormalLength as LogNormalLength
    from ..sim._config import SimulatedConfig as SimulatedConfig
    from ..sim._config import UniformLength as UniformLength
    from ..sim._provider import Simulated as Simulated
    from ..sim._server import serve_in_thread as serve_in_thread
    from ..sim._server import serve_in_thread_async as serve_in_thread_async
    from ._litellm import LiteLLM as LiteLLM
    from ._mlx import MLX as MLX
    from ._openai_compat import OpenAICompatible as OpenAICompatible
    from ._resolve import BackendFactory as BackendFactory
    from ._resolve import Resolved as Resolved
    from ._resolve import backend_names as backend_names
    from ._resolve import register_backend as register_backend
    from ._resolve import resolve as resolve
    from ._resolve import resolve_backend as resolve_backend
    from ._resolve import takes_json_schema as takes_json_schema
    from ._scripted import Reply as Reply
    from ._scripted import Scripted as Scripted
    from ._scripted import ScriptExhausted as ScriptExhausted
    from ._transformers import Transformers as Transformers

__all__ = [
    "MLX",
    "BackendFactory",
    "FixedLength",
    "LiteLLM",
    "LogNormalLength",
    "OpenAICompatible",
    "Provider",
    "Reply",
    "Resolved",
    "ScriptExhausted",
    "Scripted",
    "Simulated",
    "SimulatedConfig",
    "Transformers",
    "UniformLength",
    "backend_names",
    "register_backend",
    "resolve",
    "resolve_backend",
    "serve_in_thread",
    "serve_in_thread_async",
    "takes_json_schema",
]

__getattr__, __dir__ = _lazy_attributes(
    __name__,
    {
        "._litellm": ["LiteLLM"],
        "._mlx": ["MLX"],
        "._transformers": ["Transformers"],
        "._resolve": [
            "BackendFactory",
            "Resolved",
            "backend_names",
            "register_backend",
            "resolve",
            "resolve_backend",
            "takes_json_schema",
        ],
        "._openai_compat": ["OpenAICompatible"],
        "._scripted": ["Reply", "Scripted", "ScriptExhausted"],
        # The simulator is a package of its own (limelight.sim), below the providers.
        "..sim._config": ["FixedLength", "LogNormalLength", "SimulatedConfig", "UniformLength"],
        "..sim._provider": ["Simulated"],
        "..sim._server": ["serve_in_thread", "serve_in_thread_async"],
    },
    extras={
        "._openai_compat": "http",
        "..sim._server": "sim",
        "._litellm": "litellm",
        "._mlx": "mlx",
        "._transformers": "transformers",
    },
)
