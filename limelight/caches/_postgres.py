"""A response cache kept durably in PostgreSQL, with Redis in front for hot entries."""

from __future__ import annotations

import contextlib
import functools
import math
import re
import threading
import zlib
from collections.abc import Callable
from typing import Any, Final, TypeVar

import anyio
import anyio.to_thread
import msgspec
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from .._secrets import redact_text
from ..errors import CacheError, ConfigError
from ..schemas import CompletionResult
from ._base import CacheStatistics, Counts, check_bounds, encode_result, result_decoder
from ._redis import RedisCache
from ._resp import parse_redis_url
from ._server import LoopLimiter, ServerHealth, check_settings, describe, redact_url, setting

__all__ = ["PostgresRedisCache"]

_T = TypeVar("_T")
_TABLE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?")
#: Stored entries past their time are deleted after this many stores (and by purge_expired).
_PURGE_EVERY: Final = 1000


def _display_dsn(dsn: str) -> str:
    if dsn.startswith(("postgres://", "postgresql://")):
        return redact_url(dsn)
    return redact_text(dsn)


class _Queries(msgspec.Struct, frozen=True):
    create: sql.Composed
    index: sql.Composed
    select: sql.Composed
    upsert: sql.Composed
    purge: sql.Composed
    clear: sql.Composed


def _queries(table: str) -> _Queries:
    name = sql.Identifier(*table.split("."))
    index = sql.Identifier(table.rsplit(".", 1)[-1] + "_expires")
    return _Queries(
        create=sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, result bytea NOT NULL, "
            "compressed boolean NOT NULL DEFAULT false, "
            "stored timestamptz NOT NULL DEFAULT now(), expires timestamptz)"
        ).format(name),
        index=sql.SQL(
            "CREATE INDEX IF NOT EXISTS {} ON {} (expires) WHERE expires IS NOT NULL"
        ).format(index, name),
        select=sql.SQL(
            "SELECT result, compressed, EXTRACT(EPOCH FROM expires - now())::float8 FROM {} "
            "WHERE key = %s AND (expires IS NULL OR expires > now())"
        ).format(name),
        upsert=sql.SQL(
            "INSERT INTO {} (key, result, compressed, stored, expires) "
            "VALUES (%s, %s, %s, now(), now() + make_interval(secs => %s)) "
            "ON CONFLICT (key) DO UPDATE SET result = excluded.result, "
            "compressed = excluded.compressed, stored = excluded.stored, "
            "expires = excluded.expires"
        ).format(name),
        purge=sql.SQL("DELETE FROM {} WHERE expires <= now()").format(name),
        clear=sql.SQL("DELETE FROM {}").format(name),
    )


