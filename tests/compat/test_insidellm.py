"""limelight.compat.insidellm: the analytics SDK's documented usage, run with only the import
line changed (``tests/compat/_insidellm_examples.py``), and what it records checked where it
arrives: the JSON-lines file of local testing, limelight's SQLite file, or an HTTP ingestion
server started by the test that records each batch.

Everything is real: limelight's shipper and spool, langchain-core's fake chat models, LiteLLM
with ``mock_response``, and google-cloud-discoveryengine's own clients talking REST to a local
HTTP server and gRPC to a local gRPC server (the Vertex AI Agent Builder API cannot be reached
here). No stand-in except the SDK examples' own mock objects (its CrewAI LLM response), and a
no-op ``time.sleep`` in the examples (their sleeps only imitate slow calls).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog

import limelight.compat.insidellm as insidellm
from limelight import analytics
from limelight.compat._insidellm import _client
from limelight.compat.insidellm import (
    ConfigurationError,
    Event,
    EventType,
    InsideLLMClient,
    InsideLLMConfig,
    InsideLLMTracker,
)
from limelight.errors import ConfigError, LimelightError, SinkError
from limelight.schemas import Event as NativeEvent
from limelight.schemas import EventType as Kind
from limelight.sinks import read_events, read_jsonl

from ..analytics._servers import Fail, IngestServer
from . import _insidellm_examples as examples

TYPE = "insidellm.event_type"
EXTRA = "insidellm.payload"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A clean process: no INSIDELLM_* variables, limelight's spool and SQLite file in
    ``tmp_path`` (also the working directory: local testing writes ``insidellm_logs/``
    there), no default client; everything shut down afterwards."""
    import os

    for var in [v for v in os.environ if v.startswith(("INSIDELLM_", "LIMELIGHT_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("LIMELIGHT_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("LIMELIGHT_DB_PATH", str(tmp_path / "events.db"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_client, "_default_client", None)
    monkeypatch.setattr(examples, "time", SimpleNamespace(sleep=lambda s: None, time=time.time))
    try:
        yield tmp_path
    finally:
        insidellm.shutdown()
        analytics.shutdown(timeout=10)
    assert analytics.current() is None


def local_events(folder: Path) -> list[NativeEvent]:
    return read_jsonl(folder / "insidellm_logs" / "events.jsonl")


def of(events: list[NativeEvent], kind: EventType) -> list[NativeEvent]:
    return [e for e in events if e.metadata.get(TYPE) == kind.value]


def one(events: list[NativeEvent], kind: EventType) -> NativeEvent:
    (found,) = of(events, kind)
    return found


class SDKIngest(IngestServer):
    """The SDK's API: ``POST /v1/runs/ingest`` with a bearer key (batches of limelight
    events, deduped by ``event_id``)."""

    path = "/v1/runs/ingest"


@pytest.fixture
def api() -> Iterator[SDKIngest]:
    server = SDKIngest(api_key="sk-insidellm-test-key-0001")
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- README -------------------------------------------------------------------------------


def test_readme_quick_start_records_into_limelights_sqlite_file(env: Path) -> None:
    run_id = examples.readme_quick_start()
    assert analytics.current() is None  # insidellm.shutdown() shut limelight's client down
    events = read_events(env / "events.db", run_id=run_id)
    assert [e.event_type for e in events] == [Kind.SESSION_START, Kind.USER_INPUT, Kind.SESSION_END]
    user = events[1]
    assert user.payload.text == "Hello, AI assistant!"
    assert user.user_id == "user-123"
    assert user.metadata[TYPE] == "user.input"


def test_initialize_makes_limelights_process_wide_client(env: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"Call initialize\(\) first"):
        insidellm.get_client()
    first = insidellm.initialize(local_testing=True)
    assert insidellm.get_client() is first
    assert analytics.current() is first.analytics
    # limelight's own decorators record into it too.

    @analytics.track_tool_use("native_tool")
    def native_tool(x: int) -> int:
        return x + 1

    run = insidellm.start_run(user_id="u-1")
    native_tool(1)
    insidellm.log_event(Event.create_user_input(run, "u-1", "hi"))
    insidellm.end_run(run)
    assert insidellm.flush()
    second = insidellm.initialize(local_testing=True)
    assert first.closed
    assert not second.closed
    assert analytics.current() is second.analytics
    insidellm.shutdown()
    assert second.closed
    assert insidellm.get_client() is second  # kept, closed, as the SDK
    kinds = [e.event_type for e in local_events(env)]
    assert kinds == [
        Kind.SESSION_START,
        Kind.TOOL_CALL,
        Kind.TOOL_RESPONSE,
        Kind.USER_INPUT,
        Kind.SESSION_END,
    ]


def test_readme_custom_agent_decorators_and_tracker(env: Path) -> None:
    insidellm.initialize(api_key="your-api-key", local_testing=True)
    results = examples.readme_custom_agent()
    assert results == [["search", "answer"], ["result for greetings"], "Hello! (Say hello)"]
    insidellm.shutdown()
    events = local_events(env)
    requests = {e.metadata[EXTRA]["prompt"]: e for e in of(events, EventType.LLM_REQUEST)}
    assert set(requests) == {"User greeting", "Say hello"}
    answers = {e.parent_event_id: e for e in events if e.event_type is Kind.LLM_RESPONSE}
    assert answers[requests["User greeting"].event_id].payload.content == "Hello! (User greeting)"
    # The decorated call: limelight's record, its answer under its request.
    assert answers[requests["Say hello"].event_id].payload.content == "Hello! (Say hello)"
    calls = {e.payload.tool_name: e for e in events if e.event_type is Kind.TOOL_CALL}
    results = {e.parent_event_id: e for e in events if e.event_type is Kind.TOOL_RESPONSE}
    assert results[calls["calculator"].event_id].payload.result == 4
    assert calls["web_search"].payload.arguments == {"query": "greetings"}
    assert results[calls["web_search"].event_id].payload.result == ["result for greetings"]
    step = next(e for e in events if e.event_type is Kind.FUNCTION_EXECUTION)
    assert step.payload.function_name == "planning"
    user = one(events, EventType.USER_INPUT)
    agent = one(events, EventType.AGENT_RESPONSE)
    assert agent.parent_event_id == user.event_id
    assert {e.run_id for e in events} == {user.run_id}  # all in the tracker's run
    assert {e.user_id for e in events} == {"user-123"}


def test_readme_configuration_from_the_environment(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert InsideLLMConfig() == InsideLLMConfig(
        10000, 50, 30.0, 30.0, 3, 2.0, False, True, "INFO", False
    )
    monkeypatch.setenv("INSIDELLM_API_KEY", "your-api-key")
    monkeypatch.setenv("INSIDELLM_BATCH_SIZE", "50")
    monkeypatch.setenv("INSIDELLM_AUTO_FLUSH_INTERVAL", "30.0")
    monkeypatch.setenv("INSIDELLM_MAX_RETRIES", "3")
    monkeypatch.setenv("INSIDELLM_MAX_QUEUE_SIZE", "777")
    monkeypatch.setenv("INSIDELLM_RAISE_ON_ERROR", "yes")
    monkeypatch.setenv("INSIDELLM_STRICT_VALIDATION", "false")
    config = InsideLLMConfig.from_env()
    assert (config.batch_size, config.max_queue_size, config.max_retries) == (50, 777, 3)
    assert config.raise_on_error is True
    assert config.strict_validation is False
    client = insidellm.initialize(local_testing=True, batch_size=25)
    assert client.api_key == "your-api-key"
    assert "your-api-key" not in repr(client)
    assert (client.config.batch_size, client.config.max_queue_size) == (25, 777)
    limelight = client.analytics.config
    assert (limelight.batch_size, limelight.max_queue_size, limelight.flush_interval) == (
        25,
        777,
        30.0,
    )
    assert str(limelight.spool_dir) == str(env / "spool")
    monkeypatch.setenv("INSIDELLM_BATCH_SIZE", "fifty")
    with pytest.raises(
        ConfigurationError, match="INSIDELLM_BATCH_SIZE='fifty' is not a whole number"
    ):
        InsideLLMConfig.from_env()


def test_readme_programmatic_configuration(env: Path) -> None:
    config = insidellm.InsideLLMConfig(
        max_queue_size=10000,
        batch_size=50,
        auto_flush_interval=30.0,
        request_timeout=30.0,
        max_retries=3,
        raise_on_error=False,
    )
    client = insidellm.initialize(api_key="your-api-key", config=config)
    assert client.config is config
    assert client.analytics.config.sink_timeout == 30.0
    assert config.to_dict()["batch_size"] == 50
    # The SDK's checks, as ValueErrors.
    with pytest.raises(ValueError, match="batch_size cannot exceed max_queue_size"):
        InsideLLMConfig(max_queue_size=10, batch_size=11)
    with pytest.raises(ConfigurationError, match="log_level must be one of"):
        InsideLLMConfig(log_level="LOUD")
    with pytest.raises(ConfigurationError, match=r"unknown option.*'batchsize'"):
        InsideLLMClient(local_testing=True, batchsize=3)
    with pytest.raises(ConfigurationError, match="log_format='csv' is not supported"):
        InsideLLMClient(local_testing=True, log_format="csv")


def test_readme_manual_events_error_handling_and_statistics(env: Path) -> None:
    client = insidellm.initialize(api_key="your-api-key", local_testing=True)
    assert client.queue_manager.get_statistics() == {
        "events_queued": 0,
        "events_sent": 0,
        "events_failed": 0,
        "queue_size": 0,
        "success_rate": 0.0,
    }
    metric = examples.readme_manual_event()
    run_id = client.start_run(user_id="user-123")
    error = examples.readme_error_handling(run_id, "user-123")
    assert client.flush()
    stats = examples.readme_performance_monitoring()
    assert stats == {
        "events_queued": 3,
        "events_sent": 3,
        "events_failed": 0,
        "queue_size": 0,
        "success_rate": 100.0,
    }
    events = {e.event_id: e for e in local_events(env)}
    stored = events[uuid.UUID(metric.event_id)]
    assert stored.run_id == "your-run-id"  # any run id (the SDK insisted on a UUID)
    assert stored.payload.name == "response_time"
    assert (stored.payload.value, stored.payload.unit) == (250.0, "ms")
    failure = events[uuid.UUID(error.event_id)]
    assert failure.event_type is Kind.ERROR
    assert failure.payload.error_type == "processing_error"
    assert failure.payload.message == "could not parse the request"
    assert failure.metadata[EXTRA] == {"error_code": "ValueError", "severity": "error"}


# -- the SDK's HTTP API ------------------------------------------------------------------


def test_base_url_ships_to_the_http_api_with_the_key(env: Path, api: SDKIngest) -> None:
    base = f"http://127.0.0.1:{api.port}"
    with pytest.raises(ConfigurationError, match="API key is required"):
        InsideLLMClient(base_url=base)
    key = "sk-insidellm-test-key-0001"
    with InsideLLMClient(api_key=key, base_url=base + "/", batch_size=2) as client:
        assert analytics.current() is None  # a client built directly is registered nowhere
        run = client.start_run(user_id="u-http")
        for text in ("one", "two", "three"):
            client.log_event(Event.create_user_input(None, None, text))
        client.end_run()
        assert client.flush()
        stats = client.queue_manager.get_statistics()
    assert client.closed
    assert stats["events_sent"] == stats["events_queued"] == 5
    assert stats["success_rate"] == 100.0
    stored = [e for e in api.events if e.run_id == run]
    assert [e.event_type for e in stored].count(Kind.USER_INPUT) == 3
    assert {e.user_id for e in stored} == {"u-http"}  # the current run's, as in the SDK
    assert set(api.authorizations) == {f"Bearer {key}"}


def test_refused_batches_count_as_failed_in_the_statistics(env: Path, api: SDKIngest) -> None:
    api.fail_next(Fail(400, body="bad batch"))
    client = insidellm.initialize(
        api_key="sk-insidellm-test-key-0001", base_url=f"http://127.0.0.1:{api.port}", batch_size=1
    )
    client.log_event(Event.create_user_input("r-1", "u-1", "refused"))
    client.flush(10)
    client.log_event(Event.create_user_input("r-1", "u-1", "accepted"))
    client.flush(10)
    stats = client.queue_manager.get_statistics()
    assert (stats["events_sent"], stats["events_failed"]) == (1, 1)
    assert stats["success_rate"] == 50.0
    assert issubclass(SinkError, insidellm.NetworkError)
    assert insidellm.InsideLLMError is LimelightError


# -- events --------------------------------------------------------------------------------


def test_event_types_keep_the_sdks_names_and_values() -> None:
    assert EventType.USER_INPUT.value == "user.input"
    assert EventType.SESSION_START == "run.start"
    assert EventType("llm_request") is EventType.LLM_REQUEST  # the earlier spelling
    assert EventType("session_start") is EventType.SESSION_START
    assert str(EventType.ERROR) == "EventType.ERROR"
    assert {t.name for t in EventType} >= {"CHAIN_START", "CHAIN_END", "CUSTOM_EVENT"}
    with pytest.raises(ConfigurationError, match=r"'user\.typed' is not an event type"):
        Event(event_type="user.typed", payload={})
    with pytest.raises(ConfigurationError, match="parent_event_id must be a UUID"):
        Event(event_type=EventType.ERROR, payload={}, parent_event_id="calc-001")
    with pytest.raises(ConfigurationError, match="timestamp must be ISO 8601"):
        Event(event_type=EventType.ERROR, payload={}, timestamp="yesterday")
    with pytest.raises(
        ConfigurationError, match=r"Expected `str`, got `null` - at `\$.input_text`"
    ):
        Event.create_user_input("r", "u", input_text=None)
    event = Event.create_llm_request(
        "r", "u", "gpt-4", "openai", "hi", parameters={"temperature": 0.2}
    )
    assert event.payload["parameters"] == {"temperature": 0.2}
    assert event.to_dict()["event_type"] == "llm.request"
    assert "parent_event_id" not in event.to_dict()
    assert event.timestamp.endswith("Z")
    native = event.to_native()
    assert native.event_type is Kind.LLM_REQUEST
    assert native.payload.temperature == 0.2
    assert native.payload.messages_count == 1


def test_every_event_type_of_the_ecommerce_example_arrives_typed(env: Path) -> None:
    client = insidellm.initialize(api_key="iilmn-sample-key", local_testing=True)
    sent = examples.create_ecommerce_session(client)
    insidellm.shutdown()
    stored = {e.event_id: e for e in local_events(env)}
    got = {name: stored[uuid.UUID(event.event_id)] for name, event in sent.items()}
    assert {name: e.event_type for name, e in got.items()} == {
        "session_start": Kind.SESSION_START,
        "user_search": Kind.USER_INPUT,
        "agent_plan": Kind.AGENT_PLANNING,
        "agent_reasoning": Kind.AGENT_REASONING,
        "search_tool": Kind.TOOL_CALL,
        "api_request": Kind.API_REQUEST,
        "api_response": Kind.API_RESPONSE,
        "tool_response": Kind.TOOL_RESPONSE,
        "llm_request": Kind.LLM_REQUEST,
        "llm_chunk": Kind.LLM_STREAMING_CHUNK,
        "llm_response": Kind.LLM_RESPONSE,
        "agent_response": Kind.AGENT_RESPONSE,
        "cart_function": Kind.FUNCTION_EXECUTION,
        "performance": Kind.PERFORMANCE_METRIC,
        "user_feedback": Kind.USER_FEEDBACK,
        "session_end": Kind.SESSION_END,
        "validation_error": Kind.VALIDATION_ERROR,
        "timeout_error": Kind.TIMEOUT_ERROR,
        "chain_start": Kind.AGENT_PLANNING,
        "chain_end": Kind.AGENT_RESPONSE,
    }
    for name, event in sent.items():
        assert got[name].metadata[TYPE] == event.event_type.value
        parent = event.parent_event_id
        assert got[name].parent_event_id == (uuid.UUID(parent) if parent else None)
    llm = got["llm_response"].payload
    assert (llm.input_tokens, llm.output_tokens, llm.cost, llm.latency) == (50, 30, 0.002, 2.5)
    assert llm.content == "I recommend the Pro Gaming Mouse."
    assert got["llm_request"].payload.max_tokens == 150
    assert "Compare these gaming mice" in got["llm_request"].metadata[EXTRA]["prompt"]
    tool = got["tool_response"].payload
    assert (tool.duration, tool.is_error) == (0.2, False)
    assert tool.result["products"][0]["id"] == "mouse1"
    assert got["user_search"].metadata[EXTRA] == {
        "channel": "web",
        "session_context": {"cart_items": 0},
    }
    feedback = got["user_feedback"].payload
    assert feedback.comment == "Great recommendation!"
    assert feedback.target_event_id == uuid.UUID(sent["agent_response"].event_id)
    assert got["user_feedback"].metadata[EXTRA] == {
        "feedback_type": "thumbs_up_down",
        "feedback_value": True,
    }
    assert got["session_end"].payload.duration == 5.0
    assert got["session_end"].payload.status == "completed"
    assert got["timeout_error"].payload.timeout == 5.0
    assert got["chain_start"].payload.agent_name == "product_comparison"
    assert json.loads(got["chain_start"].payload.content) == {"products": ["mouse1", "mouse2"]}
    assert got["chain_end"].payload.duration == 0.3
    assert got["api_response"].payload.status_code == 200


def test_strict_validation_raises_and_lenient_keeps_the_payload(env: Path) -> None:
    client = insidellm.initialize(local_testing=True)
    bad = Event(run_id="r", user_id="u", event_type=EventType.LLM_REQUEST, payload={"prompt": "hi"})
    with pytest.raises(ConfigurationError, match="missing required field `model_name`"):
        client.log_event(bad)
    lenient = insidellm.initialize(local_testing=True, strict_validation=False)
    with structlog.testing.capture_logs() as logs:
        lenient.log_event(bad)
    assert [entry["event"] for entry in logs] == [
        "event does not fit its type; recorded with its payload in the metadata"
    ]
    with pytest.raises(ConfigError, match="takes an Event, not dict"):
        lenient.log_event({"event_type": "error"})
    insidellm.shutdown()
    (stored,) = local_events(env)
    assert stored.event_type is Kind.LLM_REQUEST
    assert stored.payload.model == ""
    assert stored.metadata[EXTRA] == {"prompt": "hi"}


# -- the examples folder --------------------------------------------------------------------


def test_basic_usage_example(env: Path) -> None:
    out = examples.basic_usage_main("demo-key")
    assert out["flushed"] is True
    events = local_events(env)
    stats = out["stats"]
    assert stats["events_failed"] == 0
    # read before the final flush: every event accepted, each either sent or still pending
    assert stats["events_queued"] == len(events)
    assert stats["events_sent"] + stats["queue_size"] == len(events)
    runs = {
        name: [e for e in events if e.run_id == run]
        for name, run in out.items()
        if name not in ("stats", "flushed")
    }
    kinds = {name: [e.event_type for e in found] for name, found in runs.items()}
    assert kinds["basic"] == [
        Kind.SESSION_START,
        Kind.USER_INPUT,
        Kind.LLM_REQUEST,
        Kind.LLM_RESPONSE,
        Kind.SESSION_END,
    ]
    basic = runs["basic"]
    assert basic[0].payload.attributes == {"session_type": "demo", "environment": "development"}
    # the run's metadata on its events, the event's own over it
    assert basic[1].metadata["session_type"] == "demo"
    assert basic[1].metadata["channel"] == "web"
    assert basic[2].parent_event_id == basic[1].event_id
    assert (basic[3].payload.input_tokens, basic[3].payload.latency) == (15, 0.5)
    assert kinds["tool"] == [
        Kind.SESSION_START,
        Kind.TOOL_CALL,
        Kind.TOOL_RESPONSE,
        Kind.SESSION_END,
    ]
    assert runs["tool"][2].payload.result == 360
    assert runs["error"][1].metadata[EXTRA]["error_code"] == "INVALID_INPUT"
    assert [e.payload.value for e in runs["metrics"][1:-1]] == [250, 128, 150, 0.95]
    assert kinds["context"] == [
        Kind.SESSION_START,
        Kind.USER_INPUT,
        Kind.LLM_REQUEST,
        Kind.LLM_RESPONSE,
        Kind.TOOL_CALL,
        Kind.TOOL_RESPONSE,
        Kind.AGENT_RESPONSE,
        Kind.SESSION_END,
    ]
    assert runs["context"][5].payload.result == {
        "temperature": 72,
        "condition": "sunny",
        "humidity": 45,
    }
    assert kinds["decorator"] == [
        Kind.SESSION_START,
        Kind.LLM_REQUEST,
        Kind.LLM_RESPONSE,
        Kind.TOOL_CALL,
        Kind.TOOL_RESPONSE,
        Kind.AGENT_REASONING,
        Kind.FUNCTION_EXECUTION,
        Kind.SESSION_END,
    ]
    decorated = runs["decorator"]
    assert decorated[2].payload.content == "Response to: Analyze this text for sentimen..."
    assert decorated[2].parent_event_id == decorated[1].event_id
    assert decorated[3].payload.arguments == {"text": "This is a great example of SDK usage!"}
    assert decorated[6].payload.result == "HELLO WORLD"


def test_custom_agent_example(env: Path) -> None:
    out = examples.custom_agent_main("demo-key")
    assert out["answers"][0] == "Task completed. Results: Formatted: 2"
    events = read_events(env / "events.db")
    assert out["stats"]["events_failed"] == 0
    calculator = [
        e for e in events if e.event_type is Kind.TOOL_CALL and e.payload.tool_name == "calculator"
    ]
    assert [e.payload.arguments for e in calculator] == [{"expression": "1+1"}]
    memory = [
        e for e in events if e.event_type is Kind.TOOL_RESPONSE and e.payload.tool_name == "memory"
    ]
    assert [(e.payload.is_error, e.payload.result) for e in memory] == [(False, [])]
    llm = [
        e
        for e in events
        if e.event_type is Kind.LLM_RESPONSE and e.payload.model == "custom-llm-v1"
    ]
    assert len(llm) == 2
    assert all(e.payload.content.startswith("Mock response to:") for e in llm)
    planning = of(events, EventType.AGENT_PLANNING)
    assert len(planning) == 5
    assert all(e.metadata["agent_name"] == "MyCustomAgent" for e in planning)
    # decorated calls hang under the agent step that ran them
    steps = {e.event_id for e in events if e.event_type is Kind.AGENT_REASONING}
    assert all(e.parent_event_id in steps for e in calculator)
    assert one(events, EventType.PERFORMANCE_METRIC).payload.value == 300


def test_decorator_example_with_a_client_of_its_own(env: Path) -> None:
    client, run_id, outputs = examples.decorator_module_example()
    assert outputs[0] == "Hello Decorator"
    assert analytics.current() is None
    assert client.flush()
    assert client.shutdown()
    events = read_events(env / "events.db", run_id=run_id)
    kinds = [e.event_type for e in events]
    assert kinds == [
        Kind.SESSION_START,
        Kind.FUNCTION_EXECUTION,
        Kind.LLM_REQUEST,
        Kind.LLM_RESPONSE,
        Kind.SESSION_END,
    ]
    function = events[1].payload
    assert function.function_name == "my_custom_string_concatenator"
    assert function.arguments == {"a": "Hello", "b": "Decorator"}
    assert events[2].payload.model == "mock-llm"
    assert events[2].metadata[EXTRA]["parameters"] == {"temperature": 0.5}


# -- tracking: errors, async -------------------------------------------------------------------


def test_tracker_blocks_record_failures_and_reraise(env: Path) -> None:
    insidellm.initialize(local_testing=True)
    with (
        pytest.raises(RuntimeError, match="model down"),
        InsideLLMTracker(user_id="u-err") as tracker,
    ):
        with pytest.raises(TimeoutError), tracker.track_tool_call("search", {"q": "x"}):
            raise TimeoutError("slow tool")
        with tracker.track_llm_call("gpt-4", "openai", "hello"):
            raise RuntimeError("model down")
    insidellm.shutdown()
    events = [e for e in local_events(env) if e.run_id == tracker.run_id]
    kinds = [e.event_type for e in events]
    assert kinds == [
        Kind.SESSION_START,
        Kind.TOOL_CALL,
        Kind.TOOL_RESPONSE,
        Kind.LLM_REQUEST,
        Kind.ERROR,
        Kind.ERROR,
        Kind.SESSION_END,
    ]
    assert events[2].payload.is_error
    assert events[2].metadata[EXTRA]["error_message"] == "slow tool"
    llm_error, context_error = events[4], events[5]
    assert llm_error.parent_event_id == events[3].event_id
    assert llm_error.payload.error_type == "llm_call_error"
    assert llm_error.metadata[EXTRA]["error_code"] == "RuntimeError"
    assert context_error.payload.error_type == "context_error"


def test_decorators_record_nothing_without_a_run_or_a_client(env: Path) -> None:
    @insidellm.track_tool_use("lonely")
    def lonely() -> str:
        return "ran"

    assert lonely() == "ran"  # no client: the function just runs (the SDK raised)
    insidellm.initialize(local_testing=True)
    with structlog.testing.capture_logs() as logs:
        assert lonely() == "ran"
    assert logs[0]["event"] == "No active run context, tool use not tracked"
    insidellm.shutdown()
    assert not (env / "insidellm_logs" / "events.jsonl").exists()


@pytest.mark.anyio
async def test_async_functions_and_async_tracker(env: Path) -> None:
    client = insidellm.initialize(local_testing=True)

    @insidellm.track_tool_use("lookup", "api")
    async def lookup(key: str) -> str:
        return key.upper()

    @insidellm.track_llm_call("gpt-4o", "openai")
    async def answer(prompt: str) -> dict[str, Any]:
        found = await lookup("x")
        return {
            "content": f"{prompt}:{found}",
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        }

    @insidellm.track_agent_step("fail")
    async def fail() -> None:
        raise KeyError("nope")

    async with InsideLLMTracker(client, user_id="u-async") as tracker:
        assert await answer("q") == {
            "content": "q:X",
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        }
        with pytest.raises(KeyError):
            await fail()
        async with tracker.track_llm_call("gpt-4o", "openai", "p") as log_response:
            log_response("done", finish_reason="stop")
    assert await client.aflush()
    events = [e for e in local_events(env) if e.run_id == tracker.run_id]
    request = next(e for e in events if e.event_type is Kind.LLM_REQUEST)
    tool_call = next(e for e in events if e.event_type is Kind.TOOL_CALL)
    assert tool_call.parent_event_id == request.event_id  # the tool ran inside the LLM call
    response = next(e for e in events if e.event_type is Kind.LLM_RESPONSE)
    assert (response.payload.content, response.payload.input_tokens) == ("q:X", 3)
    errors = [e for e in events if e.event_type is Kind.ERROR]
    assert errors[0].payload.error_type == "KeyError"
    last = [e for e in events if e.event_type is Kind.LLM_RESPONSE][-1]
    assert last.payload.finish_reason == "stop"
