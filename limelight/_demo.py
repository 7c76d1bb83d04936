"""``limelight demo``: a supervised actor tree on the built-in runtime, no API key needed.

A supervisor runs three workers; one of them is flaky and crashes now and then. Callers
retry crashed jobs; the supervisor restarts the worker; the live tree is printed as it goes.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import anyio
import msgspec

from .runtime import (
    Actor,
    ActorCrashed,
    Context,
    RetryPolicy,
    Runtime,
    Strategy,
    Supervision,
)


class Job(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    text: str


class Flaky(Exception):
    """The demo's flaky worker failing on purpose."""


class Worker(Actor):
    """Uppercases text; the flaky one crashes on every third job it sees."""

    def __init__(self, *, flaky: bool = False) -> None:
        self.flaky = flaky
        self.seen = 0

    async def handle(self, message: Any, ctx: Context) -> Any:
        match message:
            case Job(id=job_id, text=text):
                self.seen += 1
                await anyio.sleep(0.005)
                if self.flaky and self.seen % 3 == 0:
                    raise Flaky(f"job {job_id} hit a flaky worker")
                return f"{ctx.name}: {text.upper()}"
        raise TypeError(f"unexpected message {message!r}")


class Supervisor(Actor):
    """Starts the workers as its children and hands jobs to them round-robin."""

    async def on_start(self, ctx: Context) -> None:
        for i in range(1, 4):
            await ctx.spawn(functools.partial(Worker, flaky=i == 2), name=f"worker-{i}")

    async def handle(self, message: Any, ctx: Context) -> Any:
        match message:
            case Job(id=job_id):
                workers = ctx.children
                return workers[job_id % len(workers)]
        raise TypeError(f"unexpected message {message!r}")


async def _main(out: Any) -> int:
    retry = RetryPolicy(attempts=4, initial_delay=0.01, retry_on=(ActorCrashed,))
    async with Runtime() as rt:
        sup = await rt.spawn(
            Supervisor(),
            name="supervisor",
            supervision=Supervision(
                strategy=Strategy.ONE_FOR_ONE, max_restarts=10, within=5.0, backoff_initial=0.01
            ),
        )
        print("limelight demo: a supervisor with three workers; worker-2 is flaky.\n", file=out)
        results: dict[int, str] = {}

        async def run_job(job: Job) -> None:
            async def attempt() -> str:
                worker = await sup.ask(job, timeout=2.0)
                return str(await worker.ask(job, timeout=2.0))

            results[job.id] = await retry.run(attempt)

        words = ["actors", "exchange", "messages", "over", "bounded", "mailboxes"]
        words += ["under", "supervision"]
        async with anyio.create_task_group() as tg:
            for i, word in enumerate(words * 2):
                tg.start_soon(run_job, Job(id=i, text=word))
        for i in sorted(results):
            print(f"  job {i:2}  {results[i]}", file=out)
        print("\nThe live tree (worker-2 was restarted by its supervisor):\n", file=out)
        print(rt.tree().render(), file=out)
        stats = rt.statistics()
        print(
            f"\n{len(results)} jobs done, {stats.processed} messages handled, "
            f"{stats.restarts} restarts, {stats.dead_letters} dead letters.",
            file=out,
        )
    return 0


def run_demo(*, backend: str = "asyncio") -> int:
    """Run the demo on ``backend`` ("asyncio" or "trio"); returns the exit status."""
    import structlog

    # Crash warnings go to stderr, so the demo's own output stays readable.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    return anyio.run(_main, sys.stdout, backend=backend)
