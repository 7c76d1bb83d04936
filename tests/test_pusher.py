"""The Pusher stream adapter against a local Pusher HTTP API over real HTTP.

The server (tests/_pusher_server.py) checks each request's signature as Pusher's does, and
records what it accepted: the tests read the channel back from it. Agents run on the
Scripted provider."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from limelight.agents import Agent
from limelight.errors import (
    AuthenticationError,
    BadRequest,
    ConfigError,
    ProviderConnectionError,
    StreamDeliveryError,
)
from limelight.runtime import RetryPolicy
from limelight.schemas import StreamEvent, StreamEventType, ToolCall
from limelight.streaming import BufferingAdapter, PusherAdapter, PusherStatistics
from limelight.testing import Scripted
from limelight.tools import tool

from ._pusher_server import APP_ID, KEY, SECRET, PusherServer, pusher_server

CHANNEL = "private-chat.42"
FAST = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.1, jitter=0.0)


@pytest.fixture
def server() -> Iterator[PusherServer]:
    with pusher_server() as running:
        yield running


def make(server_url: str, **options: Any) -> PusherAdapter:
    settings: dict[str, Any] = {
        "app_id": APP_ID,
        "key": KEY,
        "secret": SECRET,
        "host": server_url,
        "channel": CHANNEL,
        "retry": FAST,
        "max_messages_per_second": 1000.0,
    }
    settings.update(options)
    return PusherAdapter(**settings)


class Source:
    """Tokens as a stream that counts what it gave and whether it was closed."""

    def __init__(self, tokens: list[str], *, fail_at: int | None = None) -> None:
        self.tokens = tokens
        self.fail_at = fail_at
        self.given = 0
        self.closed = False

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[StreamEvent]:
        try:
            for i, token in enumerate(self.tokens):
                if i == self.fail_at:
                    raise RuntimeError("source broke")
                await anyio.lowlevel.checkpoint()
                self.given += 1
                yield StreamEvent.token(token)
        finally:
            self.closed = True


def channel_events(server: PusherServer) -> list[tuple[str, dict[str, Any]]]:
    """The channel's events as a client sees them: chunked ones joined again, each checked
    to carry the next ``seq``."""
    found: list[tuple[str, dict[str, Any]]] = []
    chunks: dict[str, list[str]] = {}
    for channel, name, data in server.events():
        assert channel == CHANNEL
        if name.startswith("chunked-"):
            chunk = json.loads(data)
            parts = chunks.setdefault(chunk["id"], [])
            assert chunk["index"] == len(parts)
            parts.append(chunk["chunk"])
            if chunk["final"]:
                found.append((name.removeprefix("chunked-"), json.loads("".join(parts))))
        else:
            found.append((name, json.loads(data)))
    assert [payload["seq"] for _, payload in found] == list(range(len(found)))
    assert len({payload["stream"] for _, payload in found}) <= 1
    return found


def token_text(events: list[tuple[str, dict[str, Any]]]) -> str:
    return "".join(p["content"] for name, p in events if name.endswith("token"))


def test_signing_matches_pushers_worked_example() -> None:
    """The example of Pusher's HTTP API reference ("Worked authentication example")."""
    from limelight._pusher import sign_request

    body = b'{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}'
    params = sign_request(
        key=KEY, secret=SECRET, path="/apps/3/events", body=body, timestamp=1353088179
    )
    assert params == {
        "auth_key": KEY,
        "auth_timestamp": "1353088179",
        "auth_version": "1.0",
        "body_md5": "ec365a775a4cd0599faeb73354201b6f",
        "auth_signature": "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c",
    }


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@pytest.mark.anyio
async def test_an_agents_stream_reaches_the_channel_whole_in_small_messages(
    server: PusherServer,
) -> None:
    answer = " ".join(f'word{i} "quoted"\tünïcödé 😀' for i in range(150))
    call = ToolCall(id="c1", name="add", arguments='{"a": 2, "b": 3}')
    agent = Agent(model=Scripted([[call], answer]), tools=[add])
    limit = 256
    pusher = make(server.url, max_message_bytes=limit, event_prefix="agent-")
    async with pusher, agent.stream("add, then talk") as events:
        kept = BufferingAdapter(events)
        stats = await pusher.send_stream(kept)
    assert kept.text == answer
    for got in server.received:
        assert 1 <= len(got.events) <= 10
        assert all(len(data.encode()) <= limit for _, _, data in got.events)
    published = channel_events(server)
    assert token_text(published) == answer
    names = [name for name, _ in published]
    assert names[:2] == ["agent-tool_call", "agent-tool_result"]
    assert names[-1] == "agent-done"
    assert published[0][1]["tool_call"]["name"] == "add"
    assert published[1][1]["tool_result"]["content"] == "5"
    # The done event (the whole answer in it) was larger than a message: sent in chunks.
    assert published[-1][1]["result"]["content"] == answer
    assert any(name == "chunked-agent-done" for _, name, _ in server.events())
    assert stats.events == len(kept.events)
    assert stats.delivered == stats.events - stats.skipped
    assert stats.messages == len(server.events())
    assert stats.requests == len(server.received)
    assert stats.retries == 0
    assert stats.source_error is None


