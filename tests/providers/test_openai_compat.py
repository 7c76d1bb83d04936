"""OpenAICompatible against a real local HTTP server (aiohttp, in a thread) scripted to answer
each request by the model it names: the wire body and headers, error statuses and bodies,
rate-limit headers, malformed and truncated answers, resets, timeouts and cancellation."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import json
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import msgspec
import pytest
from aiohttp import web
from httpx_aiohttp import AiohttpTransport

from limelight.errors import (
    APIError,
    AuthenticationError,
    BadRequest,
    BadResponse,
    ConfigError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from limelight.providers import OpenAICompatible, Provider
from limelight.providers._http import (
    ShardedTransport,
    make_async_client,
    pool_statistics,
    retry_after_seconds,
)
from limelight.schemas import (
    CompletionRequest,
    EmbeddingRequest,
    Message,
    StreamEvent,
    StreamEventType,
    ToolCall,
    ToolSpec,
    Usage,
)

pytestmark = pytest.mark.anyio

API_KEY = "sk-test-0123456789abcdef"
DEADLINE = 10.0  # seconds any single test step may take before it counts as hung


# -- the scripted server ----------------------------------------------------------------------


@dataclass
class ServerState:
    """What the server saw, read by the tests from their own thread."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    slow_started: int = 0
    slow_disconnected: int = 0
    in_flight: int = 0
    max_in_flight: int = 0


