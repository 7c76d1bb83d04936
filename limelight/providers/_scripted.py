"""The scripted provider: a deterministic test double.

It answers from a list of replies (or a function of the request), records what it was asked,
and streams like a real backend."""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import anyio
import anyio.lowlevel
import msgspec

from ..errors import ConfigError, ProviderConnectionError, ProviderTimeout
from ..errors import ScriptExhausted as ScriptExhausted
from ..runtime._clock import running_asyncio_loop
from ..runtime._timers import sleep_until as trio_sleep_until
from ..runtime._timers import wake_with_error
from ..schemas import (
    CompletionRequest,
    CompletionResult,
    EmbeddingRequest,
    EmbeddingResult,
    ModelInfo,
    ModelList,
    StreamEvent,
    StreamEventType,
    ToolCall,
    Usage,
)
from ..sim import embed_text, estimate_prompt_tokens, estimate_tokens

__all__ = [
    "DEFAULT_EMBEDDING_DIMENSIONS",
    "DEFAULT_MODEL",
    "Reply",
    "Script",
    "ScriptExhausted",
    "ScriptItem",
    "Scripted",
    "split_tokens",
]

if TYPE_CHECKING:
    import asyncio

DEFAULT_MODEL = "scripted"
DEFAULT_EMBEDDING_DIMENSIONS = 16


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    """A scripted answer with every detail under control.

    :ivar text: the answer's text (``None`` for a tool-calling answer without text).
    :ivar tool_calls: the tool calls the "model" asks for.
    :ivar delay: seconds before the answer (before the first token when streaming); ``None``
        means the provider's ``delay``.
    :ivar finish_reason: ``None`` means ``"tool_calls"`` when there are tool calls, else
        ``"stop"``.
    :ivar usage: ``None`` means the deterministic estimate (prompt characters / 4, one token
        per streamed piece of text, the estimate of each tool call's name and arguments).
    """

    text: str | None = None
    tool_calls: list[ToolCall] = []
    delay: float | None = None
    finish_reason: str | None = None
    usage: Usage | None = None


#: One scripted answer: text, a ready result, tool calls, an exception to raise, or a Reply.
ScriptItem: TypeAlias = str | CompletionResult | ToolCall | Sequence[ToolCall] | Exception | Reply
#: The replies in order, or a function (sync or async) answering each request.
Script: TypeAlias = (
    Sequence[ScriptItem] | Callable[[CompletionRequest], ScriptItem | Awaitable[ScriptItem]]
)


_TOKEN = re.compile(r"\s*\S+|\s+")


def split_tokens(text: str) -> list[str]:
    """Split ``text`` into the pieces a stream delivers: each word with the whitespace before
    it (trailing whitespace is a piece of its own), so ``"".join(split_tokens(t)) == t``."""
    return _TOKEN.findall(text)


def _completion_tokens(text: str | None, tool_calls: Sequence[ToolCall]) -> int:
    return len(split_tokens(text or "")) + sum(
        estimate_tokens(call.name) + estimate_tokens(call.arguments) for call in tool_calls
    )


