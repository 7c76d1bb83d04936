"""The rate limiter against ``limelight sim`` over HTTP, its quotas enforced as OpenAI does:
a burst of mixed sizes with zero 429s, a quota lowered mid-run, failover between two
deployments. Quotas are scaled so that each run takes a few seconds."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import threading
from collections.abc import AsyncIterator

import anyio
import anyio.to_thread
import pytest

from limelight._buckets import DeploymentLimits
from limelight.actors import ModelGroup, ProviderPool
from limelight.actors._ratelimit import (
    DeploymentStatistics,
    GetStatistics,
    RateLimiter,
    RateLimiterStatistics,
    RateLimitHook,
)
from limelight.providers import OpenAICompatible, SimulatedConfig
from limelight.runtime import ActorRef, RetryPolicy, Runtime
from limelight.schemas import CompletionRequest, Message
from limelight.sim import Quota, SimServer, estimate_prompt_tokens, serve_in_thread_async

pytestmark = pytest.mark.anyio

# Every 429 surfaces as an error: the tests count them instead of retrying them away.
NO_RETRY = RetryPolicy(attempts=1)
FAST = {"ttft": 0.005, "ttft_jitter": 0.0, "tokens_per_second": None, "output_tokens": 20}


def mixed_requests(count: int, seed: int = 7) -> list[CompletionRequest]:
    rng = random.Random(seed)
    return [
        CompletionRequest(
            messages=[Message.user("word " * rng.randint(2, 150))],
            max_tokens=rng.randint(8, 256),
        )
        for _ in range(count)
    ]


def cost(request: CompletionRequest) -> int:
    """What the simulator charges against TPM: the prompt estimate plus max_tokens."""
    assert request.max_tokens is not None
    return estimate_prompt_tokens(request) + request.max_tokens


async def deployment_stats(limiter: ActorRef, name: str) -> DeploymentStatistics:
    stats = await limiter.ask(GetStatistics())
    assert isinstance(stats, RateLimiterStatistics)
    return stats.deployments[name]


async def run_all(
    call: object, requests: list[CompletionRequest]
) -> tuple[int, list[BaseException]]:
    errors: list[BaseException] = []
    done = 0

    async def one(request: CompletionRequest) -> None:
        nonlocal done
        try:
            await call(request)  # type: ignore[operator]
            done += 1
        except Exception as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for request in requests:
            tg.start_soon(one, request)
    return done, errors


@pytest.mark.parametrize(
    ("count", "excess"), [(300, 0.03), pytest.param(5_000, 0.15, marks=pytest.mark.slow)]
)
async def test_a_burst_of_mixed_sizes_completes_with_zero_429s(count: int, excess: float) -> None:
    requests = mixed_requests(count)
    demand = sum(cost(r) for r in requests)
    # Both quotas bind: the burst asks for more than a full bucket, and the refill has to
    # carry the rest (a few seconds of it; longer for the big burst, whose own sending
    # takes seconds of refill).
    rpm = math.floor(len(requests) / (1 + excess * 2 / 3))
    tpm = math.floor(demand / (1 + excess))
    config = SimulatedConfig(rpm=rpm, tpm=tpm, **FAST)  # type: ignore[arg-type]
    limits = DeploymentLimits(rpm=rpm, tpm=tpm)
    async with serve_in_thread_async(config) as url, Runtime() as rt:
        limiter = await RateLimiter.start(rt, {"sim": limits}, environ={})
        pool = await ProviderPool.start(
            rt,
            OpenAICompatible(url),
            name="sim",
            size=64,
            retry=NO_RETRY,
            hooks=[RateLimitHook(limiter, estimator=estimate_prompt_tokens)],
        )
        done, errors = await run_all(pool.complete, requests)
        stats = await deployment_stats(limiter, "sim")
    assert errors == []
    assert done == len(requests)
    assert stats.rate_limited == 0
    assert stats.admitted == len(requests)
    assert stats.tokens_utilisation is not None
    if count <= 300:
        # The quota did bind, and was used. (The big burst's own sending takes seconds; on a
        # loaded machine the refill may then cover it without a wait, and how much of the
        # quota it used then depends on the machine's speed, so neither is asserted there:
        # bench/ratelimit.py measures utilisation.)
        assert stats.waited > 0
        assert stats.tokens_utilisation > 0.9


class SwappableServer:
    """``limelight sim`` in a thread, whose quota can be replaced while it serves (what a
    provider does when it lowers an organisation's limits)."""

    def __init__(self, config: SimulatedConfig) -> None:
        self.server = SimServer(config)
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        from aiohttp import web

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner = web.AppRunner(self.server.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/v1"
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def set_quota(self, *, rpm: int | None, tpm: int | None) -> None:
        assert self._loop is not None
        done = threading.Event()

        def swap() -> None:
            self.server.engine.quota = Quota(rpm=rpm, tpm=tpm)
            done.set()

        self._loop.call_soon_threadsafe(swap)
        done.wait()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()


@contextlib.asynccontextmanager
async def swappable(config: SimulatedConfig) -> AsyncIterator[SwappableServer]:
    server = SwappableServer(config)
    await anyio.to_thread.run_sync(server.start)
    try:
        yield server
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(server.stop)


async def test_a_quota_lowered_mid_run_is_followed_from_the_headers() -> None:
    before = mixed_requests(60, seed=1)
    after = mixed_requests(100, seed=2)
    probe = mixed_requests(1, seed=3)
    # The limiter is configured with nothing: it learns the quota from the server.
    high_tpm = 10 * sum(cost(r) for r in before)
    low_tpm = math.floor(sum(cost(r) for r in after + probe) / 1.03)
    config = SimulatedConfig(rpm=10_000, tpm=high_tpm, **FAST)  # type: ignore[arg-type]
    async with swappable(config) as server, Runtime() as rt:
        limiter = await RateLimiter.start(rt, environ={})
        pool = await ProviderPool.start(
            rt,
            OpenAICompatible(server.url),
            name="sim",
            size=32,
            retry=NO_RETRY,
            hooks=[RateLimitHook(limiter, estimator=estimate_prompt_tokens)],
        )
        done, errors = await run_all(pool.complete, before)
        assert (done, errors) == (len(before), [])
        assert (await deployment_stats(limiter, "sim")).limits.tpm == high_tpm

        await anyio.to_thread.run_sync(lambda: server.set_quota(rpm=10_000, tpm=low_tpm))
        # The first answer under the new quota carries it in its headers ...
        await pool.complete(probe[0])
        stats = await deployment_stats(limiter, "sim")
        assert stats.limits.tpm == low_tpm
        # ... and from then on the limiter keeps to it: a burst beyond it gets no 429.
        done, errors = await run_all(pool.complete, after)
        stats = await deployment_stats(limiter, "sim")
    assert errors == []
    assert done == len(after)
    assert stats.rate_limited == 0
    assert stats.waited > 0  # the lowered quota did bind


async def test_two_deployments_one_rate_limited_fails_over_to_the_other() -> None:
    requests = mixed_requests(80, seed=4)
    # "a" answers every call with a 429 (an upstream limit no quota explains), asking for 2 s.
    broken = SimulatedConfig(rate_limit_error_rate=1.0, fault_retry_after=2.0, **FAST)  # type: ignore[arg-type]
    tpm = math.floor(sum(cost(r) for r in requests) / 1.02)
    healthy = SimulatedConfig(rpm=10_000, tpm=tpm, **FAST)  # type: ignore[arg-type]
    async with (
        serve_in_thread_async(broken) as url_a,
        serve_in_thread_async(healthy) as url_b,
        Runtime() as rt,
    ):
        limiter = await RateLimiter.start(rt, {"b": DeploymentLimits(tpm=tpm)}, environ={})
        # A call may wait 0.5 s for "a": past that (its 2 s pause) it fails over at once.
        hooks = {
            "a": RateLimitHook(limiter, estimator=estimate_prompt_tokens, max_wait=0.5),
            "b": RateLimitHook(limiter, estimator=estimate_prompt_tokens),
        }
        pools = [
            await ProviderPool.start(
                rt, OpenAICompatible(url), name=name, size=16, retry=NO_RETRY, hooks=[hooks[name]]
            )
            for name, url in (("a", url_a), ("b", url_b))
        ]
        group = ModelGroup(pools)
        done, errors = await run_all(group.complete, requests)
        a = await deployment_stats(limiter, "a")
        b = await deployment_stats(limiter, "b")
    assert errors == []
    assert done == len(requests)
    assert a.rate_limited >= 1
    assert a.paused_for > 0  # the limiter holds "a" back for its Retry-After
    assert a.timed_out > 0  # calls queued behind the pause left for "b" without waiting it
    assert b.rate_limited == 0
    assert b.admitted == len(requests)
