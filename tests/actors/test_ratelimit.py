"""The RateLimiter actor and its hook: admission in turn, deadlines, cancellation, priorities,
429 pauses, header adoption, configuration; in-process providers, on asyncio and trio."""

from __future__ import annotations

import anyio
import pytest

from limelight._buckets import DeploymentLimits, Priority
from limelight.actors import ProviderPool
from limelight.actors._ratelimit import (
    Acquire,
    Configure,
    GetStatistics,
    Leave,
    RateLimiter,
    RateLimiterStatistics,
    RateLimitHook,
    RateLimitTimeout,
    Settle,
    Ticket,
    count_prompt_tokens,
    env_key,
    limits_from_env,
)
from limelight.errors import ActorStopped, ConfigError, DeadlineExceeded, RateLimited
from limelight.providers import Scripted, Simulated, SimulatedConfig
from limelight.runtime import ActorRef, RetryPolicy, Runtime
from limelight.schemas import CompletionRequest, CompletionResult, Message, Usage
from limelight.sim import estimate_prompt_tokens as sim_estimate

pytestmark = pytest.mark.anyio

REQUEST = CompletionRequest(messages=[Message.user("hello")], max_tokens=10)
NO_RETRY = RetryPolicy(attempts=1)


async def stats(limiter: ActorRef) -> RateLimiterStatistics:
    result = await limiter.ask(GetStatistics())
    assert isinstance(result, RateLimiterStatistics)
    return result


async def admit(limiter: ActorRef, deployment: str, **options: object) -> Ticket:
    ticket = Ticket(deployment, prompt_tokens=1, **options)  # type: ignore[arg-type]
    await RateLimitHook(limiter).acquire(ticket)
    return ticket


# -- configuration ----------------------------------------------------------------------


def test_limits_from_the_environment() -> None:
    environ = {
        "LIMELIGHT_RPM_GPT_4O": "500",
        "LIMELIGHT_TPM_GPT_4O": "30000",
        "LIMELIGHT_MAX_CONCURRENCY_GPT_4O": "8",
        "LIMELIGHT_REFUND_UNUSED_GPT_4O": "true",
        "LIMELIGHT_DEFAULT_OUTPUT_TOKENS_CLAUDE": "1024",
        "LIMELIGHT_OTHER": "x",
        "PATH": "/bin",
    }
    limits = limits_from_env(environ)
    assert limits == {
        "GPT_4O": DeploymentLimits(rpm=500, tpm=30_000, max_concurrency=8, refund_unused=True),
        "CLAUDE": DeploymentLimits(default_output_tokens=1024),
    }
    assert env_key("gpt-4o") == "GPT_4O"
    with pytest.raises(ConfigError, match="LIMELIGHT_RPM_X='many': expected a whole number"):
        limits_from_env({"LIMELIGHT_RPM_X": "many"})
    with pytest.raises(ConfigError, match="expected true or false"):
        limits_from_env({"LIMELIGHT_REFUND_UNUSED_X": "maybe"})


async def test_the_environment_configures_a_deployment_the_code_did_not() -> None:
    environ = {"LIMELIGHT_RPM_EU_GPT": "7", "LIMELIGHT_RPM_CODED": "9"}
    async with Runtime() as rt:
        limiter = await RateLimiter.start(rt, {"coded": DeploymentLimits(rpm=3)}, environ=environ)
        await admit(limiter, "eu-gpt")
        await admit(limiter, "coded")
        deployments = (await stats(limiter)).deployments
        assert deployments["eu-gpt"].limits.rpm == 7
        assert deployments["coded"].limits.rpm == 3


def test_prompt_estimate_counts_every_message() -> None:
    one = count_prompt_tokens(CompletionRequest(messages=[Message.user("hello world")]))
    two = count_prompt_tokens(
        CompletionRequest(messages=[Message.user("hello world"), Message.user("hello world")])
    )
    assert one >= 4  # text plus the framing of a message
    assert two == 2 * one


