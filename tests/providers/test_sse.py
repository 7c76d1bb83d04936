"""Stream assembly, property-tested: an SSE byte stream cut at arbitrary byte boundaries gives
the same events as the whole stream, through httpx's real response streaming, httpx-sse and
the assembler; a stream cut before its end raises BadResponse."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio.lowlevel
import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from limelight.errors import BadResponse
from limelight.providers import OpenAICompatible
from limelight.schemas import (
    CompletionRequest,
    CompletionResult,
    Message,
    StreamEvent,
    StreamEventType,
    ToolCall,
    Usage,
)

pytestmark = pytest.mark.anyio


class Pieces(httpx.AsyncByteStream):
    """A response body delivered in the given pieces, with a checkpoint between them as a
    network would."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            await anyio.lowlevel.checkpoint()
            yield piece


class PiecesTransport(httpx.AsyncBaseTransport):
    """Answers every request with a 200 event stream made of ``pieces``; records the bodies."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.bodies: list[dict[str, object]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(await request.aread()))
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream", "x-ratelimit-remaining-tokens": "99"},
            stream=Pieces(self.pieces),
            request=request,
        )


@dataclass
class Spec:
    """What the generated stream says: the expected outcome, independent of the code tested."""

    tokens: list[str]
    calls: list[tuple[str, list[str]]]  # (name, argument pieces)
    usage: tuple[int, int] | None
    crlf: bool
    send_done: bool


def chunk(delta: dict[str, object], finish_reason: str | None = None) -> dict[str, object]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m-1",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def events_of(spec: Spec) -> tuple[list[dict[str, object] | str], int]:
    """The SSE events (JSON chunks or comments) and the index of the finishing one."""
    events: list[dict[str, object] | str] = [chunk({"role": "assistant", "content": ""})]
    events.append(": keep-alive comment")
    events.extend(chunk({"content": t}) for t in spec.tokens)
    for index, (name, pieces) in enumerate(spec.calls):
        first = {"index": index, "id": f"call_{index}x", "type": "function"}
        events.append(
            chunk({"tool_calls": [{**first, "function": {"name": name, "arguments": ""}}]})
        )
        events.extend(
            chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]}) for p in pieces
        )
    finish_at = len(events)
    events.append(chunk({}, "tool_calls" if spec.calls else "stop"))
    if spec.usage is not None:
        prompt, completion = spec.usage
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        events.append({**chunk({}), "choices": [], "usage": usage})
    return events, finish_at


def encode(spec: Spec) -> tuple[bytes, int]:
    """The SSE body, and the byte offset where the finishing event ends."""
    newline = "\r\n" if spec.crlf else "\n"
    events, finish_at = events_of(spec)
    out = []
    finish_end = 0
    for i, event in enumerate(events):
        if isinstance(event, str):
            out.append(f":{event}{newline}".encode())
        else:
            out.append(f"data: {json.dumps(event)}{newline}{newline}".encode())
        if i == finish_at:
            finish_end = sum(map(len, out))
    if spec.send_done:
        out.append(f"data: [DONE]{newline}{newline}".encode())
    return b"".join(out), finish_end


def expected_events(spec: Spec) -> list[StreamEvent]:
    events = [StreamEvent.token(t) for t in spec.tokens if t]
    calls = [
        ToolCall(id=f"call_{i}x", name=name, arguments="".join(pieces) or "{}")
        for i, (name, pieces) in enumerate(spec.calls)
    ]
    events.extend(StreamEvent(type=StreamEventType.TOOL_CALL, tool_call=c) for c in calls)
    usage = Usage.of(*spec.usage) if spec.usage is not None else None
    if usage is not None:
        events.append(StreamEvent(type=StreamEventType.USAGE, usage=usage))
    content = "".join(spec.tokens)
    result = CompletionResult(
        content=content or None,
        tool_calls=calls,
        finish_reason="tool_calls" if calls else "stop",
        model="m-1",
        usage=usage,
        id="chatcmpl-1",
        provider="openai-compatible",
        metadata={"run": "r1"},
        rate_limit={"x-ratelimit-remaining-tokens": "99"},
    )
    events.append(StreamEvent.done(result))
    return events


def timeless(events: list[StreamEvent]) -> list[StreamEvent]:
    """Events with the DONE result's timings removed (they differ run to run)."""
    out = []
    for event in events:
        if event.result is not None:
            assert event.result.latency is not None
            event = msgspec.structs.replace(
                event, result=msgspec.structs.replace(event.result, latency=None, ttft=None)
            )
        out.append(event)
    return out


async def collect(pieces: list[bytes]) -> tuple[list[StreamEvent], PiecesTransport]:
    transport = PiecesTransport(pieces)
    async with OpenAICompatible("http://sim.invalid/v1", transport=transport) as provider:
        request = CompletionRequest(messages=[Message.user("hi")], metadata={"run": "r1"})
        events = [event async for event in provider.stream(request)]
    return events, transport


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(data)}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=12
)
specs = st.builds(
    Spec,
    tokens=st.lists(texts, max_size=8),
    calls=st.lists(
        st.tuples(
            st.text(alphabet="abcdefghij_", min_size=1, max_size=10),
            st.lists(texts.filter(bool), max_size=5),
        ),
        max_size=3,
    ),
    usage=st.none() | st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)),
    crlf=st.booleans(),
    send_done=st.booleans(),
)
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(spec=specs, cuts=st.lists(st.integers(min_value=0, max_value=20_000), max_size=40))
async def test_split_stream_gives_the_same_events(spec: Spec, cuts: list[int]) -> None:
    data, _ = encode(spec)
    whole, transport = await collect([data])
    pieces, _ = await collect(split(data, [c % (len(data) + 1) for c in cuts]))
    assert timeless(pieces) == timeless(whole) == expected_events(spec)
    assert transport.bodies[0]["stream"] is True
    assert transport.bodies[0]["stream_options"] == {"include_usage": True}
    done = whole[-1].result
    assert done is not None
    assert (done.ttft is not None) == bool("".join(spec.tokens) or spec.calls)


@SETTINGS
@given(spec=specs, data=st.data())
async def test_stream_cut_before_its_end_raises(spec: Spec, data: st.DataObject) -> None:
    body, finish_end = encode(spec)
    # Up to two bytes short of the finishing event's end, so that event never completes.
    cut = data.draw(st.integers(min_value=0, max_value=finish_end - 2), label="cut")
    cuts = data.draw(st.lists(st.integers(0, max(cut, 0)), max_size=10), label="cuts")
    with pytest.raises(BadResponse, match="truncated"):
        await collect(split(body[:cut], cuts))


async def test_byte_by_byte_multibyte_text() -> None:
    spec = Spec(
        tokens=["héllo ", "wörld ", "🙂", "\n"], calls=[], usage=(3, 4), crlf=True, send_done=True
    )
    data, _ = encode(spec)
    events, _ = await collect([data[i : i + 1] for i in range(len(data))])
    assert timeless(events) == expected_events(spec)
