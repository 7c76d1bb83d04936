"""A small Redis client (RESP2) that runs on asyncio and on trio, for the response caches.

Why not redis-py: ``redis.asyncio`` runs on asyncio only, and measured here it spends about
twice the CPU per ``GET`` that a cache hit can afford (``bench/cache.py``). The caches need a
handful of commands (``GET``, ``SET ... PX``, ``AUTH``, ``SELECT``, ``SCAN``, ``UNLINK``,
``PING``) over a pool of connections, which is what this module is. On asyncio a connection
is an :class:`asyncio.Protocol` (one write and one read per command, no extra loop
iterations); on trio it is an anyio socket stream.

A client belongs to one event loop at a time: used from another loop, it drops the
connections it had and opens new ones.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

import anyio
import msgspec

from ..errors import ConfigError
from ._server import loop_identity, redact_url

__all__ = ["RedisAddress", "RedisClient", "RedisReplyError", "pack", "parse_redis_url"]

_URL_FORMS: Final = (
    "redis://[[user]:password@]host[:port][/db], rediss://... (TLS) or "
    "unix://[[user]:password@]/path/to/socket[?db=N]"
)
_OPTIONS: Final = frozenset({"db", "ssl_cert_reqs", "ssl_ca_certs", "ssl_check_hostname"})


class RedisAddress(msgspec.Struct, frozen=True, kw_only=True):
    """Where a Redis server is and how to log in, parsed from a URL.

    :ivar display: the URL without its password, for logs and errors.
    """

    display: str
    host: str = "localhost"
    port: int = 6379
    path: str | None = None
    tls: bool = False
    username: str | None = None
    password: str | None = None
    db: int = 0
    ssl_cert_reqs: str = "required"
    ssl_ca_certs: str | None = None
    ssl_check_hostname: bool = True

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ssl_ca_certs)
        if self.ssl_cert_reqs != "required" or not self.ssl_check_hostname:
            context.check_hostname = False
        if self.ssl_cert_reqs == "none":
            context.verify_mode = ssl.CERT_NONE
        elif self.ssl_cert_reqs == "optional":
            context.verify_mode = ssl.CERT_OPTIONAL
        return context


def parse_redis_url(url: str, *, where: str) -> RedisAddress:
    """The address in ``url``; ``where`` names the setting it came from, for the error.

    :raises ConfigError: ``url`` is not a Redis URL.
    """
    display = redact_url(url)

    def bad(reason: str) -> ConfigError:
        return ConfigError(f"{where}={display!r} is not a Redis URL ({reason}); use {_URL_FORMS}")

    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise bad(str(exc)) from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise bad(f"scheme {parts.scheme!r}")
    options: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in _OPTIONS:
            raise bad(f"unknown option {name!r}; known: {', '.join(sorted(_OPTIONS))}")
        options[name] = value
    fields: dict[str, Any] = {
        "display": display,
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password is not None else None,
    }
    db_text = options.get("db")
    if parts.scheme == "unix":
        if not parts.path:
            raise bad("no socket path")
        fields["path"] = unquote(parts.path)
    else:
        if not parts.hostname:
            raise bad("no host")
        fields["host"] = parts.hostname
        fields["port"] = port if port is not None else 6379
        fields["tls"] = parts.scheme == "rediss"
        path = parts.path.strip("/")
        if path:
            db_text = path
    if db_text is not None:
        if not db_text.isdigit():
            raise bad(f"database {db_text!r} is not a number")
        fields["db"] = int(db_text)
    reqs = options.get("ssl_cert_reqs", "required").lower()
    if reqs not in ("none", "optional", "required"):
        raise bad(f"ssl_cert_reqs={reqs!r}: use none, optional or required")
    fields["ssl_cert_reqs"] = reqs
    fields["ssl_ca_certs"] = options.get("ssl_ca_certs") or None
    fields["ssl_check_hostname"] = options.get("ssl_check_hostname", "true").lower() in (
        "1",
        "true",
        "yes",
    )
    return RedisAddress(**fields)


class RedisReplyError(Exception):
    """The server answered a command with an error (``-ERR ...``, ``-NOAUTH ...``)."""


class RedisProtocolError(Exception):
    """The server sent bytes that are not RESP."""


def pack(*args: bytes) -> bytes:
    """A command in RESP: an array of bulk strings."""
    parts = [b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in args]
    return b"*%d\r\n" % len(args) + b"".join(parts)


class _Error:
    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _parse(buf: bytearray, pos: int) -> tuple[Any, int] | None:
    """One reply from ``buf`` at ``pos``: ``(value, end)``, or ``None`` while it is not
    complete yet."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    kind = buf[pos]
    if kind == 36:  # $ bulk string
        size = int(buf[pos + 1 : end])
        if size < 0:
            return None, end + 2
        stop = end + 2 + size
        if len(buf) < stop + 2:
            return None
        return bytes(buf[end + 2 : stop]), stop + 2
    if kind == 43:  # + simple string
        return buf[pos + 1 : end].decode(), end + 2
    if kind == 58:  # : integer
        return int(buf[pos + 1 : end]), end + 2
    if kind == 45:  # - error
        return _Error(buf[pos + 1 : end].decode(errors="replace")), end + 2
    if kind == 42:  # * array
        count = int(buf[pos + 1 : end])
        if count < 0:
            return None, end + 2
        items = []
        at = end + 2
        for _ in range(count):
            parsed = _parse(buf, at)
            if parsed is None:
                return None
            items.append(parsed[0])
            at = parsed[1]
        return items, at
    raise RedisProtocolError(f"unexpected reply byte {chr(kind)!r}")


