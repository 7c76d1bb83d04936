"""One quota shared by many rate limiters through a real ``redis-server``: the lease scripts'
arithmetic, then limiters (one per runtime, as separate processes would have) against the
simulator's quota over HTTP, the server's headers and 429s seen by one limiter correcting the
others (through Ray's quota actor too), unused leases going back, concurrency shared; on
asyncio and trio."""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import pytest

from limelight._buckets import DeploymentLimits
from limelight._leases import Correction, Units
from limelight.actors import ProviderPool
from limelight.actors._ratelimit import (
    DeploymentStatistics,
    GetStatistics,
    RateLimiter,
    RateLimiterStatistics,
    RateLimitHook,
    RateLimitTimeout,
    Settle,
    Ticket,
)
from limelight.cluster import RedisQuota
from limelight.errors import ConfigError
from limelight.providers import OpenAICompatible, Scripted, SimulatedConfig
from limelight.runtime import ActorRef, RetryPolicy, Runtime
from limelight.schemas import CompletionRequest, Message
from limelight.sim import estimate_prompt_tokens, serve_in_thread_async

from ..caches._servers import RedisServer

pytestmark = pytest.mark.anyio

NO_RETRY = RetryPolicy(attempts=1)
REQUEST = CompletionRequest(messages=[Message.user("hello")], max_tokens=10)
_names = itertools.count()


def quota(redis: RedisServer, **options: float) -> RedisQuota:
    """A quota in a namespace of its own (the server is shared by the session)."""
    return RedisQuota(redis.url, namespace=f"test:{next(_names)}:", **options)


async def stats(limiter: ActorRef, name: str) -> DeploymentStatistics:
    result = await limiter.ask(GetStatistics())
    assert isinstance(result, RateLimiterStatistics)
    return result.deployments[name]


async def admit(limiter: ActorRef, deployment: str, *, max_wait: float | None = None) -> Ticket:
    ticket = Ticket(deployment, prompt_tokens=1, max_tokens=0)
    await RateLimitHook(limiter, max_wait=max_wait).acquire(ticket)
    return ticket


# -- the scripts ------------------------------------------------------------------------


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="lease_fraction"):
        RedisQuota("redis://localhost", lease_fraction=0)
    with pytest.raises(ConfigError, match="not a Redis URL"):
        RedisQuota("http://localhost")
    assert "secret" not in repr(RedisQuota("redis://:secret@localhost:1/0"))


async def test_a_lease_is_whole_or_nothing_and_units_given_back_return(
    redis: RedisServer,
) -> None:
    store = quota(redis, send_delay=0.0)
    limits = DeploymentLimits(rpm=60, tpm=6_000)
    try:
        a = await store.lease(
            "d", limits, holder="a", need=Units(requests=1, tokens=100),
            want=Units(requests=10, tokens=1_000),
        )  # fmt: skip
        assert a.units == Units(requests=10, tokens=1_000)
        assert a.retry_after == 0
        # 50 requests and 5,000 tokens are left: a need beyond them gets nothing, and the
        # time the refill takes to cover it (60 rpm: 1 request a second).
        b = await store.lease(
            "d", limits, holder="b", need=Units(requests=52, tokens=10),
            want=Units(requests=60, tokens=10),
        )  # fmt: skip
        assert not b.units
        assert 1.5 < b.retry_after <= 2.0
        levels = await store.levels("d")
        assert 50 - 1e-6 <= levels["requests"] < 50.2
        assert 5_000 - 1e-6 <= levels["tokens"] < 5_020
        # A need that fits is granted up to what is there.
        c = await store.lease(
            "d", limits, holder="b", need=Units(requests=1, tokens=10),
            want=Units(requests=100, tokens=10),
        )  # fmt: skip
        assert 50 <= c.units.requests < 50.2
        assert (await store.levels("d"))["requests"] < 0.2
        # Unused units go back; a debt (negative) is paid.
        await store.give_back("d", limits, holder="a", units=Units(requests=9, tokens=-500))
        levels = await store.levels("d")
        assert 9 <= levels["requests"] < 9.3
        assert 5_000 - 10 - 500 - 1e-6 <= levels["tokens"] < 4_520
        # The store's limits were set by the first caller; later callers' are ignored.
        assert (levels["rpm"], levels["tpm"]) == (60, 6_000)
    finally:
        await store.aclose()


