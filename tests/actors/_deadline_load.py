"""Deadlines under load: the two scenarios of issue #16 (point 3), shared by
``test_pool_deadlines.py`` and runnable on their own to print how late calls end::

    .venv/bin/python -m tests.actors._deadline_load            # both backends
    .venv/bin/python -m tests.actors._deadline_load trio-virtual

Each call notes its deadline when it starts (``timeout`` or an enclosing scope of the same
length) and the time it ended, however it ended; the figures are how many calls ended later
than the deadline plus :data:`SLACK`, and the latest one.
"""

from __future__ import annotations

import collections
import math
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio

from limelight.actors import DeploymentLimits, ModelGroup, ProviderPool, RateLimitHook
from limelight.actors._ratelimit import GetStatistics, RateLimiter, RateLimiterStatistics
from limelight.errors import LimelightError
from limelight.providers import OpenAICompatible, Provider, Simulated, SimulatedConfig
from limelight.runtime import ActorRef, Runtime
from limelight.schemas import CompletionRequest, Message
from limelight.sim import UniformLength, serve_in_thread_async

#: How late a call may end: the contract is "by the deadline plus 50 ms".
SLACK = 0.05
TIMEOUT = 1.0

REQUEST = CompletionRequest(messages=[Message.user("How late is it?")], max_tokens=64)


@dataclass
class Lateness:
    """How the calls of a scenario ended relative to their deadlines."""

    calls: int = 0
    late: int = 0
    #: The latest end relative to its deadline (negative: every call ended early).
    worst: float = -math.inf
    #: How the calls ended: "ok", or the name of the error raised.
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    #: The late calls: (call kind, outcome, seconds past the deadline).
    late_calls: list[tuple[str, str, float]] = field(default_factory=list)
    #: The latest end relative to its deadline, by kind of call.
    worst_by_kind: dict[str, float] = field(default_factory=dict)

    def record(self, kind: str, outcome: str, lateness: float) -> None:
        self.calls += 1
        self.outcomes[outcome] += 1
        self.worst = max(self.worst, lateness)
        self.worst_by_kind[kind] = max(self.worst_by_kind.get(kind, -math.inf), lateness)
        if lateness > SLACK:
            self.late += 1
            self.late_calls.append((kind, outcome, lateness))

    def __str__(self) -> str:
        outcomes = ", ".join(f"{name} {n}" for name, n in self.outcomes.most_common())
        return (
            f"{self.late} of {self.calls} calls ended later than deadline + {SLACK * 1000:.0f} ms;"
            f" latest {self.worst * 1000:+.1f} ms vs. the deadline ({outcomes})"
        )


Call = Callable[[], Awaitable[object]]


async def timed(lateness: Lateness, kind: str, call: Call, timeout: float = TIMEOUT) -> None:
    """Run one call and record when it ended against its deadline. Errors a call may end
    with under load (provider errors, deadlines, timeouts) are outcomes; anything else is
    a bug and propagates."""
    start = anyio.current_time()
    try:
        await call()
    except (LimelightError, TimeoutError) as exc:
        outcome = type(exc).__name__
    else:
        outcome = "ok"
    lateness.record(kind, outcome, anyio.current_time() - (start + timeout))


# -- scenario 1: 50 callers on 4 workers -------------------------------------------------

#: Answers take 0.5 to 1.5 s: about half of them longer than the 1 s timeout.
SLOW = SimulatedConfig(ttft=1.0, ttft_jitter=0.5, tokens_per_second=None, output_tokens=8, seed=3)


async def busy_pool(*, callers: int = 50, calls: int = 4, workers: int = 4) -> Lateness:
    """``callers`` callers, each making ``calls`` calls one after the other with
    ``timeout=1`` on a pool of ``workers`` workers over a slow provider."""
    lateness = Lateness()
    async with Runtime() as rt:
        pool = await ProviderPool.start(rt, Simulated(SLOW), name="slow", size=workers)

        async def caller() -> None:
            for _ in range(calls):
                await timed(lateness, "complete", lambda: pool.complete(REQUEST, timeout=TIMEOUT))

        async with anyio.create_task_group() as tg:
            for _ in range(callers):
                tg.start_soon(caller)
        assert pool.idle() == workers, "a worker lease leaked"
    return lateness


# -- scenario 2: 200 callers, faults mixed -----------------------------------------------

#: Deployment "a": 5xx, 429s saying ``Retry-After: 0``, dropped connections, truncated
#: answers, and answers of up to ~1.5 s, longer than the 0.7 s attempt timeout; a rate
#: limit in front of it.
FAULTY_A = SimulatedConfig(
    ttft=0.3,
    ttft_jitter=0.25,
    tokens_per_second=50.0,
    output_tokens=UniformLength(low=1, high=60),
    server_error_rate=0.1,
    rate_limit_error_rate=0.1,
    fault_retry_after=0.0,
    connection_reset_rate=0.05,
    truncated_rate=0.05,
    seed=11,
)
#: Deployment "b": fast but often refusing, with a 0.4 s ``Retry-After``.
FAULTY_B = SimulatedConfig(
    ttft=0.2,
    ttft_jitter=0.15,
    tokens_per_second=None,
    output_tokens=16,
    server_error_rate=0.1,
    rate_limit_error_rate=0.2,
    fault_retry_after=0.4,
    seed=12,
)
LIMITS_A = DeploymentLimits(rpm=300)