@pytest.mark.anyio
async def test_tokens_coalesce_and_oversized_ones_are_split_to_the_byte(
    server: PusherServer,
) -> None:
    tokens = [f"t{i} " for i in range(300)]
    tokens += ['"\n\\' * 200, "😀" * 200, "\x01" * 100, "end"]
    source = Source(tokens)
    async with make(server.url, max_message_bytes=256, max_messages_per_second=20) as pusher:
        stats = await pusher.send_stream(source)
    assert all(len(data.encode()) <= 256 for _, _, data in server.events())
    assert token_text(channel_events(server)) == "".join(tokens)
    assert stats.events == stats.delivered == len(tokens)
    # Tokens that arrived while the rate limit held the next request shared messages.
    assert stats.messages < len(tokens) // 4
    assert source.closed


@pytest.mark.anyio
async def test_the_message_rate_is_kept_in_every_window(server: PusherServer) -> None:
    """Counted where the messages arrive. The slack covers the time from taking capacity
    to the server reading the request; without a limit, the 40 messages would arrive all
    at once, far over the bound."""
    rate, burst = 20.0, 10
    source = Source([f"{i:03d}" + "x" * 150 for i in range(40)])
    async with make(server.url, max_message_bytes=256, max_messages_per_second=rate) as pusher:
        stats = await pusher.send_stream(source)
    assert stats.messages == 40  # one token per message: two do not fit in one
    arrivals = [(got.at, len(got.events)) for got in server.received]
    slack = 0.25
    for i in range(len(arrivals)):
        for j in range(i, len(arrivals)):
            sent = sum(count for _, count in arrivals[i : j + 1])
            window = arrivals[j][0] - arrivals[i][0]
            assert sent <= burst + rate * (window + slack), (i, j, sent, window)
    assert max(count for _, count in arrivals) <= burst


@pytest.mark.anyio
async def test_a_wrong_secret_is_a_typed_error_and_not_retried(server: PusherServer) -> None:
    source = Source(["a", "b", "c"])
    async with make(server.url, secret="not-the-secret") as pusher:
        with pytest.raises(StreamDeliveryError) as caught:
            await pusher.send_stream(source)
    error = caught.value
    assert isinstance(error.__cause__, AuthenticationError)
    assert error.status_code == 401
    assert "invalid signature" in str(error)
    assert "PUSHER_SECRET" in str(error)
    assert "not-the-secret" not in str(error)
    assert server.answers == [401]
    assert error.delivered == 0
    assert error.undelivered == source.given >= 1
    assert source.closed