async def test_corrections_lower_the_shared_level_change_the_limit_and_pause(
    redis: RedisServer,
) -> None:
    store = quota(redis, send_delay=0.0)
    limits = DeploymentLimits(rpm=600)
    try:
        await store.correct("d", limits, Correction(requests_remaining=5))
        assert 5 <= (await store.levels("d"))["requests"] < 6
        # A higher count never raises the level: the server counts units others hold too.
        await store.correct("d", limits, Correction(requests_remaining=500))
        assert (await store.levels("d"))["requests"] < 6
        await store.correct("d", limits, Correction(requests_limit=30, tokens_limit=1_000))
        levels = await store.levels("d")
        assert (levels["rpm"], levels["tpm"]) == (30, 1_000)
        assert levels["tokens"] == 1_000  # a limit learned from the server starts full
        await store.correct("d", limits, Correction(pause=5.0))
        grant = await store.lease(
            "d", limits, holder="a", need=Units(requests=1), want=Units(requests=1)
        )
        assert not grant.units
        assert 4 < grant.paused_for <= 5
        assert grant.retry_after == grant.paused_for
    finally:
        await store.aclose()


async def test_slots_are_shared_and_a_silent_holders_expire(redis: RedisServer) -> None:
    store = quota(redis, lease_ttl=0.3)
    limits = DeploymentLimits(max_concurrency=3)
    try:
        a = await store.lease("d", limits, holder="a", need=Units(slots=1), want=Units(slots=2))
        assert a.units.slots == 2
        b = await store.lease("d", limits, holder="b", need=Units(slots=2), want=Units(slots=2))
        assert not b.units
        assert b.retry_after > 0
        await store.give_back("d", limits, holder="a", units=Units(slots=1))
        b = await store.lease("d", limits, holder="b", need=Units(slots=2), want=Units(slots=2))
        assert b.units.slots == 2
        assert (await store.levels("d"))["slots_held"] == 3
        # "a" goes silent (its process died): its slot comes back once its lease expires.
        await anyio.sleep(0.4)
        await store.lease("d", limits, holder="b", need=Units(), want=Units())  # renews "b"
        assert (await store.levels("d"))["slots_held"] == 2
    finally:
        await store.aclose()


# -- limiters sharing one quota --------------------------------------------------------


@pytest.mark.slow
async def test_four_limiters_share_one_quota_with_zero_429s(redis: RedisServer) -> None:
    """Four runtimes (as four processes would), each with its own limiter and pool, send one
    backlog through one quota that the simulator enforces: each is configured with the whole
    quota, and the shared leases keep the sum within it."""
    rpm, per_process = 240, 66  # 264 calls: a full bucket, then 6 s of refill
    config = SimulatedConfig(
        rpm=rpm, ttft=0.005, ttft_jitter=0.0, tokens_per_second=None, output_tokens=4
    )
    limits = {"sim": DeploymentLimits(rpm=rpm)}
    errors: list[BaseException] = []
    stores = [quota(redis) for _ in range(4)]
    stores = [
        RedisQuota(redis.url, namespace=stores[0].namespace) for _ in range(4)
    ]  # one namespace: one quota, four clients

    async def process(url: str, store: RedisQuota, done: list[DeploymentStatistics]) -> None:
        async with Runtime() as rt:
            limiter = await RateLimiter.start(rt, limits, environ={}, shared=store)
            pool = await ProviderPool.start(
                rt,
                OpenAICompatible(url),
                name="sim",
                size=16,
                retry=NO_RETRY,
                hooks=[RateLimitHook(limiter, estimator=estimate_prompt_tokens)],
            )

            async def one() -> None:
                try:
                    await pool.complete(REQUEST)
                except Exception as exc:
                    errors.append(exc)

            async with anyio.create_task_group() as tg:
                for _ in range(per_process):
                    tg.start_soon(one)
            done.append(await stats(limiter, "sim"))
        await store.aclose()

    done: list[DeploymentStatistics] = []
    async with serve_in_thread_async(config) as url:
        with anyio.fail_after(40):
            async with anyio.create_task_group() as tg:
                for store in stores:
                    tg.start_soon(process, url, store, done)
    assert errors == []
    assert sum(s.admitted for s in done) == 4 * per_process
    assert sum(s.rate_limited for s in done) == 0
    assert sum(s.waited for s in done) > 0  # the quota did bind


