"""The ToolExecutor actor: parallel calls, the concurrency limit, per-tool timeouts, and
results (never crashes) for everything that goes wrong."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest
import sniffio

from limelight._tools import PreparedCall
from limelight.errors import ActorCrashed, ActorStopped, ConfigError
from limelight.runtime import Runtime
from limelight.schemas import ToolCall
from limelight.tools import RunTools, Tool, ToolExecutor, ToolRegistry, ToolResult, tool

pytestmark = pytest.mark.anyio


def call(name: str, arguments: str = "{}", id: str | None = None) -> ToolCall:
    return ToolCall(id=id or f"id-{name}", name=name, arguments=arguments)


def handshake_tools() -> list[object]:
    """Two tools that can only finish when they run at the same time."""
    a_started, b_started = anyio.Event(), anyio.Event()

    @tool(timeout=0.5)
    async def ping() -> str:
        a_started.set()
        await b_started.wait()
        return "ping done"

    @tool(timeout=0.5)
    async def pong() -> str:
        b_started.set()
        await a_started.wait()
        return "pong done"

    return [ping, pong]


async def test_calls_of_one_request_run_concurrently_and_reply_in_call_order() -> None:
    async with Runtime() as rt:
        executor = await rt.spawn(ToolExecutor(handshake_tools()), name="tools")
        results = await executor.ask(RunTools(calls=[call("pong"), call("ping")]), timeout=10)
    assert [(r.name, r.content, r.is_error) for r in results] == [
        ("pong", "pong done", False),
        ("ping", "ping done", False),
    ]


async def test_sequential_execution_runs_one_call_at_a_time() -> None:
    async with Runtime() as rt:
        executor = await rt.spawn(ToolExecutor(handshake_tools()), name="tools")
        results = await executor.ask(
            RunTools(calls=[call("ping"), call("pong")], parallel=False), timeout=10
        )
    # ping waits for pong, which has not started: it times out; pong then finds ping's
    # event set and finishes.
    assert results[0].is_error
    assert "timed out" in results[0].content
    assert results[1].content == "pong done"


async def test_the_concurrency_limit_holds() -> None:
    running = 0
    peak = 0

    @tool
    async def work(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        running -= 1
        return n

    async with Runtime() as rt:
        executor = await rt.spawn(ToolExecutor([work], max_concurrency=2), name="tools")
        calls = [call("work", f'{{"n": {i}}}', id=str(i)) for i in range(6)]
        results = await executor.ask(RunTools(calls=calls), timeout=10)
    assert [r.content for r in results] == [str(i) for i in range(6)]
    assert peak == 2


async def test_per_tool_timeout_wins_over_the_executor_default() -> None:
    @tool(timeout=0.05)
    async def quick_limit() -> str:
        await anyio.sleep_forever()
        return ""

    @tool
    async def default_limit() -> str:
        await anyio.sleep_forever()
        return ""

    async with Runtime() as rt:
        executor = await rt.spawn(
            ToolExecutor([quick_limit, default_limit], timeout=0.1), name="tools"
        )
        results = await executor.ask(
            RunTools(calls=[call("quick_limit"), call("default_limit")]), timeout=10
        )
    assert "timed out after 0.05 s" in results[0].content
    assert "timed out after 0.1 s" in results[1].content


@pytest.mark.parametrize("max_concurrency", [8, 1])
async def test_calls_sharing_a_limit_time_out_alone(max_concurrency: int) -> None:
    """Calls with the same limit share one deadline when none waits for a slot (8), and
    keep one each when they queue (1): either way only the slow call times out, and a
    queued call's limit starts when it gets its slot."""

    @tool
    async def nap(seconds: float) -> str:
        await anyio.sleep(seconds)
        return f"slept {seconds}"

    async with Runtime() as rt:
        executor = await rt.spawn(
            ToolExecutor([nap], max_concurrency=max_concurrency, timeout=0.3), name="tools"
        )
        calls = [
            call("nap", '{"seconds": 0.2}', id="a"),
            call("nap", '{"seconds": 60}', id="b"),
            call("nap", '{"seconds": 0.2}', id="c"),
        ]
        results = await executor.ask(RunTools(calls=calls), timeout=10)
    assert [(r.tool_call_id, r.is_error) for r in results] == [
        ("a", False),
        ("b", True),
        ("c", False),
    ]
    assert "timed out after 0.3 s" in results[1].content


