"""Stream adapters: SSE frames, callbacks, buffering, collecting, a websocket on loopback,
and the Starlette example serving an agent's stream."""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType

import anyio
import anyio.to_thread
import msgspec
import pytest
from websockets.sync.client import connect
from websockets.sync.server import Server, ServerConnection, serve

from limelight.errors import BadResponse
from limelight.schemas import (
    CompletionResult,
    StreamEvent,
    StreamEventType,
    ToolCall,
    ToolResult,
    Usage,
)
from limelight.streaming import (
    BufferingAdapter,
    CallbackAdapter,
    SSEAdapter,
    StreamError,
    WebSocketAdapter,
    collect_stream,
)

CALL = ToolCall(id="c1", name="add", arguments='{"a": 1}')
RESULT = CompletionResult(content="Hello world", usage=Usage.of(3, 2))


def script(*, fail: bool = False, error_event: bool = False) -> list[StreamEvent]:
    events = [
        StreamEvent.token("Hello"),
        StreamEvent.token(" world"),
        StreamEvent(type=StreamEventType.TOOL_CALL, tool_call=CALL),
        StreamEvent(type=StreamEventType.TOOL_RESULT, tool_result=ToolResult(content="2")),
        StreamEvent(type=StreamEventType.USAGE, usage=Usage.of(3, 2)),
    ]
    if error_event:
        events.append(StreamEvent(type=StreamEventType.ERROR, error="boom", error_type="X"))
    events.append(StreamEvent.done(RESULT))
    return events


async def source(
    events: list[StreamEvent], *, fail_after: int | None = None
) -> AsyncIterator[StreamEvent]:
    for i, event in enumerate(events):
        if fail_after is not None and i == fail_after:
            raise RuntimeError("source broke")
        await anyio.lowlevel.checkpoint()
        yield event


@pytest.mark.anyio
async def test_sse_frames_one_event_each_and_end_with_error_on_failure() -> None:
    frames = [f async for f in SSEAdapter(source(script()))]
    assert frames[0] == 'event: token\ndata: {"type":"token","content":"Hello"}\n\n'
    assert frames[-1].startswith("event: done\ndata: ")
    assert len(frames) == 6
    payload = frames[-1].split("data: ", 1)[1]
    assert msgspec.json.decode(payload, type=StreamEvent).result == RESULT
    broken = [f async for f in SSEAdapter(source(script(), fail_after=1))]
    assert len(broken) == 2
    assert broken[-1] == (
        'event: error\ndata: {"type":"error","error":"source broke",'
        '"error_type":"RuntimeError"}\n\n'
    )


@pytest.mark.anyio
async def test_callbacks_get_each_kind_of_event_sync_or_async() -> None:
    seen: list[tuple[str, object]] = []

    async def on_done(result: CompletionResult) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(("done", result.content))

    adapter = CallbackAdapter(
        on_token=lambda t: seen.append(("token", t)),
        on_tool_call=lambda c: seen.append(("call", c.name)),
        on_tool_result=lambda r: seen.append(("result", r.content)),
        on_done=on_done,
    )
    result = await adapter.consume(source(script()))
    assert result == RESULT
    assert seen == [
        ("token", "Hello"),
        ("token", " world"),
        ("call", "add"),
        ("result", "2"),
        ("done", "Hello world"),
    ]


@pytest.mark.anyio
async def test_callback_errors_go_to_on_error_or_are_raised() -> None:
    errors: list[BaseException] = []
    await CallbackAdapter(on_error=errors.append).consume(source(script(error_event=True)))
    await CallbackAdapter(on_error=errors.append).consume(source(script(), fail_after=2))
    assert [type(e).__name__ for e in errors] == ["StreamError", "RuntimeError"]
    assert str(errors[0]) == "X: boom"
    with pytest.raises(StreamError, match="X: boom"):
        await CallbackAdapter().consume(source(script(error_event=True)))
    with pytest.raises(RuntimeError, match="source broke"):
        await CallbackAdapter().consume(source(script(), fail_after=0))


@pytest.mark.anyio
async def test_buffering_passes_events_through_and_keeps_them() -> None:
    buffer = BufferingAdapter(source(script()))
    passed = [e async for e in buffer]
    assert passed == script()
    assert buffer.events == passed
    assert buffer.text == "Hello world"
    assert buffer.tool_calls == [CALL]
    assert buffer.tool_results == [ToolResult(content="2")]
    assert buffer.result == RESULT
    assert await BufferingAdapter(source(script())).consume() == "Hello world"


@pytest.mark.anyio
async def test_collect_stream() -> None:
    assert await collect_stream(source(script())) == RESULT
    # Without DONE, the result is assembled from the pieces.
    assembled = await collect_stream(source(script()[:-1]))
    assert assembled.content == "Hello world"
    assert assembled.tool_calls == [CALL]
    assert assembled.usage == Usage.of(3, 2)
    assert assembled.finish_reason == "tool_calls"
    with pytest.raises(StreamError, match="boom"):
        await collect_stream(source(script(error_event=True)))
    with pytest.raises(BadResponse, match="without any event"):
        await collect_stream(source([]))


@pytest.fixture
def ws_server() -> Iterator[tuple[str, list[str]]]:
    """A real websocket server on loopback, in a thread, recording what it receives."""
    received: list[str] = []

    def handler(connection: ServerConnection) -> None:
        for message in connection:
            received.append(str(message))

    server: Server = serve(handler, "127.0.0.1", 0)
    port = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{port}", received
    finally:
        server.shutdown()
        thread.join(10)


