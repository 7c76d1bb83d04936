"""The run engine: send a workload at a target under a load, record every request, summarize.

Sends follow absolute schedules.

Open loops compute each send time from the start of the run (never "sleep the gap after the
last send", which drifts), start each request at its time, and record the intended and the
actual send time: a client that cannot keep up shows as send lag, and the summary flags it.
Requests go through the lean HTTP client (``client="auto"``), or through a
:class:`~limelight.actors.ProviderPool` to the provider's streaming API (provider mode: the
pipeline every model call takes, with its attempt hooks, a shared rate limiter's included,
but no retries: a benchmark counts failures): one task per request, timestamps taken with
``time.perf_counter`` as chunks arrive.

One module: one run's state (``_Engine``: the records, counters and stop conditions) is
what the schedules, the timing of streamed answers, the timed provider of agent tasks and
the three drivers (lean client, provider pool, agents) fill and read; ``_collect`` runs
them and ``_result`` summarises the records, for the entry points (``_run``: ``run``,
``run_on``, ``sweep``) and for each worker of a run sent from several (``_workers``).
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import itertools
import math
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.lowlevel
import anyio.to_thread
import msgspec

from .._version import __version__
from ..errors import ConfigError
from ..schemas import CompletionRequest, Message, StreamEvent, StreamEventType, Usage
from ._config import (
    BenchConfig,
    ClosedLoop,
    Load,
    Workload,
    arrivals,
)
from ._metrics import (
    METRIC_DEFINITIONS,
    RequestRecord,
    Summary,
    TimePoint,
    summarize,
    timeline,
)
from ._targets import OpenTarget
from ._workloads import (
    PromptSource,
    builtin_agent,
    load_agent_factory,
    load_prompts,
)

if TYPE_CHECKING:
    from ..actors import AttemptHook, RateLimitHook
    from ..runtime import ActorRef, Runtime

__all__ = ["BenchResult", "Progress", "SweepPoint", "SweepResult"]

_TOKEN: Final = StreamEventType.TOKEN
_TOOL_CALL: Final = StreamEventType.TOOL_CALL
_DONE: Final = StreamEventType.DONE
_MAX_ERROR_TEXT: Final = 300


class BenchResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One run: its configuration, summary, throughput over time and (in memory, not in the
    JSON summary) its per-request records.

    :ivar target: what was measured, in words.
    :ivar client: the client path the requests took.
    :ivar offered_rate: requests (sessions) per second the load asked for; ``None`` for a
        closed loop.
    :ivar workers: the worker processes that sent the load (``None``: this process did).
    :ivar worker_failures: what happened to each worker that died or failed before its end
        (its unfinished requests are counted as failed, ``WorkerDied``).
    """

    version: str
    started_at: str
    config: BenchConfig
    target: str
    client: str
    offered_rate: float | None
    summary: Summary
    timeline: list[TimePoint]
    definitions: dict[str, str]
    records_file: str | None = None
    records: list[RequestRecord] = []
    workers: int | None = None
    worker_failures: list[str] = []


class SweepPoint(msgspec.Struct, frozen=True, kw_only=True):
    """One rate of a sweep: its summary and whether it met the SLOs."""

    rate: float
    passed: bool
    summary: Summary


class SweepResult(msgspec.Struct, kw_only=True):
    """A sweep: every rate tried, and the highest that met the SLOs (``None``: none did)."""

    version: str
    started_at: str
    config: BenchConfig
    target: str
    min_attainment: float
    max_send_lag: float
    best_rate: float | None
    points: list[SweepPoint]
    definitions: dict[str, str]


class Progress(msgspec.Struct, kw_only=True):
    """Live counters of a run, for progress displays (read, never written, by them).

    :ivar sent: model requests sent (an agent task's calls included).
    :ivar completed: model requests answered; ``failed``: those that failed.
    :ivar tasks: sessions (conversations, agent tasks) ended, ok or not.
    :ivar sessions: whether the workload runs sessions: ``total`` counts them, not requests.
    """

    sent: int = 0
    completed: int = 0
    failed: int = 0
    in_flight: int = 0
    output_tokens: int = 0
    tasks: int = 0
    total: int | None = None
    duration: float | None = None
    started: float = 0.0
    max_lag: float = 0.0
    sessions: bool = False

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started if self.started else 0.0

    @property
    def finished(self) -> int:
        """What ``total`` counts that has ended: sessions, or requests."""
        return self.tasks if self.sessions else self.completed + self.failed