class _AsyncioConnection(asyncio.Protocol):
    """A connection on asyncio: the transport writes, ``data_received`` fills the buffer and
    wakes the one reader; a deadline is a timer on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.owner: object = loop
        self.buf = bytearray()
        self.used = False
        self.transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = exc or ConnectionResetError("Redis closed the connection")
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(self._lost)

    async def request(self, payload: bytes, timeout: float) -> Any:
        if self._lost is not None or self.transport is None:
            raise ConnectionResetError("the connection to Redis is closed")
        self.transport.write(payload)
        buf = self.buf
        timer: asyncio.TimerHandle | None = None
        try:
            while True:
                if buf:
                    parsed = _parse(buf, 0)
                    if parsed is not None:
                        del buf[: parsed[1]]
                        return parsed[0]
                if self._lost is not None:
                    raise self._lost
                waiter = self._waiter = self.loop.create_future()
                if timer is None:
                    timer = self.loop.call_later(timeout, _expire, waiter, timeout)
                await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def abort(self) -> None:
        if self.transport is None:
            return
        try:
            self.transport.abort()
        except RuntimeError:  # its loop is closed: shut the socket, the loop cannot
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                sock.shutdown(2)


def _expire(waiter: asyncio.Future[None], timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError(f"no reply from Redis within {timeout} s"))


class _StreamConnection:
    """A connection on any anyio backend (trio): an anyio byte stream."""

    __slots__ = ("buf", "owner", "stream", "used")

    def __init__(self, stream: anyio.abc.ByteStream, owner: object) -> None:
        self.stream = stream
        self.owner = owner
        self.buf = bytearray()
        self.used = False

    async def request(self, payload: bytes, timeout: float) -> Any:
        buf = self.buf
        with anyio.fail_after(timeout):
            await self.stream.send(payload)
            while True:
                if buf:
                    parsed = _parse(buf, 0)
                    if parsed is not None:
                        del buf[: parsed[1]]
                        return parsed[0]
                buf += await self.stream.receive()

    def abort(self) -> None:
        raw = self.stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        if raw is not None:
            raw.close()


_Connection = _AsyncioConnection | _StreamConnection
#: Errors of a connection that was already broken when a command was sent on it (the server
#: restarted, say): the command is sent once more on a new connection.
_STALE: Final = (
    ConnectionError,
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
)


class RedisClient:
    """A pool of connections to one Redis server.

    :param max_connections: connections open at most; a command waits for one beyond that.
    :param timeout: seconds for each command, connecting included.
    """

    def __init__(self, address: RedisAddress, *, max_connections: int, timeout: float) -> None:
        self.address = address
        self.max_connections = max_connections
        self.timeout = timeout
        self._idle: list[_Connection] = []
        self._open = 0
        self._owner: object = None
        self._waiters: deque[anyio.Event] = deque()
        self._closed = False
        self._ssl = address.ssl_context() if address.tls else None

    async def request(self, payload: bytes) -> Any:
        """Send one packed command; its reply (``bytes``, ``str``, ``int``, a list or ``None``).

        :raises RedisReplyError: the server answered with an error.
        :raises OSError, TimeoutError, anyio errors: the server could not be reached or did
            not answer within ``timeout``.
        """
        owner = loop_identity()
        if owner is not self._owner:
            self._rebind(owner)
        for attempt in (0, 1):
            conn = self._idle.pop() if self._idle else await self._acquire()
            reused = conn.used
            try:
                reply = await conn.request(payload, self.timeout)
            except BaseException as exc:
                self._discard(conn)
                if attempt == 0 and reused and isinstance(exc, _STALE):
                    continue
                raise
            conn.used = True
            self._release(conn)
            if type(reply) is _Error:
                raise RedisReplyError(reply.message)
            return reply
        raise AssertionError("unreachable")  # pragma: no cover

    async def _acquire(self) -> _Connection:
        while True:
            if self._closed:
                raise anyio.ClosedResourceError
            if self._idle:
                return self._idle.pop()
            if self._open < self.max_connections:
                self._open += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._open -= 1
                    self._wake()
                    raise
            waiter = anyio.Event()
            self._waiters.append(waiter)
            try:
                await waiter.wait()
            except BaseException:
                if waiter.is_set():
                    self._wake()  # pass on the wake-up this task will not use
                else:
                    self._waiters.remove(waiter)
                raise

    async def _connect(self) -> _Connection:
        address = self.address
        conn: _Connection
        with anyio.fail_after(self.timeout):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                if address.path is not None:
                    stream: anyio.abc.ByteStream = await anyio.connect_unix(address.path)
                elif self._ssl is not None:
                    stream = await anyio.connect_tcp(
                        address.host,
                        address.port,
                        ssl_context=self._ssl,
                        tls_standard_compatible=False,
                    )
                else:
                    stream = await anyio.connect_tcp(address.host, address.port)
                conn = _StreamConnection(stream, self._owner)
            else:
                conn = _AsyncioConnection(loop)
                if address.path is not None:
                    await loop.create_unix_connection(lambda: conn, address.path)
                else:
                    await loop.create_connection(
                        lambda: conn,
                        address.host,
                        address.port,
                        ssl=self._ssl,
                        server_hostname=address.host if self._ssl is not None else None,
                    )
        try:
            if address.password is not None:
                login = (address.username.encode(),) if address.username else ()
                await self._handshake(conn, pack(b"AUTH", *login, address.password.encode()))
            if address.db:
                await self._handshake(conn, pack(b"SELECT", b"%d" % address.db))
        except BaseException:
            conn.abort()
            raise
        return conn

    async def _handshake(self, conn: _Connection, payload: bytes) -> None:
        reply = await conn.request(payload, self.timeout)
        if type(reply) is _Error:
            raise RedisReplyError(reply.message)

    def _release(self, conn: _Connection) -> None:
        if self._closed or conn.owner is not self._owner:
            conn.abort()
            return
        self._idle.append(conn)
        self._wake()

    def _discard(self, conn: _Connection) -> None:
        conn.abort()
        if conn.owner is self._owner:
            self._open -= 1
            self._wake()

    def _wake(self) -> None:
        if self._waiters:
            self._waiters.popleft().set()

    def _rebind(self, owner: object) -> None:
        for conn in self._idle:
            conn.abort()
        self._idle.clear()
        self._waiters.clear()
        self._open = 0
        self._owner = owner

    async def aclose(self) -> None:
        """Close every idle connection; those in use close when their command ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            if isinstance(conn, _StreamConnection) and conn.owner is loop_identity():
                await anyio.aclose_forcefully(conn.stream)
            else:
                conn.abort()
        while self._waiters:
            self._waiters.popleft().set()