@pytest.mark.anyio
async def test_server_errors_and_429_are_retried_and_nothing_is_sent_twice(
    server: PusherServer,
) -> None:
    server.fail_next(503, 500, 429)
    tokens = [f"w{i} " for i in range(30)]
    async with make(server.url, retry=RetryPolicy(attempts=4, initial_delay=0.01)) as pusher:
        stats = await pusher.send_stream(Source(tokens))
    assert server.answers[:3] == [503, 500, 429]
    assert stats.retries == 3
    assert stats.requests == len(server.received) + 3
    assert token_text(channel_events(server)) == "".join(tokens)


@pytest.mark.anyio
async def test_a_server_going_down_loses_nothing_silently(server: PusherServer) -> None:
    server.drop_after = 2
    source = Source([f"{i:03d}" + "y" * 150 for i in range(30)])
    async with make(server.url, max_message_bytes=256) as pusher:
        with pytest.raises(StreamDeliveryError) as caught:
            await pusher.send_stream(source)
    error = caught.value
    assert isinstance(error.__cause__, ProviderConnectionError)
    assert error.status_code is None
    assert "gave up after 3 attempts" in "".join(error.__cause__.__notes__)
    delivered = channel_events(server)
    assert error.delivered == len(delivered) > 0  # one token per message here
    assert error.delivered + error.undelivered == source.given
    assert source.closed


@pytest.mark.anyio
async def test_no_server_at_all_is_a_typed_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = Source(["a", "b"])
    async with make(f"http://127.0.0.1:{port}") as pusher:
        with pytest.raises(StreamDeliveryError, match="0 stream event\\(s\\) published") as caught:
            await pusher.send_stream(source)
    assert isinstance(caught.value.__cause__, ProviderConnectionError)
    assert caught.value.undelivered == source.given
    assert source.closed


@pytest.mark.anyio
async def test_a_message_the_server_finds_too_large_is_refused_not_retried() -> None:
    with pusher_server(max_data_bytes=300) as small:
        async with make(small.url) as pusher:
            with pytest.raises(StreamDeliveryError, match="max_message_bytes") as caught:
                await pusher.send_stream(Source(["z" * 1000]))
        assert small.answers == [413]
    assert isinstance(caught.value.__cause__, BadRequest)
    assert caught.value.status_code == 413


@pytest.mark.anyio
async def test_a_failing_source_ends_with_an_error_event(server: PusherServer) -> None:
    source = Source(["a", "b", "c"], fail_at=2)
    async with make(server.url) as pusher:
        stats = await pusher.send_stream(source, stream_id="req-7")
    published = channel_events(server)
    assert token_text(published) == "ab"
    name, payload = published[-1]
    assert name == "error"
    assert (payload["error"], payload["error_type"]) == ("source broke", "RuntimeError")
    assert payload["stream"] == "req-7"
    assert stats.source_error == "RuntimeError: source broke"
    assert stats.delivered == stats.events == 3
    assert source.closed


@pytest.mark.anyio
async def test_meta_events_are_counted_not_published(server: PusherServer) -> None:
    async def events() -> AsyncIterator[StreamEvent]:
        yield StreamEvent(type=StreamEventType.META, meta={"model": "m"})
        yield StreamEvent.token("hi")

    async with make(server.url) as pusher:
        stats = await pusher.send_stream(events())
    assert [name for name, _ in channel_events(server)] == ["token"]
    assert (stats.events, stats.skipped, stats.delivered) == (2, 1, 1)


