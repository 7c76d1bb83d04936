"""Where the agent client's facade runs, and how callers on any event loop reach it.

Its provider pools, rate limiter and agents live in one runtime.

The earlier package was used as ``await provider.complete(...)`` and ``async for event in
agent.stream(...)`` from any asyncio program, with no runtime to enter. So the facade keeps
its actors in a runtime of its own, on a background event loop (one per process, started on
first use, stopped at exit), or in the runtime of a rate limiter the caller passes
(``limiter=``). Calls cross to that loop as the role router's do (:func:`run_on`): the
caller's deadline and cancellation reach them there. Streams cross one event at a time
(:class:`BridgedStream`).
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, Generic, TypeVar

import anyio
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._buckets import DeploymentLimits
from .._roles import _across
from ..actors._provider_worker import limiter_hook
from ..actors._ratelimit import Configure, RateLimiter, RateLimitHook
from ..errors import RuntimeNotRunning
from ..runtime import ActorRef, BackgroundRuntime, Runtime, current_runtime

__all__ = ["BridgedStream", "Host", "close_when_collected", "run_on"]

T = TypeVar("T")

_log = structlog.get_logger("limelight.compat.llm_client")
_lock = threading.Lock()
_background: BackgroundRuntime | None = None
#: The rate limiter the facade starts in its background runtime, and the deployments it has
#: set quotas for (both touched only on that runtime's loop).
_limiters: weakref.WeakKeyDictionary[Runtime, ActorRef] = weakref.WeakKeyDictionary()
_configured: set[tuple[int, str]] = set()
_END: Final = object()
#: Items a bridged stream's source may run ahead of its reader.
_BUFFER: Final = 16


def _background_runtime() -> Runtime:
    global _background
    with _lock:
        if _background is None:
            _background = BackgroundRuntime("limelight-llm-client")
            atexit.register(_shutdown)
        return _background.blocking.runtime


def _shutdown() -> None:
    """Stop the background runtime at exit (its pools close their connections)."""
    global _background
    with _lock:
        background, _background = _background, None
    if background is not None:
        background.stop()


async def run_on(runtime: Runtime, func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``await func(*args)`` on ``runtime``'s loop: directly when the caller runs there,
    else from another loop (asyncio or trio), its deadline and cancellation passed on.

    :raises RuntimeNotRunning: the runtime has stopped.
    """
    if not runtime.running:
        raise RuntimeNotRunning(
            "the runtime of this agent-client object has stopped (its rate limiter's runtime "
            "ended, or the process is exiting): create a new object"
        )
    if current_runtime() is runtime:
        return await func(*args)
    return await _across(runtime, func, *args)


