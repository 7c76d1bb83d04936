"""Where analytics events go: SQLite, JSON lines, HTTP, OpenTelemetry (OTLP), or memory.

SQLite is the default, HTTP an ingestion endpoint. Sinks with optional dependencies load
lazily, on first access, so ``from limelight.sinks import SQLiteSink`` needs neither httpx
nor opentelemetry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes as _lazy_attributes
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

__getattr__, __dir__ = _lazy_attributes(
    __name__,
    {
        "._http": ["HTTPSink"],
        "._jsonl": ["JSONLSink", "read_jsonl"],
        "._memory": ["MemorySink", "NullSink"],
        "._otlp": ["OTLPSink"],
        "._sqlite": ["SQLiteSink", "default_db_path", "read_events"],
        "._summary": ["ErrorRow", "EventsSummary", "RunRow", "UsageRow", "summarize"],
    },
    extras={"._http": "http", "._otlp": "otel"},
)
