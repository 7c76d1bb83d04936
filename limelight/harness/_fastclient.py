"""The harness's lean client for ``http://`` OpenAI-compatible targets on asyncio.

It keeps HTTP/1.1 connections alive, driven by ``asyncio.Protocol`` callbacks, with request
heads pre-encoded, SSE chunks timestamped as they arrive and decoded only where a metric needs
them (the usage chunk). A benchmark client's own CPU per request is what lets it keep a
schedule at high rates; this one spends a fraction of a general-purpose client's (see
bench/RESULTS.md).

It measures; it does not interpret: anything unusual (a status other than 200, a dropped
connection, a chunk that is not JSON, a stream without its end marker) ends the request as an
error of the matching project error name. ``https://``, trio, and the multi-turn and agent
workloads use the provider's own streaming API instead.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final
from urllib.parse import urlsplit

import msgspec

from ..errors import ConfigError
from ..schemas import Message
from ..schemas._openai import ChatBody, CompletionUsage, StreamOptions, encoder, usage_only_decoder

__all__ = ["FastHTTP", "Outcome"]

_END: Final = b"\r\n\r\n"
_CONTENT: Final = b'"content":"'
_STREAM_OPTIONS: Final = StreamOptions(include_usage=True)


def _error_name(status: int) -> str:
    if status == 429:
        return "RateLimited"
    if status in (401, 403):
        return "AuthenticationError"
    if status in (400, 404, 422):
        return "BadRequest"
    return "ServerError"


class Outcome:
    """What one exchange measured (``perf_counter`` times)."""

    __slots__ = ("chunks", "end", "error", "error_message", "first", "gaps", "usage")

    def __init__(self) -> None:
        self.first: float | None = None
        self.gaps: list[float] = []
        self.chunks = 0
        self.usage: CompletionUsage | None = None
        self.error: str | None = None
        self.error_message: str | None = None
        self.end = 0.0


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one exchange at a time."""

    def __init__(self, owner: FastHTTP) -> None:
        self._owner = owner
        self.transport: asyncio.Transport | None = None
        self.open = False
        self._buffer = bytearray()
        self._sse = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._outcome = Outcome()
        self._last = 0.0
        self._state = 0  # 0 head, 1 chunked body, 2 sized body, 3 done
        self._status = 0
        self._remaining = 0
        self._streamed = False
        self._done_marker = False
        self._keep = True

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.open = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._fail("ProviderConnectionError", f"the connection dropped: {exc or 'closed'}")

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            return
        self._buffer += data
        try:
            self._parse()
        except (ValueError, msgspec.DecodeError) as exc:
            self._keep = False
            self._fail("BadResponse", f"unparseable response: {exc}")

    # -- one exchange --------------------------------------------------------------------------

    def start(self, streamed: bool) -> asyncio.Future[None]:
        self._outcome = Outcome()
        self._buffer.clear()
        self._sse.clear()
        self._state = 0
        self._streamed = streamed
        self._done_marker = False
        self._keep = True
        self._waiter = asyncio.get_running_loop().create_future()
        return self._waiter

    def finish(self) -> Outcome:
        self._waiter = None
        return self._outcome

    @property
    def reusable(self) -> bool:
        return self.open and self._keep and self._state == 3

    def _fail(self, name: str, message: str) -> None:
        self._outcome.error = name
        self._outcome.error_message = message
        self._complete()

    def _complete(self) -> None:
        self._outcome.end = time.perf_counter()
        self._state = 3
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _parse(self) -> None:
        buffer = self._buffer
        if self._state == 0:
            end = buffer.find(_END)
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            del buffer[: end + 4]
            self._status = int(head[9:12])
            if b"connection: close" in head:
                self._keep = False
            if b"transfer-encoding: chunked" in head:
                self._state = 1
            else:
                marker = head.find(b"content-length:")
                if marker < 0:
                    raise ValueError("a response without length or chunked encoding")
                line_end = head.find(b"\r\n", marker)
                self._remaining = int(head[marker + 15 : line_end if line_end > 0 else None])
                self._state = 2
        if self._state == 1:
            while True:
                line_end = buffer.find(b"\r\n")
                if line_end < 0:
                    return
                size = int(bytes(buffer[:line_end]).split(b";", 1)[0], 16)
                if size == 0:
                    if len(buffer) < line_end + 4:
                        return
                    del buffer[: line_end + 4]
                    self._body_done()
                    return
                if len(buffer) < line_end + 2 + size + 2:
                    return
                chunk = bytes(buffer[line_end + 2 : line_end + 2 + size])
                del buffer[: line_end + 2 + size + 2]
                self._body(chunk)
        if self._state == 2 and len(buffer) >= self._remaining:
            body = bytes(buffer[: self._remaining])
            del buffer[: self._remaining]
            self._body(body)
            self._body_done()

    def _body(self, data: bytes) -> None:
        if self._status != 200 or not self._streamed:
            self._sse += data
            return
        now = time.perf_counter()
        sse = self._sse
        sse += data
        outcome = self._outcome
        while True:
            end = sse.find(b"\n\n")
            if end < 0:
                return
            event = bytes(sse[:end])
            del sse[: end + 2]
            if not event.startswith(b"data: "):
                continue
            payload = event[6:]
            if payload == b"[DONE]":
                self._done_marker = True
                continue
            # Every chunk is validated (msgspec skips the fields it does not need, fast);
            # only the usage is kept.
            usage = usage_only_decoder.decode(payload).usage
            if usage is not None:
                outcome.usage = usage
            at = payload.find(_CONTENT)
            if at >= 0 and payload[at + 11 : at + 12] != b'"':
                # A chunk with text (not the empty first chunk some servers send with the
                # role): the same chunks the provider path counts as tokens.
                if outcome.first is None:
                    outcome.first = now
                else:
                    outcome.gaps.append(now - self._last)
                self._last = now
                outcome.chunks += 1

    def _body_done(self) -> None:
        outcome = self._outcome
        if self._status != 200:
            text = bytes(self._sse[:300]).decode("utf-8", "replace")
            self._fail(_error_name(self._status), f"HTTP {self._status}: {text}")
            return
        if not self._streamed:
            outcome.usage = usage_only_decoder.decode(bytes(self._sse)).usage
        elif not self._done_marker:
            self._fail("BadResponse", "the stream ended without its [DONE] marker")
            return
        self._complete()


