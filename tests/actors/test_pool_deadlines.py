"""A caller's deadline covers every wait on its behalf (issue #16, point 3): the wait for a
free worker, the rate limiter, retries and their backoff. Under load (50 callers on 4
workers; 200 callers with faults mixed) no call ends later than its deadline plus 50 ms, and
nothing leaks when a waiter leaves.

trio runs on a MockClock (virtual time: a call's end is exact); asyncio in real time.
"""

from __future__ import annotations

import functools

import anyio
import pytest
from trio.testing import MockClock

from limelight.actors import Attempt, ModelGroup, ProviderPool
from limelight.errors import AskTimeout, ConfigError, DeadlineExceeded
from limelight.providers import Scripted
from limelight.runtime import Runtime
from limelight.schemas import CompletionRequest, CompletionResult, Message

from ._deadline_load import SLACK, busy_pool, fault_mix

pytestmark = pytest.mark.anyio

REQUEST = CompletionRequest(messages=[Message.user("hello")])


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> object:
    """asyncio in real time; trio on a MockClock that jumps ahead whenever every task waits."""
    if request.param == "trio":
        return ("trio", {"clock": MockClock(autojump_threshold=0)})
    return request.param


@pytest.fixture
def virtual_time(anyio_backend: object) -> bool:
    return isinstance(anyio_backend, tuple)


def ends_by(deadline: float) -> None:
    """The deadline contract: the call has ended no later than ``deadline`` + 50 ms."""
    late = anyio.current_time() - deadline
    assert late <= SLACK, f"ended {late * 1000:.1f} ms after its deadline"


# -- under load ----------------------------------------------------------------------------


async def test_50_callers_on_4_workers_end_by_their_deadlines() -> None:
    lateness = await busy_pool(callers=50, calls=4, workers=4)
    assert lateness.calls == 200
    assert lateness.late == 0, (str(lateness), lateness.late_calls[:5])
    # The load is real: most calls ran out of time, many of them waiting for a worker.
    assert lateness.outcomes["AskTimeout"] > 100
    assert lateness.worst > -SLACK  # some call ran up to its deadline


async def test_a_200_caller_fault_mix_ends_by_its_deadlines() -> None:
    # 429s with Retry-After 0 and 0.4 s, 5xx, dropped connections, truncated answers, attempt
    # timeouts, slow answers, a rate limit; pool and group calls, streams, timeout= and
    # enclosing deadlines. The scenario checks itself that nothing leaked and no worker crashed.
    lateness = await fault_mix(callers=200, calls=3)
    assert lateness.calls == 600
    assert lateness.late == 0, (str(lateness), lateness.late_calls[:5])
    expected = {
        "ok",
        "AskTimeout",
        "DeadlineExceeded",
        "RateLimitTimeout",
        "TimeoutError",
        "ServerError",
        "RateLimited",
        "ProviderConnectionError",
        "ProviderTimeout",
        "BadResponse",
    }
    assert set(lateness.outcomes) <= expected, lateness.outcomes
    assert lateness.outcomes["ok"] > 0
    assert lateness.outcomes["AskTimeout"] + lateness.outcomes["DeadlineExceeded"] > 0


# -- waiting for a free worker -------------------------------------------------------------


def holding(release: anyio.Event) -> Scripted:
    """A provider whose answers wait until ``release`` is set."""

    async def answer(request: CompletionRequest) -> str:
        await release.wait()
        return "done"

    return Scripted(answer)


async def test_the_wait_for_a_free_worker_ends_at_the_timeout_and_says_why(
    virtual_time: bool,
) -> None:
    release = anyio.Event()
    async with Runtime() as rt:
        pool = await ProviderPool.start(rt, holding(release), name="p", size=1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.complete, REQUEST)
            await anyio.sleep(0.01)  # the worker is busy
            timeout = 0.2
            deadline = anyio.current_time() + timeout
            with pytest.raises(AskTimeout) as info:
                await pool.complete(REQUEST, timeout=timeout)
            ends_by(deadline)
            if virtual_time:
                assert anyio.current_time() == deadline
            release.set()
        assert pool.idle() == 1
        assert (await pool.complete(REQUEST, timeout=1)).content == "done"
    assert "s for a free worker of pool p (1 busy, 0 queued)" in str(info.value)
    assert "timeout of 0.2 s passed; the call was not sent" in str(info.value)
    assert info.value.path == "/p"


async def test_a_stream_waits_for_a_worker_within_its_timeout() -> None:
    release = anyio.Event()
    async with Runtime() as rt:
        pool = await ProviderPool.start(rt, holding(release), name="p", size=1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.complete, REQUEST)
            await anyio.sleep(0.01)
            deadline = anyio.current_time() + 0.2
            with pytest.raises(AskTimeout, match="for a free worker of pool p"):
                async for _ in pool.stream(REQUEST, timeout=0.2):
                    pass
            ends_by(deadline)
            release.set()
        assert pool.idle() == 1