def completion(content: str | None, **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    message.update(extra)
    return {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 1,
        "model": "served-model",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
    }


def sse(*events: dict[str, Any] | str) -> bytes:
    out = []
    for event in events:
        data = event if isinstance(event, str) else json.dumps(event)
        out.append(f"data: {data}\n\n")
    return "".join(out).encode()


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-s",
        "object": "chat.completion.chunk",
        "model": "served-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def reset_connection(request: web.Request) -> None:
    """Close the client's connection with a TCP RST (SO_LINGER 0), as a crashed server would."""
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


ERROR_BODY = {
    "error": {
        "message": "Something is wrong",
        "type": "invalid_request_error",
        "param": None,
        "code": "bad_thing",
    }
}


def make_app(state: ServerState) -> web.Application:
    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        state.bodies.append(body)
        state.headers.append(dict(request.headers))
        model: str = body.get("model", "")
        stream = body.get("stream", False)
        kind, _, arg = model.partition(":")
        if kind == "echo":
            headers = {"X-RateLimit-Remaining-Requests": "41", "x-ratelimit-limit-tokens": "9"}
            if stream:
                return await sse_response(
                    request,
                    sse(
                        chunk({"content": json.dumps(body)}),
                        chunk({}, "stop"),
                        "[DONE]",
                    ),
                    headers,
                )
            if "prompt" in body:
                text = {
                    "id": "cmpl-1",
                    "object": "text_completion",
                    "model": "served-model",
                    "choices": [{"index": 0, "text": json.dumps(body), "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
                }
                return web.json_response(text, headers=headers)
            return web.json_response(completion(json.dumps(body)), headers=headers)
        if kind == "delay":  # answers after a while, counting the requests it holds at once
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                await asyncio.sleep(float(arg))
            finally:
                state.in_flight -= 1
            return web.json_response(completion("done"))
        if kind == "tools" and not stream:
            calls = [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "x"}'},
                },
                {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}},
            ]
            return web.json_response(completion(None, tool_calls=calls))
        if kind == "tools":
            return await sse_response(
                request,
                sse(
                    chunk({"role": "assistant", "content": "Let me check."}),
                    chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": 0,
                                    "id": "call_a",
                                    "type": "function",
                                    "function": {"name": "lookup", "arguments": ""},
                                }
                            ]
                        }
                    ),
                    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"q": '}}]}),
                    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"paris"}'}}]}),
                    chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": 1,
                                    "id": "call_b",
                                    "type": "function",
                                    "function": {"name": "now", "arguments": "{}"},
                                }
                            ]
                        }
                    ),
                    chunk({}, "tool_calls"),
                    {
                        **chunk({}),
                        "choices": [],
                        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
                    },
                    "[DONE]",
                ),
            )
        if kind == "status":
            status = int(arg)
            headers = {
                "retry-after-ms": "1500",
                "Retry-After": "7",
                "X-RateLimit-Remaining-Requests": "0",
                "x-ratelimit-reset-requests": "1s",
                "x-request-id": "req-1",
            }
            return web.json_response(ERROR_BODY, status=status, headers=headers)
        if kind == "retry-after":
            return web.json_response(ERROR_BODY, status=429, headers={"Retry-After": arg})
        if kind == "leak-key":  # an error body quoting the credentials it received
            auth = request.headers.get("Authorization", "")
            return web.json_response(
                {"error": {"message": f"key {auth} is revoked", "type": "auth"}}, status=401
            )
        if kind == "raw-error":
            return web.Response(status=500, text="upstream exploded")
        if kind == "string-error":
            return web.json_response({"error": "overloaded"}, status=503)
        if kind == "malformed":
            return web.Response(text='{"choices": [', content_type="application/json")
        if kind == "wrong-shape":
            return web.json_response([1, 2, 3])
        if kind == "no-choices":
            return web.json_response({"id": "x", "choices": []})
        if kind == "slow":  # "slow": no answer yet; "slow:body": headers, then a stalled body
            response = None
            if arg == "body":
                response = web.StreamResponse(headers={"Content-Type": "application/json"})
                response.content_length = 1000
                await response.prepare(request)
                await response.write(b'{"id": ')
            state.slow_started += 1
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if request.transport is None or request.transport.is_closing():
                    state.slow_disconnected += 1
                    break
                await asyncio.sleep(0.01)
            return response or web.json_response(completion("late"))
        if kind == "stall":  # a stream that goes silent after its first token
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            await response.write(sse(chunk({"content": "first"})))
            await asyncio.sleep(30)
            return response
        if kind == "truncate":
            return await sse_response(
                request, sse(chunk({"content": "Hel"}), chunk({"content": "lo"}))
            )
        if kind == "reset":
            response = web.StreamResponse(
                headers={"Content-Type": "text/event-stream" if stream else "application/json"}
            )
            response.content_length = 10_000
            await response.prepare(request)
            await response.write(sse(chunk({"content": "partial"})) if stream else b'{"id": ')
            reset_connection(request)
            return response
        if kind == "reset-early":
            reset_connection(request)
            return web.Response()
        if kind == "stream-error":
            error = {"error": {"message": "model crashed", "type": "server_error", "code": None}}
            return await sse_response(request, sse(chunk({"content": "a"}), error))
        if kind == "not-sse":
            return web.json_response(completion("plain"))
        raise web.HTTPNotFound(text=f"unknown scripted model {model!r}")

    async def sse_response(
        request: web.Request, body: bytes, headers: dict[str, str] | None = None
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", **(headers or {})}
        )
        await response.prepare(request)
        await response.write(body)
        await response.write_eof()
        return response

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        state.bodies.append(body)
        inputs = body["input"]
        data = [
            {"object": "embedding", "index": i, "embedding": [float(i), float(len(text))]}
            for i, text in enumerate(inputs)
        ]
        return web.json_response(
            {
                "object": "list",
                "data": data[::-1],  # out of order on purpose: results follow the input order
                "model": body.get("model", "none"),
                "usage": {"prompt_tokens": 4, "total_tokens": 4},
            }
        )

    async def models(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"id": "m-1", "object": "model", "created": 5, "owned_by": "me"},
                    {"id": "m-2", "object": "model"},
                ],
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", models)
    return app


@contextlib.contextmanager
def serve_in_thread(app: web.Application) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 from an event loop in a thread; yield its ``/v1`` URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    port = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, ServerState]]:
    state = ServerState()
    with serve_in_thread(make_app(state)) as base_url:
        yield base_url, state


@pytest.fixture
async def provider(server: tuple[str, ServerState]) -> AsyncIterator[OpenAICompatible]:
    async with OpenAICompatible(server[0], API_KEY, model="echo") as p:
        yield p
        assert p.statistics().in_use == 0  # every test leaves the pool clean


async def read_tokens(stream: AsyncIterator[StreamEvent], tokens: list[str | None]) -> None:
    """Read a stream to its end (or error), keeping what its events carried so far."""
    async for event in stream:
        tokens.append(event.content)


def ask(model: str, **kwargs: Any) -> CompletionRequest:
    return CompletionRequest(model=model, messages=[Message.user("hi")], **kwargs)


# -- success paths ----------------------------------------------------------------------------


async def test_is_a_provider(provider: OpenAICompatible) -> None:
    assert isinstance(provider, Provider)
    assert provider.name == "openai-compatible"


