"""Provider workers and pools: retries inside the deadline, per-attempt timeouts, hooks,
streaming, cancellation, failover; against Scripted and the simulator over real HTTP."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import pytest

from limelight.actors import Attempt, ModelGroup, ProviderPool, is_retryable_provider_error
from limelight.actors._provider_worker import MIN_COOLDOWN
from limelight.errors import (
    ActorCrashed,
    ActorStopped,
    AskTimeout,
    BadRequest,
    DeadlineExceeded,
    ProviderConnectionError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from limelight.providers import OpenAICompatible, Scripted, SimulatedConfig
from limelight.providers._http import retry_after_seconds
from limelight.providers._scripted import Reply
from limelight.runtime import RetryPolicy, Runtime
from limelight.schemas import CompletionRequest, CompletionResult, Message, StreamEventType
from limelight.sim import serve_in_thread_async

pytestmark = pytest.mark.anyio

REQUEST = CompletionRequest(messages=[Message.user("hello")])
FAST_RETRY = RetryPolicy(
    attempts=3,
    initial_delay=0.001,
    jitter=0,
    retry_on=lambda exc: type(exc).retryable if hasattr(type(exc), "retryable") else False,
)


def rate_limited(after: float = 0.001) -> RateLimited:
    return RateLimited("slow down", status_code=429, retry_after=after)


class RecordingHook:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str]] = []

    async def before(self, attempt: Attempt) -> None:
        self.calls.append(("before", attempt.number, attempt.deployment))

    async def after(
        self, attempt: Attempt, result: CompletionResult | None, error: BaseException | None
    ) -> None:
        outcome = type(error).__name__ if error else (result.content if result else "?")
        self.calls.append(("after", attempt.number, str(outcome)))


async def test_complete_through_a_pool() -> None:
    async with Runtime() as rt:
        pool = await ProviderPool.start(rt, Scripted(["hi there"]), name="scripted", size=2)
        result = await pool.complete(REQUEST)
        assert result.content == "hi there"
        assert rt.lookup("/scripted/worker-2").alive
        assert pool.idle() == 2


async def test_retries_retryable_errors_and_calls_hooks_per_attempt() -> None:
    hook = RecordingHook()
    provider = Scripted([rate_limited(), ServerError("oops", status_code=503), "finally"])
    async with Runtime() as rt:
        pool = await ProviderPool.start(
            rt, provider, name="p", size=1, retry=FAST_RETRY, hooks=[hook]
        )
        result = await pool.complete(REQUEST)
    assert result.content == "finally"
    assert hook.calls == [
        ("before", 1, "p"),
        ("after", 1, "RateLimited"),
        ("before", 2, "p"),
        ("after", 2, "ServerError"),
        ("before", 3, "p"),
        ("after", 3, "finally"),
    ]


async def test_non_retryable_error_is_raised_at_once_and_worker_survives() -> None:
    provider = Scripted([BadRequest("bad", status_code=400), "ok"])
    async with Runtime() as rt:
        pool = await ProviderPool.start(rt, provider, name="p", size=1, retry=FAST_RETRY)
        with pytest.raises(BadRequest):
            await pool.complete(REQUEST)
        assert (await pool.complete(REQUEST)).content == "ok"
        assert rt.lookup("/p/worker-1").statistics().restarts == 0


async def test_attempts_exhausted_raises_the_last_error() -> None:
    provider = Scripted([ServerError("down", status_code=500)] * 3)
    async with Runtime() as rt:
        pool = await ProviderPool.start(rt, provider, name="p", size=1, retry=FAST_RETRY)
        with pytest.raises(ServerError) as info:
            await pool.complete(REQUEST)
        assert "gave up after 3 attempts" in info.value.__notes__


async def test_per_attempt_timeout_then_success() -> None:
    provider = Scripted([Reply(text="late", delay=5.0), "on time"])
    hook = RecordingHook()
    async with Runtime() as rt:
        pool = await ProviderPool.start(
            rt, provider, name="p", size=1, retry=FAST_RETRY, attempt_timeout=0.05, hooks=[hook]
        )
        assert (await pool.complete(REQUEST)).content == "on time"
    assert ("after", 1, "ProviderTimeout") in hook.calls


async def test_no_retry_sleeps_past_the_deadline() -> None:
    provider = Scripted([rate_limited(after=30.0), "never"])
    async with Runtime() as rt:
        pool = await ProviderPool.start(rt, provider, name="p", size=1, retry=FAST_RETRY)
        with anyio.fail_after(5):  # would be 30 s if the retry slept
            with pytest.raises(DeadlineExceeded) as info:
                await pool.complete(REQUEST, timeout=1.0)
        assert isinstance(info.value.__cause__, RateLimited)


async def test_caller_timeout_cancels_the_call() -> None:
    cancelled = anyio.Event()

    async def slow(request: CompletionRequest) -> str:
        try:
            await anyio.sleep(10)
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        return "never"

    async with Runtime() as rt:
        pool = await ProviderPool.start(rt, Scripted(slow), name="p", size=1)
        with pytest.raises(AskTimeout):
            await pool.complete(REQUEST, timeout=0.05)
        with anyio.fail_after(5):
            await cancelled.wait()
        assert pool.idle() == 1  # the worker came back to the pool


async def test_stream_through_a_pool() -> None:
    async with Runtime() as rt:
        pool = await ProviderPool.start(rt, Scripted(["one two three"]), name="p", size=1)
        events = [e async for e in pool.stream(REQUEST)]
    tokens = "".join(e.content or "" for e in events if e.type is StreamEventType.TOKEN)
    assert tokens == "one two three"
    assert events[-1].type is StreamEventType.DONE
    assert events[-1].result is not None
    assert events[-1].result.content == "one two three"


async def test_stream_retries_before_the_first_event_only() -> None:
    provider = Scripted([rate_limited(), "streamed fine"])
    async with Runtime() as rt:
        pool = await ProviderPool.start(rt, provider, name="p", size=1, retry=FAST_RETRY)
        events = [e async for e in pool.stream(REQUEST)]
    assert events[-1].result is not None
    assert events[-1].result.content == "streamed fine"


async def test_pool_size_bounds_concurrency() -> None:
    running = 0
    peak = 0

    async def work(request: CompletionRequest) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.01)
        running -= 1
        return "done"

    async with Runtime() as rt:
        pool = await ProviderPool.start(rt, Scripted(work), name="p", size=3)
        async with anyio.create_task_group() as tg:
            for _ in range(12):
                tg.start_soon(pool.complete, REQUEST)
    assert peak == 3


async def test_model_group_fails_over_and_cools_down() -> None:
    down = Scripted(lambda request: rate_limited(after=60.0))
    up = Scripted(lambda request: "from b")
    async with Runtime() as rt:
        a = await ProviderPool.start(rt, down, name="a", size=1, retry=FAST_RETRY)
        b = await ProviderPool.start(rt, up, name="b", size=1, retry=FAST_RETRY)
        group = ModelGroup([a, b])
        assert (await group.complete(REQUEST)).content == "from b"
        assert a.cooling_down()
        requests_to_a = len(down.requests)
        assert (await group.complete(REQUEST)).content == "from b"
        assert len(down.requests) == requests_to_a  # skipped while cooling down


async def test_model_group_raises_request_errors_at_once() -> None:
    bad = Scripted(lambda request: BadRequest("bad", status_code=400))
    other = Scripted(lambda request: "unused")
    async with Runtime() as rt:
        a = await ProviderPool.start(rt, bad, name="a", size=1)
        b = await ProviderPool.start(rt, other, name="b", size=1)
        with pytest.raises(BadRequest):
            await ModelGroup([a, b]).complete(REQUEST)
        assert other.requests == []


# -- against the simulator over real HTTP -------------------------------------------------


@pytest.fixture
async def sim_url() -> AsyncIterator[str]:
    async with serve_in_thread_async(SimulatedConfig(ttft=0.0, seed=7)) as url:
        yield url


async def test_simulator_over_http_complete_and_stream(sim_url: str) -> None:
    async with Runtime() as rt:
        pool = await ProviderPool.start(
            rt, OpenAICompatible(sim_url), name="sim", size=4, model="sim-model"
        )
        results = []
        async with anyio.create_task_group() as tg:

            async def one() -> None:
                results.append(await pool.complete(REQUEST, timeout=10))

            for _ in range(20):
                tg.start_soon(one)
        assert len(results) == 20
        assert all(r.content and r.usage for r in results)
        events = [e async for e in pool.stream(REQUEST, timeout=10)]
        assert events[-1].type is StreamEventType.DONE


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("server_error_rate", ServerError),
        ("rate_limit_error_rate", RateLimited),
        ("connection_reset_rate", ProviderConnectionError),
    ],
)
async def test_simulator_faults_end_in_typed_errors_within_the_deadline(
    fault: str, error: type[Exception]
) -> None:
    config = SimulatedConfig(ttft=0.0, seed=1, fault_retry_after=0.01, **{fault: 1.0})
    async with serve_in_thread_async(config) as url, Runtime() as rt:
        pool = await ProviderPool.start(
            rt, OpenAICompatible(url), name="sim", size=2, retry=FAST_RETRY
        )
        with anyio.fail_after(10):
            with pytest.raises((error, DeadlineExceeded)):
                await pool.complete(REQUEST, timeout=5)


async def test_a_refusing_hook_still_lets_earlier_hooks_settle() -> None:
    from limelight.errors import ConfigError

    class Refuses:
        async def before(self, attempt: Attempt) -> None:
            raise ConfigError("refused by the second hook")

        async def after(
            self, attempt: Attempt, result: CompletionResult | None, error: BaseException | None
        ) -> None:
            raise AssertionError("a hook whose before raised gets no after")

    first = RecordingHook()
    async with Runtime() as rt:
        pool = await ProviderPool.start(
            rt, Scripted(["never"]), name="p", size=1, hooks=[first, Refuses()]
        )
        with pytest.raises(ConfigError, match="refused"):
            await pool.complete(REQUEST)
        # The first hook settled its attempt; the worker answered instead of crashing.
        assert first.calls == [("before", 1, "p"), ("after", 1, "ConfigError")]
        assert rt.lookup("/p/worker-1").statistics().restarts == 0


# -- a server's delay of 0 never disables backoff ------------------------------------------


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "0"}, 0.0),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after-ms": "250", "retry-after": "1"}, 0.25),
        ({"retry-after-ms": "nan", "retry-after": "2"}, 2.0),
        ({"retry-after": "inf"}, None),
        ({}, None),
    ],
)
def test_retry_after_headers_parse_zero_as_zero(
    headers: dict[str, str], seconds: float | None
) -> None:
    """0 is a delay the server gave (the floor applies to it), not a missing one."""
    assert retry_after_seconds(headers) == seconds


class _Refuses(BaseHTTPRequestHandler):
    """Answers every POST 429 with the server's ``header: 0``; records when each came."""

    header = "retry-after"
    posts: list[float]

    def do_POST(self) -> None:
        self.posts.append(time.monotonic())
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps({"error": {"message": "slow down", "type": "requests"}}).encode()
        self.send_response(429)
        self.send_header(self.header, "0")
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def refusing_server(header: str) -> Iterator[tuple[str, list[float]]]:
    posts: list[float] = []
    handler = type("Handler", (_Refuses,), {"header": header, "posts": posts})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", posts
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("header", ["retry-after", "retry-after-ms"])
@pytest.mark.parametrize("call", ["complete", "stream"])
async def test_a_zero_server_delay_over_http_still_backs_off(header: str, call: str) -> None:
    backoff = 0.05
    policy = RetryPolicy(
        attempts=3, initial_delay=backoff, jitter=0, retry_on=is_retryable_provider_error
    )
    with refusing_server(header) as (url, posts):
        async with Runtime() as rt:
            pool = await ProviderPool.start(
                rt, OpenAICompatible(url), name="h", size=1, retry=policy
            )
            with pytest.raises(RateLimited) as info:
                if call == "complete":
                    await pool.complete(REQUEST, timeout=10)
                else:
                    async for _ in pool.stream(REQUEST, timeout=10):
                        pass
    assert info.value.retry_after == 0.0
    assert len(posts) == 3
    # The retries waited their backoff (0.05 s, then 0.1 s), not the server's 0.
    first, second = (b - a for a, b in itertools.pairwise(posts))
    assert first >= backoff
    assert second >= 2 * backoff