async def test_without_sharing_the_same_four_draw_429s() -> None:
    """The control for the test above: four limiters, each believing it owns the quota."""
    rpm, per_process = 12, 8
    config = SimulatedConfig(
        rpm=rpm, ttft=0.005, ttft_jitter=0.0, tokens_per_second=None, output_tokens=4
    )
    limits = {f"sim{i}": DeploymentLimits(rpm=rpm) for i in range(4)}
    refused = 0
    async with serve_in_thread_async(config) as url, Runtime() as rt:
        pools = []
        for i in range(4):
            limiter = await RateLimiter.start(rt, limits, name=f"l{i}", environ={})
            pools.append(
                await ProviderPool.start(
                    rt, OpenAICompatible(url), name=f"sim{i}", size=8, retry=NO_RETRY,
                    hooks=[RateLimitHook(limiter, estimator=estimate_prompt_tokens)],
                )
            )  # fmt: skip

        async def one(pool: ActorRef) -> None:
            nonlocal refused
            try:
                await pool.complete(REQUEST)
            except Exception:
                refused += 1

        async with anyio.create_task_group() as tg:
            for pool in pools:
                for _ in range(per_process):
                    tg.start_soon(one, pool)
    assert refused >= 4 * per_process - rpm - 5


def two_processes(kind: str, request: pytest.FixtureRequest, **options: float) -> tuple[Any, Any]:
    """Two handles on one shared quota, as two processes would hold them: through the
    session's redis-server, or through a quota actor of the session's Ray instance."""
    if kind == "redis":
        redis: RedisServer = request.getfixturevalue("redis")
        first = quota(redis, **options)
        return first, RedisQuota(redis.url, namespace=first.namespace, **options)
    pytest.importorskip("ray", reason="pip install 'limelight[ray]'")
    request.getfixturevalue("ray_instance")
    from limelight.cluster import RayQuota

    name = f"test-quota-{next(_names)}"
    return RayQuota(name, **options), RayQuota(name, **options)


#: The shared-state tests run on both shared backends (the Ray one needs a Ray instance).
STORES = pytest.mark.parametrize("kind", ["redis", pytest.param("ray", marks=pytest.mark.slow)])


