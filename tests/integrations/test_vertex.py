"""track_genai on the real Google GenAI SDK, over real HTTP, in Vertex AI mode.

Nothing of Vertex AI can be reached here, so a small HTTP server started by the test stands
in for it: it answers the SDK's ``generateContent`` and ``streamGenerateContent`` (SSE)
endpoints with the JSON Vertex AI returns. The client is a real ``genai.Client(vertexai=True,
api_key=...)`` (Vertex AI express mode: an API key instead of Google credentials, which
cannot be had offline) pointed at that server with ``HttpOptions(base_url=...)``, so the
SDK's own request building, HTTP, SSE parsing and response types all run."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from limelight import analytics
from limelight.errors import ConfigError
from limelight.integrations import track_genai
from limelight.schemas._events import Event, EventType
from limelight.sinks import MemorySink

from .conftest import by_type

USAGE = {
    "promptTokenCount": 11,
    "candidatesTokenCount": 4,
    "cachedContentTokenCount": 6,
    "totalTokenCount": 15,
}


def _reply(
    text: str, *, usage: dict[str, int] | None = None, finish: str | None = None
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}}
    if finish:
        candidate["finishReason"] = finish
    body: dict[str, Any] = {"candidates": [candidate], "modelVersion": "gemini-2.0-flash-001"}
    if usage:
        body["usageMetadata"] = usage
    return body


class _VertexStandIn(BaseHTTPRequestHandler):
    """Answers like Vertex AI: model ``broken`` gets a 400 error, others an answer."""

    paths: list[str]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.paths.append(self.path)
        words = body["contents"][-1]["parts"][0]["text"].split()
        if "/models/broken:" in self.path:
            self._send(
                400,
                "application/json",
                json.dumps(
                    {
                        "error": {
                            "code": 400,
                            "message": "model broken is not served",
                            "status": "INVALID_ARGUMENT",
                        }
                    }
                ).encode(),
            )
        elif ":streamGenerateContent" in self.path:
            chunks = [_reply(w + " ") for w in words[:-1]]
            chunks.append(_reply(words[-1], usage=USAGE, finish="STOP"))
            data = b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)
            self._send(200, "text/event-stream", data)
        else:
            reply = _reply(" ".join(reversed(words)), usage=USAGE, finish="STOP")
            self._send(200, "application/json", json.dumps(reply).encode())

    def _send(self, status: int, kind: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    paths: list[str] = []
    handler = type("Handler", (_VertexStandIn,), {"paths": paths})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}", paths
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def client(server: tuple[str, list[str]]) -> Iterator[genai.Client]:
    made = genai.Client(
        vertexai=True,
        api_key="test-key-not-a-secret",
        http_options=types.HttpOptions(base_url=server[0]),
    )
    try:
        yield made
    finally:
        made.close()


def check_call(events: list[Event], content: str, *, stream: bool) -> None:
    (request,) = by_type(events, EventType.LLM_REQUEST)
    (answer,) = by_type(events, EventType.LLM_RESPONSE)
    assert request.payload.model == "gemini-2.0-flash"  # type: ignore[union-attr]
    assert request.payload.provider == answer.payload.provider == "vertex_ai"  # type: ignore[union-attr]
    assert request.payload.stream is stream  # type: ignore[union-attr]
    assert answer.parent_event_id == request.event_id
    payload = answer.payload
    assert payload.model == "gemini-2.0-flash-001"  # type: ignore[union-attr]
    assert (payload.input_tokens, payload.output_tokens, payload.cached_tokens) == (11, 4, 6)  # type: ignore[union-attr]
    assert payload.content == content  # type: ignore[union-attr]
    assert payload.finish_reason == "STOP"  # type: ignore[union-attr]
    assert (payload.ttft is not None) is stream  # type: ignore[union-attr]
    assert not by_type(events, EventType.ERROR)


def test_generate_content_is_recorded(
    sink: MemorySink, client: genai.Client, server: tuple[str, list[str]]
) -> None:
    assert track_genai(client, user_id="u-1", run_id="r-1") is client
    response = client.models.generate_content(
        model="gemini-2.0-flash",
        contents="one two three",
        config=types.GenerateContentConfig(temperature=0.5, max_output_tokens=64),
    )
    assert response.text == "three two one"
    # It went over HTTP to the Vertex AI express endpoint of the stand-in.
    assert server[1] == ["/v1beta1/publishers/google/models/gemini-2.0-flash:generateContent"]
    assert analytics.get_client().flush(timeout=10)
    events = sink.events
    check_call(events, "three two one", stream=False)
    (request,) = by_type(events, EventType.LLM_REQUEST)
    assert (request.payload.temperature, request.payload.max_tokens) == (0.5, 64)  # type: ignore[union-attr]
    assert {(e.user_id, e.run_id) for e in events} == {("u-1", "r-1")}
    assert "test-key" not in repr(events)


def test_a_stream_is_recorded_when_it_ends(sink: MemorySink, client: genai.Client) -> None:
    track_genai(client)
    chunks = list(client.models.generate_content_stream(model="gemini-2.0-flash", contents="a b c"))
    assert [c.text for c in chunks] == ["a ", "b ", "c"]
    assert analytics.get_client().flush(timeout=10)
    check_call(sink.events, "a b c", stream=True)


def test_a_stream_left_early_records_what_was_read(sink: MemorySink, client: genai.Client) -> None:
    track_genai(client)
    stream = client.models.generate_content_stream(model="gemini-2.0-flash", contents="a b c")
    assert next(iter(stream)).text == "a "
    stream.close()  # type: ignore[attr-defined]
    assert analytics.get_client().flush(timeout=10)
    (answer,) = by_type(sink.events, EventType.LLM_RESPONSE)
    assert answer.payload.content == "a "  # type: ignore[union-attr]
    assert answer.payload.finish_reason == "incomplete"  # type: ignore[union-attr]


def test_an_api_error_is_recorded_and_raised_unchanged(
    sink: MemorySink, client: genai.Client
) -> None:
    track_genai(client)
    with pytest.raises(errors.ClientError, match="model broken is not served") as caught:
        client.models.generate_content(model="broken", contents="hi")
    assert caught.value.code == 400
    with pytest.raises(errors.ClientError):
        list(client.models.generate_content_stream(model="broken", contents="hi"))
    assert analytics.get_client().flush(timeout=10)
    requests = by_type(sink.events, EventType.LLM_REQUEST)
    failures = by_type(sink.events, EventType.ERROR)
    assert len(requests) == len(failures) == 2
    assert {e.parent_event_id for e in failures} == {r.event_id for r in requests}
    assert all(e.payload.error_type == "ClientError" for e in failures)  # type: ignore[union-attr]
    assert not by_type(sink.events, EventType.LLM_RESPONSE)


_AIOHTTP_SUBCLASS = (
    # The SDK subclasses aiohttp's ClientSession, which aiohttp warns about: nothing of ours.
    "ignore:Inheritance class AiohttpClientSession from ClientSession:DeprecationWarning"
)


@pytest.mark.anyio
@pytest.mark.filterwarnings(_AIOHTTP_SUBCLASS)
async def test_async_calls_are_recorded(
    sink: MemorySink, client: genai.Client, anyio_backend: str
) -> None:
    """``client.aio`` on both backends: the SDK's own async HTTP on asyncio; on trio (where
    the SDK's asyncio HTTP cannot run) the tracked methods run the sync ones in worker
    threads."""
    track_genai(client)
    response = await client.aio.models.generate_content(model="gemini-2.0-flash", contents="x y z")
    stream = await client.aio.models.generate_content_stream(
        model="gemini-2.0-flash", contents="x y z"
    )
    texts = [chunk.text async for chunk in stream]
    if anyio_backend == "asyncio":
        await client.aio.aclose()
    assert response.text == "z y x"
    assert texts == ["x ", "y ", "z"]
    assert await analytics.get_client().aflush(timeout=10)
    events = sink.events
    requests = by_type(events, EventType.LLM_REQUEST)
    assert [r.payload.stream for r in requests] == [False, True]  # type: ignore[union-attr]
    answers = by_type(events, EventType.LLM_RESPONSE)
    assert [a.parent_event_id for a in answers] == [r.event_id for r in requests]
    assert [a.payload.content for a in answers] == ["z y x", "x y z"]  # type: ignore[union-attr]
    assert all(a.payload.cached_tokens == 6 for a in answers)  # type: ignore[union-attr]
    assert answers[1].payload.ttft is not None  # type: ignore[union-attr]


@pytest.mark.anyio
@pytest.mark.filterwarnings(_AIOHTTP_SUBCLASS)
async def test_async_errors_are_recorded(
    sink: MemorySink, client: genai.Client, anyio_backend: str
) -> None:
    track_genai(client)
    with pytest.raises(errors.ClientError, match="model broken is not served"):
        await client.aio.models.generate_content(model="broken", contents="hi")
    with pytest.raises(errors.ClientError):  # raised by the first read of the stream
        async for _ in await client.aio.models.generate_content_stream(
            model="broken", contents="hi"
        ):
            pass
    if anyio_backend == "asyncio":
        await client.aio.aclose()
    assert await analytics.get_client().aflush(timeout=10)
    failures = by_type(sink.events, EventType.ERROR)
    assert len(failures) == 2
    assert {e.payload.context["model"] for e in failures} == {"broken"}  # type: ignore[union-attr]
    requests = by_type(sink.events, EventType.LLM_REQUEST)
    assert {e.parent_event_id for e in failures} == {r.event_id for r in requests}


@pytest.mark.anyio
@pytest.mark.filterwarnings(_AIOHTTP_SUBCLASS)
async def test_an_async_stream_left_early_is_recorded_and_closed(
    sink: MemorySink, client: genai.Client, anyio_backend: str
) -> None:
    track_genai(client)
    stream = await client.aio.models.generate_content_stream(
        model="gemini-2.0-flash", contents="a b c"
    )
    async for chunk in stream:
        assert chunk.text == "a "
        break
    await stream.aclose()  # type: ignore[attr-defined]
    if anyio_backend == "asyncio":
        await client.aio.aclose()
    assert await analytics.get_client().aflush(timeout=10)
    (answer,) = by_type(sink.events, EventType.LLM_RESPONSE)
    assert answer.payload.finish_reason == "incomplete"  # type: ignore[union-attr]
    assert answer.payload.content == "a "  # type: ignore[union-attr]


def test_tracking_again_replaces_the_options(sink: MemorySink, client: genai.Client) -> None:
    track_genai(client, run_id="first")
    track_genai(client, run_id="second")
    client.models.generate_content(model="gemini-2.0-flash", contents="once")
    assert analytics.get_client().flush(timeout=10)
    # One request, one response: the second tracking wrapped the SDK's method, not the first.
    assert [e.run_id for e in sink.events] == ["second", "second"]


def test_only_a_genai_client_can_be_tracked() -> None:
    with pytest.raises(ConfigError, match=r"takes a google\.genai\.Client, not object"):
        track_genai(object())
