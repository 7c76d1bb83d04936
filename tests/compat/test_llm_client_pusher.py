"""The earlier agent client's Pusher streaming through ``limelight.compat.llm_client``.

``PusherStreamer``, ``PusherSink`` with ``stream_to_sink``, and ``stream_as_sse``, used as the
earlier package's code used them, with only the import line changed. They run against a
local Pusher HTTP API over real HTTP that checks every request's signature as Pusher does
(tests/_pusher_server.py) and records what it accepted: the tests read the channel back
from it. The app is configured with the earlier variables (``PUSHER_AUTH_KEY``...);
``PUSHER_HOST`` points it at the local server, where the earlier code always reached
``api-<cluster>.pusher.com``. Providers and agents stream from the simulator as "OpenAI"
(tests/compat/_llm_client_sim.py).
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from limelight.compat.llm_client import (
    Agent,
    CompletionResult,
    EventSink,
    OpenAIProvider,
    PusherSink,
    PusherStreamer,
    StreamEvent,
    StreamEventType,
    ToolCallDelta,
    Usage,
    encode_sse_event,
    stream_as_sse,
    stream_to_sink,
    tool,
)
from limelight.errors import (
    AuthenticationError,
    ConfigError,
    ProviderConnectionError,
    StreamDeliveryError,
)
from limelight.runtime import RetryPolicy

from .._pusher_server import APP_ID, KEY, SECRET, PusherServer, pusher_server
from ._llm_client_sim import openai_sim

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.1, jitter=0.0)
LIMELIGHT_NAMES = ("PUSHER_KEY", "PUSHER_SECRET", "PUSHER_CLUSTER", "PUSHER_HOST")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[PusherServer]:
    """The local Pusher API, and the environment the earlier package read."""
    with pusher_server() as running:
        for name in LIMELIGHT_NAMES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("PUSHER_AUTH_KEY", KEY)
        monkeypatch.setenv("PUSHER_AUTH_SECRET", SECRET)
        monkeypatch.setenv("PUSHER_AUTH_VERSION", "1.0")
        monkeypatch.setenv("PUSHER_APP_ID", APP_ID)
        monkeypatch.setenv("PUSHER_APP_CLUSTER", "eu")
        monkeypatch.setenv("PUSHER_HOST", running.url)  # wins over the cluster's host
        yield running


def published(server: PusherServer, channel: str) -> list[tuple[str, str]]:
    """The channel's events as ``(name, data)``, in the order the server accepted them."""
    events = server.events()
    assert {c for c, _, _ in events} <= {channel}
    return [(name, data) for _, name, data in events]


@tool
async def get_weather(city: str) -> str:
    """Get weather for a city."""
    return f"Weather in {city}: Sunny, 72°F"