#: epoll (asyncio's and trio's selector on Linux) rounds timeouts up to whole milliseconds,
#: so a plain sleep wakes up to 1 ms late. The send loop sleeps on the event loop to this
#: long before the send time, then in a worker thread (``time.sleep`` is precise to tens of
#: microseconds, and the thread wakes the loop at once), then yields until the time comes.
#: No busy-waiting: on a shared machine a spinning process gets descheduled, late.
_COARSE: Final = 0.0015
_FINE: Final = 0.0002
_SPIN: Final = 0.00005


async def _sleep_until(due: float) -> None:
    """Wait until ``time.perf_counter() >= due``, within tens of microseconds rather than
    epoll's millisecond."""
    clock = time.perf_counter
    delay = due - clock() - _COARSE
    if delay > 0:
        await anyio.sleep(delay)
    fine = due - clock() - _SPIN
    if fine > _FINE:
        await anyio.to_thread.run_sync(time.sleep, fine)
    while clock() < due:
        await anyio.lowlevel.checkpoint()


@contextlib.contextmanager
def _collector_tuned() -> Iterator[None]:
    """A load generator's garbage collector for the run: what is alive now is frozen out of
    the collector's sight, and the young generation is collected less often, so collections
    (tens of milliseconds with many records alive) do not stall the send schedule. Restored
    afterwards."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


class _Timing:
    """The timestamps of one streamed answer, taken as its events arrive: the first chunk,
    the gaps between chunks (text tokens and tool calls), the usage; the text when kept."""

    __slots__ = ("chunks", "first", "gaps", "keep_text", "last", "text", "usage")

    def __init__(self, *, keep_text: bool = False) -> None:
        self.first: float | None = None
        self.last = 0.0
        self.gaps: list[float] = []
        self.chunks = 0
        self.usage: Usage | None = None
        self.keep_text = keep_text
        self.text: list[str] = []

    def observe(self, event: StreamEvent) -> None:
        kind = event.type
        if kind is _TOKEN or kind is _TOOL_CALL:
            now = time.perf_counter()
            if self.first is None:
                self.first = now
            else:
                self.gaps.append(now - self.last)
            self.last = now
            self.chunks += 1
            if self.keep_text and event.content is not None:
                self.text.append(event.content)
        elif kind is _DONE and event.result is not None:
            self.usage = event.result.usage

    def fill(
        self, record: RequestRecord, *, end: float, t0: float, error: BaseException | None
    ) -> None:
        """Put what was measured into ``record`` (times relative to ``t0``)."""
        record.end = end - t0
        record.first = None if self.first is None else self.first - t0
        record.itl = self.gaps
        record.ok = error is None
        if error is not None:
            record.error = type(error).__name__
            record.error_message = str(error)[:_MAX_ERROR_TEXT]
        else:
            usage = self.usage
            record.prompt_tokens = usage.prompt_tokens if usage else 0
            record.output_tokens = usage.completion_tokens if usage else self.chunks


class _Engine:
    """One run's state: the records, the counters and the stop conditions."""

    def __init__(
        self,
        config: BenchConfig,
        target: OpenTarget,
        progress: Progress,
        prompts: PromptSource,
    ) -> None:
        self.config = config
        self.workload = config.workload
        self.target = target
        self.provider = target.provider
        self.progress = progress
        self.prompts = prompts
        self.records: list[RequestRecord] = []
        self.t0 = 0.0
        self.sessions = 0
        self.stopped = False
        self.stream = config.workload.kind != "chat"
        self.extra: dict[str, Any] = {"ignore_eos": True} if config.workload.ignore_eos else {}
        self.runtime: Any = None
        self.pool: Any = None
        self.fast: Any = None
        self.factory: Callable[[Any], Any] | None = None
        # One engine of several (a worker process): the closed loop's session indices, the
        # stride of its agent calls' indices, and how it learns the common start instant.
        self.indices: Iterator[int] = itertools.count()
        self.worker, self.workers = 0, 1
        self.starter: Callable[[], Awaitable[float]] | None = None

    # -- stop conditions -------------------------------------------------------------------

    def take(self, at: float, index: int | None = None) -> int | None:
        """The session ``index`` (default: this engine's next one) if it may start at ``at``
        (seconds from the start)."""
        config = self.config
        if self.stopped:
            return None
        if index is None:
            index = next(self.indices)
        if (config.requests is not None and index >= config.requests) or (
            config.duration is not None and at >= config.duration
        ):
            self.stopped = True
            return None
        self.sessions += 1
        return index

    def _count(self, record: RequestRecord) -> None:
        self.records.append(record)
        progress = self.progress
        if record.kind == "task":
            progress.tasks += 1
            return
        if record.ok:
            progress.completed += 1
            progress.output_tokens += record.output_tokens
        else:
            progress.failed += 1
            limit = self.config.max_errors
            if limit is not None and progress.failed >= limit:
                self.stopped = True

    # -- one request -------------------------------------------------------------------------

    async def request(
        self,
        index: int,
        messages: list[Message],
        max_tokens: int | None,
        *,
        intended: float,
        session: int = -1,
        turn: int = 0,
        keep: bool = False,
    ) -> RequestRecord:
        """Send one request now and record it (sent ``intended`` seconds after the start)."""
        if self.fast is not None:
            return await self._fast_request(index, messages, max_tokens, intended)
        request = CompletionRequest(
            model=self.target.model,
            messages=messages,
            max_tokens=max_tokens,
            stream=self.stream,
            extra=self.extra,
        )
        t0 = self.t0
        progress = self.progress
        progress.sent += 1
        progress.in_flight += 1
        timing = _Timing(keep_text=keep)
        error: Exception | None = None
        sent = time.perf_counter()
        pool = self.pool
        try:
            with anyio.fail_after(self.config.timeout):
                if self.stream:
                    events = pool.stream(request)
                    try:
                        async for event in events:
                            timing.observe(event)
                    finally:
                        await events.aclose()
                else:
                    result = await pool.complete(request)
                    timing.usage = result.usage
                    timing.text.append(result.content or "")
        except Exception as exc:  # counted by type: a benchmark reports failures, never hides them
            error = exc
        end = time.perf_counter()
        progress.in_flight -= 1
        lag = sent - t0 - intended
        if lag > progress.max_lag:
            progress.max_lag = lag
        record = RequestRecord(
            index=index, session=session, turn=turn, intended=intended, sent=sent - t0
        )
        timing.fill(record, end=end, t0=t0, error=error)
        if error is None and self.target.prices is not None:
            record.cost = self.target.prices.cost(record.prompt_tokens, record.output_tokens)
        self._count(record)
        if keep and error is None:
            # The answer joins the conversation (multi-turn workloads read it).
            messages.append(Message.assistant("".join(timing.text)))
        return record

    async def _fast_request(
        self, index: int, messages: list[Message], max_tokens: int | None, intended: float
    ) -> RequestRecord:
        """:meth:`request` through the lean HTTP client (chat and stream workloads)."""
        fast = self.fast
        body = fast.body(
            self.target.model,
            messages,
            max_tokens,
            stream=self.stream,
            ignore_eos=self.workload.ignore_eos,
        )
        t0 = self.t0
        progress = self.progress
        progress.sent += 1
        progress.in_flight += 1
        sent = time.perf_counter()
        try:
            with anyio.fail_after(self.config.timeout):
                outcome = await fast.exchange(body, stream=self.stream)
            error, end = outcome.error, outcome.end
        except TimeoutError:
            outcome, error, end = None, "TimeoutError", time.perf_counter()
        progress.in_flight -= 1
        lag = sent - t0 - intended
        if lag > progress.max_lag:
            progress.max_lag = lag
        record = RequestRecord(
            index=index, intended=intended, sent=sent - t0, end=end - t0, ok=error is None
        )
        if outcome is None:
            record.error_message = f"no answer within {self.config.timeout} s"
        else:
            record.itl = outcome.gaps
            if outcome.first is not None:
                record.first = outcome.first - t0
            record.error_message = outcome.error_message
            usage = outcome.usage
            record.prompt_tokens = usage.prompt_tokens if usage else 0
            record.output_tokens = usage.completion_tokens if usage else outcome.chunks
        record.error = error
        if error is None and self.target.prices is not None:
            record.cost = self.target.prices.cost(record.prompt_tokens, record.output_tokens)
        self._count(record)
        return record

    # -- sessions ----------------------------------------------------------------------------

    async def session(self, index: int, intended: float) -> None:
        kind = self.workload.kind
        if kind in ("chat", "stream"):
            prompt = self.prompts.next(index)
            await self.request(index, list(prompt.messages), prompt.max_tokens, intended=intended)
        elif kind == "multiturn":
            await self._conversation(index, intended)
        else:
            await self._agent_task(index, intended)

    async def _conversation(self, index: int, intended: float) -> None:
        clock, t0 = time.perf_counter, self.t0
        start = clock()
        prompt = self.prompts.next(index)
        messages = list(prompt.messages)
        ok, error, turns = True, None, 0
        turn_intended = intended
        for turn in range(self.workload.turns):
            if turn:
                messages.append(Message.user(self.prompts.user_text(index)))
            record = await self.request(
                index * self.workload.turns + turn,
                messages,
                self.prompts.max_tokens(),
                intended=turn_intended,
                session=index,
                turn=turn,
                keep=True,
            )
            turns += 1
            turn_intended = clock() - t0
            if not record.ok:
                ok, error = False, record.error
                break
        self._count(
            RequestRecord(
                index=index,
                kind="task",
                session=index,
                intended=intended,
                sent=start - t0,
                end=clock() - t0,
                ok=ok,
                error=error,
                turns=turns,
            )
        )

    async def _agent_task(self, index: int, intended: float) -> None:
        clock, t0 = time.perf_counter, self.t0
        start = clock()
        name = f"task-{index}"
        if self.factory is not None:
            agent = self.factory(self.pool)
            if isinstance(agent, Awaitable):
                agent = await agent
        else:
            agent = builtin_agent(
                self.pool, self.workload, name=name, max_tokens=self.prompts.max_tokens()
            )
        # Sent when the task starts: starting its agent is part of the task.
        record = RequestRecord(
            index=index, kind="task", session=index, intended=intended, sent=start - t0
        )
        ref = None
        try:
            ref = await self.runtime.spawn(agent, name=name)
            with anyio.fail_after(self.config.timeout):
                result = await agent.run(self.prompts.user_text(index))
            record.ok = result.status == "completed"
            if not record.ok:
                record.error = f"agent:{result.status}"
                record.error_message = (result.error or "")[:_MAX_ERROR_TEXT]
            record.turns = result.num_turns
            record.tool_latencies = [r.duration for r in result.tool_results]
            record.prompt_tokens = result.usage.prompt_tokens
            record.output_tokens = result.usage.completion_tokens
        except Exception as exc:  # counted by type, as every failure
            record.error = type(exc).__name__
            record.error_message = str(exc)[:_MAX_ERROR_TEXT]
        finally:
            if ref is not None:
                with anyio.CancelScope(shield=True):
                    await ref.stop()
        record.end = clock() - t0
        if self.target.prices is not None:
            record.cost = self.target.prices.cost(record.prompt_tokens, record.output_tokens)
        self._count(record)

    # -- loads -------------------------------------------------------------------------------

    async def closed_worker(self) -> None:
        intended = time.perf_counter() - self.t0
        while True:
            index = self.take(intended)
            if index is None:
                return
            await self.session(index, intended)
            intended = time.perf_counter() - self.t0

    async def open_loop(self, load: Any) -> None:
        clock, t0 = time.perf_counter, self.t0
        worker, workers = self.worker, self.workers
        async with anyio.create_task_group() as tg:
            # One schedule for every worker: session i is worker (i mod workers)'s.
            for i, at in enumerate(arrivals(load)):
                if i % workers != worker:
                    continue
                index = self.take(at, i)
                if index is None:
                    break
                due = t0 + at
                if due > clock():
                    await _sleep_until(due)
                    if self.stopped:  # max errors reached while we slept
                        break
                tg.start_soon(self.session, index, at)

    async def drive(self, load: Load) -> None:
        if self.starter is None:
            self.t0 = self.progress.started = time.perf_counter()
        else:  # the instant every worker starts at, on this process's clock
            start = await self.starter()
            await _sleep_until(start)
            self.t0 = self.progress.started = start
        if isinstance(load, ClosedLoop):
            async with anyio.create_task_group() as tg:
                for _ in range(load.concurrency):
                    tg.start_soon(self.closed_worker)
        else:
            await self.open_loop(load)