async def test_a_429_with_retry_after_zero_still_cools_the_deployment_down() -> None:
    down = Scripted(lambda request: rate_limited(after=0.0))
    up = Scripted(lambda request: "from b")
    async with Runtime() as rt:
        a = await ProviderPool.start(rt, down, name="a", size=1, retry=RetryPolicy(attempts=1))
        b = await ProviderPool.start(rt, up, name="b", size=1)
        before = anyio.current_time()
        assert (await ModelGroup([a, b]).complete(REQUEST)).content == "from b"
        assert a.cooling_down()
        assert a.cooldown_until >= before + MIN_COOLDOWN


# -- a leased worker runs the call in the caller's task -------------------------------------


async def test_stopping_the_pool_interrupts_a_call_in_flight() -> None:
    started = anyio.Event()

    async def slow(request: CompletionRequest) -> str:
        started.set()
        await anyio.sleep(10)
        return "never"

    stopped: list[BaseException] = []

    async def call(pool: ProviderPool) -> None:
        try:
            await pool.complete(REQUEST)
        except ActorStopped as exc:
            stopped.append(exc)

    async with Runtime() as rt:
        pool = await ProviderPool.start(rt, Scripted(slow), name="p", size=1)
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call, pool)
                await started.wait()
                await pool.stop()
    assert len(stopped) == 1
    assert "actor /p/worker-1 was stopped while handling Complete" in str(stopped[0])


