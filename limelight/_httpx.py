"""HTTP plumbing shared by limelight's HTTP users: loop-bound pools and rate-limit headers.

Its users are the OpenAI-compatible backend, the HTTP sink and others. It holds connection pools
bound to the event loop that created them, with the cheapest transport for the running backend,
and the reading of a server's rate-limit and retry headers. Nothing here knows about providers
or sinks; each translates failures into its own errors (:mod:`limelight.providers._http` for the
backends).
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING

import anyio
import httpx
import msgspec
import sniffio

from .errors import ConfigError

if TYPE_CHECKING:
    import ssl

__all__ = [
    "DEFAULT_KEEPALIVE_EXPIRY",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_TIMEOUT",
    "SHARD_SIZE",
    "LoopBoundTransport",
    "PoolStatistics",
    "ShardedTransport",
    "make_async_client",
    "make_async_transport",
    "pool_statistics",
    "rate_limit_headers",
    "retry_after_seconds",
]

#: httpx semantics: each phase of a request (pool wait, connect, write, every read) gets this
#: long; an LLM answer can take minutes to start, a connect should not.
DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=10.0)
#: Sized for thousands of concurrent LLM calls, each holding a connection for seconds.
DEFAULT_MAX_CONNECTIONS = 4096
DEFAULT_KEEPALIVE_EXPIRY = 30.0

_RATE_LIMIT_PREFIX = b"x-ratelimit-"


class PoolStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a connection pool.

    :ivar in_use: connections carrying a request or an unread response right now.
    :ivar idle: open connections kept alive for reuse.
    """

    in_use: int
    idle: int


def _limits(
    max_connections: int, max_keepalive_connections: int | None, keepalive_expiry: float
) -> httpx.Limits:
    return httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=(
            max_connections if max_keepalive_connections is None else max_keepalive_connections
        ),
        keepalive_expiry=keepalive_expiry,
    )


def make_async_transport(
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    max_keepalive_connections: int | None = None,
    keepalive_expiry: float = DEFAULT_KEEPALIVE_EXPIRY,
    verify: ssl.SSLContext | str | bool = True,
    backend: str | None = None,
) -> httpx.AsyncBaseTransport:
    """An httpx transport (connection pool) for the running event loop.

    On asyncio it is httpx-aiohttp's transport, several times cheaper in CPU per request than
    httpx's own pool under load; on trio (where aiohttp cannot run) httpx's own.
    Call it inside the event loop that will use it, and close it there.

    :param max_connections: the most connections open at once (requests beyond wait for one).
    :param max_keepalive_connections: idle connections kept for reuse; default: all of them.
    :param keepalive_expiry: seconds an idle connection is kept.
    :param verify: TLS verification: ``True``, ``False``, a CA bundle path or an ``SSLContext``.
    :param backend: ``"asyncio"`` or ``"trio"``; default: the running one.
    :raises ConfigError: outside an event loop, or on another async library.
    """
    backend = backend or _current_backend()
    limits = _limits(max_connections, max_keepalive_connections, keepalive_expiry)
    if backend == "asyncio":
        import aiohttp
        from httpx_aiohttp import AiohttpTransport

        transport = AiohttpTransport(limits=limits, verify=verify)
        ssl_context = transport.ssl_context

        def session() -> aiohttp.ClientSession:
            # No cookie jar: API calls carry no cookies, and parsing them costs every response.
            connector = aiohttp.TCPConnector(
                limit=max_connections,
                limit_per_host=0,
                keepalive_timeout=keepalive_expiry,
                ssl=ssl_context,
            )
            return aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
            )

        # The transport calls this on its first request, inside the running loop.
        transport.client = session
        result: httpx.AsyncBaseTransport = transport
        return result
    if backend == "trio":
        return ShardedTransport(
            max_connections=max_connections,
            max_keepalive_connections=limits.max_keepalive_connections or 0,
            keepalive_expiry=keepalive_expiry,
            verify=verify,
        )
    raise ConfigError(f"limelight's HTTP clients run on asyncio or trio, not on {backend!r}")