class PostgresRedisCache:
    """A cache kept in PostgreSQL (durable, shared) with Redis in front (hot).

    A lookup reads Redis first; on a Redis miss it reads PostgreSQL and, when found there,
    puts the entry back in Redis for the next lookup. A store writes PostgreSQL, then Redis.
    The table is created when missing. Either server failing never fails a call: the other
    one still answers (or the lookup is a miss), with a logged warning and a counted error.

    PostgreSQL is driven by psycopg 3 in worker threads, on asyncio and on trio alike; Redis
    by the same client as :class:`RedisCache`.

    :param dsn: a libpq connection string (``postgresql://user:password@host:5432/db`` or
        ``host=... dbname=...``); ``None`` reads ``PG_DSN``.
    :param redis_url: the Redis URL (see :class:`RedisCache`); ``None`` reads ``REDIS_URL``.
    :param ttl: seconds an entry lives in either store (``None``: for ever).
    :param table: the table, optionally schema-qualified (``cache.responses``).
    :param redis_ttl: seconds a hot copy lives in Redis at most (within ``ttl``).
    :param namespace: prefix of the Redis keys (default ``limelight:cache:<table>:``).
    :param compress: zlib-compress answers in PostgreSQL.
    :param timeout: seconds an operation may take on either server before it fails.
    :param max_connections: PostgreSQL connections (and worker threads) at most.
    :param retry_interval: seconds a failed server is left alone.
    :raises ConfigError: a missing or malformed DSN or URL, or a bad setting.
    :raises MissingExtra: psycopg is not installed (``pip install 'limelight[postgres]'``).
    """

    def __init__(
        self,
        dsn: str | None = None,
        redis_url: str | None = None,
        *,
        ttl: float | None = None,
        table: str = "limelight_cache",
        redis_ttl: float = 86_400.0,
        namespace: str | None = None,
        compress: bool = False,
        timeout: float = 2.0,
        max_connections: int = 4,
        retry_interval: float = 2.0,
    ) -> None:
        owner = "PostgresRedisCache"
        raw_dsn = setting(
            dsn, "PG_DSN", owner=owner, param="dsn", example="postgresql://user@localhost/db"
        )
        where = "dsn" if dsn is not None else "PG_DSN"
        self.dsn = _display_dsn(raw_dsn)
        try:
            params = conninfo_to_dict(raw_dsn)
        except psycopg.ProgrammingError as exc:
            raise ConfigError(
                f"{where}={self.dsn!r} is not a PostgreSQL connection string "
                f"({describe(exc)}); use postgresql://user:password@host:5432/dbname"
            ) from None
        for port in str(params.get("port") or "5432").split(","):
            if not port.strip().isdigit():
                raise ConfigError(f"{where}={self.dsn!r}: port {port!r} is not a number")
        raw_url = setting(
            redis_url,
            "REDIS_URL",
            owner=owner,
            param="redis_url",
            example="redis://localhost:6379/0",
        )
        parse_redis_url(raw_url, where="redis_url" if redis_url is not None else "REDIS_URL")
        if not isinstance(table, str) or not _TABLE.fullmatch(table):
            raise ConfigError(
                f"{owner}: table must be a SQL name (letters, digits, '_', optionally "
                f"'schema.table'), got {table!r}"
            )
        check_bounds(None, ttl)
        check_settings(owner, redis_ttl=redis_ttl, timeout=timeout, max_connections=max_connections)
        if retry_interval < 0:
            raise ConfigError(f"{owner}: retry_interval must be >= 0, got {retry_interval!r}")
        self.ttl = ttl
        self.table = table
        self.redis_ttl = redis_ttl if ttl is None else min(redis_ttl, ttl)
        self.compress = compress
        self.timeout = timeout
        self._dsn = raw_dsn
        self._connect_timeout = max(2, math.ceil(timeout))
        self._queries = _queries(table)
        self._redis = RedisCache(
            raw_url,
            namespace=f"limelight:cache:{table}:" if namespace is None else namespace,
            timeout=timeout,
            retry_interval=retry_interval,
        )
        self._redis._health.cache = f"{owner} (Redis)"
        self._counts = Counts()
        self._health = ServerHealth(
            f"{owner} (PostgreSQL)", self.dsn, self._counts, retry_interval=retry_interval
        )
        self._limiter = LoopLimiter(max_connections)
        self._idle: list[psycopg.Connection[Any]] = []
        self._ready = False
        self._setup = threading.Lock()
        self._closed = False
        self._since_purge = 0

    # -- the public operations ----------------------------------------------------------

    async def get(self, key: str) -> CompletionResult | None:
        """The answer stored under ``key``: Redis first, then PostgreSQL (refilling Redis)."""
        blob = await self._redis._get_bytes(key)
        if blob is not None:
            try:
                result = result_decoder.decode(blob)
            except (msgspec.DecodeError, ValueError) as exc:
                self._redis._health.unreadable(key, exc)  # PostgreSQL may hold a good copy
            else:
                self._counts.hits += 1
                return result
        row = await self._pg("get", "miss", self._select, key)
        if row is None:
            self._counts.misses += 1
            return None
        stored, remaining = row
        try:
            result = result_decoder.decode(stored)
        except (msgspec.DecodeError, ValueError) as exc:
            self._health.unreadable(key, exc)
            self._counts.misses += 1
            return None
        self._counts.hits += 1
        hot = self.redis_ttl if remaining is None else min(self.redis_ttl, remaining)
        if hot > 0.001:
            await self._redis._set_bytes(key, stored, _px(hot), operation="refill")
        return result

    async def set(self, key: str, result: CompletionResult) -> None:
        """Store ``result`` in PostgreSQL, then in Redis."""
        blob = encode_result(result)
        purged = await self._pg("set", "store skipped", self._upsert, key, blob)
        hot = await self._redis._set_bytes(key, blob, _px(self.redis_ttl))
        if purged is not None or hot:
            self._counts.stores += 1
        if purged:
            self._counts.evictions += purged

    async def purge_expired(self) -> int:
        """Delete the entries of PostgreSQL whose time has passed; how many.

        :raises CacheError: PostgreSQL failed.
        """
        try:
            with anyio.fail_after(self.timeout * 5):
                deleted = await self._thread(self._purge)
        except Exception as exc:
            raise CacheError(
                f"PostgresRedisCache could not purge {self.table}: {describe(exc)}"
            ) from exc
        self._counts.evictions += deleted
        return deleted

    async def clear(self) -> int:
        """Delete every entry (the table's rows and the Redis namespace); how many rows.

        :raises CacheError: a server failed.
        """
        try:
            with anyio.fail_after(self.timeout * 5):
                deleted = await self._thread(self._delete_all)
        except Exception as exc:
            raise CacheError(
                f"PostgresRedisCache could not clear {self.table}: {describe(exc)}"
            ) from exc
        await self._redis.clear()
        return deleted

    def statistics(self) -> CacheStatistics:
        """Lookups and stores of this instance; ``errors`` counts both servers' failures."""
        stats = self._counts.snapshot(None)
        return msgspec.structs.replace(stats, errors=stats.errors + self._redis._counts.errors)

    async def aclose(self) -> None:
        """Close the connections to both servers."""
        self._closed = True
        idle, self._idle = self._idle, []
        if idle:
            await anyio.to_thread.run_sync(_close_all, idle)
        await self._redis.aclose()

    # -- PostgreSQL, in worker threads ------------------------------------------------

    async def _pg(
        self, operation: str, outcome: str, fn: Callable[..., _T], *args: Any
    ) -> _T | None:
        return await self._health.call(
            operation, outcome, self.timeout, functools.partial(self._thread, fn, *args)
        )

    async def _thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await anyio.to_thread.run_sync(
            self._with_connection, fn, *args, limiter=self._limiter.get(), abandon_on_cancel=True
        )

    def _with_connection(self, fn: Callable[..., _T], *args: Any) -> _T:
        for attempt in (0, 1):
            try:
                conn = self._idle.pop()  # atomic: threads share the list
                reused = True
            except IndexError:
                conn = self._connect()
                reused = False
            try:
                value = fn(conn, *args)
            except BaseException as exc:
                conn.close()
                if attempt == 0 and reused and isinstance(exc, psycopg.OperationalError):
                    continue  # a connection the server dropped (a restart): once more, anew
                raise
            if self._closed:
                conn.close()
            else:
                self._idle.append(conn)
            return value
        raise AssertionError("unreachable")  # pragma: no cover

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=self._connect_timeout)
        try:
            conn.execute(
                sql.SQL("SET statement_timeout = {}").format(sql.Literal(int(self.timeout * 1000)))
            )
            if not self._ready:
                with self._setup:
                    if not self._ready:
                        self._create_table(conn)
                        self._ready = True
        except BaseException:
            conn.close()
            raise
        return conn

    def _create_table(self, conn: psycopg.Connection[Any]) -> None:
        for statement in (self._queries.create, self._queries.index):
            # Another process may create it at the same moment.
            with contextlib.suppress(psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
                conn.execute(statement)

    def _select(self, conn: psycopg.Connection[Any], key: str) -> tuple[bytes, float | None] | None:
        row = conn.execute(self._queries.select, (key,)).fetchone()
        if row is None:
            return None
        stored, compressed, remaining = row
        blob = zlib.decompress(stored) if compressed else bytes(stored)
        return blob, remaining

    def _upsert(self, conn: psycopg.Connection[Any], key: str, blob: bytes) -> int:
        """Store one entry; how many expired ones were purged on the way (every
        ``_PURGE_EVERY`` stores)."""
        stored = zlib.compress(blob, 1) if self.compress else blob
        conn.execute(self._queries.upsert, (key, stored, self.compress, self.ttl))
        self._since_purge += 1
        if self.ttl is None or self._since_purge < _PURGE_EVERY:
            return 0
        self._since_purge = 0
        return conn.execute(self._queries.purge).rowcount

    def _purge(self, conn: psycopg.Connection[Any]) -> int:
        return conn.execute(self._queries.purge).rowcount

    def _delete_all(self, conn: psycopg.Connection[Any]) -> int:
        return conn.execute(self._queries.clear).rowcount


def _px(seconds: float) -> bytes:
    return b"%d" % max(1, math.ceil(seconds * 1000))


def _close_all(connections: list[psycopg.Connection[Any]]) -> None:
    for conn in connections:
        conn.close()
