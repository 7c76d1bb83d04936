"""Actors and messages the Ray host tests spawn on hosts (importable there by module path)."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
import msgspec
import sniffio

from limelight.runtime import Actor, Context


class Add(msgspec.Struct, frozen=True, kw_only=True):
    amount: int


class Get(msgspec.Struct, frozen=True, kw_only=True):
    pass


class Where(msgspec.Struct, frozen=True, kw_only=True):
    pass


class Sleep(msgspec.Struct, frozen=True, kw_only=True):
    seconds: float


class CountTo(msgspec.Struct, frozen=True, kw_only=True):
    n: int


class InThread(msgspec.Struct, frozen=True, kw_only=True):
    """Run a function in one of the host's worker threads."""


class Place(msgspec.Struct, frozen=True, kw_only=True):
    pid: int
    backend: str
    path: str


class Counter(Actor):
    """A count (lost when its host dies: a re-spawned counter starts at 0)."""

    def __init__(self) -> None:
        self.value = 0

    async def handle(self, message: Any, ctx: Context) -> Any:
        match message:
            case Add(amount=amount):
                self.value += amount
                return None
            case Get():
                return self.value
            case Where():
                return Place(
                    pid=os.getpid(), backend=sniffio.current_async_library(), path=ctx.path
                )
            case Sleep(seconds=seconds):
                await anyio.sleep(seconds)
                return "slept"
            case CountTo(n=n):
                return _count(n)
            case InThread():
                worker = await anyio.to_thread.run_sync(threading.get_ident)
                return worker != threading.get_ident()
        raise TypeError(f"unexpected {message!r}")


async def _count(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


class Send(msgspec.Struct, frozen=True, kw_only=True):
    calls: int


class Sent(msgspec.Struct, frozen=True, kw_only=True):
    ok: int
    rate_limited: int
    other_errors: list[str]
    waited: int


class Sender(Actor):
    """A process's share of a load: its own rate limiter (on a shared quota) and a pool of
    workers calling an OpenAI-compatible server; ``Send`` makes that many calls at once."""

    def __init__(self, url: str, rpm: int, quota: Any) -> None:
        self.url = url
        self.rpm = rpm
        self.quota = quota

    async def on_start(self, ctx: Context) -> None:
        from limelight._buckets import DeploymentLimits
        from limelight.actors import ProviderPool
        from limelight.actors._ratelimit import RateLimiter, RateLimitHook
        from limelight.providers import OpenAICompatible
        from limelight.runtime import RetryPolicy
        from limelight.sim import estimate_prompt_tokens

        limits = {"sim": DeploymentLimits(rpm=self.rpm)}
        self.limiter = await RateLimiter.start(
            ctx.runtime, limits, environ={}, shared=self.quota, name=f"{ctx.name}-limiter"
        )
        self.pool = await ProviderPool.start(
            ctx.runtime,
            OpenAICompatible(self.url),
            name="sim",
            size=16,
            retry=RetryPolicy(attempts=1),
            hooks=[RateLimitHook(self.limiter, estimator=estimate_prompt_tokens)],
        )

    async def handle(self, message: Any, ctx: Context) -> Any:
        from limelight.actors._ratelimit import GetStatistics
        from limelight.errors import RateLimited
        from limelight.schemas import CompletionRequest, Message

        match message:
            case Send(calls=calls):
                request = CompletionRequest(messages=[Message.user("hello")], max_tokens=10)
                ok = limited = 0
                others: list[str] = []

                async def one() -> None:
                    nonlocal ok, limited
                    try:
                        await self.pool.complete(request)
                        ok += 1
                    except RateLimited:
                        limited += 1
                    except Exception as exc:
                        others.append(repr(exc))

                async with anyio.create_task_group() as tg:
                    for _ in range(calls):
                        tg.start_soon(one)
                stats = await self.limiter.ask(GetStatistics())
                return Sent(ok=ok, rate_limited=limited, other_errors=others, waited=stats.waited)
        raise TypeError(f"unexpected {message!r}")
