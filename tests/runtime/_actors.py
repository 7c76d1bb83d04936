"""Small actors shared by the kernel tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio

from limelight.runtime import Actor, Context


class Crash(Exception):
    """A crash the tests cause on purpose."""


class Recorder(Actor):
    """Answers asks, crashes on "crash", records lifecycle events into a shared list."""

    def __init__(self, log: list[str] | None = None, name: str = "") -> None:
        self.log = log if log is not None else []
        self.name = name
        self.seen: list[Any] = []

    async def on_start(self, ctx: Context) -> None:
        self.log.append(f"start {self.name or ctx.name}")

    async def on_stop(self, ctx: Context) -> None:
        self.log.append(f"stop {self.name or ctx.name}")

    async def handle(self, message: Any, ctx: Context) -> Any:
        match message:
            case "crash":
                raise Crash(f"{ctx.path} told to crash")
            case "exit":
                ctx.stop()
                return None
            case ("sleep", float() as seconds):
                await anyio.sleep(seconds)
                return "slept"
            case ("count", int() as n):
                return _count(n)
            case "seen":
                return list(self.seen)
            case _:
                self.seen.append(message)
                return message


async def _count(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i