async def test_chat_request_reaches_the_wire_in_openai_shape(
    provider: OpenAICompatible, server: tuple[str, ServerState]
) -> None:
    tools = [
        ToolSpec(
            name="lookup",
            description="Look a word up.",
            parameters={"type": "object", "properties": {"q": {"type": "string"}}},
        )
    ]
    messages = [
        Message.system("be terse"),
        Message.user("find x", name="ann"),
        Message.assistant(None, tool_calls=[ToolCall(id="c1", name="lookup", arguments='{"q":1}')]),
        Message.tool("found", tool_call_id="c1"),
    ]
    request = CompletionRequest(
        messages=messages,
        temperature=0.5,
        top_p=0.9,
        max_tokens=20,
        stop=["\n"],
        seed=7,
        tools=tools,
        tool_choice="auto",
        response_format={"type": "json_object"},
        metadata={"role": "executor"},
        extra={"top_k": 3, "temperature": 0.1},
    )
    with anyio.fail_after(DEADLINE):
        result = await provider.complete(request)
    assert result.content is not None
    sent = json.loads(result.content)
    assert sent == {
        "model": "echo",
        "messages": [
            {"role": "system", "content": "be terse"},
            {"role": "user", "content": "find x", "name": "ann"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"q":1}'},
                    }
                ],
            },
            {"role": "tool", "content": "found", "tool_call_id": "c1"},
        ],
        "temperature": 0.1,  # extra wins: the caller asked for it explicitly
        "top_p": 0.9,
        "max_tokens": 20,
        "stop": ["\n"],
        "seed": 7,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "description": "Look a word up.",
                    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
                },
            }
        ],
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "top_k": 3,
    }
    headers = {k.lower(): v for k, v in server[1].headers[-1].items()}
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("limelight/")
    assert result.metadata == {"role": "executor"}
    assert result.model == "served-model"
    assert result.id == "chatcmpl-abc"
    assert result.finish_reason == "stop"
    assert result.usage == Usage.of(5, 7)
    assert result.rate_limit == {
        "x-ratelimit-remaining-requests": "41",
        "x-ratelimit-limit-tokens": "9",
    }


async def test_minimal_request_sends_only_what_is_set(
    server: tuple[str, ServerState],
) -> None:
    async with OpenAICompatible(server[0], headers={"X-Team": "blue"}) as provider:
        with anyio.fail_after(DEADLINE):
            result = await provider.complete(ask("echo"))
    assert result.content is not None
    assert json.loads(result.content) == {
        "model": "echo",
        "messages": [{"role": "user", "content": "hi"}],
    }
    headers = {k.lower(): v for k, v in server[1].headers[-1].items()}
    assert "authorization" not in headers
    assert headers["x-team"] == "blue"


async def test_text_completion(provider: OpenAICompatible) -> None:
    with anyio.fail_after(DEADLINE):
        result = await provider.complete(CompletionRequest(prompt="Once", max_tokens=3))
    assert result.content is not None
    assert json.loads(result.content) == {"model": "echo", "prompt": "Once", "max_tokens": 3}
    assert result.usage == Usage.of(1, 2)
    assert result.id == "cmpl-1"


async def test_stream_sends_stream_options(provider: OpenAICompatible) -> None:
    with anyio.fail_after(DEADLINE):
        events = [e async for e in provider.stream(ask("echo"))]
    assert [e.type for e in events] == [StreamEventType.TOKEN, StreamEventType.DONE]
    sent = json.loads(events[0].content or "")
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    result = events[-1].result
    assert result is not None
    assert result.rate_limit["x-ratelimit-remaining-requests"] == "41"
    assert result.usage is None  # this server sent none


async def test_tool_calls(provider: OpenAICompatible) -> None:
    with anyio.fail_after(DEADLINE):
        result = await provider.complete(ask("tools"))
    assert result.content is None
    assert result.tool_calls == [
        ToolCall(id="call_1", name="lookup", arguments='{"q": "x"}'),
        ToolCall(id="call_2", name="now", arguments="{}"),
    ]
    assert result.message() == Message.assistant(None, tool_calls=result.tool_calls)


