"""RedisCache against a real ``redis-server`` started by the tests, on asyncio and trio:
hits, misses, TTL expiry, namespaces, a caching provider over the simulator (a hit costs no
call), and a server that is down, killed mid-run, slow or answering errors (each a miss with
a warning and a counted error, never a failed call). redis-py (sync) checks what the server
holds."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import redis as redis_py
from structlog.testing import capture_logs

from limelight.cache import CachingProvider, RedisCache, cache_key
from limelight.errors import CacheError, ConfigError
from limelight.providers import OpenAICompatible
from limelight.schemas import StreamEventType, Usage

from ._helpers import Counting, answer, request, unique, warnings_of
from ._servers import RedisServer, free_port, redis_server

pytestmark = pytest.mark.anyio


def inspect(server: RedisServer, db: int = 0) -> redis_py.Redis:
    return redis_py.Redis(host="127.0.0.1", port=server.port, db=db, password=server.password)


async def test_a_stored_answer_is_found_under_its_namespace(redis: RedisServer) -> None:
    namespace = unique("test:")
    cache = RedisCache(redis.url, namespace=namespace)
    key = cache_key(request("what is two and two?"))
    try:
        assert await cache.get(key) is None
        await cache.set(key, answer("four"))
        found = await cache.get(key)
        assert found == answer("four")
        stats = cache.statistics()
        assert (stats.hits, stats.misses, stats.stores, stats.errors) == (1, 1, 1, 0)
        assert stats.entries is None
        with inspect(redis) as raw:
            assert raw.get(f"{namespace}{key}") is not None
            assert raw.ttl(f"{namespace}{key}") == -1  # no ttl: kept until evicted
    finally:
        await cache.aclose()


async def test_entries_expire_after_their_ttl(redis: RedisServer) -> None:
    namespace = unique("ttl:")
    cache = RedisCache(redis.url, namespace=namespace, ttl=0.3)
    key = cache_key(request())
    try:
        await cache.set(key, answer())
        with inspect(redis) as raw:
            assert 0 < raw.pttl(f"{namespace}{key}") <= 300
        assert await cache.get(key) is not None
        await anyio.sleep(0.5)
        assert await cache.get(key) is None
    finally:
        await cache.aclose()


async def test_namespaces_keep_caches_apart(redis: RedisServer) -> None:
    first = RedisCache(redis.url, namespace=unique("a[1]*:"))  # glob characters, escaped
    second = RedisCache(redis.url, namespace=unique("b:"))
    key = cache_key(request())
    try:
        await first.set(key, answer("first"))
        await first.set(cache_key(request("other")), answer("other"))
        assert await second.get(key) is None
        await second.set(key, answer("second"))
        assert (await first.get(key)) == answer("first")
        assert await first.clear() == 2
        assert await first.get(key) is None
        assert (await second.get(key)) == answer("second")
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_caching_provider_over_the_simulator_calls_once(
    redis: RedisServer, sim_url: str
) -> None:
    namespace = unique("sim:")
    backend = Counting(OpenAICompatible(sim_url, model="sim"))
    model = CachingProvider(backend, RedisCache(redis.url, namespace=namespace))
    try:
        first = await model.complete(request("Say hi."))
        second = await model.complete(request("Say hi.", metadata={"run": "2"}))
        assert backend.calls == 1
        assert second.content == first.content
        assert second.metadata["cache"] == "hit"
        assert second.usage == Usage()
        assert second.cost == 0.0
        streamed = [e async for e in model.stream(request("Say hi."))]
        assert backend.calls == 1
        assert streamed[-1].type is StreamEventType.DONE
        assert streamed[-1].result is not None
        assert streamed[-1].result.content == first.content
    finally:
        await model.aclose()
        await model.cache.aclose()  # type: ignore[attr-defined]
    # Another process (here: another instance) finds it too; its backend is never reached.
    other = RedisCache(redis.url, namespace=namespace)
    unreachable = OpenAICompatible(f"http://127.0.0.1:{free_port()}/v1", model="sim")
    again = CachingProvider(unreachable, other)
    try:
        assert (await again.complete(request("Say hi."))).content == first.content
    finally:
        await again.aclose()
        await other.aclose()


async def test_a_server_that_is_down_is_a_miss_with_a_warning(sim_url: str) -> None:
    url = f"redis://:s3cret-pass@127.0.0.1:{free_port()}/0"  # nobody listens there
    cache = RedisCache(url, retry_interval=60)
    backend = Counting(OpenAICompatible(sim_url, model="sim"))
    model = CachingProvider(backend, cache)
    try:
        with capture_logs() as logs:
            results = [await model.complete(request("Say hi.")) for _ in range(3)]
        assert all(r.content for r in results)
        assert backend.calls == 3  # no cache, but every call answered
        stats = cache.statistics()
        # 3 lookups and 3 stores: the first failed, the rest were skipped while it was down.
        assert (stats.hits, stats.misses, stats.stores, stats.errors) == (0, 3, 0, 6)
        warned = warnings_of(logs)
        assert len(warned) == 1  # once, then the server is left alone for retry_interval
        assert warned[0]["operation"] == "get"
        assert warned[0]["outcome"] == "miss"
        assert "s3cret-pass" not in repr(logs)
        assert "[redacted]" in warned[0]["server"]
    finally:
        await model.aclose()
        await cache.aclose()


async def test_calls_go_on_when_the_server_is_killed_and_it_comes_back(
    own_redis: RedisServer, sim_url: str
) -> None:
    cache = RedisCache(own_redis.url, retry_interval=0.2)
    backend = Counting(OpenAICompatible(sim_url, model="sim"))
    model = CachingProvider(backend, cache)
    try:
        await model.complete(request("one"))
        assert (await model.complete(request("one"))).metadata["cache"] == "hit"
        own_redis.kill()
        with capture_logs() as logs:
            for _ in range(3):
                assert (await model.complete(request("one"))).content
        assert backend.calls == 4
        assert cache.statistics().errors >= 2
        assert warnings_of(logs)
        # The server restarts (empty) on the same port: the cache reconnects by itself.
        with redis_server(own_redis.folder, port=own_redis.port):
            await anyio.sleep(0.3)
            with capture_logs() as logs:
                await model.complete(request("two"))
                hit = await model.complete(request("two"))
            assert hit.metadata["cache"] == "hit"
            assert any(e["event"] == "cache server reachable again" for e in logs)
    finally:
        await model.aclose()
        await cache.aclose()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


async def test_a_server_that_does_not_answer_times_out_as_a_miss(silent_server: int) -> None:
    cache = RedisCache(f"redis://127.0.0.1:{silent_server}", timeout=0.2)
    try:
        with capture_logs() as logs:
            assert await cache.get(cache_key(request())) is None
        assert cache.statistics().errors == 1
        assert "TimeoutError" in warnings_of(logs)[0]["error"]
    finally:
        await cache.aclose()


async def test_error_replies_and_unreadable_entries_are_misses(redis: RedisServer) -> None:
    namespace = unique("bad:")
    cache = RedisCache(redis.url, namespace=namespace)
    wrong_type, garbage = cache_key(request("list")), cache_key(request("garbage"))
    with inspect(redis) as raw:
        raw.lpush(f"{namespace}{wrong_type}", "not a string")
        raw.set(f"{namespace}{garbage}", b"{not json")
    try:
        with capture_logs() as logs:
            assert await cache.get(wrong_type) is None  # WRONGTYPE from the server
            assert await cache.get(garbage) is None  # one key's error: the server stays in use
        assert cache.statistics().errors == 2
        assert cache.statistics().misses == 2
        assert "WRONGTYPE" in warnings_of(logs)[0]["error"]
        assert warnings_of(logs, "cache entry unreadable, answered as a miss")
    finally:
        await cache.aclose()


async def test_passwords_databases_and_unix_sockets(tmp_path: Path) -> None:
    with redis_server(tmp_path / "auth", password="pw-1", unix_socket=True) as server:
        key = cache_key(request())
        over_tcp = RedisCache(f"redis://default:pw-1@127.0.0.1:{server.port}/3", namespace="n:")
        over_unix = RedisCache(f"unix://:pw-1@{server.unix_socket}?db=3", namespace="n:")
        wrong = RedisCache(f"redis://:nope@127.0.0.1:{server.port}/3", namespace="n:")
        try:
            await over_tcp.set(key, answer("in db 3"))
            assert (await over_unix.get(key)) == answer("in db 3")
            with inspect(server, db=3) as raw:
                assert raw.exists(f"n:{key}")
            with inspect(server, db=0) as raw:
                assert not raw.exists(f"n:{key}")
            with capture_logs() as logs:
                assert await wrong.get(key) is None
            assert "WRONGPASS" in warnings_of(logs)[0]["error"]
            assert "nope" not in repr(logs)
        finally:
            for cache in (over_tcp, over_unix, wrong):
                await cache.aclose()


async def test_connections_are_kept_and_reused(redis: RedisServer) -> None:
    cache = RedisCache(redis.url, namespace=unique("reuse:"))
    key = cache_key(request())
    with inspect(redis) as raw:
        before = raw.info("stats")["total_connections_received"]
        try:
            await cache.set(key, answer())
            for _ in range(50):
                assert await cache.get(key) is not None
        finally:
            await cache.aclose()
        assert raw.info("stats")["total_connections_received"] - before == 1


async def test_tls_with_a_verified_certificate(tmp_path: Path) -> None:
    with redis_server(tmp_path / "tls", tls=True) as server:
        assert server.certificate is not None
        key = cache_key(request())
        verified = RedisCache(f"{server.url}?ssl_ca_certs={server.certificate}")
        unverified = RedisCache(f"{server.url}?ssl_cert_reqs=none")
        untrusted = RedisCache(server.url)  # the system's CAs do not know this certificate
        try:
            await verified.set(key, answer("over TLS"))
            assert (await unverified.get(key)) == answer("over TLS")
            with capture_logs() as logs:
                assert await untrusted.get(key) is None
            assert "CERTIFICATE_VERIFY_FAILED" in warnings_of(logs)[0]["error"]
        finally:
            for cache in (verified, unverified, untrusted):
                await cache.aclose()


async def test_concurrent_calls_share_a_bounded_pool(
    redis: RedisServer, anyio_backend: str
) -> None:
    cache = RedisCache(redis.url, namespace=unique("pool:"), max_connections=3)
    found: dict[int, str | None] = {}

    async def one(i: int) -> None:
        key = cache_key(request(f"question {i}"))
        await cache.set(key, answer(f"answer {i}"))
        result = await cache.get(key)
        found[i] = None if result is None else result.content

    try:
        async with anyio.create_task_group() as tg:
            for i in range(60):
                tg.start_soon(one, i)
        assert found == {i: f"answer {i}" for i in range(60)}
        assert cache._client._open <= 3
        # asyncio: a Protocol on the loop; trio: anyio's socket stream.
        kinds = {type(conn).__name__ for conn in cache._client._idle}
        assert kinds == {
            "_AsyncioConnection" if anyio_backend == "asyncio" else "_StreamConnection"
        }
        assert cache.statistics().errors == 0
    finally:
        await cache.aclose()


async def test_clear_on_a_server_that_is_down_raises() -> None:
    cache = RedisCache(f"redis://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(CacheError, match="could not clear"):
            await cache.clear()
    finally:
        await cache.aclose()


def test_bad_settings_are_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(ConfigError, match="REDIS_URL"):
        RedisCache()
    monkeypatch.setenv("REDIS_URL", "http://user:hunter22@example.com")
    with pytest.raises(ConfigError, match="REDIS_URL") as caught:
        RedisCache()
    assert "hunter22" not in str(caught.value)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert RedisCache().url == "redis://127.0.0.1:6379/0"
    for url, reason in [
        ("redis://127.0.0.1:port/0", "Port"),
        ("redis://127.0.0.1/zero", "database"),
        ("redis://127.0.0.1/0?socket_timeout=3", "unknown option"),
        ("rediss://127.0.0.1/0?ssl_cert_reqs=maybe", "ssl_cert_reqs"),
        ("unix://", "socket path"),
    ]:
        with pytest.raises(ConfigError, match=reason):
            RedisCache(url)
    for bad in ({"ttl": 0}, {"timeout": -1}, {"max_connections": 0}, {"retry_interval": -1}):
        with pytest.raises(ConfigError):
            RedisCache("redis://127.0.0.1", **bad)  # type: ignore[arg-type]
