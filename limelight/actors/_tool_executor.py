"""The ToolExecutor actor: runs a model's tool calls with timeouts and a concurrency limit.

Timeouts are per tool. Whatever a call does, the reply is one :class:`ToolResult` per call, in
the order of the calls: a tool's failure is the model's business, never a crash. Its owner (an
agent) runs the calls in its own task through :meth:`ToolExecutor.call`, as a
:class:`~limelight.actors.ProviderPool` does with a leased worker: no hop to the executor
and back, while the executor's stop still interrupts the calls and a bug still crashes it."""

from __future__ import annotations

import contextlib
import math
import time
import typing
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import anyio
import msgspec

from .._tools import PreparedCall, ToolRegistry
from .._usage import current_usage_run
from ..errors import ActorCrashed, ActorStopped, ConfigError
from ..runtime import Actor, ActorRef, Context, Slots, fan_out
from ..runtime._clock import loop_cancel_scope, loop_clock, running_trio
from ..runtime._deadlines import Deadlines, time_scope
from ..runtime._fanout import start_rest_in
from ..schemas import ToolCall, ToolResult

if TYPE_CHECKING:
    import uuid
from .._tracing import Trace, analytics_client, current_trace, parse_event_id

__all__ = ["DEFAULT_TOOL_CONCURRENCY", "RunTools", "ToolExecutor"]

#: Tool calls of one executor running at the same time.
DEFAULT_TOOL_CONCURRENCY: Final = 8


