"""The ``limelight sim`` server over real HTTP (httpx, on asyncio and trio): OpenAI's wire
shapes, SSE streams, tool-call deltas, faults on the wire, quotas, reproducibility."""

from __future__ import annotations

import base64
import gzip
import json
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import msgspec
import pytest

from limelight.errors import ServerError
from limelight.schemas import CompletionRequest, Message
from limelight.schemas._openai import (
    chat_chunk_decoder,
    chat_completion_decoder,
    embedding_list_decoder,
    models_page_decoder,
    text_completion_decoder,
)
from limelight.sim import (
    INLINE_EMBEDDING_VALUES,
    MAX_EMBEDDING_DIMENSIONS,
    MAX_EMBEDDING_INPUTS,
    MAX_MESSAGE_TOOL_CALLS,
    MAX_MESSAGES,
    MAX_OUTPUT_TOKENS,
    MAX_SCHEMA_ARRAY_ITEMS,
    MAX_SCHEMA_DEPTH,
    MAX_SCHEMA_NODES,
    MAX_TOOLS,
    Simulated,
    SimulatedConfig,
    serve_in_thread,
    serve_in_thread_async,
)

FAST = SimulatedConfig(ttft=0.0, ttft_jitter=0.0, tokens_per_second=None, output_tokens=10)
HELLO = {"messages": [{"role": "user", "content": "hello there"}]}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "days", "unit"],
        },
    },
}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serve_in_thread(FAST) as base:
        yield base


def replace(config: SimulatedConfig, **changes: Any) -> SimulatedConfig:
    return msgspec.structs.replace(config, **changes)


async def sse(response: httpx.Response) -> list[str]:
    """The ``data:`` payloads of an SSE response, in order."""
    return [line[6:] async for line in response.aiter_lines() if line.startswith("data: ")]


