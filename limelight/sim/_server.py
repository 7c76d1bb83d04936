"""The simulator served over HTTP.

An aiohttp application over one :class:`~limelight.sim.SimEngine` answers OpenAI's routes;
there are ways to run it in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import struct
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

import msgspec

from ..schemas._openai import (
    ChatBody,
    ModelsPage,
    RequestMessage,
    TextBody,
    encoder,
    error_body,
)
from ._config import INLINE_EMBEDDING_VALUES, SimulatedConfig
from ._engine import Outcome, Plan, SimEngine
from ._wire import (
    MAX_BODY_BYTES,
    BadBody,
    chat_chunks,
    chat_completion,
    decompress,
    embedding_answer,
    model_object,
    parse_chat,
    parse_embedding,
    parse_text,
    text_chunks,
    text_completion,
    too_large,
)

if TYPE_CHECKING:
    from aiohttp import web


DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
#: Seconds a stopping server waits for requests in flight before cutting them.
SHUTDOWN_TIMEOUT = 1.0
# Pieces due within this many seconds of each other go out in one socket write.
_COALESCE = 0.0005
# A stream due all at once (no decode delay) lets other requests in after this many chunks.
_CHUNKS_PER_TURN = 512
# Bodies larger than this are decoded in a worker thread: decoding and converting a body
# costs CPU in proportion to its size, which must not hold the event loop.
_INLINE_BODY_BYTES = 64 * 1024
_Parsed = TypeVar("_Parsed")
_encode = encoder.encode


def _require_aiohttp() -> None:
    try:
        import aiohttp.web  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the test extra installs aiohttp
        raise ImportError("`limelight sim` needs aiohttp: pip install 'limelight[sim]'") from exc


def _reset(request: web.BaseRequest) -> None:
    """Drop the connection with a TCP reset (SO_LINGER 0), as a crashed peer does."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class SimServer:
    """The aiohttp application serving one :class:`SimEngine`.

    :param config: the simulated behaviour; the defaults when ``None``.
    """

    def __init__(self, config: SimulatedConfig | None = None) -> None:
        _require_aiohttp()
        from aiohttp import web

        self.engine = SimEngine(config)
        # Set by runner(): request bodies are decoded here rather than by aiohttp.
        self._decodes_bodies = False
        self._AppRunner = web.AppRunner
        self._Application = web.Application
        self._Response = web.Response
        self._StreamResponse = web.StreamResponse
        self._PayloadError = web.RequestPayloadError
        self._TooLarge = web.HTTPRequestEntityTooLarge

    def runner(self) -> web.AppRunner:
        """A runner for a new :meth:`app`, set up as ``limelight sim`` serves it.

        It decodes ``gzip`` and ``deflate`` request bodies itself (aiohttp's decoder never ends
        a truncated deflate body: its request would wait forever), and answers other
        encodings 415."""
        self._decodes_bodies = True
        return self._AppRunner(
            self.app(),
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            # A client that hangs up frees its concurrency slot at once.
            handler_cancellation=True,
            auto_decompress=False,
        )

    def app(self) -> web.Application:
        """A new aiohttp application with the OpenAI routes."""
        app = self._Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/v1/models/{model}", self.model)
        app.router.add_get("/health", self.health)
        app.router.add_route("*", "/{tail:.*}", self.not_found)
        return app

    # -- helpers ---------------------------------------------------------------------

    def _json(
        self, body: bytes, *, status: int = 200, headers: dict[str, str] | None = None
    ) -> web.Response:
        return self._Response(
            body=body, status=status, headers=headers, content_type="application/json"
        )

    def _error_response(self, plan: Plan) -> web.Response:
        return self._json(_encode(plan.error), status=plan.status, headers=plan.headers)

    async def _sleep_until(self, deadline: float) -> None:
        delay = deadline - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _fault_plain(
        self, request: web.Request, plan: Plan, body: bytes
    ) -> web.StreamResponse:
        """Play a faulty non-streamed plan: ``body`` is the answer it would have given."""
        if plan.outcome is Outcome.SERVER_ERROR:
            return self._error_response(plan)
        if plan.outcome is Outcome.MALFORMED:
            # Complete, well-framed, but not JSON: the closing brace is missing.
            return self._json(body[:-1], headers=plan.headers)
        if plan.outcome is Outcome.TRUNCATED:
            # The headers promise the full body; half of it comes, then the connection ends.
            response = self._StreamResponse(headers=plan.headers)
            response.content_type = "application/json"
            response.content_length = len(body)
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
            # A clean close (FIN), so the client sees a body shorter than promised.
            if request.transport is not None:
                request.transport.close()
        else:
            _reset(request)
        return self._Response(status=500)  # never sent: the connection is gone

    async def _complete(
        self,
        request: web.Request,
        plan: Plan,
        body: ChatBody[RequestMessage] | TextBody,
        whole: Callable[[Plan], msgspec.Struct],
        pieces: Callable[..., Iterator[tuple[int, bytes]]],
    ) -> web.StreamResponse:
        """Answer a chat or text completion: ``whole`` encodes a non-streamed answer,
        ``pieces`` the SSE chunks of a streamed one; the plan is released either way."""
        try:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            answer = b"" if body.stream or plan.error else _encode(whole(plan))
            chunks = pieces(plan, include_usage=include_usage) if body.stream else iter(())
            return await self._answer(request, plan, answer, chunks, stream=body.stream)
        finally:
            self.engine.release(plan)

    async def _answer(
        self,
        request: web.Request,
        plan: Plan,
        body: bytes,
        chunks: Iterator[tuple[int, bytes]],
        *,
        stream: bool,
    ) -> web.StreamResponse:
        """Play ``plan``: an error, a JSON ``body`` after its duration, or the SSE ``chunks``
        (each due at piece number ``n``)."""
        start = asyncio.get_running_loop().time()
        if plan.outcome in (Outcome.BAD_REQUEST, Outcome.RATE_LIMITED):
            return self._error_response(plan)
        if not stream:
            if plan.outcome is not Outcome.OK:
                await self._sleep_until(start + plan.ttft)
                return await self._fault_plain(request, plan, body)
            await self._sleep_until(start + plan.duration)
            return self._json(body, headers=plan.headers)
        if plan.outcome is Outcome.SERVER_ERROR:
            await self._sleep_until(start + plan.ttft)
            return self._error_response(plan)
        return await self._play_stream(request, plan, chunks, start)

    async def _play_stream(
        self, request: web.Request, plan: Plan, chunks: Iterator[tuple[int, bytes]], start: float
    ) -> web.StreamResponse:
        """Send ``chunks`` as SSE, each when its piece is due; chunks due within
        ``_COALESCE`` of each other share one write. A mid-stream fault strikes at the first
        chunk of piece ``plan.fault_at``."""
        loop = asyncio.get_running_loop()
        response = self._StreamResponse(headers=plan.headers)
        response.content_type = "text/event-stream"
        response.headers["Cache-Control"] = "no-cache"
        await response.prepare(request)
        fault = None if plan.outcome is Outcome.OK else plan.outcome
        pending: list[bytes] = []
        try:
            for piece, chunk in chunks:
                due = start + plan.at(piece)
                if due - loop.time() > _COALESCE:
                    if pending:
                        await response.write(b"".join(pending))
                        pending.clear()
                    await self._sleep_until(due)
                elif len(pending) >= _CHUNKS_PER_TURN:
                    # A long answer due at once: send what is ready and let others in.
                    await response.write(b"".join(pending))
                    pending.clear()
                    await asyncio.sleep(0)
                if fault is not None and piece == plan.fault_at:
                    if fault is Outcome.MALFORMED:
                        # This chunk's JSON loses its closing brace; the stream goes on.
                        pending.append(chunk[:-3] + b"\n\n")
                        fault = None
                        continue
                    if pending:
                        await response.write(b"".join(pending))
                    if fault is Outcome.TRUNCATED:
                        await response.write_eof()
                    else:
                        _reset(request)
                    return response
                pending.append(chunk)
            if pending:
                await response.write(b"".join(pending))
            await response.write_eof()
        except ConnectionError:
            # The client went away mid-stream; nothing is left to answer.
            pass
        return response

    async def _read(
        self, request: web.Request, convert: Callable[[bytes], _Parsed]
    ) -> _Parsed | web.Response:
        """The request's body through ``convert`` (decode and check it), in a worker thread
        when it is large; a 4xx answer when it cannot be read or ``convert`` refuses it."""
        encoding = ""
        if self._decodes_bodies:
            encoding = request.headers.get("Content-Encoding", "").strip().lower()
            if encoding in ("identity", ""):
                encoding = ""
            elif encoding == "x-gzip":
                encoding = "gzip"
            elif encoding not in ("gzip", "deflate"):
                body = error_body(
                    f"Content-Encoding {encoding!r} is not supported: send the body as it is, or "
                    "in gzip or deflate.",
                    code="unsupported_content_encoding",
                )
                return self._json(_encode(body), status=415)
        try:
            raw = await request.read()
        except self._TooLarge:
            return self._json(_encode(too_large().body), status=413)
        except self._PayloadError as exc:
            # A body its own headers do not describe: a Content-Encoding it is not in, say.
            cause = exc.__cause__ or exc
            reason = str(getattr(cause, "message", cause)).strip()
            body = error_body(f"The request body could not be read: {reason}.")
            response = self._json(_encode(body), status=400)
            # The rest of the body cannot be read either: the connection ends with this answer,
            # and the server does not try to read the rest first.
            response.force_close()
            request.content.feed_eof()
            return response
        try:
            if encoding:
                # Inflating is CPU work in proportion to the inflated size, whatever the
                # size sent: always in a worker thread.
                return await asyncio.to_thread(lambda: convert(decompress(raw, encoding)))
            if len(raw) <= _INLINE_BODY_BYTES:
                return convert(raw)
            return await asyncio.to_thread(convert, raw)
        except BadBody as exc:
            return self._json(_encode(exc.body), status=exc.status)

    # -- routes ----------------------------------------------------------------------

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/chat/completions``, streamed or not."""
        parsed = await self._read(request, parse_chat)
        if not isinstance(parsed, tuple):
            return parsed
        body, completion_request = parsed
        plan = self.engine.plan(completion_request)
        return await self._complete(request, plan, body, chat_completion, chat_chunks)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/completions`` (legacy text completions), streamed or not."""
        parsed = await self._read(request, parse_text)
        if not isinstance(parsed, tuple):
            return parsed
        body, completion_request = parsed
        plan = self.engine.plan(completion_request)
        return await self._complete(request, plan, body, text_completion, text_chunks)

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/embeddings``, as floats or base64 (what the openai SDK asks for)."""
        parsed = await self._read(request, parse_embedding)
        if not isinstance(parsed, tuple):
            return parsed
        body, embedding_request = parsed
        plan = self.engine.plan_embedding(embedding_request)
        try:
            answer = b""
            if plan.error is None:
                base64_encoded = body.encoding_format == "base64"
                if plan.embedding_values <= INLINE_EMBEDDING_VALUES:
                    answer = embedding_answer(plan, base64_encoded)
                else:
                    answer = await asyncio.to_thread(embedding_answer, plan, base64_encoded)
            return await self._answer(request, plan, answer, iter(()), stream=False)
        finally:
            self.engine.release(plan)

    async def models(self, request: web.Request) -> web.Response:
        """``GET /v1/models``."""
        page = ModelsPage(data=[model_object(m) for m in self.engine.list_models().models])
        return self._json(_encode(page))

    async def model(self, request: web.Request) -> web.Response:
        """``GET /v1/models/{model}``."""
        wanted = request.match_info["model"]
        for m in self.engine.list_models().models:
            if m.id == wanted:
                return self._json(_encode(model_object(m)))
        body = error_body(
            f"The model '{wanted}' does not exist", param="model", code="model_not_found"
        )
        return self._json(_encode(body), status=404)

    async def health(self, request: web.Request) -> web.Response:
        """``GET /health``: always ``{"status": "ok"}`` while the server runs."""
        return self._json(b'{"status":"ok"}')

    async def not_found(self, request: web.Request) -> web.Response:
        body = error_body(f"Invalid URL ({request.method} {request.path})")
        return self._json(_encode(body), status=404)


async def _start(config: SimulatedConfig | None, host: str, port: int) -> tuple[web.AppRunner, str]:
    _require_aiohttp()
    from aiohttp import web

    runner = SimServer(config).runner()
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=2048, reuse_address=True)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return runner, f"http://{shown}:{bound_port}/v1"


class _ThreadedServer:
    """A server on its own asyncio loop in a daemon thread."""

    def __init__(self, config: SimulatedConfig | None, host: str, port: int) -> None:
        self._args = (config, host, port)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.url = ""
        self._thread = threading.Thread(target=self._run, name="limelight-sim", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:
            # Re-raised in the thread that called start() or stop(): stored, not swallowed.
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner, self.url = await _start(*self._args)
        try:
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        if not self.url:
            raise RuntimeError("the simulator server thread ended before it started serving")

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop.set)
        self._thread.join()
        if self._error is not None:
            raise self._error


@contextlib.contextmanager
def serve_in_thread(
    config: SimulatedConfig | None = None, *, host: str = DEFAULT_HOST, port: int = 0
) -> Iterator[str]:
    """Run the simulator server on its own asyncio loop in a daemon thread, for tests and
    programs on any event loop (trio included). Stops it, and waits, on exit.

    :param config: the simulated behaviour; the defaults when ``None``.
    :param host: the address to listen on.
    :param port: the port; 0 picks a free one.
    :returns: a context manager yielding the base URL, such as ``"http://127.0.0.1:5123/v1"``.
    """
    server = _ThreadedServer(config, host, port)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def serve_in_thread_async(
    config: SimulatedConfig | None = None, *, host: str = DEFAULT_HOST, port: int = 0
) -> AsyncIterator[str]:
    """:func:`serve_in_thread` for async code: starting and stopping the thread happen in a
    worker thread, so the event loop (asyncio or trio) never blocks."""
    import anyio.to_thread

    server = _ThreadedServer(config, host, port)
    await anyio.to_thread.run_sync(server.start)
    try:
        yield server.url
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(server.stop)


async def serve_forever(config: SimulatedConfig, *, host: str, port: int) -> None:
    """Serve on this asyncio loop until SIGINT or SIGTERM, saying the URL once listening.

    :raises ImportError: aiohttp is not installed (the ``sim`` extra).
    :raises OSError: ``host:port`` cannot be listened on.
    """
    runner, url = await _start(config, host, port)
    try:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows, threads
                loop.add_signal_handler(signum, stop.set)
        print(f"limelight sim listening on {url} (models: {', '.join(config.models)})", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