async def test_streamed_tool_calls_are_assembled(provider: OpenAICompatible) -> None:
    with anyio.fail_after(DEADLINE):
        events = [e async for e in provider.stream(ask("tools"))]
    calls = [
        ToolCall(id="call_a", name="lookup", arguments='{"q": "paris"}'),
        ToolCall(id="call_b", name="now", arguments="{}"),
    ]
    assert [e.type for e in events] == [
        StreamEventType.TOKEN,
        StreamEventType.TOOL_CALL,
        StreamEventType.TOOL_CALL,
        StreamEventType.USAGE,
        StreamEventType.DONE,
    ]
    assert [e.tool_call for e in events[1:3]] == calls
    result = events[-1].result
    assert result is not None
    assert result.content == "Let me check."
    assert result.tool_calls == calls
    assert result.finish_reason == "tool_calls"
    assert result.usage == Usage.of(3, 4)


async def test_embeddings_follow_input_order(
    provider: OpenAICompatible, server: tuple[str, ServerState]
) -> None:
    with anyio.fail_after(DEADLINE):
        result = await provider.embed(EmbeddingRequest(input=["a", "bbb", "cc"], dimensions=2))
    assert result.embeddings == [[0.0, 1.0], [1.0, 3.0], [2.0, 2.0]]
    assert result.model == "echo"  # the provider's default model was sent
    assert server[1].bodies[-1] == {"input": ["a", "bbb", "cc"], "model": "echo", "dimensions": 2}
    assert result.usage == Usage(prompt_tokens=4, total_tokens=4)


def embeddings_answer(embedding: str) -> httpx.MockTransport:
    body = {"object": "list", "data": [{"index": 0, "embedding": embedding}], "model": "e"}
    return httpx.MockTransport(lambda request: httpx.Response(200, json=body))


async def test_base64_embeddings_are_decoded_to_floats() -> None:
    vector = [0.5, -1.0, 2.25]
    encoded = base64.b64encode(struct.pack("<3f", *vector)).decode()
    async with OpenAICompatible("http://test/v1", transport=embeddings_answer(encoded)) as p:
        result = await p.embed(EmbeddingRequest(input=["a"]))
    assert result.embeddings == [vector]


@pytest.mark.parametrize("embedding", ["not base64!", base64.b64encode(b"abcdef").decode()])
async def test_an_embedding_string_that_is_not_float32s_is_a_bad_response(embedding: str) -> None:
    async with OpenAICompatible("http://test/v1", transport=embeddings_answer(embedding)) as p:
        with pytest.raises(BadResponse, match="not an embedding list"):
            await p.embed(EmbeddingRequest(input=["a"]))


async def test_list_models(provider: OpenAICompatible) -> None:
    with anyio.fail_after(DEADLINE):
        models = await provider.list_models()
    assert models.ids() == ["m-1", "m-2"]
    assert models.models[0].owned_by == "me"
    assert models.models[0].created == 5
    assert models.models[1].owned_by is None


async def test_connections_are_reused(provider: OpenAICompatible) -> None:
    with anyio.fail_after(DEADLINE):
        for _ in range(5):
            await provider.complete(ask("echo"))
            _ = [e async for e in provider.stream(ask("echo"))]
    assert provider.statistics().idle == 1


async def test_concurrent_requests(provider: OpenAICompatible) -> None:
    results: list[str | None] = []

    async def one(i: int) -> None:
        result = await provider.complete(ask("echo", seed=i))
        results.append(result.content)

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(one, i)
    assert sorted(json.loads(r or "")["seed"] for r in results) == list(range(50))
    stats = provider.statistics()
    assert stats.in_use == 0
    assert 1 <= stats.idle <= 50


async def test_max_connections_caps_concurrency(server: tuple[str, ServerState]) -> None:
    state = server[1]
    state.max_in_flight = 0
    async with OpenAICompatible(server[0], max_connections=2) as provider:
        with anyio.fail_after(DEADLINE):
            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(provider.complete, ask("delay:0.05"))
        assert provider.statistics().in_use == 0
        assert provider.statistics().idle <= 2
    assert state.max_in_flight == 2


async def test_waiting_for_a_connection_times_out_and_gives_its_turn_back(
    server: tuple[str, ServerState],
) -> None:
    state = server[1]
    started = state.slow_started
    async with OpenAICompatible(server[0], max_connections=1) as provider:
        async with anyio.create_task_group() as tg:
            tg.start_soon(provider.complete, ask("slow"))  # holds the only connection
            await wait_for(lambda: state.slow_started > started)
            with anyio.fail_after(DEADLINE), pytest.raises(ProviderTimeout):
                await provider.complete(ask("echo", attempt_timeout=0.2))
            # A waiting request cancelled before its turn leaves no claim behind.
            with anyio.move_on_after(0.1):
                await provider.complete(ask("echo"))
            tg.cancel_scope.cancel()
        with anyio.fail_after(DEADLINE):
            assert (await provider.complete(ask("echo"))).content is not None
        assert provider.statistics().in_use == 0


