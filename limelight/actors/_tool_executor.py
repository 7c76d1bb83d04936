"""The ToolExecutor actor: runs a model's tool calls with per-tool timeouts and a
concurrency limit. Whatever a call does, the reply is one :class:`ToolResult` per call, in
the order of the calls: a tool's failure is the model's business, never a crash."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Final

import anyio
import msgspec

from ..errors import ConfigError
from ..runtime import Actor, Context
from ..schemas import ToolCall
from ._tools import ToolRegistry, ToolResult

__all__ = ["DEFAULT_TOOL_CONCURRENCY", "RunTools", "ToolExecutor"]

#: Tool calls of one executor running at the same time.
DEFAULT_TOOL_CONCURRENCY: Final = 8


class RunTools(msgspec.Struct, frozen=True, kw_only=True):
    """Ask a :class:`ToolExecutor` to run ``calls``; the reply is ``list[ToolResult]`` in
    the same order.

    :ivar parallel: run the calls concurrently (up to the executor's limit) rather than one
        after the other.
    :ivar timeout: per-call timeout overriding the executor's default (a tool's own wins).
    """

    calls: list[ToolCall]
    parallel: bool = True
    timeout: float | None = None


class ToolExecutor(Actor):
    """Runs tool calls for an agent.

    Calls of one request run concurrently inside the handler (a task group under a
    capacity limiter), so a request's wall time is its slowest call, not their sum. Sync
    tools run in worker threads (anyio's default thread limiter also applies to them).

    :param registry: the tools, or anything :class:`ToolRegistry` accepts.
    :param max_concurrency: calls running at once, across the requests of this executor.
    :param timeout: default per-call timeout in seconds (``None``: the registry's).
    """

    def __init__(
        self,
        registry: ToolRegistry | Sequence[Any],
        *,
        max_concurrency: int = DEFAULT_TOOL_CONCURRENCY,
        timeout: float | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"timeout must be > 0 or None, got {timeout}")
        self.registry = registry if isinstance(registry, ToolRegistry) else ToolRegistry(registry)
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self._limiter: anyio.CapacityLimiter | None = None
        self._running: set[anyio.CancelScope] = set()

    async def on_start(self, ctx: Context) -> None:
        # Created here, not in __init__: a limiter belongs to the running event loop.
        self._limiter = anyio.CapacityLimiter(self.max_concurrency)

    async def handle(self, message: Any, ctx: Context) -> Any:
        match message:
            case RunTools(calls=calls, parallel=parallel, timeout=timeout):
                return await self.run(calls, parallel=parallel, timeout=timeout)
        raise TypeError(f"ToolExecutor got an unexpected message {message!r}")

    async def run(
        self, calls: Sequence[ToolCall], *, parallel: bool = True, timeout: float | None = None
    ) -> list[ToolResult]:
        """Run ``calls``, in parallel or in order; one result per call, in call order."""
        limiter = self._limiter
        assert limiter is not None, "run() is called from the actor's handler"
        timeout = self.timeout if timeout is None else timeout
        results: list[ToolResult | None] = [None] * len(calls)

        async def one(i: int, call: ToolCall) -> None:
            start = time.perf_counter()
            async with limiter:
                try:
                    results[i] = await self.registry.execute(
                        call.name,
                        call.arguments,
                        tool_call_id=call.id,
                        timeout=timeout,
                    )
                except Exception as exc:  # execute() handles the model's faults; this is ours
                    results[i] = ToolResult(
                        content=f"Error: tool {call.name!r} could not run: "
                        f"{type(exc).__name__}: {exc}",
                        is_error=True,
                        duration=time.perf_counter() - start,
                        name=call.name,
                        tool_call_id=call.id,
                    )

        with anyio.CancelScope() as scope:
            self._running.add(scope)
            try:
                if parallel and len(calls) > 1:
                    async with anyio.create_task_group() as tg:
                        for i, call in enumerate(calls):
                            tg.start_soon(one, i, call)
                else:
                    for i, call in enumerate(calls):
                        await one(i, call)
            finally:
                self._running.discard(scope)
        return [
            r
            if r is not None
            else ToolResult(
                content=f"Error: tool {c.name!r} was cancelled before it finished.",
                is_error=True,
                name=c.name,
                tool_call_id=c.id,
            )
            for r, c in zip(results, calls, strict=True)
        ]

    def cancel_running(self) -> None:
        """Cancel the calls running now (their caller gave up on them): the owner calls
        this, from the same event loop, when its ask was cancelled, since an abandoned ask
        does not stop the handler working on it."""
        for scope in self._running:
            scope.cancel()
