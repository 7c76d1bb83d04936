"""Where analytics events go: SQLite (the default), JSON lines, an HTTP ingestion endpoint,
OpenTelemetry (OTLP), or memory. Sinks with optional dependencies load lazily, on first
access, so ``from limelight.sinks import SQLiteSink`` needs neither httpx nor opentelemetry."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._base import Sink as Sink

if TYPE_CHECKING:
    from ._http import HTTPSink as HTTPSink
    from ._jsonl import JSONLSink as JSONLSink
    from ._jsonl import read_jsonl as read_jsonl
    from ._memory import MemorySink as MemorySink
    from ._memory import NullSink as NullSink
    from ._otlp import OTLPSink as OTLPSink
    from ._sqlite import SQLiteSink as SQLiteSink
    from ._sqlite import default_db_path as default_db_path
    from ._sqlite import read_events as read_events
    from ._summary import ErrorRow as ErrorRow
    from ._summary import EventsSummary as EventsSummary
    from ._summary import RunRow as RunRow
    from ._summary import UsageRow as UsageRow
    from ._summary import summarize as summarize

__all__ = [
    "ErrorRow",
    "EventsSummary",
    "HTTPSink",
    "JSONLSink",
    "MemorySink",
    "NullSink",
    "OTLPSink",
    "RunRow",
    "SQLiteSink",
    "Sink",
    "UsageRow",
    "default_db_path",
    "read_events",
    "read_jsonl",
    "summarize",
]

_LAZY = {
    "HTTPSink": "._http",
    "JSONLSink": "._jsonl",
    "read_jsonl": "._jsonl",
    "MemorySink": "._memory",
    "NullSink": "._memory",
    "OTLPSink": "._otlp",
    "SQLiteSink": "._sqlite",
    "default_db_path": "._sqlite",
    "read_events": "._sqlite",
    "ErrorRow": "._summary",
    "EventsSummary": "._summary",
    "RunRow": "._summary",
    "UsageRow": "._summary",
    "summarize": "._summary",
}

#: The extra that installs what a lazily loaded module needs.
_EXTRAS = {"._http": "http", "._otlp": "otel"}


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

        raise MissingExtra(f"limelight.sinks.{name}", missing=exc.name, extra=extra) from exc
    value = getattr(loaded, name)
    globals()[name] = value
    return value
