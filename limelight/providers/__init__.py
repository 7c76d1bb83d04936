"""Backends a ProviderWorker drives. Backends with optional dependencies load lazily, on first
access, so ``from limelight.providers import Scripted`` needs no HTTP stack installed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes as _lazy_attributes
from ._base import Provider as Provider

if TYPE_CHECKING:
    from ._litellm import LiteLLM as LiteLLM
    from ._mlx import MLX as MLX
    from ._openai_compat import OpenAICompatible as OpenAICompatible
    from ._resolve import BackendFactory as BackendFactory
    from ._resolve import Resolved as Resolved
    from ._resolve import backend_names as backend_names
    from ._resolve import register_backend as register_backend
    from ._resolve import resolve as resolve
    from ._resolve import resolve_backend as resolve_backend
    from ._scripted import Reply as Reply
    from ._scripted import Scripted as Scripted
    from ._scripted import ScriptExhausted as ScriptExhausted
    from ._sim_server import serve_in_thread as serve_in_thread
    from ._sim_server import serve_in_thread_async as serve_in_thread_async
    from ._simulated import FixedLength as FixedLength
    from ._simulated import LogNormalLength as LogNormalLength
    from ._simulated import Simulated as Simulated
    from ._simulated import SimulatedConfig as SimulatedConfig
    from ._simulated import UniformLength as UniformLength
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
        ],
        "._openai_compat": ["OpenAICompatible"],
        "._scripted": ["Reply", "Scripted", "ScriptExhausted"],
        "._sim_server": ["serve_in_thread", "serve_in_thread_async"],
        "._simulated": [
            "FixedLength",
            "LogNormalLength",
            "Simulated",
            "SimulatedConfig",
            "UniformLength",
        ],
    },
    extras={
        "._openai_compat": "http",
        "._sim_server": "sim",
        "._litellm": "litellm",
        "._mlx": "mlx",
        "._transformers": "transformers",
    },
)