class RunTools(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    """Ask a :class:`ToolExecutor` to run ``calls``; the reply is ``list[ToolResult]`` in
    the same order.

    :ivar parallel: run the calls concurrently (up to the executor's limit) rather than one
        after the other.
    :ivar timeout: per-call timeout overriding the executor's default (a tool's own wins).
    """

    calls: list[ToolCall]
    parallel: bool = True
    timeout: float | None = None
    #: The run and the event the calls' analytics events hang under (set by an agent).
    run_id: str | None = None
    parent_event_id: str | None = None
    #: The caller's :func:`~limelight.usage.usage_run`, in force while the calls run.
    usage_run: str | None = None


class _CrashReport(msgspec.Struct, frozen=True, kw_only=True):
    """Told to an executor by its owner: a call through :meth:`ToolExecutor.call` raised
    ``error``, a bug. The executor raises it, so that its supervisor sees the crash."""

    error: Exception


class ToolExecutor(Actor):
    """Runs tool calls for an agent.

    Calls of one request run concurrently (:func:`~limelight.runtime.fan_out`, under a
    capacity limiter), so a request's wall time is its slowest call, not their sum. Sync
    tools run in worker threads (anyio's default thread limiter also applies to them).
    Asked (:class:`RunTools`), it runs the calls in its own task; its owner may instead run
    them in the owner's task with :meth:`call`.

    :param registry: the tools, or anything :class:`ToolRegistry` accepts.
    :param max_concurrency: calls running at once, across the requests of this executor.
    :param timeout: default per-call timeout in seconds (``None``: the registry's).
    """

    #: Non-resident: its owner runs the calls in its own task (:meth:`call`), so it is idle
    #: nearly all its life (see :attr:`~limelight.runtime.Actor.resident`).
    resident = False

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
        self._slots: Slots | None = None
        self._ref: ActorRef | None = None
        # The scopes of the requests running now, and those cancel_running() cancelled (their
        # calls read "cancelled", not "timed out"); made when first needed (an agent's
        # executor is idle most of its life, and an empty set costs ~200 bytes).
        self._running: set[Any] | None = None  # anyio scopes; trio nurseries' on trio
        self._stopped: set[Any] | None = None
        #: The runtime's deadline scheduler (set when started).
        self._deadlines: Deadlines | None = None

    async def on_start(self, ctx: Context) -> None:
        # Created here, not in __init__: a waiter's event belongs to the running event loop.
        self._slots = Slots(self.max_concurrency)
        self._ref = ctx.self
        self._deadlines = ctx.self.runtime._deadlines

    async def on_stop(self, ctx: Context) -> None:
        # Calls run for the owner in its task (call()) are the executor's work as much as
        # a handled request's: they end with it (as cancelled results).
        self.cancel_running()

    async def handle(self, message: Any, ctx: Context) -> Any:
        match message:
            case _CrashReport(error=error):
                raise error
            case RunTools(calls=calls, parallel=parallel, timeout=timeout, run_id=run_id):
                trace = None
                if run_id is not None:
                    client = analytics_client()
                    parent = parse_event_id(message.parent_event_id)
                    if client is not None and parent is not None:
                        trace = Trace(client, run_id, parent)
                token = current_usage_run.set(message.usage_run)
                try:
                    return await self.run(calls, parallel=parallel, timeout=timeout, trace=trace)
                finally:
                    current_usage_run.reset(token)
        raise TypeError(f"ToolExecutor got an unexpected message {message!r}")

    async def call(
        self,
        calls: Sequence[ToolCall],
        *,
        parallel: bool = True,
        trace: Trace | None = None,
        usage_run: str | None = None,
    ) -> list[ToolResult]:
        """Run ``calls`` in the calling task, for the actor that owns this executor (an
        agent, its parent): what a :class:`RunTools` ask does, without the hop to the
        executor's task and back. The caller's cancellation cancels the calls; the
        executor's stop ends them as cancelled results.

        :param usage_run: the :func:`~limelight.usage.usage_run` the calls count under.
        :raises ActorStopped: the executor is not running.
        :raises ActorCrashed: a bug in the executor; it crashes too, under its supervisor.
        """
        ref = self._ref
        if ref is None or self._slots is None or not ref.alive:
            path = "" if ref is None else ref.path
            raise ActorStopped(f"tool executor {path or '(not started)'} is not running", path=path)
        # Set only when it changes: each set (and its reset) makes a new context mapping that
        # stays alive, in the agent's task, across the model's next wait.
        token = None if current_usage_run.get() == usage_run else current_usage_run.set(usage_run)
        try:
            if trace is None:  # run()'s common case, one coroutine fewer across the calls
                return await self._run(calls, parallel, None, None, None)
            return await self.run(calls, parallel=parallel, trace=trace)
        except Exception as exc:
            with contextlib.suppress(Exception):  # stopped, or full: it is going anyway
                ref.tell_nowait(_CrashReport(error=exc))
            crashed = ActorCrashed(
                f"actor {ref.path} crashed running {len(calls)} tool call(s): "
                f"{type(exc).__name__}: {exc}",
                path=ref.path,
                cause=exc,
            )
            raise crashed from exc
        finally:
            if token is not None:
                current_usage_run.reset(token)

    async def run(
        self,
        calls: Sequence[ToolCall],
        *,
        parallel: bool = True,
        timeout: float | None = None,
        trace: Trace | None = None,
    ) -> list[ToolResult]:
        """Run ``calls``, in parallel or in order; one result per call, in call order.

        With ``trace``, each call is recorded as a ``tool_call`` event and its result as a
        ``tool_response`` event under it (a child agent called as a tool hangs its run
        under the call).
        """
        if trace is None:
            return await self._run(calls, parallel, timeout, None, None)
        from ..schemas._events import Event

        call_events = [
            Event.create_tool_call(
                c.name,
                _arguments_of(c.arguments),
                tool_call_id=c.id,
                run_id=trace.run_id,
                parent_event_id=trace.parent,
            )
            for c in calls
        ]
        for event in call_events:
            trace.client.log_event(event)
        results: list[ToolResult] | None = None
        try:
            ids = [e.event_id for e in call_events]
            results = await self._run(calls, parallel, timeout, trace, ids)
        finally:
            for i, (c, event) in enumerate(zip(calls, call_events, strict=True)):
                r = results[i] if results is not None else None
                trace.client.log_event(
                    Event.create_tool_response(
                        c.name,
                        r.content if r is not None else "cancelled before it finished",
                        is_error=r.is_error if r is not None else True,
                        duration=r.duration if r is not None else None,
                        tool_call_id=c.id,
                        run_id=trace.run_id,
                        parent_event_id=event.event_id,
                    )
                )
        return results

    async def _run(
        self,
        calls: Sequence[ToolCall],
        parallel: bool,
        timeout: float | None,
        trace: Trace | None,
        call_events: list[uuid.UUID] | None,
    ) -> list[ToolResult]:
        slots = self._slots
        assert slots is not None, "run() is called from the actor's handler"
        registry = self.registry
        timeout = self.timeout if timeout is None else timeout
        # One pass, few containers: what is made here stays alive while the calls run.
        results: list[ToolResult | None] = []
        batch = _Batch(registry, slots, results, trace, call_events)
        runnable: list[tuple[_Batch, int, PreparedCall, float | None]] = []
        for i, c in enumerate(calls):
            prepared = self._prepare(c)
            if isinstance(prepared, ToolResult):
                results.append(prepared)
            else:
                results.append(None)
                limit = registry.limit_for(prepared.tool, timeout)
                runnable.append((batch, i, prepared, limit))
        if not runnable:
            return typing.cast(list[ToolResult], results)
        limit = runnable[0][3]
        # When every call has the same limit and none has to wait for a slot, one deadline
        # for the whole batch bounds each call exactly as a scope per call would, for one
        # timer instead of one per call.
        shared = parallel and len(runnable) <= slots.free and all(r[3] == limit for r in runnable)
        batch.shared = shared
        # The functions, not the batch's bound methods (one object fewer alive per call).
        one = _Batch.guarded if trace is None else _Batch.traced
        # One scope for the request's calls: the one cancel_running() cancels and, when the
        # calls share a limit, the one that carries their deadline. On trio, parallel calls
        # run in a nursery of trio's own, and its scope is that scope.
        deadline = loop_clock()() + limit if shared and limit is not None else math.inf
        running = self._running
        if running is None:
            running = self._running = set()
        trio = running_trio() if parallel and len(runnable) > 1 else None
        scope: Any = None
        try:
            if trio is not None:
                async with trio.open_nursery() as nursery:
                    scope = nursery.cancel_scope
                    scope.deadline = deadline
                    running.add(scope)
                    # The first runs in this task, which would otherwise only wait.
                    await start_rest_in(nursery, one, runnable)
            else:
                scope = loop_cancel_scope()()
                running.add(scope)
                # Entered and left by hand: a with statement keeps its bound __exit__ alive
                # (and tracked by the collector) for as long as the calls run.
                scope.__enter__()
                deadlines = self._deadlines
                timer = None
                try:
                    # On asyncio, the runtime's deadline scheduler times the scope.
                    timer = time_scope(deadlines, scope, deadline)
                    if parallel:
                        # The first runs in this task, the others in tasks of their own
                        # (fan_out: no task group's price per call).
                        await fan_out(one, runnable)
                    else:
                        for args in runnable:
                            await one(*args)
                except BaseException as left_by:
                    if not scope.__exit__(type(left_by), left_by, left_by.__traceback__):
                        raise
                else:
                    scope.__exit__(None, None, None)
                finally:
                    if timer is not None and deadlines is not None:
                        deadlines.cancel(timer)
        finally:
            running.discard(scope)
            cancelled = self._stopped
            stopped = False
            if cancelled is not None and scope in cancelled:
                stopped = True
                cancelled.discard(scope)
        timed_out = shared and scope.cancelled_caught and not stopped
        for _, i, call, limit in runnable:
            if results[i] is None:
                results[i] = call.timed_out(limit) if timed_out else call.cancelled()
        return typing.cast(list[ToolResult], results)

    # The registry turns whatever the model or a tool did into a result; these guards are for
    # a bug in the registry itself (a subclass, say): the model still gets one result per call.

    def _prepare(self, call: ToolCall) -> PreparedCall | ToolResult:
        try:
            return self.registry.prepare(call.name, call.arguments, tool_call_id=call.id)
        except Exception as exc:
            return _could_not_run(call.name, call.id, exc, time.perf_counter())

    def cancel_running(self) -> None:
        """Cancel the calls running now (their caller gave up on them): the owner calls
        this, from the same event loop, when its ask was cancelled, since an abandoned ask
        does not stop the handler working on it."""
        if not self._running:
            return
        if self._stopped is None:
            self._stopped = set()
        for scope in self._running:
            self._stopped.add(scope)
            scope.cancel()


class _Batch:
    """One request's calls: what each call's task needs (an object rather than closure
    cells, which would stay alive, and tracked by the collector, for as long as the calls
    run)."""

    __slots__ = ("call_events", "registry", "results", "shared", "slots", "trace")

    def __init__(
        self,
        registry: ToolRegistry,
        slots: Slots,
        results: list[ToolResult | None],
        trace: Trace | None,
        call_events: list[uuid.UUID] | None,
    ) -> None:
        self.registry = registry
        self.slots = slots
        self.results = results
        #: One deadline (the request's scope's) bounds every call: set once they are known.
        self.shared = False
        self.trace = trace
        self.call_events = call_events

    async def traced(self, i: int, call: PreparedCall, limit: float | None) -> None:
        trace, call_events = self.trace, self.call_events
        assert trace is not None
        assert call_events is not None
        # What the tool calls (a child agent) hangs under this call.
        token = current_trace.set(trace._replace(parent=call_events[i]))
        try:
            return await self.guarded(i, call, limit)
        finally:
            current_trace.reset(token)

    async def guarded(self, i: int, call: PreparedCall, limit: float | None) -> None:
        results = self.results
        slots = self.slots
        # Slots' own fast path rather than `async with`, whose bound __aexit__ would stay
        # alive (and tracked by the collector) for as long as the tool runs.
        if not slots.take():
            await slots.acquire()
        try:
            registry = self.registry
            if not self.shared:
                with anyio.move_on_after(limit) as scope:
                    results[i] = await registry.run_prepared(call)
                if scope.cancelled_caught:
                    results[i] = call.timed_out(limit)
            elif type(registry).run_prepared is ToolRegistry.run_prepared:
                # run_prepared, written out: the tool's coroutine is the only frame below
                # this one while it runs.
                try:
                    value = await call.begin()
                except Exception as exc:
                    results[i] = call.raised(exc)
                else:
                    results[i] = call.returned(value)
            else:
                results[i] = await registry.run_prepared(call)
        except Exception as exc:  # a bug of the registry's; the model still hears
            results[i] = _could_not_run(call.tool.name, call.tool_call_id, exc, call.start)
        finally:
            slots.release()


def _could_not_run(name: str, tool_call_id: str | None, exc: Exception, start: float) -> ToolResult:
    return ToolResult(
        content=f"Error: tool {name!r} could not run: {type(exc).__name__}: {exc}",
        is_error=True,
        duration=time.perf_counter() - start,
        name=name,
        tool_call_id=tool_call_id,
    )


def _arguments_of(raw: str) -> dict[str, Any]:
    """The call's arguments as recorded (the model's text when it is not a JSON object)."""
    try:
        value = msgspec.json.decode(raw or "{}")
    except msgspec.DecodeError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_raw": raw}
