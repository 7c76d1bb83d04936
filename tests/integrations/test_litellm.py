"""LimelightLiteLLMLogger on real LiteLLM calls, offline: ``mock_response`` makes LiteLLM answer
(or fail) without a network call while its whole callback machinery runs as in production
(sync callbacks in its logging thread pool, async ones in its logging worker)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from limelight import analytics
from limelight.integrations import (
    LimelightLiteLLMLogger,
    disable_litellm_analytics,
    enable_litellm_analytics,
)
from limelight.providers._litellm import import_litellm
from limelight.schemas._events import Event, EventType
from limelight.sinks import MemorySink

from .conftest import by_type

litellm = import_litellm()
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]


@pytest.fixture
def logger(sink: MemorySink, monkeypatch: pytest.MonkeyPatch) -> Iterator[LimelightLiteLLMLogger]:
    monkeypatch.setattr(litellm, "suppress_debug_info", True)
    registered = enable_litellm_analytics(user_id="u-1")
    try:
        yield registered
    finally:
        disable_litellm_analytics()
    assert registered.failed == 0


@pytest.fixture
def run() -> str:
    """A run id for this test's calls (``metadata={"limelight_run_id": run}``).

    Each test looks only at the events of its own run: LiteLLM's logging worker carries the
    async logging tasks of calls made on an earlier event loop (another test's) onto the
    next loop it sees, where they run the callbacks registered then, ours included.
    """
    return uuid.uuid4().hex


def meta(run: str) -> dict[str, Any]:
    return {"metadata": {"limelight_run_id": run}}


def of_run(sink: MemorySink, run: str) -> list[Event]:
    return [e for e in sink.events if e.run_id == run]


def wait_for(sink: MemorySink, run: str, count: int) -> list[Event]:
    """LiteLLM runs callbacks after the call returns: wait until ``count`` events arrived."""
    deadline = time.monotonic() + 10
    while len(of_run(sink, run)) < count and time.monotonic() < deadline:
        analytics.get_client().flush(timeout=1)
        time.sleep(0.01)
    assert analytics.get_client().flush(timeout=10)
    return of_run(sink, run)


async def await_for(sink: MemorySink, run: str, count: int) -> list[Event]:
    with anyio.fail_after(10):
        while len(of_run(sink, run)) < count:
            await analytics.get_client().aflush(timeout=1)
            await anyio.sleep(0.01)
    return of_run(sink, run)


def check_success(events: list[Event], response: Any, text: str) -> Event:
    (request,) = by_type(events, EventType.LLM_REQUEST)
    (answer,) = by_type(events, EventType.LLM_RESPONSE)
    assert request.payload.model == answer.payload.model == "gpt-4o-mini"  # type: ignore[union-attr]
    assert request.payload.provider == "openai"  # type: ignore[union-attr]
    assert request.payload.messages_count == 2  # type: ignore[union-attr]
    assert answer.parent_event_id == request.event_id
    payload = answer.payload
    assert payload.content == text  # type: ignore[union-attr]
    assert payload.input_tokens == response.usage.prompt_tokens > 0  # type: ignore[union-attr]
    assert payload.output_tokens == response.usage.completion_tokens > 0  # type: ignore[union-attr]
    # The price from LiteLLM's (local) cost map for those tokens.
    assert payload.cost == pytest.approx(litellm.completion_cost(completion_response=response))  # type: ignore[union-attr]
    assert payload.cost > 0  # type: ignore[union-attr, operator]
    assert payload.latency is not None  # type: ignore[union-attr]
    assert {e.user_id for e in events} == {"u-1"}
    return answer


def test_a_sync_call_records_request_and_response(
    logger: LimelightLiteLLMLogger, sink: MemorySink, run: str
) -> None:
    response = litellm.completion(
        model="gpt-4o-mini",
        messages=MESSAGES,
        mock_response="hello there",
        temperature=0.2,
        **meta(run),
    )
    events = wait_for(sink, run, 2)
    assert len(events) == 2
    check_success(events, response, "hello there")
    (request,) = by_type(events, EventType.LLM_REQUEST)
    assert request.payload.temperature == 0.2  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_an_async_call_records_request_and_response(
    logger: LimelightLiteLLMLogger, sink: MemorySink, run: str, anyio_backend: str
) -> None:
    """LiteLLM's async API is asyncio-only ("trio.run received unrecognized yield message"):
    on trio the sync call runs in a worker thread."""
    if anyio_backend == "asyncio":
        response = await litellm.acompletion(
            model="gpt-4o-mini", messages=MESSAGES, mock_response="async hello", **meta(run)
        )
    else:
        response = await anyio.to_thread.run_sync(
            lambda: litellm.completion(
                model="gpt-4o-mini", messages=MESSAGES, mock_response="async hello", **meta(run)
            )
        )
    events = await await_for(sink, run, 2)
    await anyio.sleep(0.05)  # a duplicate (sync and async hooks both called) would show here
    assert len(of_run(sink, run)) == 2
    check_success(events, response, "async hello")


def test_a_streamed_call_is_recorded_once_it_ends(
    logger: LimelightLiteLLMLogger, sink: MemorySink, run: str
) -> None:
    chunks = list(
        litellm.completion(
            model="gpt-4o-mini",
            messages=MESSAGES,
            mock_response="streamed words",
            stream=True,
            **meta(run),
        )
    )
    assert len(chunks) > 1
    events = wait_for(sink, run, 2)
    (request,) = by_type(events, EventType.LLM_REQUEST)
    assert request.payload.stream  # type: ignore[union-attr]
    (answer,) = by_type(events, EventType.LLM_RESPONSE)
    assert answer.payload.content == "streamed words"  # type: ignore[union-attr]
    assert answer.payload.output_tokens > 0  # type: ignore[union-attr]


def test_a_failed_call_records_an_error_under_its_request(
    logger: LimelightLiteLLMLogger, sink: MemorySink, run: str
) -> None:
    with pytest.raises(litellm.exceptions.InternalServerError):
        litellm.completion(
            model="gpt-4o-mini",
            messages=MESSAGES,
            mock_response=Exception("upstream said no"),
            api_key="sk-secretsecretsecret1234",
            **meta(run),
        )
    events = wait_for(sink, run, 2)
    (request,) = by_type(events, EventType.LLM_REQUEST)
    (error,) = by_type(events, EventType.ERROR)
    assert not by_type(events, EventType.LLM_RESPONSE)
    assert error.parent_event_id == request.event_id
    assert "upstream said no" in error.payload.message  # type: ignore[union-attr]
    assert error.payload.context["model"] == "gpt-4o-mini"  # type: ignore[union-attr]
    assert "secretsecret" not in repr(events)


@pytest.mark.anyio
async def test_an_async_failure_is_recorded(
    logger: LimelightLiteLLMLogger, sink: MemorySink, run: str, anyio_backend: str
) -> None:
    def call_sync() -> Any:
        return litellm.completion(
            model="gpt-4o-mini", messages=MESSAGES, mock_response=Exception("no luck"), **meta(run)
        )

    with pytest.raises(litellm.exceptions.InternalServerError):
        if anyio_backend == "asyncio":
            await litellm.acompletion(
                model="gpt-4o-mini",
                messages=MESSAGES,
                mock_response=Exception("no luck"),
                **meta(run),
            )
        else:
            await anyio.to_thread.run_sync(call_sync)
    events = await await_for(sink, run, 2)
    (error,) = by_type(events, EventType.ERROR)
    assert "no luck" in error.payload.message  # type: ignore[union-attr]


def test_a_calls_metadata_sets_its_links(
    logger: LimelightLiteLLMLogger, sink: MemorySink, run: str
) -> None:
    parent = uuid.uuid4()
    litellm.completion(
        model="gpt-4o-mini",
        messages=MESSAGES,
        mock_response="linked",
        metadata={
            "limelight_run_id": run,
            "limelight_user_id": "u-2",
            "limelight_parent_event_id": str(parent),
        },
    )
    events = wait_for(sink, run, 2)
    assert {e.user_id for e in events} == {"u-2"}
    (request,) = by_type(events, EventType.LLM_REQUEST)
    assert request.parent_event_id == parent


def test_enable_replaces_and_disable_removes(sink: MemorySink, run: str) -> None:
    first = enable_litellm_analytics()
    second = enable_litellm_analytics(user_id="second")
    try:
        ours = [cb for cb in litellm.callbacks if isinstance(cb, LimelightLiteLLMLogger)]
        assert ours == [second]
        assert first not in litellm.callbacks
        litellm.completion(
            model="gpt-4o-mini", messages=MESSAGES, mock_response="once", **meta(run)
        )
        events = wait_for(sink, run, 2)
        time.sleep(0.05)
        assert len(of_run(sink, run)) == 2
        assert {e.user_id for e in events} == {"second"}
    finally:
        assert disable_litellm_analytics() >= 1
    assert not [
        cb
        for cb in litellm.logging_callback_manager.get_all_callbacks()
        if isinstance(cb, LimelightLiteLLMLogger)
    ]
    after = uuid.uuid4().hex
    litellm.completion(model="gpt-4o-mini", messages=MESSAGES, mock_response="no", **meta(after))
    time.sleep(0.1)
    assert analytics.get_client().flush(timeout=10)
    assert not of_run(sink, after)