class Scripted:
    """A :class:`~limelight.providers.Provider` answering from a script, for tests.

    Each ``complete`` or ``stream`` call takes the next item of ``responses`` (or calls it
    with the request): a ``str`` is a text reply; a :class:`ToolCall` or a list of them a
    tool-calling reply; a :class:`Reply` spells out text, tool calls, delay, finish reason
    and usage; a :class:`CompletionResult` is returned as it is; an exception instance is
    raised. Streams deliver the text word by word (whitespace kept), ``token_delay`` apart,
    then one TOOL_CALL per call, USAGE and DONE.

    :param responses: the replies in order, or a function (sync or async) of the request.
    :param model: the model name reported in results and by :meth:`list_models`.
    :param delay: seconds before each answer (before its first token when streaming).
    :param token_delay: seconds between streamed tokens.
    :param embedding_dimensions: the length of the vectors :meth:`embed` returns.
    :ivar requests: every completion request received, in order.
    :ivar embed_requests: every embedding request received, in order.
    :raises ConfigError: when ``responses`` is a plain string (pass ``["text"]``).
    """

    name = "scripted"

    def __init__(
        self,
        responses: Script,
        *,
        model: str = DEFAULT_MODEL,
        delay: float = 0.0,
        token_delay: float = 0.0,
        embedding_dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS,
    ) -> None:
        if isinstance(responses, str):
            raise ConfigError(
                f"Scripted(responses) takes a list of replies or a callable, not a string: "
                f"write Scripted([{responses!r}])"
            )
        if delay < 0 or token_delay < 0 or embedding_dimensions < 1:
            raise ConfigError(
                "delay and token_delay must be >= 0 and embedding_dimensions >= 1, got "
                f"{delay}, {token_delay} and {embedding_dimensions}"
            )
        self._script: Callable[[CompletionRequest], ScriptItem | Awaitable[ScriptItem]] | None
        self._items: tuple[ScriptItem, ...]
        if callable(responses):
            self._script, self._items = responses, ()
        else:
            self._script, self._items = None, tuple(responses)
        self.model = model
        self.delay = delay
        self.token_delay = token_delay
        self.embedding_dimensions = embedding_dimensions
        self.requests: list[CompletionRequest] = []
        self.embed_requests: list[EmbeddingRequest] = []
        #: The waits of calls in progress (asyncio futures; trio sleeps), and the scopes
        #: bounding async scripts' answers in progress (see :meth:`aclose`).
        self._sleeping: set[asyncio.Future[None]] = set()
        self._trio_sleeping: set[Any] = set()
        self._scopes: set[anyio.CancelScope] = set()

    @property
    def remaining(self) -> int | None:
        """Scripted replies not used yet; ``None`` when a callable answers."""
        if self._script is not None:
            return None
        return max(0, len(self._items) - len(self.requests))

    def _take(self, request: CompletionRequest) -> tuple[int, ScriptItem | Awaitable[ScriptItem]]:
        """Record ``request`` and take its item (an awaitable when an async script answers)."""
        number = len(self.requests)
        self.requests.append(request)
        if self._script is not None:
            return number, self._script(request)
        if number >= len(self._items):
            raise ScriptExhausted(scripted=len(self._items), request_number=number + 1)
        return number, self._items[number]

    async def _next(
        self, request: CompletionRequest, start: float = 0.0, total_timeout: float | None = None
    ) -> tuple[int, ScriptItem]:
        number, item = self._take(request)
        if inspect.isawaitable(item):
            if total_timeout is None:
                return number, await item
            # An async script's answer, bounded here (and ended by aclose) since the worker
            # leaves the attempt's timing to us (bounds_attempts).
            scope = anyio.move_on_after(max(start + total_timeout - anyio.current_time(), 0.0))
            self._scopes.add(scope)
            try:
                with scope:
                    return number, await item
            finally:
                self._scopes.discard(scope)
                if scope.cancelled_caught:
                    if scope.cancel_called and scope.deadline > anyio.current_time():
                        raise self._closed()
                    raise ProviderTimeout(f"{self.name}: no answer within {total_timeout} s")
        return number, typing.cast(ScriptItem, item)

    def _resolve(
        self, number: int, item: ScriptItem, request: CompletionRequest
    ) -> tuple[CompletionResult, float]:
        """The result an item stands for, and the delay before it."""
        if isinstance(item, Exception):
            raise item
        if isinstance(item, CompletionResult):
            return item, self.delay
        if isinstance(item, str):
            reply = Reply(text=item)
        elif isinstance(item, ToolCall):
            reply = Reply(tool_calls=[item])
        elif isinstance(item, Reply):
            reply = item
        elif isinstance(item, Sequence) and all(isinstance(c, ToolCall) for c in item):
            reply = Reply(tool_calls=[c for c in item if isinstance(c, ToolCall)])
        else:
            raise ConfigError(
                f"Scripted reply #{number + 1} is a {type(item).__name__}: expected a str, "
                "ToolCall, list of ToolCall, Reply, CompletionResult or exception instance"
            )
        finish_reason = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        usage = reply.usage or Usage.of(
            estimate_prompt_tokens(request), _completion_tokens(reply.text, reply.tool_calls)
        )
        result = CompletionResult(
            content=reply.text,
            tool_calls=list(reply.tool_calls),
            finish_reason=finish_reason,
            model=request.model or self.model,
            usage=usage,
            id=f"scripted-{number + 1}",
            provider=self.name,
            metadata=dict(request.metadata),
        )
        return result, self.delay if reply.delay is None else reply.delay

    @property
    def bounds_attempts(self) -> bool:
        """``True``: :meth:`complete` takes ``total_timeout=`` and bounds its own wait by it
        (a bare timer on asyncio, one trio scope on trio, which :meth:`aclose` ends), so that
        a :class:`~limelight.actors.ProviderWorker` needs no cancel scope to time an attempt,
        as with :class:`~limelight.providers.OpenAICompatible`'s own pool."""
        return True

    async def complete(
        self, request: CompletionRequest, *, total_timeout: float | None = None
    ) -> CompletionResult:
        """The next scripted reply, after its delay.

        :param total_timeout: seconds the whole call may take: a reply whose delay is longer
            raises :class:`~limelight.errors.ProviderTimeout` once they pass.
        :raises ScriptExhausted: when every scripted reply was used.
        :raises ProviderTimeout: the reply's delay is longer than ``total_timeout``.
        :raises ProviderConnectionError: :meth:`aclose` was called while it waited.
        :raises Exception: the scripted exception, when the reply is one.
        """
        start = anyio.current_time()
        number, item = await self._next(request, start, total_timeout)
        if isinstance(item, Exception):
            await self._wait(self.delay, start, total_timeout)
        result, delay = self._resolve(number, item, request)
        await self._wait(delay, start, total_timeout)
        if result.latency is None:
            result = msgspec.structs.replace(result, latency=anyio.current_time() - start)
        return result

    async def _wait(self, delay: float, start: float, total_timeout: float | None) -> None:
        """Sleep ``delay`` seconds, or until ``total_timeout`` after ``start`` and raise."""
        timed_out = False
        if total_timeout is not None:
            left = start + total_timeout - anyio.current_time()
            if delay > left:
                delay, timed_out = max(left, 0.0), True
        loop = running_asyncio_loop()
        if loop is None:
            # On trio (the other loop anyio runs): a sleep of the runtime's trio timers (no
            # cancel scope of its own), held where aclose() can end it.
            await trio_sleep_until(anyio.current_time() + delay, self._trio_sleeping)
        else:
            # What asyncio.sleep does (a future and a timer), without its coroutine and
            # anyio's two above it, and kept where aclose() can end it.
            waiter = loop.create_future()
            timer = loop.call_later(delay, _wake, waiter)
            self._sleeping.add(waiter)
            try:
                await waiter
            finally:
                self._sleeping.discard(waiter)
                timer.cancel()
        if timed_out:
            raise ProviderTimeout(f"{self.name}: no answer within {total_timeout} s")

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """The next scripted reply as a stream: TOKEN per word, TOOL_CALL per call, USAGE,
        DONE. A scripted exception is raised before any event."""
        start = anyio.current_time()
        number, item = await self._next(request)
        if isinstance(item, Exception):
            await anyio.sleep(self.delay)
        result, delay = self._resolve(number, item, request)
        await anyio.sleep(delay)
        ttft: float | None = None
        for i, token in enumerate(split_tokens(result.content or "")):
            if i:
                await anyio.sleep(self.token_delay)
            if ttft is None:
                ttft = anyio.current_time() - start
            yield StreamEvent.token(token)
        for call in result.tool_calls:
            yield StreamEvent(type=StreamEventType.TOOL_CALL, tool_call=call)
        if result.usage is not None:
            yield StreamEvent(type=StreamEventType.USAGE, usage=result.usage)
        latency = anyio.current_time() - start
        yield StreamEvent.done(
            msgspec.structs.replace(
                result,
                latency=latency if result.latency is None else result.latency,
                ttft=(latency if ttft is None else ttft) if result.ttft is None else result.ttft,
            )
        )

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Unit vectors that depend only on each text (a hash of it), recorded in
        :attr:`embed_requests`."""
        self.embed_requests.append(request)
        await anyio.lowlevel.checkpoint()
        dimensions = request.dimensions or self.embedding_dimensions
        tokens = sum(max(1, estimate_tokens(text)) for text in request.input)
        return EmbeddingResult(
            embeddings=[embed_text(text, dimensions) for text in request.input],
            model=request.model or self.model,
            usage=Usage.of(tokens, 0),
        )

    async def list_models(self) -> ModelList:
        """The one model, :attr:`model`."""
        await anyio.lowlevel.checkpoint()
        return ModelList(models=[ModelInfo(id=self.model, owned_by=self.name)])

    async def aclose(self) -> None:
        """End the calls waiting for their replies now (they raise
        :class:`~limelight.errors.ProviderConnectionError`), as closing a real backend's
        connections would. It can be used again afterwards."""
        for scope in self._scopes:
            scope.cancel()
        wake_with_error(self._trio_sleeping, self._closed)
        for waiter in self._sleeping:
            if not waiter.done():
                waiter.set_exception(self._closed())
        await anyio.lowlevel.checkpoint()

    def _closed(self) -> ProviderConnectionError:
        return ProviderConnectionError(f"{self.name}: the provider was closed")


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
