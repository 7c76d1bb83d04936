"""OTLPSink: events become OpenTelemetry GenAI spans with parent links, checked with the SDK's
InMemorySpanExporter and with the real OTLP/HTTP exporter against a local collector that
decodes the protobuf export (tests/analytics/_servers.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs the otel extra")

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from limelight.errors import ConfigError, SinkUnavailable
from limelight.schemas import Event
from limelight.sinks import OTLPSink, Sink
from limelight.sinks._otlp import span_id_for, trace_id_for

from ._servers import Fail, OTLPReceiver, otlp_receiver

pytestmark = pytest.mark.anyio


def agent_tree(run_id: str = "run-1") -> list[Event]:
    """An agent step, its LLM call (request + response) and a failing tool call."""
    common: dict[str, Any] = {"run_id": run_id, "user_id": "u1", "session_id": "s1"}
    step = Event.create_agent_planning("planner", steps=["look up", "answer"], **common)
    request = Event.create_llm_request(
        "gpt-x", provider="openai", parent_event_id=step.event_id, **common
    )
    response = Event.create_llm_response(
        "gpt-x",
        provider="openai",
        input_tokens=11,
        output_tokens=7,
        latency=0.4,
        finish_reason="tool_calls",
        cost=0.01,
        role="executor",
        parent_event_id=request.event_id,
        **common,
    )
    call = Event.create_tool_call("search", {"q": "x"}, parent_event_id=step.event_id, **common)
    result = Event.create_tool_response(
        "search", "index down", is_error=True, duration=0.2, parent_event_id=call.event_id, **common
    )
    error = Event.create_error(
        RuntimeError("gave up"), parent_event_id=step.event_id, include_traceback=False, **common
    )
    return [step, request, response, call, result, error]


@pytest.fixture
def memory() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def by_name(spans: Any) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


async def test_events_become_genai_spans_with_parent_links(memory: InMemorySpanExporter) -> None:
    sink = OTLPSink(exporter=memory)
    assert isinstance(sink, Sink)
    events = agent_tree()
    step, _, response, _, result, error = events
    await sink.write(events)
    spans = by_name(memory.get_finished_spans())
    assert set(spans) == {"invoke_agent planner", "chat gpt-x", "execute_tool search", "error"}
    assert sink.exported == 4
    assert sink.skipped == 2  # the request and the tool call: their answers' spans cover them

    agent = spans["invoke_agent planner"]
    assert agent.attributes is not None
    assert agent.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert agent.attributes["gen_ai.agent.name"] == "planner"
    assert agent.parent is None

    chat = spans["chat gpt-x"]
    assert chat.kind is SpanKind.CLIENT
    expected = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-x",
        "gen_ai.response.model": "gpt-x",
        "gen_ai.usage.input_tokens": 11,
        "gen_ai.usage.output_tokens": 7,
        "limelight.cost": 0.01,
        "limelight.role": "executor",
        "limelight.run_id": "run-1",
        "session.id": "s1",
        "user.id": "u1",
        "limelight.event_id": str(response.event_id),
    }
    attributes = dict(chat.attributes or {})
    assert {k: attributes.get(k) for k in expected} == expected
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert chat.end_time is not None
    assert chat.start_time is not None
    assert chat.end_time - chat.start_time == int(0.4 * 1e9)

    tool = spans["execute_tool search"]
    assert tool.attributes is not None
    assert tool.attributes["gen_ai.tool.name"] == "search"
    assert tool.attributes["error.type"] == "tool_error"
    assert tool.status.status_code is StatusCode.ERROR

    failed = spans["error"]
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == "RuntimeError"
    assert failed.status.description == "gave up"

    # One trace; the skipped request and tool call hand their children to the agent step.
    agent_ctx = agent.get_span_context()
    assert agent_ctx is not None
    assert agent_ctx.span_id == span_id_for(step.event_id)
    assert agent_ctx.trace_id == trace_id_for("run-1")
    for child in (chat, tool, failed):
        assert child.parent is not None
        assert child.parent.span_id == agent_ctx.span_id
        assert child.parent.trace_id == agent_ctx.trace_id
    ctx = tool.get_span_context()
    assert ctx is not None
    assert ctx.span_id == span_id_for(result.event_id)
    ctx = failed.get_span_context()
    assert ctx is not None
    assert ctx.span_id == span_id_for(error.event_id)
    await sink.aclose()
    await sink.aclose()  # idempotent


async def test_links_hold_across_batches_and_sinks(memory: InMemorySpanExporter) -> None:
    events = agent_tree()
    one_by_one = OTLPSink(exporter=memory)
    for event in events:
        await one_by_one.write([event])
    other = InMemorySpanExporter()
    at_once = OTLPSink(exporter=other)
    await at_once.write(events)

    def links(spans: Any) -> set[tuple[str, int, int | None, int]]:
        return {
            (s.name, s.context.span_id, s.parent.span_id if s.parent else None, s.context.trace_id)
            for s in spans
        }

    assert links(memory.get_finished_spans()) == links(other.get_finished_spans())


async def test_a_child_run_hangs_in_its_parents_trace(memory: InMemorySpanExporter) -> None:
    parent = Event.create_agent_response("boss", "delegated", run_id="parent-run")
    child = Event.create_agent_response(
        "worker", "done", run_id="child-run", parent_event_id=parent.event_id
    )
    orphan = Event.create_user_input("hi")
    sink = OTLPSink(exporter=memory)
    await sink.write([parent, child, orphan])
    spans = by_name(memory.get_finished_spans())
    boss, worker = spans["invoke_agent boss"], spans["invoke_agent worker"]
    assert worker.context.trace_id == boss.context.trace_id == trace_id_for("parent-run")
    assert spans["user_input"].parent is None


async def test_a_failed_export_is_unavailable(memory: InMemorySpanExporter) -> None:
    sink = OTLPSink(exporter=memory)
    memory.shutdown()  # a shut-down exporter reports FAILURE for every export
    with pytest.raises(SinkUnavailable, match="could not export 4 spans"):
        await sink.write(agent_tree())


def test_endpoint_and_exporter_together_is_a_config_error(memory: InMemorySpanExporter) -> None:
    with pytest.raises(ConfigError, match="not both"):
        OTLPSink("http://localhost:4318", exporter=memory)


@pytest.fixture
def collector() -> Iterator[OTLPReceiver]:
    with otlp_receiver() as running:
        yield running


async def test_the_real_otlp_exporter_reaches_a_collector(collector: OTLPReceiver) -> None:
    base = collector.url.removesuffix("/v1/traces")
    sink = OTLPSink(base, headers={"x-team": "a"}, timeout=5, service_name="demo")
    events = agent_tree()
    await sink.write(events)
    await sink.aclose()
    assert collector.content_types == ["application/x-protobuf"]
    export = collector.exports[0]
    resource = {a.key: a.value.string_value for a in export.resource_spans[0].resource.attributes}
    assert resource["service.name"] == "demo"
    spans = {span.name: span for span in collector.spans()}
    assert set(spans) == {"invoke_agent planner", "chat gpt-x", "execute_tool search", "error"}
    chat = spans["chat gpt-x"]
    attributes = {a.key: a.value for a in chat.attributes}
    assert attributes["gen_ai.usage.input_tokens"].int_value == 11
    assert attributes["gen_ai.request.model"].string_value == "gpt-x"
    agent = spans["invoke_agent planner"]
    assert chat.parent_span_id == agent.span_id == span_id_for(events[0].event_id).to_bytes(8)
    assert chat.trace_id == trace_id_for("run-1").to_bytes(16)


async def test_a_collector_that_refuses_or_is_down_is_unavailable(
    collector: OTLPReceiver,
) -> None:
    sink = OTLPSink(collector.url, timeout=1)
    collector.fail_next(Fail(400, body="bad spans"))
    with pytest.raises(SinkUnavailable, match="could not export"):
        await sink.write(agent_tree())
    await sink.write(agent_tree())  # the collector accepts the next one
    assert len(collector.exports) == 1
    collector.stop()
    with pytest.raises(SinkUnavailable, match="could not export"):
        await sink.write(agent_tree())
    await sink.aclose()


def test_span_ids_derive_from_event_ids() -> None:
    event_id = uuid.uuid4()
    assert span_id_for(event_id) == event_id.int & (2**64 - 1)
    assert trace_id_for("a") != trace_id_for("b")
    assert 0 < trace_id_for("a") < 2**128