@asynccontextmanager
async def faulty_deployments(
    rt: Runtime, *, http: bool = False
) -> AsyncIterator[tuple[ProviderPool, ProviderPool, ActorRef]]:
    """The two deployments, played in-process, or by ``limelight sim`` servers over HTTP."""
    async with AsyncExitStack() as stack:
        providers: list[Provider] = []
        for config in (FAULTY_A, FAULTY_B):
            if http:
                url = await stack.enter_async_context(serve_in_thread_async(config))
                providers.append(OpenAICompatible(url))
            else:
                providers.append(Simulated(config))
        limiter = await RateLimiter.start(rt, {"a": LIMITS_A}, environ={})
        hook = RateLimitHook(limiter, estimator=lambda request: 8)
        a = await ProviderPool.start(
            rt, providers[0], name="a", size=8, attempt_timeout=0.7, hooks=[hook]
        )
        b = await ProviderPool.start(rt, providers[1], name="b", size=4)
        yield a, b, limiter
        await a.stop()
        await b.stop()


async def check_nothing_leaked(limiter: ActorRef, *pools: ProviderPool) -> None:
    """Every worker is back in its pool, none crashed, and the limiter holds no reservation
    and no waiter (the settlements of cancelled calls may still be on their way: wait)."""
    for pool in pools:
        assert pool.idle() == pool.size, f"a worker lease of pool {pool.name} leaked"
        for worker in pool.workers:
            assert worker.statistics().restarts == 0, f"{worker.path} crashed"
    with anyio.fail_after(5):
        while True:
            stats = await limiter.ask(GetStatistics())
            assert isinstance(stats, RateLimiterStatistics)
            if all(d.in_flight == 0 and d.waiting == 0 for d in stats.deployments.values()):
                return
            await anyio.sleep(0.01)


async def drain(pool: ProviderPool, **options: Any) -> None:
    async for _ in pool.stream(REQUEST, **options):
        pass


async def under_scope(fail: bool, call: Call) -> None:
    """``call`` inside an enclosing deadline of :data:`TIMEOUT` (no ``timeout=``)."""
    if fail:
        with anyio.fail_after(TIMEOUT):
            await call()
    else:
        with anyio.move_on_after(TIMEOUT):
            await call()


async def fault_mix(*, callers: int = 200, calls: int = 3, http: bool = False) -> Lateness:
    """``callers`` callers, ``calls`` calls each, spread over six kinds of call: a pool's
    complete and stream with ``timeout=1``, a ModelGroup's complete with ``timeout=1``, and
    each of these under an enclosing 1 s deadline instead."""
    lateness = Lateness()
    async with Runtime() as rt, faulty_deployments(rt, http=http) as (a, b, limiter):
        forward, backward = ModelGroup([a, b]), ModelGroup([b, a])
        kinds: list[tuple[str, Call]] = [
            ("pool.complete", lambda: a.complete(REQUEST, timeout=TIMEOUT)),
            ("group.complete", lambda: forward.complete(REQUEST, timeout=TIMEOUT)),
            ("pool.stream", lambda: drain(b, timeout=TIMEOUT)),
            ("pool.complete/scope", lambda: under_scope(False, lambda: a.complete(REQUEST))),
            ("group.complete/scope", lambda: under_scope(True, lambda: backward.complete(REQUEST))),
            ("pool.stream/scope", lambda: under_scope(False, lambda: drain(a))),
        ]

        async def caller(i: int) -> None:
            kind, call = kinds[i % len(kinds)]
            for _ in range(calls):
                await timed(lateness, kind, call)

        async with anyio.create_task_group() as tg:
            for i in range(callers):
                tg.start_soon(caller, i)
        await check_nothing_leaked(limiter, a, b)
    return lateness


async def fault_mix_http() -> Lateness:
    return await fault_mix(http=True)


SCENARIOS: dict[str, Callable[[], Awaitable[Lateness]]] = {
    "50 callers, 4 workers": busy_pool,
    "200-caller fault mix": fault_mix,
}
#: Over real sockets (not in the tests: the servers share this process's GIL and cores).
REAL_TIME_ONLY: dict[str, Callable[[], Awaitable[Lateness]]] = {
    "fault mix over HTTP": fault_mix_http,
}


def main(argv: list[str]) -> None:
    from trio.testing import MockClock

    backends: dict[str, tuple[str, dict[str, Any]]] = {
        "asyncio": ("asyncio", {}),
        "trio": ("trio", {}),
        "trio-virtual": ("trio", {"clock": MockClock(autojump_threshold=0)}),
    }
    chosen = argv or ["asyncio", "trio"]
    for name in chosen:
        backend, options = backends[name]
        scenarios = SCENARIOS if "clock" in options else {**SCENARIOS, **REAL_TIME_ONLY}
        for title, scenario in scenarios.items():
            if "clock" in options:
                options = {"clock": MockClock(autojump_threshold=0)}
            result = anyio.run(scenario, backend=backend, backend_options=options)
            print(f"{name:13} {title:22} {result}")
            if len(result.worst_by_kind) > 1:
                kinds = ", ".join(f"{k} {v * 1000:+.1f}" for k, v in result.worst_by_kind.items())
                print(f"{'':36} latest by kind (ms): {kinds}")
            for kind, outcome, late in sorted(result.late_calls, key=lambda c: -c[2])[:3]:
                print(f"{'':36} late: {kind} -> {outcome}, {late * 1000:+.0f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
