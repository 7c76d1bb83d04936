"""BackgroundRuntime: a runtime on a daemon thread for plain code; stopped cleanly, or left
running by a program that still exits."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from limelight.runtime import Actor, BackgroundRuntime, Context, RuntimeNotRunning


class Echo(Actor):
    async def handle(self, message: object, ctx: Context) -> object:
        return message


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_actors_answer_through_the_blocking_facade_until_stopped(backend: str) -> None:
    closed: list[str] = []
    background = BackgroundRuntime("test-runtime", backend=backend)
    ref = background.blocking.spawn(Echo(), name="echo")
    assert background.blocking.ask(ref, "ping", timeout=5) == "ping"

    async def close() -> None:
        closed.append("before stop")

    background.stop(before=close)
    assert closed == ["before stop"]
    with pytest.raises(RuntimeNotRunning):
        _ = background.blocking
    background.stop()  # a second stop does nothing


def test_a_program_that_never_stops_it_still_exits() -> None:
    code = textwrap.dedent(
        """
        from limelight.runtime import BackgroundRuntime
        background = BackgroundRuntime("left-running")
        print(background.call(lambda: __import__("anyio").sleep(0)))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.strip() == "None"