async def test_stopping_the_pool_ends_a_stream_in_flight() -> None:
    provider = Scripted(["one two three four five"], token_delay=0.05)
    async with Runtime() as rt:
        pool = await ProviderPool.start(rt, provider, name="p", size=1)
        tokens: list[str | None] = []
        with anyio.fail_after(5), pytest.raises(ActorStopped, match="while handling Stream"):
            async for event in pool.stream(REQUEST):
                tokens.append(event.content)
                if len(tokens) == 2:
                    await pool.stop()
        assert len(tokens) == 2


async def test_a_pool_reads_the_price_lists_at_its_start_not_at_its_first_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first cost lookup reads the price lists (~150 ms): on the event loop, in the middle
    # of a load, it would hold up every call near its deadline.
    from limelight import _models

    loaded: list[bool] = []

    def in_a_thread() -> None:
        loaded.append(threading.current_thread() is not threading.main_thread())

    monkeypatch.setattr("limelight.actors._provider_worker.load_price_lists", in_a_thread)
    async with Runtime() as rt:
        await ProviderPool.start(rt, Scripted(["hi"]), name="p", size=1)
        assert loaded == [True]
    _models.load_price_lists()  # the real one: both lists read, then cached
    assert _models.litellm_cost_map.cache_info().currsize == 1