class _TimedProvider:
    """A provider that records every call it passes on (the LLM calls of agent tasks)."""

    def __init__(self, engine: _Engine) -> None:
        self._engine = engine
        self.name = "bench"
        self.model = engine.target.model
        self._calls = 0

    async def complete(self, request: CompletionRequest) -> Any:
        from ..schemas import CompletionResult, StreamEvent

        result: CompletionResult | None = None
        async for event in self.stream(request):
            if isinstance(event, StreamEvent) and event.result is not None:
                result = event.result
        assert result is not None
        return result

    async def stream(self, request: CompletionRequest) -> Any:
        engine = self._engine
        t0 = engine.t0
        # Unique over the workers too: this engine's calls take every ``workers``-th index.
        index = engine.worker + engine.workers * self._calls
        self._calls += 1
        sent = time.perf_counter()
        timing = _Timing()
        record = RequestRecord(index=index, kind="call", intended=sent - t0, sent=sent - t0)
        error: BaseException | None = None
        progress = engine.progress
        progress.sent += 1
        progress.in_flight += 1
        try:
            events = engine.provider.stream(msgspec.structs.replace(request, stream=True))
            try:
                async for event in events:
                    timing.observe(event)
                    yield event
            finally:
                await events.aclose()
        except BaseException as exc:
            # A call cancelled or closed early counts as failed too (by its type's name).
            error = exc
            raise
        finally:
            progress.in_flight -= 1
            timing.fill(record, end=time.perf_counter(), t0=t0, error=error)
            engine._count(record)

    async def embed(self, request: Any) -> Any:
        return await self._engine.provider.embed(request)

    async def list_models(self) -> Any:
        return await self._engine.provider.list_models()

    async def aclose(self) -> None:
        await anyio.lowlevel.checkpoint()


