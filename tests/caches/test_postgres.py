"""PostgresRedisCache against a real PostgreSQL and a real ``redis-server``, both started by
the tests, on asyncio and trio: PostgreSQL holds every entry, Redis the hot copies (a Redis
miss is refilled from PostgreSQL), TTLs, the table made when missing, and either server (or
both) down or killed: a miss or the other server's answer, with a warning and a counted
error, never a failed call. psycopg and redis-py (sync) check what the servers hold."""

from __future__ import annotations

import zlib

import anyio
import psycopg
import pytest
import redis as redis_py
from structlog.testing import capture_logs

from limelight.cache import CachingProvider, PostgresRedisCache, cache_key
from limelight.errors import CacheError, ConfigError
from limelight.providers import OpenAICompatible

from ._helpers import Counting, answer, request, unique, warnings_of
from ._servers import PostgresServer, RedisServer, free_port

pytestmark = pytest.mark.anyio


def rows(postgres: PostgresServer, table: str) -> dict[str, tuple[bytes, bool]]:
    with psycopg.connect(postgres.dsn) as conn:
        found = conn.execute(f"SELECT key, result, compressed FROM {table}").fetchall()
    return {key: (bytes(blob), compressed) for key, blob, compressed in found}


def hot(redis: RedisServer, name: str) -> bytes | None:
    with redis_py.Redis(host="127.0.0.1", port=redis.port) as raw:
        value = raw.get(name)
    assert value is None or isinstance(value, bytes)
    return value


async def test_postgres_keeps_every_entry_and_refills_redis(
    postgres: PostgresServer, redis: RedisServer
) -> None:
    table = unique("cache_")
    cache = PostgresRedisCache(postgres.dsn, redis.url, table=table)
    key = cache_key(request("durable?"))
    hot_key = f"limelight:cache:{table}:{key}"
    try:
        assert await cache.get(key) is None  # the table is made on first use
        await cache.set(key, answer("kept"))
        assert key in rows(postgres, table)
        assert hot(redis, hot_key) is not None
        assert (await cache.get(key)) == answer("kept")  # from Redis
        with redis_py.Redis(host="127.0.0.1", port=redis.port) as raw:
            raw.delete(hot_key)  # evicted from Redis, say
        assert (await cache.get(key)) == answer("kept")  # from PostgreSQL...
        assert hot(redis, hot_key) is not None  # ...and back in Redis
        stats = cache.statistics()
        assert (stats.hits, stats.misses, stats.stores, stats.errors) == (2, 1, 1, 0)
    finally:
        await cache.aclose()
    # A new instance (another process) finds it in PostgreSQL once Redis lost it.
    with redis_py.Redis(host="127.0.0.1", port=redis.port) as raw:
        raw.delete(hot_key)
    again = PostgresRedisCache(postgres.dsn, redis.url, table=table)
    try:
        assert (await again.get(key)) == answer("kept")
    finally:
        await again.aclose()


async def test_entries_expire_in_both_stores(postgres: PostgresServer, redis: RedisServer) -> None:
    table = unique("ttl_")
    cache = PostgresRedisCache(postgres.dsn, redis.url, table=table, ttl=1.0)
    key = cache_key(request())
    try:
        await cache.set(key, answer())
        with redis_py.Redis(host="127.0.0.1", port=redis.port) as raw:
            assert 0 < raw.pttl(f"limelight:cache:{table}:{key}") <= 1000
        assert await cache.get(key) is not None
        await anyio.sleep(1.3)
        assert await cache.get(key) is None
        assert key in rows(postgres, table)  # expired, not yet purged
        assert await cache.purge_expired() == 1
        assert rows(postgres, table) == {}
        assert cache.statistics().evictions == 1
    finally:
        await cache.aclose()


async def test_compressed_rows(postgres: PostgresServer, redis: RedisServer) -> None:
    table = unique("zip_")
    cache = PostgresRedisCache(
        postgres.dsn, redis.url, table=table, compress=True, namespace=unique("zip:")
    )
    key = cache_key(request())
    try:
        await cache.set(key, answer("squeezed " * 50))
        blob, compressed = rows(postgres, table)[key]
        assert compressed
        assert b"squeezed" in zlib.decompress(blob)
        await cache._redis.clear()
        assert (await cache.get(key)) == answer("squeezed " * 50)
        assert await cache.clear() == 1
        assert await cache.get(key) is None
    finally:
        await cache.aclose()


async def test_redis_down_postgres_answers(postgres: PostgresServer, sim_url: str) -> None:
    cache = PostgresRedisCache(
        postgres.dsn, f"redis://127.0.0.1:{free_port()}", table=unique("noredis_")
    )
    backend = Counting(OpenAICompatible(sim_url, model="sim"))
    model = CachingProvider(backend, cache)
    try:
        with capture_logs() as logs:
            first = await model.complete(request("Say hi."))
            second = await model.complete(request("Say hi."))
        assert backend.calls == 1
        assert second.content == first.content
        assert second.metadata["cache"] == "hit"
        assert cache.statistics().errors >= 1
        assert warnings_of(logs)[0]["cache"] == "PostgresRedisCache (Redis)"
    finally:
        await model.aclose()
        await cache.aclose()


