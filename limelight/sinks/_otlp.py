"""A sink exporting events as OpenTelemetry spans, per the GenAI semantic conventions.

Spans are named and labelled per those conventions (extra ``otel``: opentelemetry-sdk and the
OTLP/HTTP exporter).

An LLM response becomes ``chat {model}``, a tool response ``execute_tool {name}``, an agent
step ``invoke_agent {name}``; errors, functions and the rest become spans named after what
they record. A span's id derives from its event's id and its parent from ``parent_event_id``,
so a tree rebuilt from retried or spooled batches is the same tree. Requests, tool calls and
stream chunks are covered by the span of their answer and not exported on their own (counted
in ``skipped``); an event whose parent is one of them hangs under that event's parent.

Spans are built and exported in a worker thread, synchronously: the SDK's batch processor,
which drops spans when its queue is full, is not used, so a failed export reaches the shipper
as :class:`~limelight.errors.SinkUnavailable` and is retried like any other sink's.
"""

from __future__ import annotations

import collections
import hashlib
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import anyio.to_thread
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode

from ..errors import ConfigError, SinkUnavailable
from ..schemas._events import (
    AgentPlanningPayload,
    AgentReasoningPayload,
    AgentResponsePayload,
    APIRequestPayload,
    APIResponsePayload,
    ErrorPayload,
    Event,
    FunctionExecutionPayload,
    LLMRequestPayload,
    LLMResponsePayload,
    LLMStreamingChunkPayload,
    PerformanceMetricPayload,
    TimeoutErrorPayload,
    ToolCallPayload,
    ToolResponsePayload,
    ValidationErrorPayload,
)

__all__ = ["OTLPSink", "span_id_for", "trace_id_for"]

_MASK64 = (1 << 64) - 1
#: Events remembered for parent links across batches (their trace, or what a skipped one
#: hangs under).
_MEMORY = 100_000


def span_id_for(event_id: uuid.UUID) -> int:
    """The span id of the event ``event_id`` (its low 64 bits, never zero)."""
    return (event_id.int & _MASK64) or 1


def trace_id_for(key: str) -> int:
    """A trace id derived from a run id, a session id or an event id (never zero)."""
    digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
    return int.from_bytes(digest, "big") or 1


class _PresetIds(IdGenerator):
    """Hands out the ids set just before each ``start_span`` (under the sink's lock)."""

    def __init__(self) -> None:
        self.span_id = 1
        self.trace_id = 1

    def generate_span_id(self) -> int:
        return self.span_id

    def generate_trace_id(self) -> int:
        return self.trace_id