async def test_the_priority_comes_from_the_request_metadata() -> None:
    async with Runtime() as rt:
        limiter = await RateLimiter.start(rt, environ={})
        hook = RateLimitHook(limiter, priority=Priority.INTERACTIVE)
        batch = CompletionRequest(messages=[Message.user("x")], metadata={"priority": "batch"})
        assert hook._priority(batch) is Priority.BATCH
        assert hook._priority(REQUEST) is Priority.INTERACTIVE
        urgent = CompletionRequest(messages=[Message.user("x")], metadata={"priority": "urgent"})
        with pytest.raises(ConfigError, match="expected 'interactive' or 'batch'"):
            hook._priority(urgent)


# -- admission --------------------------------------------------------------------------


async def test_a_burst_through_a_pool_never_trips_the_servers_quota() -> None:
    """The in-process simulator enforces the same quota; every call gets through first time."""
    rpm, calls = 120, 123
    config = SimulatedConfig(rpm=rpm, ttft=0.0, ttft_jitter=0.0, tokens_per_second=None)
    async with Runtime() as rt:
        limiter = await RateLimiter.start(rt, {"sim": DeploymentLimits(rpm=rpm)}, environ={})
        pool = await ProviderPool.start(
            rt,
            Simulated(config),
            name="sim",
            size=16,
            retry=NO_RETRY,
            hooks=[RateLimitHook(limiter, estimator=sim_estimate)],
        )
        async with anyio.create_task_group() as tg:
            for _ in range(calls):
                tg.start_soon(pool.complete, REQUEST)
        summary = (await stats(limiter)).deployments["sim"]
    assert summary.admitted == calls
    assert summary.rate_limited == 0
    assert summary.waited >= calls - rpm
    assert summary.in_flight == 0
    assert summary.waiting == 0
    assert summary.wait_max >= summary.wait_p99 >= summary.wait_p50 >= 0


async def test_max_concurrency_is_never_exceeded() -> None:
    running = 0
    most = 0

    async def answer(request: CompletionRequest) -> str:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await anyio.sleep(0.01)
        running -= 1
        return "ok"

    async with Runtime() as rt:
        limiter = await RateLimiter.start(
            rt, {"d": DeploymentLimits(max_concurrency=3)}, environ={}
        )
        pool = await ProviderPool.start(
            rt, Scripted(answer), name="d", size=10, hooks=[RateLimitHook(limiter)]
        )
        async with anyio.create_task_group() as tg:
            for _ in range(30):
                tg.start_soon(pool.complete, REQUEST)
    assert most == 3


async def test_interactive_waiters_go_before_batch_and_each_priority_is_fifo() -> None:
    async with Runtime() as rt:
        limiter = await RateLimiter.start(
            rt, {"d": DeploymentLimits(max_concurrency=1)}, environ={}
        )
        holder = await admit(limiter, "d")
        order: list[str] = []

        async def wait(label: str, priority: Priority) -> None:
            ticket = await admit(limiter, "d", priority=priority)
            order.append(label)
            await limiter.tell(Settle(ticket=ticket, total_tokens=1))

        async with anyio.create_task_group() as tg:
            for label, priority in [
                ("batch-1", Priority.BATCH),
                ("interactive-1", Priority.INTERACTIVE),
                ("batch-2", Priority.BATCH),
                ("interactive-2", Priority.INTERACTIVE),
            ]:
                tg.start_soon(wait, label, priority)
                await anyio.wait_all_tasks_blocked()
            assert (await stats(limiter)).deployments["d"].waiting == 4
            await limiter.tell(Settle(ticket=holder, total_tokens=1))
    assert order == ["interactive-1", "interactive-2", "batch-1", "batch-2"]


