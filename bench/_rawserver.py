"""A minimal OpenAI-compatible HTTP/1.1 server on a raw ``asyncio.Protocol``, for client benchmarks.

It answers every POST with one canned ``chat.completion`` (or a canned SSE stream when the body
asks for ``"stream": true``) and keeps connections alive, so the client's cost dominates.
Run: ``python bench/_rawserver.py [--port 0] [--chunks 64]``; it prints ``PORT <n>`` when ready.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
    }
).encode()

MODELS = json.dumps(
    {"object": "list", "data": [{"id": "bench-model", "object": "model", "owned_by": "bench"}]}
).encode()


def sse_body(chunks: int) -> bytes:
    """A canned chat stream: ``chunks`` content chunks, a finish chunk, a usage chunk, [DONE]."""
    head = '{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
    head += '"model":"bench-model","choices":[{"index":0,"delta":{'
    parts = []
    for i in range(chunks):
        delta = f'"content":"tok{i} "'
        if i == 0:
            delta = '"role":"assistant",' + delta
        parts.append("data: " + head + delta + '},"finish_reason":null}]}\n\n')
    parts.append("data: " + head + '},"finish_reason":"stop"}]}\n\n')
    usage = {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks}
    parts.append(
        "data: "
        + json.dumps(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": "bench-model",
                "choices": [],
                "usage": usage,
            }
        )
        + "\n\n"
    )
    parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


def response(status: bytes, content_type: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: "
        + content_type
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nx-ratelimit-remaining-requests: 9999\r\nConnection: keep-alive\r\n\r\n"
        + body
    )


class BenchProtocol(asyncio.Protocol):
    """Parses just enough HTTP/1.1 (request line, Content-Length, body) to answer in order."""

    def __init__(self, completion: bytes, stream: bytes, models: bytes) -> None:
        self._buffer = bytearray()
        self._completion = completion
        self._stream = stream
        self._models = models
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                line_end = head.find(b"\r\n", at)
                length = int(head[at + 15 : line_end if line_end >= 0 else None])
            total = end + 4 + length
            if len(buffer) < total:
                return
            body = bytes(buffer[end + 4 : total])
            del buffer[:total]
            assert self._transport is not None
            if head.startswith(b"get"):
                self._transport.write(self._models)
            elif b'"stream":true' in body.replace(b" ", b""):
                self._transport.write(self._stream)
            else:
                self._transport.write(self._completion)


async def serve(port: int, chunks: int) -> None:
    completion = response(b"200 OK", b"application/json", COMPLETION)
    stream = response(b"200 OK", b"text/event-stream", sse_body(chunks))
    models = response(b"200 OK", b"application/json", MODELS)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: BenchProtocol(completion, stream, models), "127.0.0.1", port, backlog=4096
    )
    print("PORT", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--chunks", type=int, default=64)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.chunks))


if __name__ == "__main__":
    main()