class _Collect(SpanProcessor):
    """Keeps ended spans until the sink exports them."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


class _Bounded(collections.OrderedDict[uuid.UUID, Any]):
    def remember(self, key: uuid.UUID, value: Any) -> None:
        self[key] = value
        if len(self) > _MEMORY:
            self.popitem(last=False)


_Spec = tuple[str, SpanKind, float | None, dict[str, Any], str | None, str]


def _spec(event: Event) -> _Spec | None:
    """(name, kind, duration, attributes, error.type, status message) of the event's span;
    ``None`` for events another span covers."""
    attrs: dict[str, Any] = {}
    error: str | None = None
    message = ""
    duration: float | None = None
    kind = SpanKind.INTERNAL
    match event.payload:
        case LLMRequestPayload() | ToolCallPayload() | LLMStreamingChunkPayload():
            return None
        case APIRequestPayload():
            return None
        case LLMResponsePayload() as p:
            name, kind, duration = f"chat {p.model}", SpanKind.CLIENT, p.latency
            attrs["gen_ai.operation.name"] = "chat"
            if p.provider:
                attrs["gen_ai.provider.name"] = p.provider
            attrs["gen_ai.request.model"] = p.model
            attrs["gen_ai.response.model"] = p.model
            attrs["gen_ai.usage.input_tokens"] = p.input_tokens
            attrs["gen_ai.usage.output_tokens"] = p.output_tokens
            if p.finish_reason:
                attrs["gen_ai.response.finish_reasons"] = [p.finish_reason]
            if p.cached_tokens:
                attrs["gen_ai.usage.cache_read.input_tokens"] = p.cached_tokens
            if p.cost is not None:
                attrs["limelight.cost"] = p.cost
            if p.role:
                attrs["limelight.role"] = p.role
        case ToolResponsePayload() as p:
            name, duration = f"execute_tool {p.tool_name}", p.duration
            attrs["gen_ai.operation.name"] = "execute_tool"
            attrs["gen_ai.tool.name"] = p.tool_name
            if p.tool_call_id:
                attrs["gen_ai.tool.call.id"] = p.tool_call_id
            if p.is_error:
                error, message = "tool_error", str(p.result)
        case AgentReasoningPayload() | AgentPlanningPayload() | AgentResponsePayload() as p:
            name = f"invoke_agent {p.agent_name}"
            attrs["gen_ai.operation.name"] = "invoke_agent"
            attrs["gen_ai.agent.name"] = p.agent_name
            attrs["limelight.step"] = str(event.event_type)
            if isinstance(p, AgentResponsePayload):
                duration = p.duration
        case FunctionExecutionPayload() as p:
            name, duration = p.function_name, p.duration
            attrs["code.function.name"] = p.function_name
            if p.error is not None:
                error, message = "function_error", p.error
        case ErrorPayload() | ValidationErrorPayload() as p:
            name, error, message = str(event.event_type), p.error_type, p.message
        case TimeoutErrorPayload() as p:
            name, error, duration = str(event.event_type), p.error_type, p.elapsed
            message = p.message or f"{p.operation} timed out"
        case APIResponsePayload() as p:
            name, kind, duration = p.method, SpanKind.CLIENT, p.duration
            attrs["http.request.method"] = p.method
            attrs["url.full"] = p.url
            attrs["http.response.status_code"] = p.status_code
            if p.status_code >= 400:
                error = str(p.status_code)
        case PerformanceMetricPayload() as p:
            name = str(event.event_type)
            attrs["limelight.metric.name"] = p.name
            attrs["limelight.metric.value"] = p.value
            if p.unit:
                attrs["limelight.metric.unit"] = p.unit
        case _:
            name = str(event.event_type)
    if error is not None:
        attrs["error.type"] = error
    attrs["limelight.event_id"] = str(event.event_id)
    attrs["limelight.event_type"] = str(event.event_type)
    if event.run_id is not None:
        attrs["limelight.run_id"] = event.run_id
    if event.session_id is not None:
        attrs["session.id"] = event.session_id
    if event.user_id is not None:
        attrs["user.id"] = event.user_id
    for key, value in event.metadata.items():
        if isinstance(value, str | bool | int | float):
            attrs[f"limelight.metadata.{key}"] = value
    return name, kind, duration, attrs, error, message


class OTLPSink:
    """Exports events as OpenTelemetry GenAI spans.

    :param endpoint: an OTLP/HTTP collector: its base URL (``http://localhost:4318``, to which
        ``/v1/traces`` is added) or the full traces URL. Default: the exporter's own
        (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, else ``http://localhost:4318/v1/traces``).
    :param headers: extra request headers (an API key for a hosted collector).
    :param timeout: seconds the exporter may spend on one batch, its own retries included.
    :param exporter: any span exporter instead (an ``InMemorySpanExporter`` in tests);
        not with ``endpoint``.
    :param service_name: the ``service.name`` resource attribute.
    :ivar exported: spans exported so far.
    :ivar skipped: events not exported as spans of their own (covered by another span).

    The OTLP exporter cannot tell a refused batch from an unreachable collector: any failed
    export raises :class:`~limelight.errors.SinkUnavailable` and is retried.
    """

    name = "otlp"
    dedupes = False

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        exporter: SpanExporter | None = None,
        service_name: str = "limelight",
    ) -> None:
        if exporter is not None and (endpoint is not None or headers):
            raise ConfigError("give OTLPSink an endpoint (and headers) or an exporter, not both")
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            if endpoint is not None and not endpoint.rstrip("/").endswith("/v1/traces"):
                endpoint = endpoint.rstrip("/") + "/v1/traces"
            exporter = OTLPSpanExporter(
                endpoint=endpoint, headers=dict(headers or {}), timeout=timeout
            )
        self.endpoint = endpoint
        self.exported = 0
        self.skipped = 0
        self._exporter = exporter
        self._ids = _PresetIds()
        self._collect = _Collect()
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": service_name}),
            id_generator=self._ids,
            shutdown_on_exit=False,  # aclose() shuts it down; no atexit hook per sink
        )
        self._provider.add_span_processor(self._collect)
        self._tracer = self._provider.get_tracer("limelight")
        self._traces = _Bounded()  # event id -> trace id
        self._aliases = _Bounded()  # skipped event id -> its parent event id (or None)
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"OTLPSink({self.endpoint!r})" if self.endpoint else "OTLPSink()"

    def _parent(self, event_id: uuid.UUID | None) -> uuid.UUID | None:
        """The nearest exported ancestor: skipped events pass their parent on."""
        for _ in range(64):
            if event_id is None or event_id not in self._aliases:
                return event_id
            event_id = self._aliases[event_id]
        return event_id

    def _trace_id(self, event: Event, parent: uuid.UUID | None) -> int:
        # A parent's trace first: a child agent's run hangs in its parent's trace.
        if parent is not None and parent in self._traces:
            return int(self._traces[parent])
        if event.run_id is not None:
            return trace_id_for(event.run_id)
        if event.session_id is not None:
            return trace_id_for(event.session_id)
        return trace_id_for(str(parent if parent is not None else event.event_id))

    def _build(self, batch: Sequence[Event]) -> list[ReadableSpan]:
        for event in batch:
            parent = self._parent(event.parent_event_id)
            spec = _spec(event)
            if spec is None:
                self._aliases.remember(event.event_id, parent)
                self.skipped += 1
                continue
            name, kind, duration, attrs, error, message = spec
            trace_id = self._trace_id(event, parent)
            self._traces.remember(event.event_id, trace_id)
            if parent is None:
                ctx = otel_context.Context()  # a root, whatever span the caller has open
            else:
                parent_span = trace.NonRecordingSpan(
                    trace.SpanContext(
                        trace_id=trace_id,
                        span_id=span_id_for(parent),
                        is_remote=False,
                        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
                    )
                )
                ctx = trace.set_span_in_context(parent_span, otel_context.Context())
            end = int(event.timestamp * 1e9)
            start = end - int(duration * 1e9) if duration and duration > 0 else end
            self._ids.span_id = span_id_for(event.event_id)
            self._ids.trace_id = trace_id
            span = self._tracer.start_span(
                name, context=ctx, kind=kind, attributes=attrs, start_time=start
            )
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, message or error))
            span.end(end_time=end)
        spans, self._collect.spans = self._collect.spans, []
        return spans

    def _write_sync(self, batch: Sequence[Event]) -> None:
        with self._lock:
            spans = self._build(batch)
            if not spans:
                return
            try:
                result = self._exporter.export(spans)
            except Exception as exc:
                raise SinkUnavailable(
                    f"exporting {len(spans)} spans failed: {type(exc).__name__}: {exc}",
                    sink=self.name,
                ) from exc
            if result is not SpanExportResult.SUCCESS:
                raise SinkUnavailable(
                    f"the OTLP exporter could not export {len(spans)} spans"
                    + (f" to {self.endpoint}" if self.endpoint else "")
                    + " (collector down, or it refused them); see the opentelemetry log",
                    sink=self.name,
                )
            self.exported += len(spans)

    async def write(self, batch: Sequence[Event]) -> None:
        await anyio.to_thread.run_sync(self._write_sync, batch)

    def _close_sync(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._provider.shutdown()
            self._exporter.shutdown()

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self._close_sync)