def _mark_window(records: Sequence[RequestRecord], config: BenchConfig) -> float:
    """Mark the measured records; return the measurement window's length.

    Without warm-up and cool-down, the window is the whole run, from the start to the last
    answer (vLLM's benchmark duration). With them: ``[warmup, end - cooldown]``, and only the
    requests sent inside it are measured.
    """
    end = max((r.end or r.sent for r in records), default=0.0)
    lo, hi = config.warmup, end - config.cooldown
    if hi <= lo:
        raise ConfigError(
            f"the warm-up ({config.warmup} s) and cool-down ({config.cooldown} s) cover the "
            f"whole run ({end:.2f} s): shorten them or run longer"
        )
    if config.warmup or config.cooldown:
        for record in records:
            record.measured = lo <= record.sent <= hi
    return hi - lo


def _offered_rate(load: Load) -> float | None:
    return None if isinstance(load, ClosedLoop) else load.rate


async def _collect(
    config: BenchConfig,
    target: OpenTarget,
    progress: Progress,
    limiter: ActorRef | RateLimitHook | None = None,
    *,
    prepare: Callable[[_Engine], None] | None = None,
) -> tuple[list[RequestRecord], str, str]:
    """Send ``config``'s workload at ``target``: the records, in the order they ended, the
    client path and the wall-clock start, ISO 8601. ``prepare`` adjusts the engine before it
    starts (a worker's share of the run)."""
    progress.total = config.requests
    progress.duration = config.duration
    progress.sessions = config.workload.kind in ("multiturn", "agent")
    workload = config.workload
    file_prompts = (
        await anyio.to_thread.run_sync(load_prompts, workload.prompts_file)
        if workload.prompts_file
        else ()
    )
    engine = _Engine(config, target, progress, PromptSource(workload, file_prompts))
    if prepare is not None:
        prepare(engine)
    await _check_target(target, config)
    client = (
        f"limelight ProviderPool over {type(target.provider).__name__}.stream "
        "(one task per request)"
    )
    if _use_fast_client(config, target):
        from ._fastclient import FastHTTP

        assert target.base_url is not None
        engine.fast = FastHTTP(target.base_url, target.api_key)
        client = "limelight lean HTTP/1.1 client on asyncio protocols (one task per request)"
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    try:
        with _collector_tuned():
            if workload.kind == "agent":
                await _drive_agents(engine, config, workload, limiter)
            elif engine.fast is not None:
                await engine.drive(config.load)
            else:
                await _drive_through_pool(engine, config, limiter)
    finally:
        if engine.fast is not None:
            with anyio.CancelScope(shield=True):
                await engine.fast.aclose()
    return engine.records, client, started_at