async def test_a_bug_in_a_call_is_a_crash_of_its_worker() -> None:
    def buggy(request: CompletionRequest) -> str:
        raise KeyError("a bug")

    async with Runtime() as rt:
        pool = await ProviderPool.start(rt, Scripted(buggy), name="p", size=1, retry=FAST_RETRY)
        with pytest.raises(ActorCrashed, match="crashed handling Complete") as info:
            await pool.complete(REQUEST)
        assert isinstance(info.value.__cause__, KeyError)
        assert info.value.path == "/p/worker-1"
        worker = rt.lookup("/p/worker-1")
        with anyio.fail_after(5):  # the supervisor restarts it
            while worker.statistics().restarts == 0:
                await anyio.sleep(0.01)
        assert pool.idle() == 1
        with pytest.raises(ActorCrashed):  # and it takes calls again
            await pool.complete(REQUEST)


async def test_a_call_timeout_covers_the_answer_and_names_the_worker() -> None:
    provider = Scripted([Reply(text="late", delay=5.0)])
    async with Runtime() as rt:
        pool = await ProviderPool.start(rt, provider, name="p", size=1)
        with anyio.fail_after(5), pytest.raises(AskTimeout, match="/p/worker-1") as info:
            await pool.complete(REQUEST, timeout=0.1)
        assert info.value.path == "/p/worker-1"
        assert pool.idle() == 1