# -- error statuses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, BadRequest),
        (408, ServerError),
        (409, ServerError),
        (422, BadRequest),
        (429, RateLimited),
        (500, ServerError),
        (503, ServerError),
    ],
)
async def test_status_maps_to_error(
    provider: OpenAICompatible, status: int, cls: type[APIError]
) -> None:
    with anyio.fail_after(DEADLINE), pytest.raises(cls) as caught:
        await provider.complete(ask(f"status:{status}"))
    error = caught.value
    assert type(error) is cls
    assert error.status_code == status
    assert error.body == ERROR_BODY
    message = str(error)
    assert f"answered {status}" in message
    assert "Something is wrong (type: invalid_request_error, code: bad_thing)" in message
    assert "/v1/chat/completions" in message
    assert error.retry_after == 1.5  # retry-after-ms wins over Retry-After
    assert error.headers == {
        "retry-after-ms": "1500",
        "retry-after": "7",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1s",
    }
    assert isinstance(error.__cause__, type(None))


async def test_status_error_on_a_stream(provider: OpenAICompatible) -> None:
    with anyio.fail_after(DEADLINE), pytest.raises(RateLimited) as caught:
        _ = [e async for e in provider.stream(ask("status:429"))]
    assert caught.value.retry_after == 1.5
    assert "retry after 1.5 s" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("12", 12.0), ("0.5", 0.5), ("-3", 0.0), ("soon", None)],
)
async def test_retry_after_seconds(
    provider: OpenAICompatible, value: str, expected: float | None
) -> None:
    with anyio.fail_after(DEADLINE), pytest.raises(RateLimited) as caught:
        await provider.complete(ask(f"retry-after:{value}"))
    assert caught.value.retry_after == expected
    assert caught.value.headers == {"retry-after": value}


async def test_retry_after_http_date(provider: OpenAICompatible) -> None:
    when = email.utils.formatdate(time.time() + 3600, usegmt=True)
    with anyio.fail_after(DEADLINE), pytest.raises(RateLimited) as caught:
        await provider.complete(ask(f"retry-after:{when}"))
    assert caught.value.retry_after is not None
    assert 3500 < caught.value.retry_after <= 3600