class Host:
    """The runtime a provider's pools and agents run in, and the attempt hook its pools use
    (a rate limiter's).

    :param limiter: a :class:`~limelight.actors.RateLimiter`'s reference or a
        :class:`~limelight.actors.RateLimitHook` on one, to share its quotas: the pools then
        run in its runtime. Without it, they run in the facade's background runtime, under a
        limiter of its own holding each model to its profile's ``rate_limits``.
    """

    def __init__(self, limiter: ActorRef | RateLimitHook | None = None) -> None:
        if limiter is None:
            self.runtime = _background_runtime()
            self._hook: RateLimitHook | None = None
        else:
            hook, self.runtime = limiter_hook(limiter)
            assert isinstance(hook, RateLimitHook)  # limiter_hook makes one
            self._hook = hook

    async def hook(self, deployment: str, limits: DeploymentLimits) -> RateLimitHook:
        """The rate-limit hook for ``deployment``'s pools (on the host's loop). The facade's
        own limiter is told ``limits`` once; a caller's limiter keeps its own settings."""
        if self._hook is not None:
            return self._hook
        runtime = self.runtime
        limiter = _limiters.get(runtime)
        if limiter is None or not limiter.alive:
            limiter = await RateLimiter.start(
                runtime, name=runtime.auto_name("llm-client-ratelimiter")
            )
            _limiters[runtime] = limiter
        key = (id(limiter), deployment)
        if key not in _configured and (limits.rpm is not None or limits.tpm is not None):
            await limiter.ask(Configure(deployment=deployment, limits=limits))
            _configured.add(key)
        return RateLimitHook(limiter)

    async def call(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        return await run_on(self.runtime, func, *args)

    def stream(self, open_stream: Callable[[], AsyncIterator[T]]) -> BridgedStream[T]:
        return BridgedStream(self.runtime, open_stream)


def _close_now(runtime: Runtime, close: Callable[[], Awaitable[object]]) -> None:
    if not runtime.running:
        return  # its actors stopped with it
    try:
        if current_runtime() is runtime:
            runtime.task_group.start_soon(_logged, close)
        else:
            runtime.blocking.call(_logged, close)
    except (RuntimeNotRunning, RuntimeError) as exc:  # the runtime is shutting down
        _log.warning("llm_client.not_closed", error=str(exc))


async def _logged(close: Callable[[], Awaitable[object]]) -> None:
    try:
        await close()
    except Exception as exc:  # reported, not raised: nobody is waiting for this close
        _log.warning("llm_client.close_failed", error=repr(exc))


def close_when_collected(
    owner: object, runtime: Runtime, close: Callable[[], Awaitable[object]]
) -> weakref.finalize[Any, Any]:
    """Run ``close`` on ``runtime``'s loop when ``owner`` is collected unclosed (its pools,
    actors or stream would otherwise stay in the runtime); ``detach()`` it on a proper
    close. ``close`` must not refer to ``owner``."""
    return weakref.finalize(owner, _close_now, runtime, close)


class _Pump:
    """The host-side half of a bridged stream: one task of the host runtime reads the source
    (so the source runs in one task, as locks and scopes in it require) and hands its items
    over a memory stream. Kept apart from the stream, so that a stream dropped unfinished
    can still stop it."""

    __slots__ = ("closed", "receive", "scope")

    def __init__(self) -> None:
        self.receive: MemoryObjectReceiveStream[tuple[Any, BaseException | None]] | None = None
        self.scope: anyio.CancelScope | None = None
        self.closed = False

    def start(self, runtime: Runtime, open_stream: Callable[[], AsyncIterator[Any]]) -> None:
        send, self.receive = anyio.create_memory_object_stream[tuple[Any, BaseException | None]](
            _BUFFER
        )
        self.scope = anyio.CancelScope()
        runtime.task_group.start_soon(self._run, open_stream, send, self.scope)

    @staticmethod
    async def _run(
        open_stream: Callable[[], AsyncIterator[Any]],
        send: MemoryObjectSendStream[tuple[Any, BaseException | None]],
        scope: anyio.CancelScope,
    ) -> None:
        with scope, send:
            try:
                iterator = aiter(open_stream())
                try:
                    async for item in iterator:
                        await send.send((item, None))
                finally:
                    aclose = getattr(iterator, "aclose", None)
                    if aclose is not None:
                        await aclose()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return  # the reader went away
            except Exception as exc:  # the source failed: the reader gets the error
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await send.send((_END, exc))

    async def next(self) -> Any:
        assert self.receive is not None
        try:
            item, error = await self.receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self.close()
            return _END
        if error is not None:
            self.close()
            raise error
        return item

    def close(self) -> None:
        self.closed = True
        if self.scope is not None:
            self.scope.cancel()
        if self.receive is not None:
            self.receive.close()

    async def aclose(self) -> None:
        self.close()


class BridgedStream(Generic[T]):
    """An async iterator over a stream produced on another runtime's loop, one event per
    crossing. Read it to its end, or call :meth:`aclose` (also on ``break``): a stream
    dropped unfinished is stopped when collected."""

    def __init__(self, runtime: Runtime, open_stream: Callable[[], AsyncIterator[T]]) -> None:
        self._runtime = runtime
        self._open = open_stream
        self._pump = _Pump()
        self._finalizer = close_when_collected(self, runtime, self._pump.aclose)

    def __aiter__(self) -> BridgedStream[T]:
        return self

    async def __anext__(self) -> T:
        if self._pump.closed:
            raise StopAsyncIteration
        try:
            item = await run_on(self._runtime, self._next)
        except BaseException:
            # The source failed (or this read was cancelled): the stream ends here.
            self._finalizer.detach()
            with contextlib.suppress(RuntimeNotRunning):
                await self._close_there()
            raise
        if item is _END:
            self._finalizer.detach()
            raise StopAsyncIteration
        return item  # type: ignore[no-any-return]

    async def _next(self) -> Any:
        pump = self._pump
        if pump.receive is None:
            pump.start(self._runtime, self._open)
        return await pump.next()

    async def _close_there(self) -> None:
        if not self._pump.closed:
            with anyio.CancelScope(shield=True):
                await run_on(self._runtime, self._pump.aclose)

    async def aclose(self) -> None:
        """Stop the stream; its source is closed on the host's loop."""
        self._finalizer.detach()
        # A runtime that has stopped took the source with it.
        with contextlib.suppress(RuntimeNotRunning):
            await self._close_there()

    async def __aenter__(self) -> BridgedStream[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