async def stream_chat(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> list[str]:
    async with client.stream("POST", f"{url}/chat/completions", json=body | {"stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        return await sse(r)


@pytest.mark.anyio
async def test_chat_completion_has_openai_shape(url: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{url}/chat/completions", json=HELLO | {"model": "gpt-x"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "gpt-x"
    choice = body["choices"][0]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert len(choice["message"]["content"].split()) == 10
    assert "tool_calls" not in choice["message"]
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 10, "total_tokens": 13}
    decoded = chat_completion_decoder.decode(response.content)
    assert decoded.choices[0].message.content == choice["message"]["content"]


@pytest.mark.anyio
async def test_max_tokens_and_max_completion_tokens_cap(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for key in ("max_tokens", "max_completion_tokens"):
            body = (await client.post(f"{url}/chat/completions", json=HELLO | {key: 3})).json()
            assert body["choices"][0]["finish_reason"] == "length"
            assert body["usage"]["completion_tokens"] == 3


@pytest.mark.anyio
async def test_streamed_chat_assembles_and_ends_with_usage_and_done(url: str) -> None:
    async with httpx.AsyncClient() as client:
        events = await stream_chat(client, url, HELLO | {"stream_options": {"include_usage": True}})
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {"prompt_tokens": 3, "completion_tokens": 10, "total_tokens": 13}
    finish = chunks[-2]["choices"][0]
    assert finish["finish_reason"] == "stop"
    assert finish["delta"] == {}
    content_chunks = [c for c in chunks[:-2] if c["choices"][0]["delta"].get("content")]
    assert len(content_chunks) == 10  # one chunk per token
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
    assert len(text.split()) == 10
    for event in events[:-1]:  # the project's own lenient decoder reads them too
        chat_chunk_decoder.decode(event)


@pytest.mark.anyio
async def test_stream_without_include_usage_has_no_usage_chunk(url: str) -> None:
    async with httpx.AsyncClient() as client:
        events = await stream_chat(client, url, HELLO)
    assert events[-1] == "[DONE]"
    assert all("usage" not in json.loads(e) for e in events[:-1])
    assert json.loads(events[-2])["choices"][0]["finish_reason"] == "stop"


@pytest.mark.anyio
async def test_tool_call_non_streamed() -> None:
    with serve_in_thread(replace(FAST, tool_call_probability=1.0)) as base:
        async with httpx.AsyncClient() as client:
            body = (
                await client.post(
                    f"{base}/chat/completions", json=HELLO | {"tools": [WEATHER_TOOL]}
                )
            ).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    args = json.loads(call["function"]["arguments"])
    assert isinstance(args["city"], str)
    assert 1 <= args["days"] <= 7
    assert args["unit"] in ("celsius", "fahrenheit")


@pytest.mark.anyio
async def test_tool_call_deltas_are_split_over_chunks_like_openai() -> None:
    with serve_in_thread(replace(FAST, tool_call_probability=1.0)) as base:
        async with httpx.AsyncClient() as client:
            events = await stream_chat(
                client,
                base,
                HELLO | {"tools": [WEATHER_TOOL], "stream_options": {"include_usage": True}},
            )
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    deltas = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"] and c["choices"][0]["delta"].get("tool_calls")
    ]
    assert len(deltas) > 3
    header = deltas[0]
    assert header["index"] == 0
    assert header["id"].startswith("call_")
    assert header["type"] == "function"
    assert header["function"] == {"name": "get_weather", "arguments": ""}
    for delta in deltas[1:]:  # later deltas carry only argument fragments
        assert set(delta) == {"index", "function"}
        assert set(delta["function"]) == {"arguments"}
        assert delta["index"] == 0
    arguments = "".join(d["function"]["arguments"] for d in deltas)
    assert json.loads(arguments)["unit"] in ("celsius", "fahrenheit")
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] > 0


@pytest.mark.anyio
async def test_text_completions_streamed_and_not(url: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{url}/completions", json={"prompt": "Once upon"})
        body = response.json()
        assert body["object"] == "text_completion"
        assert body["id"].startswith("cmpl-")
        assert body["choices"][0]["finish_reason"] == "stop"
        assert len(body["choices"][0]["text"].split()) == 10
        assert body["usage"]["prompt_tokens"] == 3
        text_completion_decoder.decode(response.content)
        # Without max_tokens, legacy completions stop at 16 tokens, as OpenAI's do.
        with serve_in_thread(replace(FAST, output_tokens=40)) as base:
            long = (await client.post(f"{base}/completions", json={"prompt": "x"})).json()
        assert long["choices"][0]["finish_reason"] == "length"
        assert long["usage"]["completion_tokens"] == 16
        async with client.stream(
            "POST",
            f"{url}/completions",
            json={"prompt": "x", "stream": True, "stream_options": {"include_usage": True}},
        ) as streamed:
            events = await sse(streamed)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["text"]]) == 10
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 10


@pytest.mark.anyio
async def test_embeddings_float_and_base64(url: str) -> None:
    async with httpx.AsyncClient() as client:
        plain = await client.post(f"{url}/embeddings", json={"input": ["cat", "dog"]})
        packed = await client.post(
            f"{url}/embeddings", json={"input": "cat", "encoding_format": "base64", "dimensions": 8}
        )
        as_floats = await client.post(f"{url}/embeddings", json={"input": "cat", "dimensions": 8})
        tokens = await client.post(f"{url}/embeddings", json={"input": [[1, 2], [3]]})
        bad = await client.post(f"{url}/embeddings", json={"input": [{"x": 1}]})
    body = plain.json()
    assert body["object"] == "list"
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert all(d["object"] == "embedding" for d in body["data"])
    assert len(body["data"][0]["embedding"]) == FAST.embedding_dimensions
    assert body["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    embedding_list_decoder.decode(plain.content)
    raw = base64.b64decode(packed.json()["data"][0]["embedding"])
    vector = struct.unpack("<8f", raw)
    assert vector == pytest.approx(as_floats.json()["data"][0]["embedding"], abs=1e-6)
    assert sum(x * x for x in vector) == pytest.approx(1.0, abs=1e-5)
    assert len(tokens.json()["data"]) == 2
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "input"


@pytest.mark.anyio
async def test_models_health_and_unknown_urls(url: str) -> None:
    async with httpx.AsyncClient() as client:
        models = await client.get(f"{url}/models")
        one = await client.get(f"{url}/models/sim-1")
        missing = await client.get(f"{url}/models/nope")
        health = await client.get(url.removesuffix("/v1") + "/health")
        unknown = await client.get(f"{url}/chat/completions")
    assert models_page_decoder.decode(models.content).data[0].id == "sim-1"
    assert models.json()["object"] == "list"
    assert one.json()["id"] == "sim-1"
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"
    assert health.json() == {"status": "ok"}
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "Invalid URL (GET /v1/chat/completions)"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content", "param", "code"),
    [
        (b"{not json", None, None),
        (b"{}", "messages", "missing_required_parameter"),
        (b'{"messages": "hi"}', "messages", "invalid_type"),
        (b'{"messages": []}', "messages", "empty_array"),
        (b'{"messages": [{"role": "robot", "content": "x"}]}', "messages[0].role", "invalid_value"),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}', "max_tokens", None),
    ],
)
async def test_bad_requests_get_400_with_openai_error_body(
    url: str, content: bytes, param: str | None, code: str | None
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{url}/chat/completions", content=content, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    assert error["message"]


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_server_error_fault(stream: bool) -> None:
    with serve_in_thread(replace(FAST, server_error_rate=1.0)) as base:
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{base}/chat/completions", json=HELLO | {"stream": stream}
            )
    assert response.status_code in (500, 502, 503)
    assert response.json()["error"]["type"] == "server_error"