def test_settings_come_from_arguments_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("PUSHER_APP_ID", "PUSHER_KEY", "PUSHER_SECRET", "PUSHER_CLUSTER", "PUSHER_HOST"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="PUSHER_APP_ID"):
        PusherAdapter(channel="c")
    monkeypatch.setenv("PUSHER_APP_ID", "123")
    monkeypatch.setenv("PUSHER_KEY", "k")
    monkeypatch.setenv("PUSHER_SECRET", "s3cr3t-value")
    with pytest.raises(ConfigError, match="PUSHER_CLUSTER"):
        PusherAdapter(channel="c")
    monkeypatch.setenv("PUSHER_CLUSTER", "eu")
    pusher = PusherAdapter(channel="c")
    assert (pusher.app_id, pusher.key) == ("123", "k")
    assert str(pusher.base_url) == "https://api-eu.pusher.com/"
    assert "s3cr3t-value" not in repr(pusher)
    # An explicit host wins over the cluster; a bare host is reached over HTTPS.
    assert str(PusherAdapter(channel="c", host="pusher.local:8443").base_url) == (
        "https://pusher.local:8443/"
    )
    assert PusherAdapter(channel="c", max_messages_per_second=4).max_batch_events == 4
    # PUSHER_HOST: a Pusher-compatible server, reached instead of the cluster's host.
    monkeypatch.setenv("PUSHER_HOST", "http://127.0.0.1:6001")
    assert str(PusherAdapter(channel="c").base_url) == "http://127.0.0.1:6001/"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"channel": "no spaces"}, "invalid Pusher channel"),
        ({"channel": "c" * 201}, "invalid Pusher channel"),
        ({"event_prefix": "client-"}, "reserves"),
        ({"event_prefix": "a b"}, "invalid event_prefix"),
        ({"max_batch_events": 11}, "Pusher's limit"),
        ({"max_message_bytes": 100}, ">= 256"),
        ({"max_messages_per_second": 0}, "positive"),
        ({"host": "ftp://x"}, "host must be"),
        ({"host": "http://x/prefix"}, "host must be"),
        ({"cluster": "EU!", "host": None}, "cluster name"),
    ],
)
def test_bad_settings_say_what_to_fix(options: dict[str, Any], match: str) -> None:
    settings: dict[str, Any] = {
        "app_id": "1",
        "key": "k",
        "secret": "s",
        "host": "http://127.0.0.1:1",
        "channel": "c",
    }
    settings.update(options)
    with pytest.raises(ConfigError, match=match):
        PusherAdapter(**settings)


@pytest.mark.anyio
async def test_streams_share_one_adapter_each_in_order(server: PusherServer) -> None:
    words = {sid: [f"{sid}{i} " for i in range(40)] for sid in ("one", "two")}
    stats: list[PusherStatistics] = []

    async def send(pusher: PusherAdapter, sid: str) -> None:
        stats.append(await pusher.send_stream(Source(words[sid]), stream_id=sid))

    async with (
        make(server.url, max_messages_per_second=50) as pusher,
        anyio.create_task_group() as tg,
    ):
        for sid in words:
            tg.start_soon(send, pusher, sid)
    assert sorted(s.delivered for s in stats) == [40, 40]
    for sid, tokens in words.items():
        mine = [json.loads(d) for _, _, d in server.events() if json.loads(d)["stream"] == sid]
        assert [m["seq"] for m in mine] == list(range(len(mine)))
        assert "".join(m["content"] for m in mine) == "".join(tokens)


# -- publish: one event ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_publish_sends_one_event_as_given_and_returns_the_answer(
    server: PusherServer,
) -> None:
    async with make(server.url, event_prefix="agent-") as pusher:
        first = await pusher.publish("new-response", "")
        second = await pusher.publish("status", {"phase": "tools", "n": 2})
        third = await pusher.publish("raw", "ünï".encode(), channel="other-channel")
    assert first == second == third == {}  # Pusher's answer to POST /events
    # No prefix, no envelope; one request each, on /events.
    assert server.events() == [
        (CHANNEL, "new-response", ""),
        (CHANNEL, "status", '{"phase":"tools","n":2}'),
        ("other-channel", "raw", "ünï"),
    ]
    assert [got.path for got in server.received] == [f"/apps/{APP_ID}/events"] * 3


