"""The backend for any server that speaks OpenAI's HTTP API.

That is OpenAI, vLLM, llama.cpp, mlx_lm.server or the limelight simulator. It does chat and
text completions, plain and streamed, embeddings and the model list, over one connection pool
per event loop.

One module: its two ways to the pool (aiohttp's API for its own pool on asyncio, see
``_aiohttp``; httpx's on trio and over a transport handed in) share the request bodies,
headers, timeouts and the reading of answers, so that both send and return the same."""

from __future__ import annotations

import base64
import contextlib
import struct
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import anyio
import httpx
import msgspec
import sniffio
from msgspec import UNSET

from .._version import __version__
from ..errors import BadResponse, ConfigError, ProviderTimeout
from ..schemas import (
    CompletionRequest,
    CompletionResult,
    EmbeddingRequest,
    EmbeddingResult,
    Message,
    ModelInfo,
    ModelList,
    StreamEvent,
    ToolCall,
    Usage,
)
from ..schemas._openai import (
    ChatBody,
    ChatMessage,
    ChatToolCall,
    CompletionUsage,
    EmbeddingBody,
    FunctionCall,
    RequestMessage,
    StreamOptions,
    TextBody,
    Tool,
    chat_completion_decoder,
    embedding_list_decoder,
    encoder,
    models_page_decoder,
    text_completion_decoder,
)
from ._aiohttp import AiohttpRequests, client_timeout, session_of
from ._http import (
    DEFAULT_KEEPALIVE_EXPIRY,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_TIMEOUT,
    LoopBoundTransport,
    PoolStatistics,
    make_async_transport,
    rate_limit_headers,
    rate_limit_pairs,
    status_error,
    transport_error,
)
from ._sse import StreamAssembler, sse_events

if TYPE_CHECKING:
    import ssl

    import aiohttp
    from multidict import CIMultiDict

__all__ = ["OpenAICompatible"]


_INCLUDE_USAGE = StreamOptions(include_usage=True)
#: The backend's header sets (``OpenAICompatible._header_sets``).
_GET, _POST, _STREAM = 0, 1, 2


def _wire_message(message: Message) -> Message | RequestMessage:
    """``message`` as OpenAI's request message: a :class:`Message` already is one, unless it
    holds tool calls, which OpenAI shapes otherwise."""
    if not message.tool_calls:
        return message
    return RequestMessage(
        role=message.role,
        content=message.content,  # null when there is none: chat templates expect the key
        name=message.name,
        tool_calls=[
            ChatToolCall(id=c.id, function=FunctionCall(name=c.name, arguments=c.arguments))
            for c in message.tool_calls
        ],
    )


def _encode(body: ChatBody[Message | RequestMessage] | TextBody, extra: dict[str, Any]) -> bytes:
    if not extra:
        return encoder.encode(body)
    # Backend-specific parameters win over ours, as the caller asked for them explicitly.
    merged = msgspec.to_builtins(body)
    merged.update(extra)
    return encoder.encode(merged)


def _floats(embedding: list[float] | str) -> list[float]:
    """An embedding as floats: a string is base64 of little-endian float32s, as servers send
    when asked for ``encoding_format="base64"`` (some do unasked).

    :raises ValueError: the string is not base64 of float32s.
    """
    if isinstance(embedding, list):
        return embedding
    raw = base64.b64decode(embedding, validate=True)
    if len(raw) % 4:
        raise ValueError(f"{len(raw)} bytes of base64 are not float32s")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def _usage(usage: CompletionUsage | None) -> Usage | None:
    if usage is None:
        return None
    return usage.to_usage()


def _text_of(content: str | list[Any] | None) -> str | None:
    """Message content as text; some servers answer with a list of content parts."""
    if content is None or isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def _tool_calls(message: ChatMessage) -> list[ToolCall]:
    if not message.tool_calls:
        return []
    return [
        ToolCall(
            id=call.id or f"call_{i}",
            name=call.function.name,
            arguments=call.function.arguments or "{}",
        )
        for i, call in enumerate(message.tool_calls)
    ]