@pytest.mark.anyio
async def test_injected_429_fault_has_headers_and_body() -> None:
    with serve_in_thread(replace(FAST, rate_limit_error_rate=1.0, fault_retry_after=1.5)) as base:
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{base}/chat/completions", json=HELLO)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.headers["retry-after-ms"] == "1500"
    error = response.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert error["type"] == "requests"
    assert error["param"] is None


@pytest.mark.anyio
async def test_connection_reset_fault_non_streamed() -> None:
    with serve_in_thread(replace(FAST, connection_reset_rate=1.0)) as base:
        async with httpx.AsyncClient() as client:
            with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
                await client.post(f"{base}/chat/completions", json=HELLO)


@pytest.mark.anyio
async def test_connection_reset_fault_mid_stream() -> None:
    received: list[str] = []
    with serve_in_thread(replace(FAST, connection_reset_rate=1.0, tokens_per_second=200.0)) as base:
        async with httpx.AsyncClient() as client:
            with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
                await read_stream(client, f"{base}/chat/completions", received)
    assert "[DONE]" not in received


async def read_stream(client: httpx.AsyncClient, url: str, into: list[str]) -> int:
    """Read a streamed chat answer's events into ``into``; the status code is returned."""
    async with client.stream("POST", url, json=HELLO | {"stream": True}) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                into.append(line[6:])
        return response.status_code


@pytest.mark.anyio
async def test_truncated_fault() -> None:
    with serve_in_thread(replace(FAST, truncated_rate=1.0)) as base:
        async with httpx.AsyncClient() as client:
            # Non-streamed: the body is shorter than its Content-Length.
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post(f"{base}/chat/completions", json=HELLO)
            # Streamed: the stream ends cleanly, but without finish reason or [DONE].
            events: list[str] = []
            assert await read_stream(client, f"{base}/chat/completions", events) == 200
    assert events
    assert "[DONE]" not in events
    chunks = [json.loads(e) for e in events]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    received = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert 0 < len(received.split()) < 10


@pytest.mark.anyio
async def test_malformed_fault() -> None:
    with serve_in_thread(replace(FAST, malformed_rate=1.0)) as base:
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{base}/chat/completions", json=HELLO)
            assert response.status_code == 200
            with pytest.raises(json.JSONDecodeError):
                response.json()
            events: list[str] = []
            assert await read_stream(client, f"{base}/chat/completions", events) == 200
    assert events[-1] == "[DONE]"
    bad = []
    for event in events[:-1]:
        try:
            json.loads(event)
        except json.JSONDecodeError:
            bad.append(event)
    assert len(bad) == 1