@pytest.mark.anyio
async def test_publish_sends_a_large_event_in_chunks_within_the_limit(
    server: PusherServer,
) -> None:
    data = "".join(f'line {i}: "ünï"\n' for i in range(400))
    async with make(server.url, max_message_bytes=256, max_batch_events=4) as pusher:
        answer = await pusher.publish("report", data)
    events = server.events()
    assert len(events) > 4
    assert all(name == "chunked-report" for _, name, _ in events)
    assert all(len(payload.encode()) <= 256 for _, _, payload in events)
    chunks = [json.loads(payload) for _, _, payload in events]
    assert [c["index"] for c in chunks] == list(range(len(chunks)))
    assert [c["final"] for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert len({c["id"] for c in chunks}) == 1
    assert "".join(c["chunk"] for c in chunks) == data
    # At most max_batch_events per request; the answer is the last request's.
    assert all(1 <= len(got.events) <= 4 for got in server.received)
    last = server.received[-1]
    expected: dict[str, Any] = {} if len(last.events) == 1 else {"batch": [{}] * len(last.events)}
    assert answer == expected


@pytest.mark.anyio
async def test_publish_retries_server_errors_and_fails_typed_on_a_wrong_secret(
    server: PusherServer,
) -> None:
    server.fail_next(503, 429)
    async with make(server.url) as pusher:
        assert await pusher.publish("ping", "1") == {}
    assert server.answers == [503, 429, 200]
    assert server.events() == [(CHANNEL, "ping", "1")]

    async with make(server.url, secret="not-the-secret") as pusher:
        with pytest.raises(StreamDeliveryError) as caught:
            await pusher.publish("ping", "2")
    error = caught.value
    assert isinstance(error.__cause__, AuthenticationError)
    assert (error.status_code, error.delivered, error.undelivered) == (401, 0, 1)
    assert "'ping'" in str(error)
    assert "invalid signature" in str(error)
    assert "not-the-secret" not in str(error)
    assert server.answers[3:] == [401]  # refused, not retried


@pytest.mark.anyio
async def test_publish_to_a_server_gone_down_fails_after_its_retries(
    server: PusherServer,
) -> None:
    server.drop_after = 0
    async with make(server.url) as pusher:
        with pytest.raises(StreamDeliveryError, match="'gone'") as caught:
            await pusher.publish("gone", "x")
    cause = caught.value.__cause__
    assert isinstance(cause, ProviderConnectionError)
    assert "gave up after 3 attempts" in "".join(cause.__notes__)
    assert caught.value.status_code is None
    assert server.events() == []


@pytest.mark.anyio
async def test_publish_keeps_the_adapters_message_rate(server: PusherServer) -> None:
    """Single events share the stream's rate limit: counted where they arrive, with the
    same slack as the stream's test. Without the limit, 30 events would arrive at once."""
    rate, burst = 20.0, 10
    async with make(server.url, max_messages_per_second=rate) as pusher:
        for i in range(30):
            await pusher.publish("tick", str(i))
    assert [data for _, _, data in server.events()] == [str(i) for i in range(30)]
    arrivals = [got.at for got in server.received]
    slack = 0.25
    for i in range(len(arrivals)):
        for j in range(i, len(arrivals)):
            assert j - i + 1 <= burst + rate * (arrivals[j] - arrivals[i] + slack), (i, j)


@pytest.mark.parametrize(
    ("name", "data", "options", "match"),
    [
        ("pusher:subscribe", "x", {}, "reserves"),
        ("client-typing", "x", {}, "reserves"),
        ("", "x", {}, "1 to 200 characters"),
        ("n" * 201, "x", {}, "1 to 200 characters"),
        ("n" * 195, "x" * 300, {}, "shorten it"),
        ("ok", b"\xff\xfe", {}, "UTF-8"),
        ("ok", {"when": object()}, {}, "must be JSON"),
        ("ok", 42, {}, "str, bytes"),
        ("ok", "x", {"channel": "bad channel"}, "invalid Pusher channel"),
    ],
)
@pytest.mark.anyio
async def test_publish_refuses_bad_input_before_sending(
    server: PusherServer, name: str, data: Any, options: dict[str, Any], match: str
) -> None:
    async with make(server.url, max_message_bytes=256) as pusher:
        with pytest.raises(ConfigError, match=match):
            await pusher.publish(name, data, **options)
    assert server.answers == []