async def test_a_stream_left_early_gives_its_worker_back_and_settles_its_hooks() -> None:
    hook = RecordingHook()
    provider = Scripted(["one two three four"], token_delay=0.01)
    async with Runtime() as rt:
        pool = await ProviderPool.start(rt, provider, name="p", size=1, hooks=[hook])
        stream = pool.stream(REQUEST)
        with anyio.fail_after(5):
            first = await stream.__anext__()
        assert first.content == "one"
        await stream.aclose()  # type: ignore[attr-defined]
        assert pool.idle() == 1
    assert hook.calls == [("before", 1, "p"), ("after", 1, "?")]


# -- over HTTP, the backend bounds the attempt itself ---------------------------------------


class _Stalls(BaseHTTPRequestHandler):
    """Answers a completion after ``delay`` s; streams one chunk, then stalls ``delay`` s."""

    delay = 2.0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        if body.get("stream"):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            chunk = {"id": "c", "choices": [{"index": 0, "delta": {"content": "first"}}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
            time.sleep(self.delay)
            return
        time.sleep(self.delay)
        self.send_response(500)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def stalling_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stalls)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_the_attempt_timeout_bounds_an_http_answer() -> None:
    hook = RecordingHook()
    with stalling_server() as url:
        async with Runtime() as rt:
            pool = await ProviderPool.start(
                rt,
                OpenAICompatible(url),
                name="h",
                size=1,
                retry=RetryPolicy(attempts=1),
                attempt_timeout=0.2,
                hooks=[hook],
            )
            started = anyio.current_time()
            with anyio.fail_after(5), pytest.raises(ProviderTimeout, match=r"0\.2 s"):
                await pool.complete(REQUEST)
            assert anyio.current_time() - started < 1.5
    assert hook.calls == [("before", 1, "h"), ("after", 1, "ProviderTimeout")]


async def test_the_attempt_timeout_bounds_each_wait_of_an_http_stream() -> None:
    with stalling_server() as url:
        async with Runtime() as rt:
            pool = await ProviderPool.start(
                rt,
                OpenAICompatible(url),
                name="h",
                size=1,
                retry=RetryPolicy(attempts=1),
                attempt_timeout=0.2,
            )
            tokens: list[str | None] = []
            started = anyio.current_time()
            with anyio.fail_after(5), pytest.raises(ProviderTimeout):
                async for event in pool.stream(REQUEST):
                    tokens.append(event.content)
            assert anyio.current_time() - started < 1.5
            assert tokens == ["first"]
            assert pool.idle() == 1


@pytest.mark.parametrize("call", ["complete", "stream"])
async def test_stopping_the_pool_ends_an_http_call_in_flight(call: str) -> None:
    """Where the backend bounds its own waits, the pool's closing it ends the call."""
    with stalling_server() as url:
        async with Runtime() as rt:
            pool = await ProviderPool.start(rt, OpenAICompatible(url), name="h", size=1)
            stopped: list[BaseException] = []

            async def run() -> None:
                try:
                    if call == "complete":
                        await pool.complete(REQUEST)
                    else:
                        async for _ in pool.stream(REQUEST):
                            pass
                except ActorStopped as exc:
                    stopped.append(exc)

            with anyio.fail_after(1.5):  # the server would answer after 2 s
                async with anyio.create_task_group() as tg:
                    tg.start_soon(run)
                    await anyio.sleep(0.2)
                    await pool.stop()
            assert len(stopped) == 1
            assert "/h/worker-1 was stopped while handling" in str(stopped[0])
