"""The Ray quota actor as the shared store, and one quota shared by processes for real: two
Ray hosts, each with its own rate limiter and pool, send one backlog to the simulator (in
this process) through one quota kept in Redis or in the quota actor: zero 429s."""

from __future__ import annotations

import itertools

import anyio
import pytest

from limelight._buckets import DeploymentLimits
from limelight._leases import Units
from limelight.actors._ratelimit import RateLimiter, RateLimitHook, RateLimitTimeout, Ticket
from limelight.cluster import RedisQuota
from limelight.providers import SimulatedConfig
from limelight.runtime import Runtime
from limelight.sim import serve_in_thread_async

from ..caches._servers import RedisServer
from ._ray_actors import Send, Sender, Sent

pytest.importorskip("ray", reason="pip install 'limelight[ray]'")

from limelight.cluster import Cluster, RayQuota

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
_names = itertools.count()


async def test_the_quota_actor_leases_and_limiters_share_it(
    ray_instance: None, anyio_backend: str
) -> None:
    store = RayQuota(f"quota-{next(_names)}", send_delay=0.0)
    limits = DeploymentLimits(rpm=60)
    grant = await store.lease(
        "d", limits, holder="x", need=Units(requests=1), want=Units(requests=59)
    )
    assert grant.units.requests == 59
    async with Runtime() as rt:
        limiter = await RateLimiter.start(rt, {"d": limits}, environ={}, shared=store)
        ticket = Ticket("d", prompt_tokens=1, max_tokens=0)
        await RateLimitHook(limiter).acquire(ticket)  # the last request of the bucket
        with pytest.raises(RateLimitTimeout):
            await RateLimitHook(limiter, max_wait=0.3).acquire(Ticket("d", prompt_tokens=1))
    assert (await store.levels("d"))["requests"] < 2


@pytest.mark.parametrize("store", ["redis", "ray"])
async def test_two_hosts_share_one_quota_with_zero_429s(
    ray_instance: None, redis: RedisServer, anyio_backend: str, store: str
) -> None:
    rpm, per_host = 240, 126  # 252 calls: a full bucket, then 3 s of refill
    config = SimulatedConfig(
        rpm=rpm, ttft=0.005, ttft_jitter=0.0, tokens_per_second=None, output_tokens=4
    )
    quota = (
        RedisQuota(redis.url, namespace=f"hosts:{next(_names)}:")
        if store == "redis"
        else RayQuota(f"quota-{next(_names)}")
    )
    async with (
        serve_in_thread_async(config) as url,
        Cluster.start(2, backend=anyio_backend, num_cpus=0.5) as cluster,
    ):
        senders = [
            await cluster.spawn(lambda: Sender(url, rpm, quota), name="sender", host=i)
            for i in range(2)
        ]
        results: list[Sent] = []

        async def send(ref: object) -> None:
            results.append(await ref.ask(Send(calls=per_host), timeout=60))  # type: ignore[attr-defined]

        with anyio.fail_after(90):
            async with anyio.create_task_group() as tg:
                for ref in senders:
                    tg.start_soon(send, ref)
    assert [r.other_errors for r in results] == [[], []]
    assert sum(r.rate_limited for r in results) == 0
    assert sum(r.ok for r in results) == 2 * per_host
    assert sum(r.waited for r in results) > 0