#: Connections per httpcore pool inside a :class:`ShardedTransport` (1 measured cheapest).
SHARD_SIZE = 1


_WAITING = -1
_CLOSED = -2


class _Waiter:
    """A request waiting for a connection: ``index`` becomes the pool handed to it."""

    __slots__ = ("event", "index")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.index = _WAITING


class _ShardStream(httpx.AsyncByteStream):
    """A pool's response body that gives its slot back when closed. Iteration goes straight
    to the pool's stream: no generator of our own to abandon on an early close."""

    __slots__ = ("_release", "_stream")

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream.__aiter__()

    async def aclose(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()
        await self._stream.aclose()


class ShardedTransport(httpx.AsyncBaseTransport):
    """httpx's own transport, split into many small pools (of :data:`SHARD_SIZE` connections).

    httpcore's pool rescans all its connections, once per idle connection, on every request
    and every response close: with hundreds of connections that is milliseconds of CPU per
    request (measured on trio at 256 concurrent requests: 15 ms with one pool, 0.7 ms with
    pools of one connection). A request takes the most recently freed pool with a free slot
    (its connection is the warmest), a new pool opens when all are busy, and once
    ``max_connections`` are busy requests wait, first come first served, for the next free
    slot (at most the ``pool`` timeout, then ``httpx.PoolTimeout``).

    :param max_keepalive_connections: idle connections kept for reuse: the first pools keep
        theirs, the pools opened beyond this count close theirs after each use.
    """

    def __init__(
        self,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_keepalive_connections: int = DEFAULT_MAX_CONNECTIONS,
        keepalive_expiry: float = DEFAULT_KEEPALIVE_EXPIRY,
        verify: ssl.SSLContext | str | bool = True,
        shard_size: int = SHARD_SIZE,
    ) -> None:
        if max_connections < 1 or shard_size < 1:
            raise ConfigError("max_connections and shard_size must be at least 1")
        # One TLS context for every pool: building one loads the CA bundle (tens of ms).
        self._ssl_context = httpx.create_ssl_context(verify=verify)
        self._max_connections = max_connections
        self._max_keepalive = max_keepalive_connections
        self._keepalive_expiry = keepalive_expiry
        self._shard_size = shard_size
        self._shards: list[httpx.AsyncHTTPTransport] = []
        self._capacities: list[int] = []
        self._loads: list[int] = []
        self._free: list[int] = []  # pools with a free slot, each listed once
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._generation = 0  # bumped by aclose(), so late releases of old pools are ignored

    @property
    def shards(self) -> list[httpx.AsyncHTTPTransport]:
        """The pools opened so far."""
        return self._shards

    def _open_pool(self) -> None:
        start = len(self._shards) * self._shard_size
        capacity = min(self._shard_size, self._max_connections - start)
        limits = httpx.Limits(
            max_connections=capacity,
            max_keepalive_connections=max(0, min(capacity, self._max_keepalive - start)),
            keepalive_expiry=self._keepalive_expiry,
        )
        self._free.append(len(self._shards))
        self._shards.append(httpx.AsyncHTTPTransport(verify=self._ssl_context, limits=limits))
        self._capacities.append(capacity)
        self._loads.append(0)

    def _acquire(self) -> int:
        """A pool with a free slot, now taken; -1 when every connection is busy."""
        free = self._free
        if not free:
            if len(self._shards) * self._shard_size >= self._max_connections:
                return -1
            self._open_pool()
        index = free[-1]
        loads = self._loads
        loads[index] += 1
        if loads[index] >= self._capacities[index]:
            free.pop()
        return index

    async def _wait_for_slot(self, request: httpx.Request, generation: int) -> int:
        waiter = _Waiter()
        self._waiters.append(waiter)
        timeout = request.extensions.get("timeout", {}).get("pool")
        try:
            with anyio.move_on_after(math.inf if timeout is None else timeout):
                await waiter.event.wait()
        except BaseException:  # re-raised: a slot handed over meanwhile goes back
            if waiter.index == _WAITING:
                self._waiters.remove(waiter)
            elif waiter.index >= 0:
                self._release(waiter.index, generation)
            raise
        if waiter.index == _CLOSED:
            raise httpx.ConnectError("the connection pool was closed while waiting for it")
        if waiter.index == _WAITING:
            self._waiters.remove(waiter)
            raise httpx.PoolTimeout(
                f"no connection came free within {timeout} s: "
                f"all {self._max_connections} connections are busy"
            )
        return waiter.index

    def _release(self, index: int, generation: int) -> None:
        if generation != self._generation:
            return
        if self._waiters:  # hand the slot straight to the longest waiting request
            waiter = self._waiters.popleft()
            waiter.index = index
            waiter.event.set()
            return
        loads = self._loads
        loads[index] -= 1
        if loads[index] == self._capacities[index] - 1:
            self._free.append(index)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        generation = self._generation
        index = self._acquire()
        if index < 0:
            index = await self._wait_for_slot(request, generation)
        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException:  # re-raised: only the slot is given back
            self._release(index, generation)
            raise
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_ShardStream(stream, lambda: self._release(index, generation)),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        shards = self._shards
        self._shards, self._capacities, self._loads, self._free = [], [], [], []
        self._generation += 1
        while self._waiters:
            waiter = self._waiters.popleft()
            waiter.index = _CLOSED
            waiter.event.set()
        for shard in shards:
            await shard.aclose()


def make_async_client(
    *,
    base_url: str = "",
    headers: Mapping[str, str] | None = None,
    timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    max_keepalive_connections: int | None = None,
    keepalive_expiry: float = DEFAULT_KEEPALIVE_EXPIRY,
    verify: ssl.SSLContext | str | bool = True,
    backend: str | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` over :func:`make_async_transport`, for HTTP users that want the
    client conveniences (base URL, default headers). Call it inside the event loop that will
    use it; ``await client.aclose()`` closes its pool.

    :param timeout: httpx semantics: seconds for each phase (pool wait, connect, write, read).
    :raises ConfigError: outside an event loop, or on another async library.
    """
    transport = make_async_transport(
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive_connections,
        keepalive_expiry=keepalive_expiry,
        verify=verify,
        backend=backend,
    )
    return httpx.AsyncClient(
        base_url=base_url,
        headers=headers,
        timeout=timeout,
        transport=transport,
        follow_redirects=False,
    )


def _current_backend() -> str:
    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError as exc:
        raise ConfigError(
            "an HTTP connection pool must be created inside a running event loop "
            "(asyncio or trio); call this from async code"
        ) from exc


def _loop_token(backend: str) -> object:
    """An object identifying the running event loop of ``backend``."""
    if backend == "asyncio":
        return asyncio.get_running_loop()
    import trio

    return trio.lowlevel.current_trio_token()


def _transport_errors(backend: str) -> tuple[type[Exception], ...]:
    """Exception types a transport can raise for a failed exchange on this backend."""
    if backend == "asyncio":
        import aiohttp

        # httpx-aiohttp re-raises the aiohttp errors it has no httpx equivalent for.
        return (httpx.HTTPError, aiohttp.ClientError, asyncio.TimeoutError)
    return (httpx.HTTPError,)


class LoopBoundTransport:
    """A transport created lazily inside the event loop of its first use, refusing any other.

    httpx-aiohttp and httpcore pools hold sockets and futures of one loop; using them from
    another corrupts them in obscure ways, so this fails early with a clear message instead.

    :param owner: how error messages name the object that owns this transport.
    :param factory: builds the transport, given the backend name (default:
        :func:`make_async_transport` with its defaults).
    """

    __slots__ = ("_backend", "_factory", "_loop", "_owner", "_transport", "errors")

    def __init__(
        self, owner: str, factory: Callable[[str], httpx.AsyncBaseTransport] | None = None
    ) -> None:
        self._owner = owner
        self._factory = factory or (lambda backend: make_async_transport(backend=backend))
        self._transport: httpx.AsyncBaseTransport | None = None
        self._backend = ""
        self._loop: object = None
        #: The exception types a failed exchange raises through this transport.
        self.errors: tuple[type[Exception], ...] = (httpx.HTTPError,)

    @property
    def backend(self) -> str:
        """The async library the transport was created for; empty before first use."""
        return self._backend

    def get(self) -> httpx.AsyncBaseTransport:
        """The transport, created on first use in the running event loop.

        :raises ConfigError: when called outside the event loop that created it.
        """
        transport = self._transport
        if transport is not None:
            try:
                same_loop = _loop_token(self._backend) is self._loop
            except RuntimeError:
                same_loop = False
            if same_loop:
                return transport
            raise ConfigError(
                f"{self._owner} holds connections of the {self._backend} event loop it was first "
                "used in and cannot be used from another event loop or thread; create one per "
                "event loop, or aclose() it in its own loop before using it elsewhere"
            )
        backend = _current_backend()
        self._loop = _loop_token(backend)
        self._transport = self._factory(backend)
        self._backend = backend
        self.errors = _transport_errors(backend)
        return self._transport

    async def aclose(self) -> None:
        """Close the pool and its connections; a later :meth:`get` opens a fresh one."""
        transport = self._transport
        if transport is None:
            return
        self.get()  # refuses to close another loop's sockets from this one
        self._transport = None
        self._loop = None
        await transport.aclose()

    def statistics(self) -> PoolStatistics:
        """A snapshot of the pool's connections (all zero before first use)."""
        if self._transport is None:
            return PoolStatistics(in_use=0, idle=0)
        return pool_statistics(self._transport)


def pool_statistics(transport: httpx.AsyncBaseTransport) -> PoolStatistics:
    """Count the open connections of a transport made by :func:`make_async_transport`.

    Neither aiohttp nor httpcore exposes these counts publicly, so this reads their
    internals; it is meant for tests, leak checks and diagnostics, not the hot path.
    """
    if isinstance(transport, ShardedTransport):
        shards = [pool_statistics(shard) for shard in transport.shards]
        return PoolStatistics(
            in_use=sum(s.in_use for s in shards), idle=sum(s.idle for s in shards)
        )
    if isinstance(transport, httpx.AsyncHTTPTransport):
        connections = transport._pool.connections
        idle = sum(1 for c in connections if c.is_idle())
        return PoolStatistics(in_use=len(connections) - idle, idle=idle)
    session = getattr(transport, "client", None)
    connector = getattr(session, "connector", None)
    if connector is None:  # the aiohttp session is created on the first request
        return PoolStatistics(in_use=0, idle=0)
    idle = sum(len(conns) for conns in connector._conns.values())
    return PoolStatistics(in_use=len(connector._acquired), idle=idle)


def rate_limit_headers(headers: httpx.Headers) -> dict[str, str]:
    """The ``x-ratelimit-*`` headers, names lower-cased."""
    found: dict[str, str] = {}
    for key, value in headers.raw:
        if key[:12].lower() == _RATE_LIMIT_PREFIX:
            found[key.decode("latin-1").lower()] = value.decode("latin-1")
    return found


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """How long the server asked us to wait, from ``retry-after-ms`` (preferred) or
    ``Retry-After`` (seconds, or an HTTP date); ``None`` when absent or unreadable.

    A delay of 0 (``Retry-After: 0``, ``retry-after-ms: 0``, a date in the past) is 0.0, not
    ``None``: whoever honours it does so through :func:`~limelight.runtime._retry.pushback`,
    which keeps its own backoff as the floor.

    :param headers: response headers; names compared case-insensitively by httpx, or already
        lower-cased.
    :param now: the current Unix time, for HTTP dates (default: ``time.time()``).
    """
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            seconds = float(value) / 1000.0
        except ValueError:
            pass
        else:
            if math.isfinite(seconds):  # "nan" and "inf" parse as floats; they are unreadable
                return max(seconds, 0.0)
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT by definition
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)
