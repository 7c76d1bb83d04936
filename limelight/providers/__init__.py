"""Backends a ProviderWorker drives. Backends with optional dependencies load lazily, on first
access, so ``from limelight.providers import Scripted`` needs no HTTP stack installed."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

_LAZY = {
    "LiteLLM": "._litellm",
    "MLX": "._mlx",
    "Transformers": "._transformers",
    "BackendFactory": "._resolve",
    "Resolved": "._resolve",
    "backend_names": "._resolve",
    "register_backend": "._resolve",
    "resolve": "._resolve",
    "resolve_backend": "._resolve",
    "OpenAICompatible": "._openai_compat",
    "Reply": "._scripted",
    "Scripted": "._scripted",
    "ScriptExhausted": "._scripted",
    "serve_in_thread": "._sim_server",
    "serve_in_thread_async": "._sim_server",
    "FixedLength": "._simulated",
    "LogNormalLength": "._simulated",
    "Simulated": "._simulated",
    "SimulatedConfig": "._simulated",
    "UniformLength": "._simulated",
}


#: The extra that installs what a lazily loaded module needs.
_EXTRAS = {
    "._openai_compat": "http",
    "._sim_server": "sim",
    "._litellm": "litellm",
    "._mlx": "mlx",
    "._transformers": "transformers",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        loaded = importlib.import_module(module, __name__)
    except ImportError as exc:
        extra = _EXTRAS.get(module)
        if extra is None or (exc.name or "").startswith("limelight"):
            raise
        from ..errors import MissingExtra

        raise MissingExtra(f"limelight.providers.{name}", missing=exc.name, extra=extra) from exc
    value = getattr(loaded, name)
    globals()[name] = value
    return value