@STORES
async def test_headers_seen_by_one_limiter_correct_what_the_others_get(
    kind: str, request: pytest.FixtureRequest
) -> None:
    store_a, store_b = two_processes(kind, request, send_delay=0.0)
    limits = {"d": DeploymentLimits(rpm=600)}
    async with Runtime() as rt:
        a = await RateLimiter.start(rt, limits, name="a", environ={}, shared=store_a)
        b = await RateLimiter.start(rt, limits, name="b", environ={}, shared=store_b)
        ticket = await admit(a, "d")
        # The server says the key's quota is 60 a minute and none of it is left (others
        # outside these processes spend it too).
        headers = {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0"}
        await a.tell(Settle(ticket=ticket, total_tokens=1, completion_tokens=0, headers=headers))
        with anyio.fail_after(5):
            while (await store_a.levels("d"))["rpm"] != 60:
                await anyio.sleep(0.01)
        assert (await store_a.levels("d"))["requests"] < 1.5
        assert (await stats(a, "d")).limits.rpm == 60
        # "b" was configured with 600 a minute, but the shared state is the truth: it waits
        # (60 a minute: a second for one request) instead of sending into a 429.
        with pytest.raises(RateLimitTimeout):
            await admit(b, "d", max_wait=0.3)
        await admit(b, "d", max_wait=3.0)
    await store_a.aclose()
    await store_b.aclose()


@STORES
async def test_a_429_seen_by_one_limiter_pauses_the_others(
    kind: str, request: pytest.FixtureRequest
) -> None:
    store_a, store_b = two_processes(kind, request)
    limits = {"d": DeploymentLimits(rpm=600)}
    async with Runtime() as rt:
        a = await RateLimiter.start(rt, limits, name="a", environ={}, shared=store_a)
        b = await RateLimiter.start(rt, limits, name="b", environ={}, shared=store_b)
        ticket = await admit(a, "d")
        await a.tell(Settle(ticket=ticket, rate_limited=True, retry_after=1.0))
        with anyio.fail_after(5):
            while (await store_a.levels("d"))["paused_for"] == 0:
                await anyio.sleep(0.01)
        start = anyio.current_time()
        await admit(b, "d", max_wait=3.0)
        # "b" held nothing: its first lease found the pause and waited it out.
        assert anyio.current_time() - start >= 0.5
        assert (await stats(b, "d")).rate_limited == 0
    await store_a.aclose()
    await store_b.aclose()


async def test_unused_leases_go_back_when_idle_and_everything_at_stop(
    redis: RedisServer,
) -> None:
    store = quota(redis, send_delay=0.0, return_after=0.05, lease_fraction=0.1)
    limits = {"d": DeploymentLimits(rpm=600, max_concurrency=4)}
    async with Runtime() as rt:
        limiter = await RateLimiter.start(rt, limits, environ={}, shared=store)
        ticket = await admit(limiter, "d")  # leases a chunk: 60 requests, 1 slot
        levels = await store.levels("d")
        assert levels["requests"] < 600 - 50
        assert levels["slots_held"] == 1
        await limiter.tell(Settle(ticket=ticket, total_tokens=1, completion_tokens=0))
        # Idle: what the call did not use goes back (one request was spent).
        with anyio.fail_after(5):
            while (await store.levels("d"))["slots_held"] != 0:
                await anyio.sleep(0.01)
        levels = await store.levels("d")
        assert 599 - 1e-6 <= levels["requests"] <= 600
        # One more call is in flight when the limiter stops: all it held goes back.
        await admit(limiter, "d")
        assert (await store.levels("d"))["slots_held"] == 1
    levels = await store.levels("d")
    assert levels["slots_held"] == 0
    assert levels["requests"] >= 598 - 1e-6
    await store.aclose()


async def test_concurrency_is_shared(redis: RedisServer) -> None:
    running = most = 0

    async def answer(request: CompletionRequest) -> str:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await anyio.sleep(0.01)
        running -= 1
        return "ok"

    namespace = quota(redis).namespace
    limits = {"d": DeploymentLimits(max_concurrency=3)}
    async with Runtime() as rt1, Runtime() as rt2:  # one deployment "d" in each "process"
        pools = []
        stores = []
        for rt in (rt1, rt2):
            store = RedisQuota(redis.url, namespace=namespace, return_after=0.0)
            stores.append(store)
            limiter = await RateLimiter.start(rt, limits, environ={}, shared=store)
            pools.append(
                await ProviderPool.start(
                    rt, Scripted(answer), name="d", size=10, hooks=[RateLimitHook(limiter)]
                )
            )
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    for pool in pools:
                        tg.start_soon(pool.complete, REQUEST)
    for store in stores:
        await store.aclose()
    assert most == 3


async def test_a_store_that_is_down_times_callers_out_instead_of_crashing(
    own_redis: RedisServer,
) -> None:
    store = RedisQuota(own_redis.url, timeout=0.2)
    own_redis.kill()
    async with Runtime() as rt:
        limiter = await RateLimiter.start(
            rt, {"d": DeploymentLimits(rpm=60)}, environ={}, shared=store
        )
        with pytest.raises(RateLimitTimeout):
            await admit(limiter, "d", max_wait=0.5)
        assert (await stats(limiter, "d")).timed_out == 1
    await store.aclose()