async def test_cancel_running_reports_cancelled_not_timed_out() -> None:
    started = 0

    @tool
    async def wait() -> str:
        nonlocal started
        started += 1
        await anyio.sleep_forever()
        return ""

    async with Runtime() as rt:
        actor = ToolExecutor([wait], timeout=60)
        executor = await rt.spawn(actor, name="tools")
        async with anyio.create_task_group() as tg:

            async def ask() -> None:
                nonlocal results
                results = await executor.ask(
                    RunTools(calls=[call("wait", id="1"), call("wait", id="2")]), timeout=10
                )

            results: list[ToolResult] = []
            tg.start_soon(ask)
            while started < 2:
                await anyio.sleep(0.01)
            actor.cancel_running()
    assert [r.is_error for r in results] == [True, True]
    assert all("was cancelled before it finished" in r.content for r in results)


async def test_bad_calls_are_results_and_the_executor_stays_up() -> None:
    @tool
    async def fine(x: int) -> int:
        return x

    async with Runtime() as rt:
        executor = await rt.spawn(ToolExecutor([fine]), name="tools")
        results = await executor.ask(
            RunTools(calls=[call("missing"), call("fine", "not json"), call("fine", '{"x": "1"}')]),
            timeout=10,
        )
        assert all(r.is_error for r in results)
        ok = await executor.ask(RunTools(calls=[call("fine", '{"x": 1}')]), timeout=10)
        assert ok[0].content == "1"
        assert executor.statistics().restarts == 0


async def fine(x: int) -> int:
    """Give ``x`` back.

    :param x: any integer.
    """
    return x


class BrokenRegistry(ToolRegistry):
    """Both halves of a call broken: validating it, and running it."""

    def __init__(self, broken: str) -> None:
        super().__init__([fine])
        self.broken = broken

    def prepare(self, name: str, arguments: str | bytes, **kwargs: object) -> Any:
        if self.broken == "prepare":
            raise RuntimeError("registry bug")
        return super().prepare(name, arguments, **kwargs)  # type: ignore[arg-type]

    async def run_prepared(self, call: PreparedCall, **kwargs: object) -> ToolResult:
        raise RuntimeError("registry bug")


@pytest.mark.parametrize("broken", ["prepare", "run"])
async def test_a_failing_registry_still_gives_error_results(broken: str) -> None:
    async with Runtime() as rt:
        executor = await rt.spawn(ToolExecutor(BrokenRegistry(broken)), name="tools")
        calls = [call("fine", '{"x": 1}'), call("fine", '{"x": 2}')]
        results = await executor.ask(RunTools(calls=calls), timeout=10)
        assert executor.statistics().restarts == 0
    assert [r.is_error for r in results] == [True, True]
    assert "RuntimeError: registry bug" in results[0].content
    assert [r.tool_call_id for r in results] == [c.id for c in calls]


def test_bad_executor_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="max_concurrency"):
        ToolExecutor([], max_concurrency=0)
    with pytest.raises(ConfigError, match="timeout"):
        ToolExecutor([], timeout=-1)


class LimitlessRegistry(ToolRegistry):
    """A bug outside the guarded halves: looking up a call's time limit raises."""

    def __init__(self) -> None:
        super().__init__([fine])

    def limit_for(self, *args: object, **kwargs: object) -> Any:
        raise RuntimeError("limit bug")