@pytest.mark.anyio
async def test_websocket_adapter_sends_each_event_over_a_real_socket(
    ws_server: tuple[str, list[str]],
) -> None:
    url, received = ws_server
    # The sync client in worker threads: it works the same under asyncio and trio.
    client = await anyio.to_thread.run_sync(connect, url)
    connection = await anyio.to_thread.run_sync(client.__enter__)
    try:

        async def send(text: str) -> None:
            await anyio.to_thread.run_sync(connection.send, text)

        sent = await WebSocketAdapter(send).send_stream(source(script(), fail_after=3))
    finally:
        await anyio.to_thread.run_sync(client.__exit__, None, None, None)
    with anyio.fail_after(10):
        while len(received) < sent:
            await anyio.sleep(0.01)
    assert sent == 4
    decoded = [msgspec.json.decode(m, type=StreamEvent) for m in received]
    assert decoded[:3] == script()[:3]
    assert decoded[3].type is StreamEventType.ERROR
    assert decoded[3].error == "source broke"


def _load_example() -> ModuleType:
    path = Path(__file__).parents[2] / "examples" / "serve_agent_starlette.py"
    spec = importlib.util.spec_from_file_location("serve_agent_starlette", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_starlette_example_streams_an_agent_over_sse_and_websocket() -> None:
    from starlette.testclient import TestClient

    example = _load_example()
    with TestClient(example.app) as client:
        with client.stream("GET", "/chat", params={"prompt": "2 + 3?"}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            body = "".join(response.iter_text())
        frames = [f for f in body.split("\n\n") if f]
        kinds = [f.split("\n", 1)[0] for f in frames]
        assert kinds[0] == "event: tool_call"
        assert kinds[1] == "event: tool_result"
        assert kinds[-1] == "event: done"
        result = msgspec.json.decode(frames[1].split("data: ", 1)[1], type=StreamEvent)
        assert result.tool_result is not None
        assert result.tool_result.content == "5"
        done = msgspec.json.decode(frames[-1].split("data: ", 1)[1], type=StreamEvent)
        assert done.result is not None
        assert done.result.content == "The answer is 5."
        with client.websocket_connect("/ws") as ws:
            ws.send_text("2 + 3?")
            messages = []
            while True:
                event = msgspec.json.decode(ws.receive_text(), type=StreamEvent)
                messages.append(event)
                if event.type is StreamEventType.DONE:
                    break
        assert [e.type for e in messages][:2] == [
            StreamEventType.TOOL_CALL,
            StreamEventType.TOOL_RESULT,
        ]
        assert messages[-1].meta["status"] == "completed"
        # Each request's agent is stopped when its response ends.
        runtime = example.app.state.runtime
        assert [c.name for c in runtime.tree().children] == ["model"]


class Closable:
    """A source that is not a generator and so stays open until closed, as a provider pool's
    stream does (it holds a leased worker): records its ``aclose`` calls.

    :param fail_at: raise at this event.
    :param block_at: at this event, cancel :attr:`cancel` and wait for ever.
    """

    def __init__(
        self, events: list[StreamEvent], *, fail_at: int | None = None, block_at: int | None = None
    ) -> None:
        self._events = events
        self._next = 0
        self.fail_at = fail_at
        self.block_at = block_at
        self.cancel: anyio.CancelScope | None = None
        self.closed = 0

    def __aiter__(self) -> Closable:
        return self

    async def __anext__(self) -> StreamEvent:
        await anyio.lowlevel.checkpoint()
        if self._next == self.fail_at:
            raise RuntimeError("source broke")
        if self._next == self.block_at:
            assert self.cancel is not None
            self.cancel.cancel()
            await anyio.sleep_forever()
        if self._next >= len(self._events):
            raise StopAsyncIteration
        self._next += 1
        return self._events[self._next - 1]

    async def aclose(self) -> None:
        self.closed += 1


async def _buffer_consume(events: Closable) -> object:
    return await BufferingAdapter(events).consume()


async def _buffer_iterate(events: Closable) -> object:
    return [e async for e in BufferingAdapter(events)]


async def _callbacks(events: Closable) -> object:
    return await CallbackAdapter().consume(events)


async def _sse(events: Closable) -> object:
    return [f async for f in SSEAdapter(events)]


async def _collect(events: Closable) -> object:
    return await collect_stream(events)


async def _websocket(events: Closable) -> object:
    sent: list[str] = []

    async def send(text: str) -> None:
        await anyio.lowlevel.checkpoint()
        sent.append(text)

    return await WebSocketAdapter(send).send_stream(events)


CONSUMERS = {
    "buffering.consume": _buffer_consume,
    "buffering": _buffer_iterate,
    "callbacks": _callbacks,
    "sse": _sse,
    "collect_stream": _collect,
    "websocket": _websocket,
}


@pytest.mark.anyio
@pytest.mark.parametrize("consumer", CONSUMERS)
async def test_every_adapter_closes_its_source_at_the_end_on_error_and_on_cancel(
    consumer: str,
) -> None:
    consume = CONSUMERS[consumer]
    ended = Closable(script())
    await consume(ended)
    assert ended.closed == 1
    broken = Closable(script(), fail_at=2)
    # Some adapters raise the source's error, others report it in the stream they make.
    with contextlib.suppress(RuntimeError):
        await consume(broken)
    assert broken.closed == 1
    blocked = Closable(script(), block_at=1)
    with anyio.CancelScope() as scope:
        blocked.cancel = scope
        await consume(blocked)
    assert scope.cancelled_caught
    assert blocked.closed == 1
