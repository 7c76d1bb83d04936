"""The ToolExecutor actor: parallel calls, the concurrency limit, per-tool timeouts, and
results (never crashes) for everything that goes wrong."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from limelight.errors import ConfigError
from limelight.runtime import Runtime
from limelight.schemas import ToolCall
from limelight.tools import RunTools, ToolExecutor, ToolRegistry, ToolResult, tool

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


class BrokenRegistry(ToolRegistry):
    async def execute(self, name: str, arguments: str | bytes, **kwargs: object) -> ToolResult:
        raise RuntimeError("registry bug")


async def test_a_failing_registry_still_gives_error_results() -> None:
    async with Runtime() as rt:
        executor = await rt.spawn(ToolExecutor(BrokenRegistry()), name="tools")
        results = await executor.ask(RunTools(calls=[call("a"), call("b")]), timeout=10)
    assert [r.is_error for r in results] == [True, True]
    assert "RuntimeError: registry bug" in results[0].content


def test_bad_executor_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="max_concurrency"):
        ToolExecutor([], max_concurrency=0)
    with pytest.raises(ConfigError, match="timeout"):
        ToolExecutor([], timeout=-1)