async def test_call_runs_in_the_callers_task_and_a_bug_crashes_the_executor() -> None:
    async with Runtime() as rt:
        actor = ToolExecutor(LimitlessRegistry())
        executor = await rt.spawn(actor, name="tools")
        with pytest.raises(ActorCrashed, match="limit bug") as caught:
            await actor.call([call("fine", '{"x": 1}')])
        assert isinstance(caught.value.cause, RuntimeError)
        # The executor crashed under its supervisor, as if it had run the calls itself.
        with anyio.fail_after(10):
            while executor.statistics().restarts == 0:
                await anyio.sleep(0.01)
        actor.registry = ToolRegistry([fine])
        results = await actor.call([call("fine", '{"x": 1}'), call("fine", '{"x": 2}')])
        assert [r.content for r in results] == ["1", "2"]


async def test_call_on_a_stopped_executor_raises_and_its_stop_cancels_the_calls() -> None:
    started = anyio.Event()

    @tool
    async def wait() -> str:
        started.set()
        await anyio.sleep_forever()
        return ""

    async with Runtime() as rt:
        actor = ToolExecutor([wait], timeout=60)
        executor = await rt.spawn(actor, name="tools")
        results: list[ToolResult] = []
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                results.extend(await actor.call([call("wait", id="1"), call("wait", id="2")]))

            tg.start_soon(run)
            with anyio.fail_after(10):
                await started.wait()
            await executor.stop()
        assert [r.is_error for r in results] == [True, True]
        assert all("was cancelled before it finished" in r.content for r in results)
        with pytest.raises(ActorStopped):
            await actor.call([call("wait")])


class Shouting(Tool):
    """A Tool whose invoke is overridden (as compatibility layers do): the executor must
    call it, not the function underneath."""

    async def invoke(self, arguments: Any, *, limiter: Any = None) -> Any:
        return str(await super().invoke(arguments, limiter=limiter)).upper()


async def test_parallel_calls_go_through_an_overridden_invoke() -> None:
    async def echo(text: str) -> str:
        """Echo.

        :param text: what to say.
        """
        return text

    async with Runtime() as rt:
        executor = await rt.spawn(ToolExecutor([Shouting(echo)]), name="tools")
        calls = [call("echo", '{"text": "a"}', "1"), call("echo", '{"text": "b"}', "2")]
        results = await executor.ask(RunTools(calls=calls), timeout=10)
    assert [r.content for r in results] == ["A", "B"]


async def test_every_parallel_call_runs_under_its_timeout() -> None:
    """Each call, the first (in the caller's task) and the others (in tasks of their own),
    sees the tool's timeout as its deadline: a nested ask or retry in it inherits it."""
    left: dict[str, float] = {}

    async def look(key: str) -> str:
        """Look a key up.

        :param key: the key.
        """
        left[key] = anyio.current_effective_deadline() - anyio.current_time()
        return key

    async with Runtime() as rt:
        executor = await rt.spawn(ToolExecutor([look], timeout=30), name="tools")
        calls = [call("look", f'{{"key": "{k}"}}', k) for k in "abc"]
        await executor.ask(RunTools(calls=calls), timeout=10)
    assert sorted(left) == ["a", "b", "c"]
    assert all(0 < s <= 30 for s in left.values()), left


async def test_a_batch_sharing_a_limit_is_timed_by_the_runtimes_scheduler() -> None:
    """On asyncio the runtime's deadline scheduler holds the batch's timer while its calls run
    (anyio arms none for the scope); on trio the batch's nursery times itself. Nothing stays
    behind afterwards."""
    timed: list[int] = []

    async with Runtime() as rt:

        async def look(key: str) -> str:
            """Look a key up.

            :param key: the key.
            """
            timed.append(len(rt._deadlines))
            return key

        executor = await rt.spawn(ToolExecutor([look], timeout=30), name="tools")
        calls = [call("look", f'{{"key": "{k}"}}', k) for k in "ab"]
        results = await executor.ask(RunTools(calls=calls))  # untimed: no ask timer
        assert [r.content for r in results] == ["a", "b"]
        assert len(rt._deadlines) == 0
    expected = 1 if sniffio.current_async_library() == "asyncio" else 0
    assert timed == [expected, expected]