async def test_a_waiter_whose_deadline_passes_leaves_with_a_typed_error() -> None:
    async with Runtime() as rt:
        limiter = await RateLimiter.start(
            rt, {"d": DeploymentLimits(max_concurrency=1)}, environ={}
        )
        holder = await admit(limiter, "d")
        ticket = Ticket("d", prompt_tokens=1)
        with pytest.raises(RateLimitTimeout, match=r"deployment 'd'.*Raise the deployment's quota"):
            await RateLimitHook(limiter, max_wait=0.05).acquire(ticket)
        assert isinstance(RateLimitTimeout("x"), DeadlineExceeded)
        summary = (await stats(limiter)).deployments["d"]
        assert (summary.timed_out, summary.waiting, summary.in_flight) == (1, 0, 1)
        # The one that left is never admitted: the next in line gets the freed slot.
        await limiter.tell(Settle(ticket=holder, total_tokens=1))
        await admit(limiter, "d")
        assert not ticket.admitted


async def test_the_callers_deadline_bounds_the_wait_through_a_pool() -> None:
    gate = anyio.Event()

    async def answer(request: CompletionRequest) -> str:
        await gate.wait()
        return "ok"

    async with Runtime() as rt:
        limiter = await RateLimiter.start(
            rt, {"d": DeploymentLimits(max_concurrency=1)}, environ={}
        )
        pool = await ProviderPool.start(
            rt, Scripted(answer), name="d", size=2, hooks=[RateLimitHook(limiter)]
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.complete, REQUEST)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(RateLimitTimeout):
                await pool.complete(REQUEST, timeout=0.1)
            gate.set()
        summary = (await stats(limiter)).deployments["d"]
        assert (summary.admitted, summary.timed_out, summary.in_flight) == (1, 1, 0)


async def test_a_cancelled_waiter_leaves_cleanly() -> None:
    async with Runtime() as rt:
        limiter = await RateLimiter.start(
            rt, {"d": DeploymentLimits(max_concurrency=1)}, environ={}
        )
        holder = await admit(limiter, "d")
        async with anyio.create_task_group() as tg:
            tg.start_soon(admit, limiter, "d")
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        summary = (await stats(limiter)).deployments["d"]
        assert (summary.cancelled, summary.waiting, summary.in_flight) == (1, 0, 1)
        await limiter.tell(Settle(ticket=holder, total_tokens=1))
        nxt = await admit(limiter, "d")
        assert (await stats(limiter)).deployments["d"].in_flight == 1
        await limiter.tell(Settle(ticket=nxt, total_tokens=1))
        assert (await stats(limiter)).deployments["d"].in_flight == 0


async def test_leaving_with_an_admitted_ticket_gives_everything_back() -> None:
    async with Runtime() as rt:
        limiter = await RateLimiter.start(
            rt, {"d": DeploymentLimits(rpm=1, max_concurrency=1)}, environ={}
        )
        ticket = Ticket("d", prompt_tokens=1)
        assert await limiter.ask(Acquire(ticket=ticket)) is True
        await limiter.tell(Leave(ticket=ticket))
        # The request and the slot came back: another call goes at once (rpm=1).
        again = Ticket("d", prompt_tokens=1)
        assert await limiter.ask(Acquire(ticket=again)) is True
        summary = (await stats(limiter)).deployments["d"]
        assert (summary.admitted, summary.in_flight, summary.cancelled) == (2, 1, 1)


async def test_many_cancelled_waiters_leak_nothing() -> None:
    async with Runtime() as rt:
        limiter = await RateLimiter.start(rt, {"d": DeploymentLimits(rpm=5)}, environ={})
        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(admit, limiter, "d")
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        summary = (await stats(limiter)).deployments["d"]
        assert summary.waiting == 0
        assert summary.admitted + summary.cancelled >= 50
        assert summary.admitted == 5


async def test_a_stopped_limiter_fails_its_waiters() -> None:
    async with Runtime() as rt:
        limiter = await RateLimiter.start(
            rt, {"d": DeploymentLimits(max_concurrency=1)}, environ={}
        )
        await admit(limiter, "d")
        failure: list[BaseException] = []

        async def waiter() -> None:
            try:
                await admit(limiter, "d")
            except ActorStopped as exc:
                failure.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            await limiter.stop()
    assert len(failure) == 1
    assert "stopped before admitting" in str(failure[0])