@pytest.mark.anyio
async def test_rpm_quota_refuses_after_the_limit_with_openai_429() -> None:
    with serve_in_thread(replace(FAST, rpm=3, tpm=100_000)) as base:
        async with httpx.AsyncClient() as client:
            ok = [await client.post(f"{base}/chat/completions", json=HELLO) for _ in range(3)]
            refused = await client.post(
                f"{base}/chat/completions", json=HELLO | {"model": "gpt-4o"}
            )
    assert [r.status_code for r in ok] == [200, 200, 200]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in ok] == ["2", "1", "0"]
    for name in (
        "limit-requests",
        "limit-tokens",
        "remaining-tokens",
        "reset-requests",
        "reset-tokens",
    ):
        assert f"x-ratelimit-{name}" in ok[0].headers
    assert ok[0].headers["x-ratelimit-limit-requests"] == "3"
    assert ok[0].headers["x-ratelimit-limit-tokens"] == "100000"
    assert re.fullmatch(
        r"\d+(ms|s)|\d+m\d+(\.\d+)?s|\d+\.\d+s", ok[2].headers["x-ratelimit-reset-requests"]
    )
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "requests"
    assert error["code"] == "rate_limit_exceeded"
    assert error["param"] is None
    assert re.match(
        r"Rate limit reached for gpt-4o in organization org-sim on requests per min \(RPM\): "
        r"Limit 3, Used 3, Requested 1\. Please try again in (\d+(\.\d+)?s|\d+ms)\.",
        error["message"],
    )
    retry_ms = int(refused.headers["retry-after-ms"])
    assert 0 < retry_ms <= 20_000
    assert int(refused.headers["retry-after"]) == -(-retry_ms // 1000)
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"


@pytest.mark.anyio
async def test_tpm_quota_counts_prompt_and_max_tokens() -> None:
    with serve_in_thread(replace(FAST, tpm=1000)) as base:
        async with httpx.AsyncClient() as client:
            first = await client.post(f"{base}/chat/completions", json=HELLO | {"max_tokens": 900})
            second = await client.post(f"{base}/chat/completions", json=HELLO | {"max_tokens": 900})
            huge = await client.post(f"{base}/chat/completions", json=HELLO | {"max_tokens": 5000})
    assert first.status_code == 200
    assert first.headers["x-ratelimit-remaining-tokens"] == "97"  # 1000 - (3 + 900)
    assert second.status_code == 429
    assert second.json()["error"]["type"] == "tokens"
    assert "Requested 903" in second.json()["error"]["message"]
    assert huge.status_code == 429
    assert huge.json()["error"]["message"].startswith("Request too large for sim-1")
    assert "retry-after" not in huge.headers


@pytest.mark.anyio
async def test_concurrency_cap_refuses_while_a_stream_is_open() -> None:
    # Slow tokens keep the first stream open until the client hangs up.
    config = replace(FAST, max_concurrency=1, tokens_per_second=20.0, output_tokens=1000)
    async with serve_in_thread_async(config) as base, httpx.AsyncClient() as client:
        async with client.stream(
            "POST", f"{base}/chat/completions", json=HELLO | {"stream": True}
        ) as held:
            # The headers came: the server admitted it and holds its slot.
            assert held.status_code == 200
            refused = await client.post(f"{base}/chat/completions", json=HELLO | {"max_tokens": 1})
            assert refused.status_code == 429
            assert "concurrent requests" in refused.json()["error"]["message"]
        # The server frees the slot when it sees the client gone.
        for _ in range(500):
            again = await client.post(f"{base}/chat/completions", json=HELLO | {"max_tokens": 1})
            if again.status_code == 200:
                break
            await anyio.sleep(0.01)
        assert again.status_code == 200


@pytest.mark.anyio
async def test_same_seed_reproduces_and_matches_the_in_process_provider() -> None:
    config = replace(
        FAST, seed=42, server_error_rate=0.3, output_tokens=SimulatedConfig().output_tokens
    )

    async def over_http(cfg: SimulatedConfig) -> list[Any]:
        outcomes: list[Any] = []
        with serve_in_thread(cfg) as base:
            async with httpx.AsyncClient() as client:
                for i in range(12):
                    body = {"messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": 5 + i}
                    response = await client.post(f"{base}/chat/completions", json=body)
                    if response.status_code == 200:
                        outcomes.append(response.json()["choices"][0]["message"]["content"])
                    else:
                        outcomes.append(response.status_code)
        return outcomes

    first = await over_http(config)
    assert first == await over_http(config)
    assert first != await over_http(replace(config, seed=43))
    assert any(isinstance(o, int) for o in first)
    assert any(isinstance(o, str) for o in first)
    # The HTTP server plays the same model as the in-process provider.
    provider = Simulated(config)
    in_process: list[Any] = []
    for i in range(12):
        try:
            result = await provider.complete(
                CompletionRequest(messages=[Message.user(f"q{i}")], max_tokens=5 + i)
            )
            in_process.append(result.content)
        except ServerError as exc:
            in_process.append(exc.status_code)
    assert in_process == first


def test_serve_in_thread_stops_the_server() -> None:
    with serve_in_thread(FAST) as base:
        assert httpx.get(f"{base}/models").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/models")


def test_limelight_sim_command_serves_until_terminated() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "limelight",
            "sim",
            "--port",
            "0",
            "--ttft",
            "0",
            "--model",
            "cli-model",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/v1)", line)
        assert match, line
        models = httpx.get(f"{match.group(1)}/models").json()
        assert [m["id"] for m in models["data"]] == ["cli-model"]
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr


def test_limelight_sim_rejects_bad_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "limelight", "sim", "--port", "0", "--output-tokens", "lots"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "not understood" in result.stderr


# -- Requests the simulator refuses: checked, capped, and the loop never held (issue #16) --


def tool_body(schema: dict[str, Any], *, required: Any = ("x",)) -> dict[str, Any]:
    """A chat body offering one tool, ``f``, whose argument ``x`` has ``schema``; the tool
    must be called, so that its arguments are generated."""
    parameters = {"type": "object", "properties": {"x": schema}, "required": required}
    if isinstance(required, tuple):
        parameters["required"] = list(required)
    return HELLO | {
        "tool_choice": "required",
        "tools": [{"type": "function", "function": {"name": "f", "parameters": parameters}}],
    }


def assert_openai_error(
    response: httpx.Response,
    *,
    param: str | None,
    code: str | None = None,
    says: tuple[str, ...] = (),
    status: int = 400,
) -> None:
    """``response`` is OpenAI's error answer, naming ``param`` and saying each of ``says``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    for words in says:
        assert words in error["message"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        (tool_body({"type": "string", "minLength": "abc"}), "minLength"),
        (tool_body({"type": "integer", "exclusiveMinimum": "x"}), "exclusiveMinimum"),
        (tool_body({"type": "array", "minItems": "x"}), "minItems"),
        (tool_body({"type": "string"}, required=5), "required"),
    ],
    ids=["minLength-abc", "exclusiveMinimum-x", "minItems-x", "required-5"],
)
async def test_schema_keywords_of_the_wrong_type_get_400(
    url: str, body: dict[str, Any], keyword: str
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{url}/chat/completions", json=body)
    assert_openai_error(
        response,
        param="tools[0].function.parameters",
        code="invalid_function_parameters",
        says=("Invalid schema for function 'f'", f"'{keyword}' must be"),
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "body", "param", "cap"),
    [
        (
            "chat/completions",
            tool_body({"type": "string", "minLength": 1_000_000_000}),
            "tools[0].function.parameters",
            "MAX_SCHEMA_STRING_LENGTH",
        ),
        (
            "chat/completions",
            tool_body({"type": "array", "minItems": 100_000_000}),
            "tools[0].function.parameters",
            "MAX_SCHEMA_ARRAY_ITEMS",
        ),
        (
            "embeddings",
            {"input": "hello", "dimensions": 100_000_000},
            "dimensions",
            "MAX_EMBEDDING_DIMENSIONS",
        ),
    ],
    ids=["minLength-1e9", "minItems-1e8", "dimensions-1e8"],
)
async def test_huge_sizes_get_400_naming_the_cap_while_health_answers(
    url: str, path: str, body: dict[str, Any], param: str, cap: str
) -> None:
    answers: dict[str, httpx.Response] = {}
    # The timeout only turns a server that stopped answering into a failure.
    async with httpx.AsyncClient(timeout=30) as client:

        async def post() -> None:
            answers["post"] = await client.post(f"{url}/{path}", json=body)

        async with anyio.create_task_group() as tg:
            tg.start_soon(post)
            answers["health"] = await client.get(url.removesuffix("/v1") + "/health")
    assert answers["health"].json() == {"status": "ok"}
    assert_openai_error(answers["post"], param=param, says=(cap,))


@pytest.mark.anyio
@pytest.mark.parametrize("dimensions", [-3, 0])
async def test_dimensions_below_one_get_400(url: str, dimensions: int) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{url}/embeddings", json={"input": "hello", "dimensions": dimensions}
        )
    assert_openai_error(
        response, param="dimensions", code="integer_below_min_value", says=(">= 1",)
    )


def nested_items(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "array", "items": schema}
    return schema


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "body", "param", "cap"),
    [
        (
            "chat/completions",
            HELLO | {"max_tokens": MAX_OUTPUT_TOKENS + 1},
            "max_tokens",
            "MAX_OUTPUT_TOKENS",
        ),
        (
            "chat/completions",
            {"messages": [{"role": "user", "content": "x"}] * (MAX_MESSAGES + 1)},
            "messages",
            "MAX_MESSAGES",
        ),
        (
            "chat/completions",
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]
                        * (MAX_MESSAGE_TOOL_CALLS + 1),
                    }
                ]
            },
            "messages",
            "MAX_MESSAGE_TOOL_CALLS",
        ),
        (
            "chat/completions",
            HELLO | {"tools": [WEATHER_TOOL] * (MAX_TOOLS + 1)},
            "tools",
            "MAX_TOOLS",
        ),
        (
            "chat/completions",
            tool_body(nested_items(MAX_SCHEMA_DEPTH)),
            "tools[0].function.parameters",
            "MAX_SCHEMA_DEPTH",
        ),
        (
            "chat/completions",
            tool_body({"enum": list(range(MAX_SCHEMA_NODES))}),
            "tools[0].function.parameters",
            "MAX_SCHEMA_NODES",
        ),
        (
            "chat/completions",
            tool_body(
                {
                    "type": "array",
                    "minItems": MAX_SCHEMA_ARRAY_ITEMS,
                    "items": {"type": "string", "minLength": 1000},
                }
            ),
            "tools[0].function.parameters",
            "MAX_ARGUMENTS_LENGTH",
        ),
        (
            "embeddings",
            {"input": ["a"] * (MAX_EMBEDDING_INPUTS + 1)},
            "input",
            "MAX_EMBEDDING_INPUTS",
        ),
        (
            "embeddings",
            {"input": ["a"] * MAX_EMBEDDING_INPUTS, "dimensions": MAX_EMBEDDING_DIMENSIONS},
            "input",
            "MAX_EMBEDDING_VALUES",
        ),
    ],
    ids=[
        "max_tokens", "messages", "message-tool-calls", "tools", "schema-depth", "schema-nodes",
        "arguments-length", "embedding-inputs", "embedding-values",
    ],
)  # fmt: skip
async def test_each_cap_gets_400_naming_it(
    url: str, path: str, body: dict[str, Any], param: str, cap: str
) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(f"{url}/{path}", json=body)
    assert_openai_error(response, param=param, says=(cap,))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "content", "param", "code"),
    [
        (
            "chat/completions",
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
            "messages[0].content[0].text",
            "invalid_type",
        ),
        (
            "chat/completions",
            {"messages": [{"role": "user", "content": ["hi"]}]},
            "messages[0].content[0]",
            "invalid_type",
        ),
        ("chat/completions", HELLO | {"n": 2}, "n", "unsupported_value"),
        ("completions", {"prompt": "hi", "n": 3}, "n", "unsupported_value"),
        ("chat/completions", HELLO | {"tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
        ("chat/completions", HELLO | {"temperature": 3}, "temperature", None),
        ("chat/completions", HELLO | {"top_p": -1}, "top_p", None),
        (
            "chat/completions",
            HELLO | {"response_format": {"type": "xml"}},
            "response_format.type",
            "invalid_value",
        ),
        (
            "chat/completions",
            HELLO
            | {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "schema": {"maxItems": -1}},
                }
            },
            "response_format.json_schema.schema",
            "invalid_json_schema",
        ),
        (
            "chat/completions",
            HELLO | {"response_format": {"type": "json_schema", "json_schema": {}}},
            "response_format.json_schema.name",
            "missing_required_parameter",
        ),
        ("embeddings", {"input": "hi", "encoding_format": "hex"}, "encoding_format", None),
        ("embeddings", {"input": [-1, 2]}, "input", None),
        (
            "chat/completions",
            {"messages": [{"content": "hi"}]},
            "messages[0].role",
            "missing_required_parameter",
        ),
    ],
    ids=[
        "text-part-not-a-string", "part-not-an-object", "chat-n", "completions-n",
        "tool_choice", "temperature", "top_p", "response_format-type",
        "response_format-schema", "response_format-name", "encoding_format", "negative-token",
        "nested-missing-field",
    ],
)  # fmt: skip
async def test_invalid_values_get_400_with_openai_error_body(
    url: str, path: str, content: dict[str, Any], param: str, code: str | None
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{url}/{path}", json=content)
    assert_openai_error(response, param=param, code=code)


@pytest.mark.anyio
async def test_json_nested_too_deeply_to_parse_gets_400(url: str) -> None:
    depth = 100_000
    nested = b"[" * depth + b"]" * depth
    content = b'{"messages": [{"role": "user", "content": ' + nested + b"}]}"
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{url}/chat/completions", content=content)
    assert_openai_error(response, param=None, code="invalid_json", says=("nested",))


class Place(msgspec.Struct):
    city: str
    days: int = 1


class Trip(msgspec.Struct):
    places: list[Place]
    note: str | None = None


@pytest.mark.anyio
async def test_valid_response_format_and_msgspec_schemas_are_accepted(url: str) -> None:
    schema = msgspec.json.schema(Trip)  # $defs, $ref, anyOf with null, defaults
    tool = {"type": "function", "function": {"name": "plan", "parameters": schema}}
    body = HELLO | {
        "tools": [tool],
        "tool_choice": "required",
        "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": schema}},
    }
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{url}/chat/completions", json=body)
    assert response.status_code == 200, response.text
    call = response.json()["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "plan"
    assert isinstance(json.loads(call["function"]["arguments"]), dict)


@pytest.mark.anyio
async def test_gzip_and_deflate_bodies_are_read_and_broken_ones_refused(url: str) -> None:
    raw = json.dumps(HELLO).encode()
    health = url.removesuffix("/v1") + "/health"
    async with httpx.AsyncClient(timeout=30) as client:

        async def post(content: bytes, encoding: str) -> httpx.Response:
            headers = {"content-encoding": encoding, "content-type": "application/json"}
            return await client.post(f"{url}/chat/completions", content=content, headers=headers)

        assert (await post(gzip.compress(raw), "gzip")).status_code == 200
        assert (await post(zlib.compress(raw), "deflate")).status_code == 200
        # A deflate body cut short: aiohttp's own decoder would wait for its end forever.
        cut = await post(zlib.compress(raw)[:5], "deflate")
        assert_openai_error(cut, param=None, says=("deflate", "cut short"))
        not_gzip = await post(raw, "gzip")
        assert_openai_error(not_gzip, param=None, says=("gzip",))
        brotli = await post(raw, "br")
        assert_openai_error(brotli, param=None, status=415, says=("'br'",))
        assert (await client.get(health)).json() == {"status": "ok"}


@pytest.mark.anyio
async def test_a_long_answer_due_at_once_streams_whole() -> None:
    # 3000 tokens due at the same instant: sent in several writes, none lost.
    async with (
        serve_in_thread_async(replace(FAST, output_tokens=3000)) as base,
        httpx.AsyncClient(timeout=60) as client,
    ):
        events = await stream_chat(client, base, HELLO)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    tokens = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert len([t for t in tokens if t]) == 3000
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.anyio
async def test_large_embeddings_computed_off_the_loop_match_small_ones(url: str) -> None:
    texts = [f"text {i}" for i in range(INLINE_EMBEDDING_VALUES // 256 + 4)]
    async with httpx.AsyncClient(timeout=60) as client:
        large = await client.post(f"{url}/embeddings", json={"input": texts, "dimensions": 256})
        as_base64 = await client.post(
            f"{url}/embeddings",
            json={"input": texts, "dimensions": 256, "encoding_format": "base64"},
        )
        one = await client.post(f"{url}/embeddings", json={"input": texts[-1], "dimensions": 256})
    assert len(texts) * 256 > INLINE_EMBEDDING_VALUES
    vectors = [item["embedding"] for item in large.json()["data"]]
    assert len(vectors) == len(texts)
    assert vectors[-1] == one.json()["data"][0]["embedding"]
    raw = base64.b64decode(as_base64.json()["data"][-1]["embedding"])
    assert struct.unpack("<256f", raw) == pytest.approx(vectors[-1], abs=1e-6)