class FastHTTP:
    """Chat completions over pooled keep-alive HTTP/1.1 connections (asyncio only).

    :param base_url: an ``http://`` API root such as ``http://127.0.0.1:8000/v1``.
    :param api_key: sent as a bearer token (never shown).
    :raises ConfigError: the URL is not plain ``http://``.
    """

    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or not url.hostname:
            raise ConfigError(f"the lean client speaks plain http://, got {base_url!r}")
        self.host = url.hostname
        self.port = url.port or 80
        path = url.path.rstrip("/") + "/chat/completions"
        auth = f"Authorization: Bearer {api_key}\r\n" if api_key else ""
        host = f"{self.host}:{self.port}"
        self._head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Accept: text/event-stream\r\nUser-Agent: limelight-bench\r\n{auth}Content-Length: "
        ).encode()
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()

    @staticmethod
    def body(
        model: str,
        messages: list[Message],
        max_tokens: int | None,
        *,
        stream: bool,
        ignore_eos: bool = False,
    ) -> bytes:
        """The request body, encoded once per request."""
        return encoder.encode(
            ChatBody(
                model=model,
                messages=messages,
                max_tokens=max_tokens,
                stream=stream,
                stream_options=_STREAM_OPTIONS if stream else None,
                ignore_eos=True if ignore_eos else None,
            )
        )

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(
            lambda: _Connection(self), self.host, self.port
        )
        self._all.add(connection)
        return connection

    async def exchange(self, body: bytes, *, stream: bool) -> Outcome:
        """Send one request and wait for its whole answer. Failures are in the outcome; an
        exchange cancelled mid-way closes its connection."""
        idle = self._idle
        connection = None
        while idle:
            candidate = idle.pop()
            if candidate.open:
                connection = candidate
                break
            self._all.discard(candidate)
        if connection is None:
            try:
                connection = await self._connect()
            except OSError as exc:
                outcome = Outcome()
                outcome.error, outcome.error_message = "ProviderConnectionError", str(exc)
                outcome.end = time.perf_counter()
                return outcome
        waiter = connection.start(stream)
        transport = connection.transport
        assert transport is not None
        transport.write(self._head + str(len(body)).encode() + _END + body)
        try:
            await waiter
        except BaseException:
            transport.abort()
            self._all.discard(connection)
            raise
        outcome = connection.finish()
        if connection.reusable:
            idle.append(connection)
        else:
            transport.close()
            self._all.discard(connection)
        return outcome

    async def aclose(self) -> None:
        """Close every connection."""
        for connection in self._all:
            if connection.transport is not None:
                connection.transport.close()
        self._all.clear()
        self._idle.clear()
        await asyncio.sleep(0)