async def test_the_time_spent_waiting_for_a_worker_counts_against_the_answer(
    virtual_time: bool,
) -> None:
    """A caller that got a worker late has only what is left of its timeout for the call."""
    release = anyio.Event()

    async def answer(request: CompletionRequest) -> str:
        if request.metadata.get("hold"):
            await release.wait()
        else:
            await anyio.sleep(0.3)
        return "done"

    async with Runtime() as rt:
        pool = await ProviderPool.start(rt, Scripted(answer), name="p", size=1)
        held = CompletionRequest(messages=REQUEST.messages, metadata={"hold": "yes"})
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.complete, held)
            await anyio.sleep(0.01)
            deadline = anyio.current_time() + 0.4
            tg.start_soon(_release_after, release, 0.2)
            # A worker frees at +0.2 s; the answer takes 0.3 s: past the 0.4 s timeout.
            with pytest.raises(AskTimeout) as info:
                await pool.complete(REQUEST, timeout=0.4)
            ends_by(deadline)
            if virtual_time:
                assert anyio.current_time() == pytest.approx(deadline)
        assert pool.idle() == 1
    assert "/p/worker-1" in str(info.value)
    assert any("waiting for a free worker of pool p" in note for note in info.value.__notes__)


async def _release_after(event: anyio.Event, delay: float) -> None:
    await anyio.sleep(delay)
    event.set()


@pytest.mark.parametrize("timeout", [None, 5.0])
async def test_a_waiter_cancelled_as_it_is_handed_a_worker_passes_it_on(
    timeout: float | None,
) -> None:
    release = anyio.Event()
    async with Runtime() as rt:
        pool = await ProviderPool.start(rt, holding(release), name="p", size=1)
        waiter_scope = anyio.CancelScope()
        results: list[str] = []

        async def waiter() -> None:
            with waiter_scope:
                await pool.complete(REQUEST, timeout=timeout)
                results.append("waiter")

        async def holder() -> None:
            await pool.complete(REQUEST)
            # The release handed the worker to the waiter, which has not run yet: cancel it
            # now. It must pass the worker on, not keep it.
            waiter_scope.cancel()

        async def third() -> None:
            results.append((await pool.complete(REQUEST, timeout=timeout)).content or "")

        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
            await anyio.sleep(0.01)
            tg.start_soon(waiter)
            await anyio.sleep(0.01)
            tg.start_soon(third)
            await anyio.sleep(0.01)
            release.set()
        assert results == ["done"]  # the third caller got the worker the waiter was handed
        assert pool.idle() == 1


async def test_waiters_cancelled_in_line_leak_no_worker() -> None:
    release = anyio.Event()
    async with Runtime() as rt:
        pool = await ProviderPool.start(rt, holding(release), name="p", size=2)
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(pool.complete, REQUEST)
            await anyio.sleep(0.01)
            with anyio.move_on_after(0.1):
                async with anyio.create_task_group() as waiters:
                    for i in range(10):
                        call = functools.partial(pool.complete, timeout=10.0 if i % 2 else None)
                        waiters.start_soon(call, REQUEST)
            release.set()
        assert pool.idle() == 2
        assert pool._free.waiting == 0
        assert (await pool.complete(REQUEST, timeout=1)).content == "done"


# -- ModelGroup ----------------------------------------------------------------------------


async def test_a_model_group_timeout_covers_every_deployment(virtual_time: bool) -> None:
    release = anyio.Event()
    async with Runtime() as rt:
        a = await ProviderPool.start(rt, holding(release), name="a", size=1)
        b = await ProviderPool.start(rt, holding(release), name="b", size=1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(a.complete, REQUEST)
            tg.start_soon(b.complete, REQUEST)
            await anyio.sleep(0.01)
            deadline = anyio.current_time() + 0.3
            with pytest.raises(DeadlineExceeded) as info:
                await ModelGroup([a, b]).complete(REQUEST, timeout=0.3)
            ends_by(deadline)
            if virtual_time:
                assert anyio.current_time() == pytest.approx(deadline)
            release.set()
    error = info.value
    assert isinstance(error, TimeoutError)  # what ModelGroup's timeout raised before
    assert "model group (a, b): no answer within the timeout of 0.3 s" in str(error)
    assert "for a free worker of pool a" in str(error)
    assert isinstance(error.__cause__, AskTimeout)


# -- the stream path's hooks ----------------------------------------------------------------


async def test_a_hook_refusing_a_stream_is_an_error_not_a_worker_crash() -> None:
    class Refuses:
        async def before(self, attempt: Attempt) -> None:
            raise ConfigError("refused")

        async def after(
            self, attempt: Attempt, result: CompletionResult | None, error: BaseException | None
        ) -> None:
            raise AssertionError("a hook whose before raised gets no after")

    async with Runtime() as rt:
        pool = await ProviderPool.start(
            rt, Scripted(["never"]), name="p", size=1, hooks=[Refuses()]
        )
        with pytest.raises(ConfigError, match="refused"):
            async for _ in pool.stream(REQUEST, timeout=1):
                pass
        assert rt.lookup("/p/worker-1").statistics().restarts == 0
        assert pool.idle() == 1