def _result(
    config: BenchConfig,
    target: OpenTarget,
    records: list[RequestRecord],
    *,
    client: str,
    started_at: str,
    **extra: Any,
) -> BenchResult:
    """The result of a run whose ``records`` are all in: marked, summarised over the
    measurement window (every record at once: percentiles of the whole run)."""
    records = sorted(records, key=lambda r: (r.kind, r.index))
    if not records:
        raise ConfigError("the run sent nothing: give more requests or a longer duration")
    window = _mark_window(records, config)
    summary = summarize(
        records,
        duration=window,
        slos=config.slos,
        percentiles=config.percentiles,
        prices=target.prices,
    )
    return BenchResult(
        version=__version__,
        started_at=started_at,
        config=config,
        target=target.description,
        client=client,
        offered_rate=_offered_rate(config.load),
        summary=summary,
        timeline=timeline(records),
        definitions=dict(METRIC_DEFINITIONS),
        records=records,
        **extra,
    )


def _on_asyncio() -> bool:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:  # trio
        return False
    return True


def _use_fast_client(config: BenchConfig, target: OpenTarget) -> bool:
    return (
        config.client == "auto"
        and config.workload.kind in ("chat", "stream")
        and target.base_url is not None
        and target.base_url.startswith("http://")
        and _on_asyncio()
    )