# -- after the call ---------------------------------------------------------------------


async def test_a_429_pauses_the_deployment_and_the_retry_waits_for_it() -> None:
    seen: list[float] = []

    async def answer(request: CompletionRequest) -> str | Exception:
        seen.append(anyio.current_time())
        if len(seen) == 1:
            return RateLimited(
                "slow down", status_code=429, retry_after=0.2, headers={"retry-after": "1"}
            )
        return "ok"

    retry = RetryPolicy(attempts=2, initial_delay=0.0, jitter=0, respect_retry_after=False)
    async with Runtime() as rt:
        limiter = await RateLimiter.start(rt, {"d": DeploymentLimits(rpm=600)}, environ={})
        pool = await ProviderPool.start(
            rt, Scripted(answer), name="d", size=2, retry=retry, hooks=[RateLimitHook(limiter)]
        )
        other = await admit(limiter, "other")  # another deployment is not paused
        assert other.admitted
        result = await pool.complete(REQUEST)
        assert result.content == "ok"
        summary = (await stats(limiter)).deployments["d"]
        assert summary.rate_limited == 1
        assert summary.waited == 1  # the retry queued behind the pause
        assert summary.in_flight == 0
    # The retry was admitted only when the pause ended (not an assertion on speed).
    assert seen[1] - seen[0] >= 0.2 - 1e-3


async def test_usage_and_headers_are_reconciled() -> None:
    headers = {
        "x-ratelimit-limit-tokens": "6000",
        "x-ratelimit-remaining-tokens": "100",
        "x-ratelimit-reset-tokens": "59s",
        "x-ratelimit-limit-requests": "30",
    }
    result = CompletionResult(content="ok", usage=Usage.of(5, 20), rate_limit=headers, model="m")
    async with Runtime() as rt:
        limiter = await RateLimiter.start(rt, environ={})
        pool = await ProviderPool.start(
            rt, Scripted([result, result]), name="d", size=1, hooks=[RateLimitHook(limiter)]
        )
        await pool.complete(REQUEST)
        summary = (await stats(limiter)).deployments["d"]
        # A deployment configured nowhere learns its quota from the server.
        assert (summary.limits.tpm, summary.limits.rpm) == (6_000, 30)
        await limiter.ask(Configure(deployment="d", limits=DeploymentLimits(tpm=1_000)))
        summary = (await stats(limiter)).deployments["d"]
        assert summary.limits.tpm == 1_000


async def test_a_stream_reserves_and_reconciles() -> None:
    async with Runtime() as rt:
        limiter = await RateLimiter.start(rt, {"d": DeploymentLimits(tpm=6_000)}, environ={})
        pool = await ProviderPool.start(
            rt, Scripted(["streamed answer"]), name="d", size=1, hooks=[RateLimitHook(limiter)]
        )
        events = [event async for event in pool.stream(REQUEST)]
        assert events[-1].result is not None
        summary = (await stats(limiter)).deployments["d"]
        assert (summary.admitted, summary.in_flight) == (1, 0)
        assert summary.tokens_utilisation is not None
        assert 0 < summary.tokens_utilisation < 1


async def test_learned_output_length_is_reserved_without_max_tokens() -> None:
    long_answer = CompletionResult(content="x", usage=Usage.of(1, 900))
    async with Runtime() as rt:
        limiter = await RateLimiter.start(rt, {"d": DeploymentLimits(tpm=60_000)}, environ={})
        pool = await ProviderPool.start(
            rt,
            Scripted([long_answer, long_answer]),
            name="d",
            size=1,
            hooks=[RateLimitHook(limiter, estimator=lambda r: 1)],
        )
        request = CompletionRequest(messages=[Message.user("x")])
        await pool.complete(request)
        ticket = Ticket("d", prompt_tokens=1)
        assert await limiter.ask(Acquire(ticket=ticket))
        assert ticket.reservation is not None
        assert ticket.reservation.tokens == 1 + 900