def test_retry_after_parsing() -> None:
    now = 1_000_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_seconds(httpx.Headers({"Retry-After": date}), now=now) == 30.0
    assert retry_after_seconds(httpx.Headers({"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    assert retry_after_seconds(httpx.Headers({"retry-after-ms": "x", "retry-after": "9"})) == 9.0
    assert retry_after_seconds(httpx.Headers({})) is None
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert retry_after_seconds({"retry-after": past}, now=now) == 0.0


async def test_raw_text_error_body(provider: OpenAICompatible) -> None:
    with anyio.fail_after(DEADLINE), pytest.raises(ServerError) as caught:
        await provider.complete(ask("raw-error"))
    assert caught.value.body == "upstream exploded"
    assert "answered 500: upstream exploded" in str(caught.value)
    assert caught.value.retry_after is None


async def test_non_openai_json_error_body(provider: OpenAICompatible) -> None:
    with anyio.fail_after(DEADLINE), pytest.raises(ServerError) as caught:
        await provider.complete(ask("string-error"))
    assert caught.value.body == {"error": "overloaded"}
    assert '{"error": "overloaded"}' in str(caught.value)


async def test_api_key_never_in_messages(provider: OpenAICompatible) -> None:
    with anyio.fail_after(DEADLINE), pytest.raises(AuthenticationError) as caught:
        await provider.complete(ask("leak-key"))
    assert API_KEY not in str(caught.value)
    assert "Bearer [redacted]" in str(caught.value)
    assert API_KEY not in repr(provider)
    assert API_KEY not in repr(provider._bound)


# -- bad answers --------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["malformed", "wrong-shape", "no-choices"])
async def test_bad_body_is_bad_response(provider: OpenAICompatible, model: str) -> None:
    with anyio.fail_after(DEADLINE), pytest.raises(BadResponse) as caught:
        await provider.complete(ask(model))
    if model != "no-choices":
        assert isinstance(caught.value.__cause__, msgspec.DecodeError)


async def test_truncated_stream(provider: OpenAICompatible) -> None:
    tokens: list[str | None] = []
    with anyio.fail_after(DEADLINE), pytest.raises(BadResponse, match="truncated"):
        await read_tokens(provider.stream(ask("truncate")), tokens)
    assert tokens == ["Hel", "lo"]  # what came before the cut was delivered


async def test_error_inside_a_stream(provider: OpenAICompatible) -> None:
    with anyio.fail_after(DEADLINE), pytest.raises(ServerError, match="model crashed"):
        _ = [e async for e in provider.stream(ask("stream-error"))]


async def test_stream_answered_without_sse(provider: OpenAICompatible) -> None:
    with anyio.fail_after(DEADLINE), pytest.raises(BadResponse, match="event stream"):
        _ = [e async for e in provider.stream(ask("not-sse"))]


# -- broken connections, timeouts, cancellation -------------------------------------------------


@pytest.mark.parametrize("model", ["reset", "reset-early"])
async def test_connection_reset(provider: OpenAICompatible, model: str) -> None:
    with anyio.fail_after(DEADLINE), pytest.raises(ProviderConnectionError) as caught:
        await provider.complete(ask(model))
    assert caught.value.__cause__ is not None


async def test_connection_reset_mid_stream(provider: OpenAICompatible) -> None:
    tokens: list[str | None] = []
    with anyio.fail_after(DEADLINE), pytest.raises(ProviderConnectionError):
        await read_tokens(provider.stream(ask("reset")), tokens)
    assert tokens == ["partial"]


async def test_connection_refused() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with OpenAICompatible(f"http://127.0.0.1:{port}/v1") as provider:
        with anyio.fail_after(DEADLINE), pytest.raises(ProviderConnectionError) as caught:
            await provider.complete(ask("echo"))
    assert f"127.0.0.1:{port}" in str(caught.value)


@pytest.mark.parametrize("model", ["slow", "slow:body"])
async def test_request_timeout(provider: OpenAICompatible, model: str) -> None:
    with anyio.fail_after(DEADLINE), pytest.raises(ProviderTimeout) as caught:
        await provider.complete(ask(model, attempt_timeout=0.2))
    assert isinstance(caught.value, TimeoutError)
    assert "timed out" in str(caught.value)


async def test_default_timeout(server: tuple[str, ServerState]) -> None:
    async with OpenAICompatible(server[0], timeout=0.2) as provider:
        with anyio.fail_after(DEADLINE), pytest.raises(ProviderTimeout):
            await provider.complete(ask("slow"))
        assert provider.statistics().in_use == 0


async def test_stalled_stream_times_out(provider: OpenAICompatible) -> None:
    tokens: list[str | None] = []
    with anyio.fail_after(DEADLINE), pytest.raises(ProviderTimeout):
        await read_tokens(provider.stream(ask("stall", attempt_timeout=0.3)), tokens)
    assert tokens == ["first"]


@pytest.mark.parametrize("model", ["slow", "slow:body"])
async def test_total_timeout_bounds_the_whole_exchange(
    provider: OpenAICompatible, model: str
) -> None:
    started = anyio.current_time()
    with anyio.fail_after(DEADLINE), pytest.raises(ProviderTimeout) as caught:
        await provider.complete(ask(model), total_timeout=0.2)
    assert anyio.current_time() - started < 2.0
    assert isinstance(caught.value, TimeoutError)
    assert provider.statistics().in_use == 0


async def test_event_timeout_bounds_each_wait_of_a_stream(provider: OpenAICompatible) -> None:
    tokens: list[str | None] = []
    with anyio.fail_after(DEADLINE), pytest.raises(ProviderTimeout):
        await read_tokens(provider.stream(ask("stall"), event_timeout=0.3), tokens)
    assert tokens == ["first"]
    assert provider.statistics().in_use == 0


async def test_bounds_attempts_with_its_own_pool_on_asyncio(
    server: tuple[str, ServerState], anyio_backend: str
) -> None:
    async with OpenAICompatible(server[0]) as provider:
        assert provider.bounds_attempts is (anyio_backend == "asyncio")
        assert provider.bounds_event_waits
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    assert not OpenAICompatible(server[0], transport=transport).bounds_attempts


async def wait_for(condition: Any) -> None:
    with anyio.fail_after(DEADLINE):
        while not condition():
            await anyio.sleep(0.01)


@pytest.mark.parametrize("model", ["slow", "slow:body"])
async def test_cancellation_cancels_the_request(
    provider: OpenAICompatible, server: tuple[str, ServerState], model: str
) -> None:
    state = server[1]
    started, disconnected = state.slow_started, state.slow_disconnected
    async with anyio.create_task_group() as tg:
        tg.start_soon(provider.complete, ask(model))
        await wait_for(lambda: state.slow_started > started)
        await anyio.sleep(0.05)  # lets "slow:body" reach the body read (not checked: no timing)
        assert provider.statistics().in_use == 1
        tg.cancel_scope.cancel()
    assert provider.statistics().in_use == 0
    await wait_for(lambda: state.slow_disconnected > disconnected)  # the server saw it go


async def test_cancellation_of_a_stream(provider: OpenAICompatible) -> None:
    got_first = anyio.Event()

    async def consume() -> None:
        async for _ in provider.stream(ask("stall")):
            got_first.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        with anyio.fail_after(DEADLINE):
            await got_first.wait()
        tg.cancel_scope.cancel()
    assert provider.statistics().in_use == 0


async def test_early_close_of_a_stream(provider: OpenAICompatible) -> None:
    stream = provider.stream(ask("stall"))
    with anyio.fail_after(DEADLINE):
        first = await stream.__anext__()
    assert first.content == "first"
    await stream.aclose()
    assert provider.statistics().in_use == 0


# -- configuration and event loops -------------------------------------------------------------


@pytest.mark.parametrize("url", ["ftp://host/v1", "not a url", "http://"])
def test_invalid_base_url(url: str) -> None:
    with pytest.raises(ConfigError):
        OpenAICompatible(url)


@pytest.mark.parametrize("key", ["sk-abc\n", " sk-abc", "sk-a\x00bc"])
def test_malformed_api_key_is_refused_without_quoting_it(key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        OpenAICompatible("http://127.0.0.1:1/v1", key)
    assert "sk-a" not in str(caught.value)


async def test_request_without_messages_or_prompt(provider: OpenAICompatible) -> None:
    with pytest.raises(ConfigError):
        await provider.complete(CompletionRequest(model="echo"))


@pytest.mark.parametrize("other", ["asyncio", "trio"])
def test_one_instance_per_event_loop(server: tuple[str, ServerState], other: str) -> None:
    provider = OpenAICompatible(server[0], model="echo")

    async def use() -> None:
        await provider.complete(ask("echo"))

    def use_in_another_loop() -> None:
        anyio.run(use, backend=other)

    def close_in_another_loop() -> None:
        anyio.run(provider.aclose, backend=other)

    async def first_loop() -> None:
        await use()
        with pytest.raises(ConfigError, match="another event loop"):
            await anyio.to_thread.run_sync(use_in_another_loop)
        with pytest.raises(ConfigError, match="another event loop"):
            await anyio.to_thread.run_sync(close_in_another_loop)
        assert provider.statistics().idle == 1  # the pool survived the refused calls
        await provider.aclose()

    async def second_loop() -> None:
        await use()  # closed in its own loop, the provider opens a fresh pool anywhere
        await provider.aclose()

    anyio.run(first_loop, backend="asyncio")
    anyio.run(second_loop, backend=other)
    assert provider.statistics() == provider.statistics().__class__(in_use=0, idle=0)


async def test_make_async_client_picks_the_transport_of_the_backend(
    server: tuple[str, ServerState], anyio_backend: str
) -> None:
    async with make_async_client(base_url=server[0], headers={"x-team": "red"}) as client:
        transport = client._transport
        expected = AiohttpTransport if anyio_backend == "asyncio" else ShardedTransport
        assert isinstance(transport, expected)
        with anyio.fail_after(DEADLINE):
            response = await client.get("/models")
        assert response.status_code == 200
        assert [m["id"] for m in response.json()["data"]] == ["m-1", "m-2"]
        assert pool_statistics(transport).idle == 1


def test_make_async_client_needs_an_event_loop() -> None:
    with pytest.raises(ConfigError, match="inside a running event loop"):
        make_async_client()


async def test_errors_are_provider_errors(provider: OpenAICompatible) -> None:
    for model in ("status:500", "malformed", "reset-early", "truncate"):
        with anyio.fail_after(DEADLINE), pytest.raises(ProviderError):
            _ = [e async for e in provider.stream(ask(model))]