class _Phases:
    """One set of transport timeouts, as each transport takes them (made once, reused).

    :ivar total: the most seconds a whole exchange may take, or None.
    """

    __slots__ = ("_aiohttp", "extensions", "timeout", "total")

    def __init__(self, timeout: httpx.Timeout, total: float | None = None) -> None:
        self.timeout = timeout
        self.total = total
        #: httpx's request extensions (transports only read them).
        self.extensions: dict[str, Any] = {"timeout": timeout.as_dict()}
        self._aiohttp: aiohttp.ClientTimeout | None = None

    @property
    def aiohttp(self) -> aiohttp.ClientTimeout:
        if self._aiohttp is None:
            self._aiohttp = client_timeout(self.timeout, self.total)
        return self._aiohttp


async def _close(response: httpx.Response) -> None:
    # Shielded: the connection must go back to the pool (or be closed) even when the caller
    # was cancelled, or the pool leaks it.
    with anyio.CancelScope(shield=True):
        await response.aclose()


class OpenAICompatible:
    """A :class:`~limelight.providers.Provider` for a server speaking OpenAI's HTTP API.

    The connection pool is created on first use inside the running event loop (aiohttp's
    transport under httpx on asyncio, httpx's own on trio) and closed by :meth:`aclose`; one
    instance serves one event loop at a time.

    :param base_url: the API root, ending where OpenAI's ends in ``/v1``
        (``https://api.openai.com/v1``, ``http://127.0.0.1:8080/v1``).
    :param api_key: sent as a bearer token; never shown in messages, logs or ``repr``.
    :param model: the model used when a request names none.
    :param timeout: the transport's timeouts (httpx's): seconds for each phase of an exchange
        (a pooled connection, connecting, sending, each read), a float or an ``httpx.Timeout``;
        a request's ``attempt_timeout`` bounds every phase instead. See
        :mod:`limelight._timeouts`.
    :param headers: extra headers sent with every request.
    :param max_connections: the most connections open at once; more requests wait for one.
    :param max_keepalive_connections: idle connections kept for reuse (default: all).
    :param keepalive_expiry: seconds an idle connection is kept.
    :param verify: TLS verification: ``True``, ``False``, a CA bundle path or an ``SSLContext``.
    :param transport: an httpx transport to send through instead of the default pool (a proxy
        setup, a test double); :meth:`aclose` closes it.
    :param name: the label put on results (``CompletionResult.provider``).
    """

    name: str
    #: Its streams bound each wait for more data by their ``event_timeout``: a
    #: :class:`~limelight.actors.ProviderWorker` passes its attempt timeout there and times
    #: only the wait for the first event with a cancel scope, not every one.
    bounds_event_waits: Final = True

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        model: str = "",
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_keepalive_connections: int | None = None,
        keepalive_expiry: float = DEFAULT_KEEPALIVE_EXPIRY,
        verify: ssl.SSLContext | str | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        name: str = "openai-compatible",
    ) -> None:
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL as exc:
            raise ConfigError(f"base_url {base_url!r} is not a valid URL: {exc}") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(
                f"base_url must be an http(s) URL such as 'http://127.0.0.1:8080/v1', "
                f"got {base_url!r}"
            )
        if api_key and (api_key != api_key.strip() or not api_key.isprintable()):
            # Caught here: an HTTP library would reject it later, quoting the header value.
            raise ConfigError("api_key has surrounding whitespace or control characters; strip it")
        if max_connections < 1:
            raise ConfigError(f"max_connections must be at least 1, got {max_connections}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = name
        self._api_key = api_key or None
        self._timeout = httpx.Timeout(timeout)
        # The phases by (attempt timeout, wait for a stream event): callers use a handful.
        self._phases: dict[tuple[float | None, float | None, float | None], _Phases] = {
            (None, None, None): _Phases(self._timeout)
        }

        common = {"user-agent": f"limelight/{__version__}", "accept-encoding": "gzip, deflate"}
        if api_key:
            common["authorization"] = f"Bearer {api_key}"
        common.update({k.lower(): v for k, v in (headers or {}).items()})
        # The header sets, indexed by _GET, _POST and _STREAM.
        self._header_sets: tuple[dict[str, str], ...] = (
            {"accept": "application/json", **common},
            {"accept": "application/json", "content-type": "application/json", **common},
            {
                "accept": "text/event-stream",
                "cache-control": "no-store",
                "content-type": "application/json",
                **common,
            },
        )
        self._headers = tuple(httpx.Headers(h) for h in self._header_sets)
        # The default pool on asyncio is used through aiohttp's API (see _aiohttp.py); one a
        # caller handed in, and the pool on trio, through httpx's.
        self._own_transport = transport is None
        self._aiohttp: tuple[httpx.AsyncBaseTransport, AiohttpRequests | None] | None = None
        self._aiohttp_headers: tuple[CIMultiDict[str], ...] = ()
        self._chat_url = self.base_url + "/chat/completions"
        self._text_url = self.base_url + "/completions"
        self._embeddings_url = self.base_url + "/embeddings"
        self._models_url = self.base_url + "/models"
        # httpx parses a URL string on every request: the backend's own are parsed once.
        self._httpx_urls = {
            url: httpx.URL(url)
            for url in (self._chat_url, self._text_url, self._embeddings_url, self._models_url)
        }

        def factory(backend: str) -> httpx.AsyncBaseTransport:
            if transport is not None:
                return transport
            return make_async_transport(
                max_connections=max_connections,
                max_keepalive_connections=max_keepalive_connections,
                keepalive_expiry=keepalive_expiry,
                verify=verify,
                backend=backend,
            )

        self._bound = LoopBoundTransport(repr(self), factory)

    def __repr__(self) -> str:
        return f"OpenAICompatible(base_url={self.base_url!r}, model={self.model!r})"

    @property
    def bounds_attempts(self) -> bool:
        """Whether :meth:`complete` bounds a whole exchange by its ``total_timeout`` more
        cheaply than a cancel scope around the call would: with its own pool on asyncio
        (aiohttp's timeout), not on trio nor over a transport handed in (a scope there
        too). A :class:`~limelight.actors.ProviderWorker` then passes its attempt timeout
        rather than timing the attempt itself."""
        if not self._own_transport:
            return False
        backend = self._bound.backend
        if not backend:
            try:
                backend = sniffio.current_async_library()
            except sniffio.AsyncLibraryNotFoundError:
                return False
        return backend == "asyncio"

    async def __aenter__(self) -> OpenAICompatible:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the Provider protocol ---------------------------------------------------------------

    async def complete(
        self, request: CompletionRequest, *, total_timeout: float | None = None
    ) -> CompletionResult:
        """One chat (``request.messages``) or text (``request.prompt``) completion.

        :param total_timeout: seconds allowed for the whole exchange, raising
            :class:`~limelight.errors.ProviderTimeout` when they pass; a
            :class:`~limelight.actors.ProviderWorker` passes its attempt timeout here when
            :attr:`bounds_attempts`.
        :raises ProviderError: a subclass naming what failed (see :mod:`limelight.errors`).
        """
        url, body = self._body(request, stream=False)
        started = time.perf_counter()
        status, rate_limit, content = await self._exchange(
            "POST", url, _POST, body, request.attempt_timeout, total_timeout
        )
        latency = time.perf_counter() - started
        try:
            if url is self._chat_url:
                return self._chat_result(request, content, latency, rate_limit)
            return self._text_result(request, content, latency, rate_limit)
        except msgspec.DecodeError as exc:
            raise BadResponse(
                f"POST {url} answered {status} with a body that is not a "
                f"completion ({exc}): {content[:200]!r}"
            ) from exc

    async def stream(
        self, request: CompletionRequest, *, event_timeout: float | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        """Stream one chat or text completion: TOKEN events as text arrives, a TOOL_CALL per
        complete tool call, USAGE, then DONE with the assembled result.

        Close the generator (``aclose()``) to stop early; that releases the connection.

        :param event_timeout: seconds allowed for each wait for more of the stream (the
            transport's read timeout), raising :class:`~limelight.errors.ProviderTimeout`
            when it passes; a :class:`~limelight.actors.ProviderWorker` passes its attempt
            timeout here (see :attr:`bounds_event_waits`). A server's keep-alive comments
            count as activity.

        :raises ProviderError: a subclass naming what failed; a stream that ends before the
            server's end marker raises :class:`~limelight.errors.BadResponse`.
        """
        url, body = self._body(request, stream=True)
        transport, direct = self._route()
        if direct is None:
            events = self._httpx_stream(transport, request, url, body, event_timeout)
        else:
            started = time.perf_counter()
            response = await direct.open_stream(
                url,
                self._aiohttp_headers[_STREAM],
                body,
                self._phases_for(request.attempt_timeout, event_timeout).aiohttp,
            )
            rate_limit = rate_limit_pairs(response.raw_headers)
            events = direct.events(response, self._assembler(request, rate_limit, started), url)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()

    def _assembler(
        self, request: CompletionRequest, rate_limit: dict[str, str], started: float
    ) -> StreamAssembler:
        return StreamAssembler(
            provider=self.name,
            model=request.model or self.model,
            metadata=request.metadata,
            rate_limit=rate_limit,
            started=started,
            secret=self._api_key,
        )

    async def _httpx_stream(
        self,
        transport: httpx.AsyncBaseTransport,
        request: CompletionRequest,
        url: str,
        body: bytes,
        event_timeout: float | None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """:meth:`stream` through httpx's API (trio, or a transport the caller handed in)."""
        bound = self._bound
        started = time.perf_counter()
        http_request = httpx.Request(
            "POST",
            self._httpx_urls.get(url, url),
            headers=self._headers[_STREAM],
            content=body,
            extensions=self._phases_for(request.attempt_timeout, event_timeout).extensions,
        )
        response = await self._send(transport, http_request)
        assembler = self._assembler(request, rate_limit_headers(response.headers), started)
        events = sse_events(response, assembler)  # closes the response when it ends
        try:
            async for event in events:
                yield event
        except bound.errors as exc:
            raise transport_error(exc, "POST", url, secret=self._api_key) from exc
        finally:
            await events.aclose()
            if not response.is_closed:  # closed before it started
                await _close(response)

    def _route(self) -> tuple[httpx.AsyncBaseTransport, AiohttpRequests | None]:
        """The pool (made, or checked to belong to the running loop, here), and the requests
        over aiohttp's API when it is the default one on asyncio (None otherwise)."""
        transport = self._bound.get()
        cached = self._aiohttp
        if cached is not None and cached[0] is transport:
            return cached
        direct: AiohttpRequests | None = None
        if self._own_transport and self._bound.backend == "asyncio":
            from multidict import CIMultiDict

            direct = AiohttpRequests(session_of(transport), self._bound.errors, self._api_key)
            self._aiohttp_headers = tuple(CIMultiDict(h) for h in self._header_sets)
        self._aiohttp = (transport, direct)
        return transport, direct

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Embed ``request.input``, one vector per string, in input order."""
        model = request.model or self.model
        body = EmbeddingBody(input=request.input, model=model, dimensions=request.dimensions)
        url = self._embeddings_url
        _, _, content = await self._exchange("POST", url, _POST, encoder.encode(body), None)
        try:
            page = embedding_list_decoder.decode(content)
            data = sorted(page.data, key=lambda d: d.index)
            embeddings = [_floats(d.embedding) for d in data]
        except (msgspec.DecodeError, ValueError) as exc:
            raise BadResponse(
                f"POST {url} answered with a body that is not an embedding list ({exc}): "
                f"{content[:200]!r}"
            ) from exc
        if len(embeddings) != len(request.input):
            raise BadResponse(
                f"POST {url} returned {len(embeddings)} embeddings for {len(request.input)} inputs"
            )
        return EmbeddingResult(
            embeddings=embeddings,
            model=page.model or model,
            usage=_usage(page.usage),
        )

    async def list_models(self) -> ModelList:
        """The models the server offers (``GET /models``)."""
        url = self._models_url
        _, _, content = await self._exchange("GET", url, _GET, None, None)
        try:
            page = models_page_decoder.decode(content)
        except msgspec.DecodeError as exc:
            raise BadResponse(
                f"GET {url} answered with a body that is not a model list ({exc}): "
                f"{content[:200]!r}"
            ) from exc
        return ModelList(
            models=[
                ModelInfo(id=m.id, owned_by=m.owned_by or None, created=m.created or None)
                for m in page.data
            ]
        )

    async def aclose(self) -> None:
        """Close the connection pool. The provider may be used again afterwards, in any event
        loop: it then opens a new pool.

        :raises ConfigError: called from another event loop than the pool's.
        """
        self._aiohttp = None
        await self._bound.aclose()

    def statistics(self) -> PoolStatistics:
        """A snapshot of the connection pool: connections in use and idle."""
        return self._bound.statistics()

    # -- internals ---------------------------------------------------------------------------

    def _body(self, request: CompletionRequest, *, stream: bool) -> tuple[str, bytes]:
        model = request.model or self.model
        stream_options = _INCLUDE_USAGE if stream else None
        if request.messages:
            messages: Sequence[Message | RequestMessage] = request.messages
            if any(m.tool_calls for m in request.messages):
                messages = [_wire_message(m) for m in request.messages]
            chat = ChatBody(
                model=model,
                messages=messages,
                temperature=request.temperature,
                top_p=request.top_p,
                max_tokens=request.max_tokens,
                stop=request.stop,
                seed=request.seed,
                tools=[Tool(function=t) for t in request.tools] if request.tools else None,
                tool_choice=request.tool_choice,
                response_format=request.response_format,
                stream=stream,
                stream_options=stream_options,
            )
            return self._chat_url, _encode(chat, request.extra)
        if request.prompt is not None:
            text = TextBody(
                model=model,
                prompt=request.prompt,
                temperature=request.temperature,
                top_p=request.top_p,
                max_tokens=UNSET if request.max_tokens is None else request.max_tokens,
                stop=request.stop,
                seed=request.seed,
                stream=stream,
                stream_options=stream_options,
            )
            return self._text_url, _encode(text, request.extra)
        raise ConfigError("a CompletionRequest needs messages (chat) or a prompt (text completion)")

    def _phases_for(
        self,
        attempt_timeout: float | None,
        event_timeout: float | None = None,
        total_timeout: float | None = None,
    ) -> _Phases:
        """The transport's timeouts for a request: the backend's, or ``attempt_timeout`` for
        every phase; with ``event_timeout`` for the wait between two reads of a body, and
        ``total_timeout`` for the whole exchange."""
        key = (attempt_timeout, event_timeout, total_timeout)
        found = self._phases.get(key)
        if found is None:
            timeout = self._timeout if attempt_timeout is None else httpx.Timeout(attempt_timeout)
            if event_timeout is not None:
                timeout = httpx.Timeout(
                    connect=timeout.connect,
                    read=event_timeout,
                    write=timeout.write,
                    pool=timeout.pool,
                )
            found = _Phases(timeout, total_timeout)
            if len(self._phases) < 64:
                self._phases[key] = found
        return found

    async def _send(
        self, transport: httpx.AsyncBaseTransport, request: httpx.Request
    ) -> httpx.Response:
        """Send ``request``; return the response once its status is a success, body unread."""
        try:
            response = await transport.handle_async_request(request)
        except self._bound.errors as exc:
            raise transport_error(exc, request.method, request.url, secret=self._api_key) from exc
        response.request = request  # httpx's transports leave this to the client
        if response.status_code < 300:
            return response
        read_error: Exception | None = None
        try:
            content = await response.aread()
        except self._bound.errors as exc:  # the status says enough; keep the cause
            content, read_error = b"", exc
        finally:
            if not response.is_closed:
                await _close(response)
        error = status_error(response, content, secret=self._api_key)
        if read_error is not None:
            raise error from read_error
        raise error

    async def post(self, path: str, body: bytes, *, timeout: float | None = None) -> bytes:
        """POST a JSON ``body`` to ``path`` under the base URL (``"chat/completions"``,
        ``"completions"``...) and return the answer's bytes: for what the typed calls do not
        cover (several choices, logprobs, a server's own endpoints). Errors are raised as the
        typed calls raise them.
        """
        if path == "chat/completions":
            url = self._chat_url
        elif path == "completions":
            url = self._text_url
        else:
            url = self.base_url + "/" + path.lstrip("/")
        _, _, content = await self._exchange("POST", url, _POST, body, timeout)
        return content

    async def _exchange(
        self,
        method: str,
        url: str,
        headers: int,
        body: bytes | None,
        timeout: float | None,
        total_timeout: float | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request, body read in full: the status (a success), the answer's
        ``x-ratelimit-*`` headers and its body.

        :param headers: which header set: ``_GET``, ``_POST`` or ``_STREAM``.
        :param timeout: the request's attempt timeout (every phase); None for the backend's.
        :param total_timeout: the most seconds the whole exchange may take.
        """
        phases = self._phases_for(timeout, None, total_timeout)
        transport, direct = self._route()
        if direct is not None:
            status, raw, content = await direct.exchange(
                method, url, self._aiohttp_headers[headers], body, phases.aiohttp
            )
            return status, rate_limit_pairs(raw), content
        # httpx's API (trio, or a transport the caller handed in).
        request = httpx.Request(
            method,
            self._httpx_urls.get(url, url),
            headers=self._headers[headers],
            content=body,
            extensions=phases.extensions,
        )
        scope = None if total_timeout is None else anyio.move_on_after(total_timeout)
        with scope or contextlib.nullcontext():
            response = await self._send(transport, request)
            try:
                content = await response.aread()
            except self._bound.errors as exc:
                raise transport_error(exc, method, url, secret=self._api_key) from exc
            finally:
                if not response.is_closed:
                    await _close(response)
            return response.status_code, rate_limit_headers(response.headers), content
        raise ProviderTimeout(
            f"{method} {url}: no answer within the attempt timeout of {total_timeout} s"
        )

    def _chat_result(
        self,
        request: CompletionRequest,
        content: bytes,
        latency: float,
        rate_limit: dict[str, str],
    ) -> CompletionResult:
        completion = chat_completion_decoder.decode(content)
        if not completion.choices:
            raise BadResponse(f"POST {self._chat_url} answered a chat completion without choices")
        choice = completion.choices[0]
        message = choice.message
        return CompletionResult(
            content=_text_of(message.content),
            tool_calls=_tool_calls(message),
            finish_reason=choice.finish_reason,
            model=completion.model or request.model or self.model,
            usage=_usage(completion.usage),
            latency=latency,
            id=completion.id or None,
            provider=self.name,
            metadata=request.metadata,
            rate_limit=rate_limit,
        )

    def _text_result(
        self,
        request: CompletionRequest,
        content: bytes,
        latency: float,
        rate_limit: dict[str, str],
    ) -> CompletionResult:
        completion = text_completion_decoder.decode(content)
        if not completion.choices:
            raise BadResponse(f"POST {self._text_url} answered a completion without choices")
        choice = completion.choices[0]
        return CompletionResult(
            content=choice.text,
            finish_reason=choice.finish_reason,
            model=completion.model or request.model or self.model,
            usage=_usage(completion.usage),
            latency=latency,
            id=completion.id or None,
            provider=self.name,
            metadata=request.metadata,
            rate_limit=rate_limit,
        )