async def test_push_event_as_the_earlier_client_streamed_a_response(
    server: PusherServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The earlier OpenAIClient's "pusher" stream mode, its lines over a provider's stream."""
    async with openai_sim(monkeypatch, output_tokens=5):
        provider = OpenAIProvider(model="gpt-5-nano")
        output = ""
        answers = []
        channel_id = str(uuid.uuid4())

        async with PusherStreamer(channel=channel_id) as streamer:
            answers.append(await streamer.push_event("new-response", ""))
            async for event in provider.stream("Tell me a story"):
                if event.type == StreamEventType.TOKEN:
                    answers.append(await streamer.push_event("new-token", event.data))
                    output += event.data
            answers.append(await streamer.push_event("response-finished", "OK"))

        await provider.close()
    assert len(output.split()) == 5
    events = published(server, channel_id)
    assert events[0] == ("new-response", "")
    assert events[-1] == ("response-finished", "OK")
    tokens = events[1:-1]
    assert {name for name, _ in tokens} == {"new-token"}
    assert "".join(data for _, data in tokens) == output
    # Each push returned the server's answer, as before: Pusher's JSON object.
    assert answers == [{}] * len(events)
    assert len(server.received) == len(events)  # one request per event


async def test_a_pusher_sink_fed_an_agents_stream(
    server: PusherServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With this seed the simulated model calls the tool, then answers.
    async with openai_sim(monkeypatch, tool_call_probability=0.5, seed=5, output_tokens=3):
        agent = Agent(provider=OpenAIProvider(model="gpt-5-nano"), tools=[get_weather])

        async with PusherSink("agent-run-7") as sink:
            await stream_to_sink(agent.stream("What's the weather in Tokyo?"), sink)

        await agent.close()
    assert isinstance(sink, EventSink)
    events = published(server, "agent-run-7")
    names = [name for name, _ in events]
    assert set(names) <= {t.value for t in StreamEventType}
    metas = [json.loads(data) for name, data in events if name == "meta"]
    turn_starts = [m["turn"] for m in metas if m.get("event") == "turn_start"]
    assert turn_starts == list(range(len(turn_starts)))
    assert len(turn_starts) >= 2  # a tool call, then the answer
    # Every tool call announced ran, and said so.
    ends = [json.loads(data) for name, data in events if name == "tool_call_end"]
    results = [m for m in metas if m.get("event") == "tool_result"]
    assert ends
    assert [r["tool_call_id"] for r in results] == [e["id"] for e in ends]
    assert all(e["name"] == "get_weather" for e in ends)
    assert all(r["content"].startswith("Weather in ") for r in results)
    # The run's last event is its AgentResult, its content the last turn's tokens.
    name, data = events[-1]
    assert name == "done"
    final = json.loads(data)
    assert final["status"] == "success"
    assert final["num_turns"] == len(turn_starts)
    last_start = max(i for i, (n, d) in enumerate(events) if n == "meta" and "turn_start" in d)
    answer = "".join(d for n, d in events[last_start:] if n == "token")
    assert answer
    assert final["content"] == answer
    assert final["total_usage"]["total_tokens"] > 0


async def test_stream_as_sse_and_encode_sse_event(monkeypatch: pytest.MonkeyPatch) -> None:
    async with openai_sim(monkeypatch, output_tokens=3):
        provider = OpenAIProvider(model="gpt-5-nano")

        frames = [frame async for frame in stream_as_sse(provider.stream("Tell me a story"))]

        await provider.close()
    parsed = []
    for frame in frames:
        head, data = frame.removesuffix("\n\n").split("\n", 1)
        parsed.append((head.removeprefix("event: "), data.removeprefix("data: ")))
    names = [name for name, _ in parsed]
    assert names == ["meta", "token", "token", "token", "usage", "done"]
    assert json.loads(parsed[0][1]) == {"model": "gpt-5-nano-2025-08-07"}
    text = "".join(data for name, data in parsed if name == "token")  # tokens as they are
    assert json.loads(parsed[4][1])["total_tokens"] > 3
    done = json.loads(parsed[5][1])
    assert (done["status"], done["content"]) == (200, text)
    # Objects the earlier json.dumps refused are written as JSON, and as ASCII, as before.
    delta = StreamEvent(StreamEventType.TOOL_CALL_DELTA, ToolCallDelta("c1", 0, "f", '{"a'))
    assert encode_sse_event(delta) == (
        'event: tool_call_delta\ndata: {"id": "c1", "index": 0, "name": "f", '
        '"arguments_delta": "{\\"a"}\n\n'
    )
    assert encode_sse_event(StreamEvent(StreamEventType.META, {"city": "Zürich"})) == (
        'event: meta\ndata: {"city": "Z\\u00fcrich"}\n\n'
    )
    assert encode_sse_event(StreamEvent(StreamEventType.TOKEN, "Zü\n")) == (
        "event: token\ndata: Zü\n\n\n"
    )
    with pytest.raises(ConfigError, match="cannot be sent as JSON"):
        encode_sse_event(StreamEvent(StreamEventType.META, {"when": object()}))


async def test_the_streamers_emit_and_consume(
    server: PusherServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The later streamer's ``consume``: ``stream-start``, every event, ``stream-end``."""
    async with openai_sim(monkeypatch, output_tokens=3):
        provider = OpenAIProvider(model="gpt-5-nano")
        async with PusherStreamer("chat-42") as streamer:
            result = await streamer.consume(provider.stream("Tell me a story"))
            await streamer.emit(StreamEvent(StreamEventType.USAGE, Usage(total_tokens=9)))
        await provider.close()
    events = published(server, "chat-42")
    assert [name for name, _ in events] == [
        "stream-start",
        "meta",
        "token",
        "token",
        "token",
        "usage",
        "done",
        "stream-end",
        "usage",
    ]
    assert isinstance(result, CompletionResult)
    assert result.content == "".join(data for name, data in events if name == "token")
    assert json.loads(events[6][1])["content"] == result.content
    assert json.loads(events[-1][1])["total_tokens"] == 9


async def test_an_event_over_pushers_limit_goes_in_chunks(server: PusherServer) -> None:
    """The earlier streamer's 30 KB event got Pusher's 413; it now goes in chunks."""
    report = json.dumps({"rows": [f"row {i}: ünïcödé" for i in range(1500)]})
    assert len(report.encode()) > 3 * 10_240
    async with PusherStreamer(channel="reports") as streamer:
        answer = await streamer.push_event("report", report)
    assert isinstance(answer, dict)
    events = published(server, "reports")
    assert {name for name, _ in events} == {"chunked-report"}
    assert all(len(data.encode()) <= 10_240 for _, data in events)
    chunks = [json.loads(data) for _, data in events]
    assert chunks[-1]["final"]
    assert "".join(c["chunk"] for c in chunks) == report


async def test_a_refused_or_lost_event_is_a_typed_error(
    server: PusherServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The earlier streamer returned the failure's text as if it were the answer."""
    monkeypatch.setenv("PUSHER_AUTH_SECRET", "not-the-secret")
    async with PusherStreamer(channel="chat-1") as streamer:
        with pytest.raises(StreamDeliveryError) as caught:
            await streamer.push_event("new-response", "")
    assert isinstance(caught.value.__cause__, AuthenticationError)
    assert caught.value.status_code == 401
    assert "invalid signature" in str(caught.value)
    assert "not-the-secret" not in str(caught.value)
    assert server.answers == [401]  # not retried

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("PUSHER_HOST", f"http://127.0.0.1:{port}")
    closed: list[bool] = []

    async def source() -> AsyncIterator[StreamEvent]:
        try:
            yield StreamEvent(StreamEventType.TOKEN, "lost")
            yield StreamEvent(StreamEventType.TOKEN, "never read")
        finally:
            closed.append(True)

    async with PusherSink("chat-1", retry=FAST) as sink:
        with pytest.raises(StreamDeliveryError) as lost:
            await stream_to_sink(source(), sink)
    assert isinstance(lost.value.__cause__, ProviderConnectionError)
    assert (lost.value.status_code, lost.value.undelivered) == (None, 1)
    assert closed == [True]  # the source was closed when the sink failed


async def test_limelights_variable_names_serve_as_well(
    server: PusherServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PUSHER_AUTH_KEY", "PUSHER_AUTH_SECRET", "PUSHER_APP_CLUSTER"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("PUSHER_KEY", KEY)
    monkeypatch.setenv("PUSHER_SECRET", SECRET)
    async with PusherStreamer("chat-2") as streamer:
        assert await streamer.push_event("hello", {"n": 1}) == {}
        streamer.channel = "chat-3"  # may change between events, as before
        await streamer.push_event("hello", "again")
    assert server.events() == [("chat-2", "hello", '{"n":1}'), ("chat-3", "hello", "again")]


APP = {"app_id": "1", "key": "k", "secret": "s", "cluster": "eu"}


@pytest.mark.parametrize(
    ("environment", "channel", "settings", "match"),
    [
        ({}, "c", {}, "set PUSHER_APP_ID, or pass app_id="),
        ({"PUSHER_APP_ID": "1"}, "c", {}, r"set PUSHER_AUTH_KEY \(or PUSHER_KEY\)"),
        ({"PUSHER_APP_ID": "1", "PUSHER_AUTH_KEY": "k"}, "c", {}, "PUSHER_AUTH_SECRET"),
        (
            {"PUSHER_APP_ID": "1", "PUSHER_AUTH_KEY": "k", "PUSHER_AUTH_SECRET": "s"},
            "c",
            {},
            r"PUSHER_APP_CLUSTER \(or PUSHER_CLUSTER\), or PUSHER_HOST",
        ),
        ({"PUSHER_AUTH_VERSION": "2.0"}, "c", APP, "version 1.0 only"),
        ({}, None, APP, "needs a channel"),
        ({}, "no spaces", APP, "invalid Pusher channel"),
        ({}, "c", {**APP, "hots": "http://x"}, r"unknown settings \['hots'\]"),
    ],
)
def test_settings_say_what_to_set(
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
    channel: str | None,
    settings: dict[str, Any],
    match: str,
) -> None:
    earlier = ("PUSHER_AUTH_KEY", "PUSHER_AUTH_SECRET", "PUSHER_AUTH_VERSION", "PUSHER_APP_ID")
    for name in (*LIMELIGHT_NAMES, *earlier, "PUSHER_APP_CLUSTER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    for cls in (PusherStreamer, PusherSink):
        with pytest.raises(ConfigError, match=match):
            cls(channel, **settings)