async def test_postgres_down_redis_answers(redis: RedisServer, sim_url: str) -> None:
    dsn = f"postgresql://postgres:pg-secret@127.0.0.1:{free_port()}/postgres"
    cache = PostgresRedisCache(dsn, redis.url, table=unique("nopg_"), retry_interval=60)
    backend = Counting(OpenAICompatible(sim_url, model="sim"))
    model = CachingProvider(backend, cache)
    try:
        with capture_logs() as logs:
            first = await model.complete(request("Say hi."))
            second = await model.complete(request("Say hi."))
        assert backend.calls == 1
        assert second.content == first.content
        warned = warnings_of(logs)
        assert warned[0]["cache"] == "PostgresRedisCache (PostgreSQL)"
        assert "pg-secret" not in repr(logs)
        # The first lookup's failure, then the store skipped while PostgreSQL was down.
        assert cache.statistics().errors == 2
    finally:
        await model.aclose()
        await cache.aclose()


async def test_both_down_every_call_still_answers(sim_url: str) -> None:
    cache = PostgresRedisCache(
        f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
        f"redis://127.0.0.1:{free_port()}",
    )
    backend = Counting(OpenAICompatible(sim_url, model="sim"))
    model = CachingProvider(backend, cache)
    try:
        with capture_logs():
            for _ in range(3):
                assert (await model.complete(request("Say hi."))).content
        assert backend.calls == 3
        stats = cache.statistics()
        assert (stats.hits, stats.misses, stats.stores) == (0, 3, 0)
        assert stats.errors == 12  # 3 lookups and 3 stores, on each of the two servers
        with pytest.raises(CacheError, match="could not clear"):
            await cache.clear()
    finally:
        await model.aclose()
        await cache.aclose()


async def test_redis_killed_mid_run(
    postgres: PostgresServer, own_redis: RedisServer, sim_url: str
) -> None:
    cache = PostgresRedisCache(postgres.dsn, own_redis.url, table=unique("kill_"))
    backend = Counting(OpenAICompatible(sim_url, model="sim"))
    model = CachingProvider(backend, cache)
    try:
        await model.complete(request("one"))
        own_redis.kill()
        with capture_logs() as logs:
            hit = await model.complete(request("one"))
            await model.complete(request("two"))
            again = await model.complete(request("two"))
        assert hit.metadata["cache"] == again.metadata["cache"] == "hit"  # from PostgreSQL
        assert backend.calls == 2
        assert warnings_of(logs)
    finally:
        await model.aclose()
        await cache.aclose()


async def test_concurrent_calls_share_bounded_connections(
    postgres: PostgresServer, redis: RedisServer
) -> None:
    table = unique("many_")
    cache = PostgresRedisCache(postgres.dsn, redis.url, table=table, max_connections=2)
    found: dict[int, str | None] = {}

    async def one(i: int) -> None:
        key = cache_key(request(f"question {i}"))
        await cache.set(key, answer(f"answer {i}"))
        if i % 7 == 0:
            await cache._redis.clear()  # those lookups go to PostgreSQL
        result = await cache.get(key)
        found[i] = None if result is None else result.content

    try:
        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(one, i)
        assert found == {i: f"answer {i}" for i in range(40)}
        assert len(rows(postgres, table)) == 40
        assert len(cache._idle) <= 2
        assert cache.statistics().errors == 0
    finally:
        await cache.aclose()


def test_bad_settings_are_config_errors(
    monkeypatch: pytest.MonkeyPatch, postgres: PostgresServer
) -> None:
    monkeypatch.delenv("PG_DSN", raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379")
    with pytest.raises(ConfigError, match="PG_DSN"):
        PostgresRedisCache()
    monkeypatch.setenv("PG_DSN", "host=h password=topsecret nonsense")
    with pytest.raises(ConfigError, match="PG_DSN") as caught:
        PostgresRedisCache()
    assert "topsecret" not in str(caught.value)
    monkeypatch.setenv("PG_DSN", "postgresql://u@h:port/db")
    with pytest.raises(ConfigError, match="port"):
        PostgresRedisCache()
    monkeypatch.setenv("PG_DSN", postgres.dsn)
    monkeypatch.delenv("REDIS_URL")
    with pytest.raises(ConfigError, match="REDIS_URL"):
        PostgresRedisCache()
    monkeypatch.setenv("REDIS_URL", "memcached://x")
    with pytest.raises(ConfigError, match="REDIS_URL"):
        PostgresRedisCache()
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379")
    assert PostgresRedisCache().table == "limelight_cache"
    for table in ("drop table x", "1abc", "a.b.c", ""):
        with pytest.raises(ConfigError, match="table"):
            PostgresRedisCache(table=table)
    with pytest.raises(ConfigError, match="ttl"):
        PostgresRedisCache(ttl=-1)