async def _check_target(target: OpenTarget, config: BenchConfig) -> None:
    """One request before the clock starts: it opens a connection and loads what the client
    loads lazily (so the first measured request does not pay for it), and a target that
    cannot answer fails the run at once with its error rather than N times."""
    request = CompletionRequest(
        model=target.model, messages=[Message.user("warm-up")], max_tokens=1, stream=True
    )
    try:
        with anyio.fail_after(config.timeout):
            events = target.provider.stream(request)
            try:
                async for _ in events:
                    pass
            finally:
                await events.aclose()
    except Exception as exc:
        raise ConfigError(
            f"the target {target.description} did not answer a first request: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _pool_host(
    limiter: ActorRef | RateLimitHook | None,
) -> tuple[Runtime | None, tuple[AttemptHook, ...]]:
    """The runtime the run's pool must live in (the limiter's; ``None``: a runtime of the
    run's own) and the hooks it takes."""
    if limiter is None:
        return None, ()
    from ..actors._provider_worker import limiter_hook
    from ..runtime import current_runtime

    hook, host = limiter_hook(limiter)
    if current_runtime() is not host:
        raise ConfigError(
            "a benchmark run sharing a rate limiter must run inside the limiter's runtime "
            "(in its `async with Runtime()` block), where its provider pool is started"
        )
    return host, (hook,)


def _pool_size(config: BenchConfig) -> int:
    return config.load.concurrency if isinstance(config.load, ClosedLoop) else config.pool_size


async def _drive_through_pool(
    engine: _Engine, config: BenchConfig, limiter: ActorRef | RateLimitHook | None
) -> None:
    """Provider mode: every request goes through a provider pool, one attempt each (a
    benchmark counts failures rather than retrying them)."""
    from ..actors import ProviderPool
    from ..runtime import RetryPolicy, Runtime

    host, hooks = _pool_host(limiter)
    async with contextlib.AsyncExitStack() as stack:
        if host is None:
            host = await stack.enter_async_context(Runtime())
        engine.pool = await ProviderPool.start(
            host,
            engine.provider,
            name=host.auto_name("bench"),
            deployment="bench",
            model=engine.target.model,
            size=_pool_size(config),
            retry=RetryPolicy(attempts=1),
            # The run's own timeout (config.timeout) bounds each request.
            attempt_timeout=math.inf,
            hooks=hooks,
            close_provider=False,  # the target's: closed when the target is
        )
        stack.push_async_callback(engine.pool.stop)
        await engine.drive(config.load)


async def _drive_agents(
    engine: _Engine,
    config: BenchConfig,
    workload: Workload,
    limiter: ActorRef | RateLimitHook | None = None,
) -> None:
    from ..actors import ProviderPool
    from ..runtime import Runtime

    if workload.agent_factory:
        engine.factory = load_agent_factory(workload.agent_factory)
    host, hooks = _pool_host(limiter)
    async with Runtime() as rt:
        engine.runtime = rt
        engine.pool = await ProviderPool.start(
            host or rt,
            _TimedProvider(engine),
            name="model" if host is None else host.auto_name("model"),
            deployment="model",
            model=engine.target.model,
            size=_pool_size(config),
            hooks=hooks,
        )
        try:
            await engine.drive(config.load)
        finally:
            if host is not None:  # a pool in the limiter's runtime outlives ours: stop it
                with anyio.CancelScope(shield=True):
                    await engine.pool.stop()
