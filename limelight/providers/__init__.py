"""Backends a ProviderWorker drives. Backends with optional dependencies load lazily, on first
access, so ``from limelight.providers import Scripted`` needs no HTTP stack installed."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._base import Provider as Provider

if TYPE_CHECKING:
    from ._openai_compat import OpenAICompatible as OpenAICompatible
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

__all__ = [
    "FixedLength",
    "LogNormalLength",
    "OpenAICompatible",
    "Provider",
    "Reply",
    "ScriptExhausted",
    "Scripted",
    "Simulated",
    "SimulatedConfig",
    "UniformLength",
    "serve_in_thread",
    "serve_in_thread_async",
]

_LAZY = {
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
_EXTRAS = {"._openai_compat": "http", "._sim_server": "sim"}


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
