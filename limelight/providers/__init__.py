"""Backends a ProviderWorker drives. Backends with optional dependencies load lazily, on first
access, so ``from limelight.providers import Scripted`` needs no HTTP stack installed."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._base import Provider as Provider

if TYPE_CHECKING:
    from ._openai_compat import OpenAICompatible as OpenAICompatible
    from ._scripted import Scripted as Scripted
    from ._simulated import Simulated as Simulated
    from ._simulated import SimulatedConfig as SimulatedConfig

__all__ = ["OpenAICompatible", "Provider", "Scripted", "Simulated", "SimulatedConfig"]

_LAZY = {
    "OpenAICompatible": "._openai_compat",
    "Scripted": "._scripted",
    "Simulated": "._simulated",
    "SimulatedConfig": "._simulated",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
