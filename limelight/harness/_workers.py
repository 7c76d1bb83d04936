"""One benchmark run sent from several worker processes (or Ray actors), on one schedule.

One process is one loop on one core: beyond what it can send, the run is split over worker
processes (``python -c ...main()`` subprocesses, so spawned, not forked), each running the
same engine as a one-process run on its share of the sessions. The parent opens the target
once (the simulator is shared), gives every worker its share, starts them all at one
wall-clock instant (each converts it to its own monotonic clock, so records and timelines
line up) and summarises the union of their records, every percentile over all requests.

- Open loop: the arrival schedule is the one-process schedule (same seed); session ``i``
  goes to worker ``i mod N`` at its scheduled time, so the workers together send exactly the
  configured rate.
- Closed loop: session ``i`` belongs to client ``i mod C`` (``C`` the concurrency), client
  ``c`` to worker ``c mod N``: worker ``k`` runs every ``N``-th client and the sessions of
  its clients, so the requests are split in proportion to the clients.

A worker that dies is reported (:attr:`BenchResult.worker_failures`) and its unfinished
sessions are counted as failed (``WorkerDied``); the others run on. The parent and its
workers speak msgpack messages over a transport: here, frames (a 4-byte length, then the
message) over a worker process's stdin and stdout, the parent closing its stdin to stop it
early (``max_errors``) or at its end; in ``_ray_workers``, Ray actor calls. Either way the
worker runs :func:`_work` over a :class:`_Link`, the parent :class:`_Parent` over a
:class:`_Worker` each.

One module: the schedule's split, the messages, the two ends of the protocol and the merge
(with the sessions a dead worker owed) must agree. The process transport is small and stays
beside them (``main`` is the worker processes' entry point); Ray's is in ``_ray_workers``.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import os
import signal
import struct
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from subprocess import PIPE
from typing import Any, BinaryIO, ClassVar, Final, Literal, Protocol

import anyio
import anyio.to_thread
import msgspec
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from ..errors import ConfigError
from ._config import BenchConfig, ClosedLoop, Target, arrivals, check_workers
from ._metrics import RequestRecord
from ._runner import BenchResult, Progress, _collect, _Engine, _on_asyncio, _result
from ._targets import OpenTarget, open_target
from ._workloads import PromptSource

__all__ = ["WORKER_DIED", "main", "run_workers_on", "sessions_of"]

#: The error type of the sessions a dead worker did not finish.
WORKER_DIED: Final = "WorkerDied"
#: Seconds between sending the start instant and the start (worker processes).
_LEAD: Final = 0.1
#: Seconds between a worker's batches of records and counters.
_BATCH_INTERVAL: Final = 0.2
_STDERR_TAIL: Final = 4000
_HEADER: Final = struct.Struct(">I")


# -- messages ------------------------------------------------------------------------------


class _Job(msgspec.Struct, frozen=True, kw_only=True, tag="job"):
    """A worker's share of the run.

    :ivar clients: a closed loop's concurrency over all workers (0: an open loop).
    """

    config: BenchConfig
    worker: int
    workers: int
    clients: int
    backend: str


class _Start(msgspec.Struct, frozen=True, kw_only=True, tag="start"):
    """The start instant, wall clock (``time.time()``)."""

    at: float


class _Ready(msgspec.Struct, frozen=True, kw_only=True, tag="ready"):
    """The worker is set up (target checked, pool started) and waits for the start."""


class _Batch(msgspec.Struct, frozen=True, kw_only=True, tag="batch"):
    """The records ended since the last batch, and the worker's counters."""

    records: list[RequestRecord]
    progress: Progress


class _Done(msgspec.Struct, frozen=True, kw_only=True, tag="done"):
    client: str


class _Failed(msgspec.Struct, frozen=True, kw_only=True, tag="failed"):
    """The worker could not run its share (the configuration or the target is unusable)."""

    error: str


_FromWorker = _Ready | _Batch | _Done | _Failed
_ENCODER: Final = msgspec.msgpack.Encoder()
_TO_WORKER: Final = msgspec.msgpack.Decoder(_Job | _Start)
_FROM_WORKER: Final = msgspec.msgpack.Decoder(_FromWorker)


def _frame(message: msgspec.Struct) -> bytes:
    body = _ENCODER.encode(message)
    return _HEADER.pack(len(body)) + body


def _read_frame(stream: BinaryIO) -> bytes | None:
    """The next frame's body; ``None`` at the end of ``stream``."""
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(head)
    body = stream.read(size)
    return body if len(body) == size else None


# -- the schedule ----------------------------------------------------------------------------


def _closed_indices(worker: int, workers: int, clients: int) -> Iterator[int]:
    """The closed-loop sessions of ``worker``: those of its clients, in order."""
    return (i for i in itertools.count() if i % clients % workers == worker)


def sessions_of(
    config: BenchConfig, worker: int, workers: int, *, clients: int | None = None
) -> Iterator[tuple[int, float | None]]:
    """The sessions the schedule gives ``worker`` of ``workers``, in order: each one's index
    and intended send time (``None`` in a closed loop, where it is not known in advance).
    Endless for a closed loop without a number of requests.

    :param clients: a closed loop's concurrency (default: the load's).
    """
    load = config.load
    requests, duration = config.requests, config.duration
    if isinstance(load, ClosedLoop):
        for i in _closed_indices(worker, workers, clients or load.concurrency):
            if requests is not None and i >= requests:
                return
            yield i, None
        return
    for i, at in enumerate(arrivals(load)):
        if (requests is not None and i >= requests) or (duration is not None and at >= duration):
            return
        if i % workers == worker:
            yield i, at


# -- the worker's side ------------------------------------------------------------------------


class _Link(Protocol):
    """A worker's end of its transport to the parent."""

    def send(self, message: _FromWorker) -> None:
        """Send ``message`` to the parent (from the worker's loop: it must not block long)."""

    def receive(self) -> _Start | None:
        """Block for the parent's next message; ``None`` once it stopped the worker."""


class _PipeLink:
    """Frames over a worker process's stdin (from the parent) and stdout (to it)."""

    def __init__(self, stdin: BinaryIO, out: BinaryIO) -> None:
        self._stdin = stdin
        self._out = out

    def send(self, message: _FromWorker) -> None:
        self._out.write(_frame(message))
        self._out.flush()

    def receive(self) -> _Start | None:
        frame = _read_frame(self._stdin)  # the parent closes our stdin to stop us
        start = None if frame is None else _TO_WORKER.decode(frame)
        assert start is None or isinstance(start, _Start)
        return start


def main() -> None:
    """A worker process: read its job on stdin, run it, send what it measured on stdout."""
    # Frames go to the original stdout; anything else printed goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    stdin = sys.stdin.buffer
    frame = _read_frame(stdin)
    if frame is None:
        return
    job = _TO_WORKER.decode(frame)
    assert isinstance(job, _Job)
    anyio.run(_work, job, _PipeLink(stdin, out), backend=job.backend)


async def _work(job: _Job, link: _Link) -> None:
    """Run ``job`` (a worker's share), telling the parent over ``link``."""
    engines: list[_Engine] = []

    def watch(engine: _Engine) -> None:
        while link.receive() is not None:
            pass
        engine.stopped = True

    async def starter() -> float:
        engine = engines[0]
        link.send(_Ready())
        start = await anyio.to_thread.run_sync(link.receive)
        if start is None:  # the run was called off before it started
            engine.stopped = True
            return time.perf_counter()
        threading.Thread(target=watch, args=(engine,), daemon=True).start()
        return time.perf_counter() + (start.at - time.time())

    def prepare(engine: _Engine) -> None:
        engine.worker, engine.workers = job.worker, job.workers
        if job.clients:
            engine.indices = _closed_indices(job.worker, job.workers, job.clients)
        engine.prompts = PromptSource(
            engine.workload, engine.prompts.file_prompts, worker=job.worker
        )
        engine.starter = starter
        engines.append(engine)

    progress = Progress()
    sent = 0

    def flush() -> None:
        nonlocal sent
        records = engines[0].records if engines else []
        if len(records) > sent or engines:
            link.send(_Batch(records=records[sent:], progress=progress))
            sent = len(records)

    async def batches() -> None:
        while True:
            await anyio.sleep(_BATCH_INTERVAL)
            flush()

    async with open_target(job.config.target) as target, anyio.create_task_group() as tg:
        tg.start_soon(batches)
        try:
            _, client, _ = await _collect(job.config, target, progress, prepare=prepare)
        except ConfigError as exc:
            link.send(_Failed(error=str(exc)))
            tg.cancel_scope.cancel()
            return
        tg.cancel_scope.cancel()
    flush()
    link.send(_Done(client=client))


# -- the parent ---------------------------------------------------------------------------------

#: What the parent does with each message of a worker.
_Handler = Callable[["_Worker", _FromWorker], Awaitable[None]]


class _Worker:
    """The parent's view of one worker: what it reported; its transport in a subclass."""

    #: How the workers are named in the result's client description.
    kind: ClassVar[str] = "workers"
    #: Seconds between sending the start instant and the start: the workers wait, ready.
    lead: ClassVar[float] = _LEAD

    def __init__(self, index: int, job: _Job) -> None:
        self.index = index
        self.job = job
        self.records: list[RequestRecord] = []
        self.progress = Progress()
        self.ready = False
        self.ended = False
        self.done = False
        self.client = ""
        self.failed: str | None = None
        self.died_at: float | None = None

    async def serve(self, handle: _Handler) -> None:
        """Run the worker with its job to its end (or death), each message to ``handle``."""
        raise NotImplementedError

    async def start(self, message: _Start) -> None:
        """Send the start instant (nothing when the worker is gone)."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Let the worker start no other session (idempotent; nothing when it is gone)."""
        raise NotImplementedError

    def exit_reason(self) -> str:
        """How the worker ended, for a report of its death."""
        raise NotImplementedError


class _ProcessWorker(_Worker):
    """A worker process (``python -c ...main()``): frames over its stdin and stdout."""

    kind = "worker processes"

    def __init__(self, index: int, job: _Job) -> None:
        super().__init__(index, job)
        self.process: Process | None = None
        self.stderr = bytearray()
        self.closed = False

    async def serve(self, handle: _Handler) -> None:
        command = [sys.executable, "-c", "from limelight.harness._workers import main; main()"]
        async with await anyio.open_process(
            command, stdin=PIPE, stdout=PIPE, stderr=PIPE
        ) as process:
            self.process = process
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._drain_stderr)
                await self._send(self.job)
                await self._receive(handle)
                await self.stop()
                await process.wait()

    async def start(self, message: _Start) -> None:
        await self._send(message)

    async def stop(self) -> None:
        if self.closed or self.process is None or self.process.stdin is None:
            return
        self.closed = True
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self.process.stdin.aclose()

    async def _send(self, message: msgspec.Struct) -> None:
        assert self.process is not None
        assert self.process.stdin is not None
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self.process.stdin.send(_frame(message))

    async def _drain_stderr(self) -> None:
        assert self.process is not None
        assert self.process.stderr is not None
        async for chunk in self.process.stderr:
            self.stderr += chunk
            del self.stderr[:-_STDERR_TAIL]

    async def _receive(self, handle: _Handler) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        stream = BufferedByteReceiveStream(self.process.stdout)
        while True:
            try:
                (size,) = _HEADER.unpack(await stream.receive_exactly(_HEADER.size))
                message = _FROM_WORKER.decode(await stream.receive_exactly(size))
            except (anyio.IncompleteRead, anyio.EndOfStream, anyio.BrokenResourceError):
                return
            await handle(self, message)

    def exit_reason(self) -> str:
        """How the process ended, and the last line it wrote on stderr."""
        code = None if self.process is None else self.process.returncode
        if code is None:
            how = "ended its output"
        elif code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            how = f"was killed by {name}"
        else:
            how = f"exited with status {code}"
        lines = self.stderr.decode(errors="replace").strip().splitlines()
        return how + (f" ({lines[-1].strip()})" if lines else "")


class _Parent:
    """The run across the workers: their records, the common counters, the start and stop."""

    def __init__(self, config: BenchConfig, workers: list[_Worker], progress: Progress) -> None:
        self.config = config
        self.workers = workers
        self.progress = progress
        self.settled = anyio.Event()
        self.started = False
        self.started_at = datetime.datetime.now(datetime.UTC)
        self.stopped_at: float | None = None

    def _settle(self) -> None:
        if all(w.ready or w.ended for w in self.workers):
            self.settled.set()

    def _update(self) -> None:
        progress = self.progress
        for field in ("sent", "completed", "failed", "in_flight", "output_tokens", "tasks"):
            setattr(progress, field, sum(getattr(w.progress, field) for w in self.workers))
        progress.max_lag = max(w.progress.max_lag for w in self.workers)

    def _now(self) -> float:
        """Seconds since the common start (0 before it)."""
        return time.perf_counter() - self.progress.started if self.started else 0.0

    async def stop(self) -> None:
        """Let no worker start another session."""
        if self.stopped_at is None:
            self.stopped_at = self._now()
        for worker in self.workers:
            await worker.stop()

    async def run(self, worker: _Worker) -> None:
        await worker.serve(self._handle)
        if not worker.done and worker.failed is None:
            worker.died_at = self._now()
        worker.progress.in_flight = 0
        worker.ended = True
        self._update()
        self._settle()

    async def _handle(self, worker: _Worker, message: _FromWorker) -> None:
        limit = self.config.max_errors
        match message:
            case _Ready():
                worker.ready = True
                self._settle()
            case _Batch(records=records, progress=progress):
                for record in records:
                    record.worker = worker.index
                worker.records += records
                worker.progress = progress
                self._update()
                if limit is not None and self.progress.failed >= limit:
                    await self.stop()
            case _Done(client=client):
                worker.done, worker.client = True, client
            case _Failed(error=error):
                worker.failed = error
                if not self.started:  # the run cannot start: call it off
                    await self.stop()

    async def start(self) -> str | None:
        """Wait until every worker is ready (or gone), then start them all at one instant.

        :returns: why the run cannot start (a worker's error), or ``None``: it started.
        """
        await self.settled.wait()
        failed = [w.failed for w in self.workers if w.failed is not None]
        if failed:
            await self.stop()
            return failed[0]
        at = time.time() + max(w.lead for w in self.workers)
        self.started_at = datetime.datetime.fromtimestamp(at, datetime.UTC)
        self.progress.started = time.perf_counter() + (at - time.time())
        self.started = True
        async with anyio.create_task_group() as tg:  # at once: each may take a round trip
            for worker in self.workers:
                if worker.ready and not worker.ended:
                    tg.start_soon(worker.start, _Start(at=at))
        return None

    def lost(self, worker: _Worker) -> list[RequestRecord]:
        """Failed records for the sessions a dead ``worker`` did not finish: those of its
        schedule it had not reported when it died (in a closed loop without a number of
        requests, one per client it ran), up to where the run stopped."""
        config, job = self.config, worker.job
        died = worker.died_at or 0.0
        unit: Literal["request", "task"] = (
            "request" if config.workload.kind in ("chat", "stream") else "task"
        )
        seen = {r.index for r in worker.records if r.kind == unit}
        sessions = sessions_of(config, job.worker, job.workers, clients=job.clients or None)
        if config.requests is None and isinstance(config.load, ClosedLoop):
            clients = job.config.load.concurrency  # type: ignore[union-attr]
            sessions = itertools.islice(sessions, len(seen) + clients)
        message = (
            f"worker {worker.index} of {job.workers} {worker.exit_reason()} before this "
            "session ended"
        )
        lost = []
        for index, at in sessions:
            if index in seen:
                continue
            intended = died if at is None else at
            if self.stopped_at is not None and intended > self.stopped_at:
                break
            lost.append(
                RequestRecord(
                    index=index,
                    kind=unit,
                    session=index if unit == "task" else -1,
                    intended=intended,
                    sent=max(intended, died),
                    error=WORKER_DIED,
                    error_message=message,
                    worker=worker.index,
                )
            )
        return lost


def _shared_target(config: BenchConfig, target: OpenTarget) -> Target:
    """The target as the workers open it: the parent's server (the simulator it started,
    or the given URL) when there is one, at the parent's prices; else the same model string,
    each worker resolving its own provider."""
    if target.base_url is None:
        return config.target
    prices = target.prices
    return Target(
        model=config.target.model,
        base_url=target.base_url,
        api_key_env=config.target.api_key_env,
        price_input=None if prices is None else prices.input,
        price_output=None if prices is None else prices.output,
    )


def _jobs(config: BenchConfig, target: OpenTarget, workers: int) -> list[_Job]:
    load = config.load
    clients = load.concurrency if isinstance(load, ClosedLoop) else 0
    if clients and clients < workers:
        raise ConfigError(
            f"a closed loop of {clients} clients cannot be split over {workers} workers: give "
            "a concurrency of at least the number of workers"
        )
    shared = msgspec.structs.replace(config, target=_shared_target(config, target))
    backend = "asyncio" if _on_asyncio() else "trio"
    jobs = []
    for k in range(workers):
        own = shared
        if clients:  # every workers-th client is this worker's
            own = msgspec.structs.replace(
                shared, load=ClosedLoop(concurrency=len(range(k, clients, workers)))
            )
        jobs.append(_Job(config=own, worker=k, workers=workers, clients=clients, backend=backend))
    return jobs


def _prepare(
    config: BenchConfig, target: OpenTarget, workers: int, progress: Progress
) -> list[_Job]:
    """The workers' jobs, the common counters' totals set.

    :raises ConfigError: ``workers`` is out of range, or a closed loop too small for them."""
    check_workers(workers)
    jobs = _jobs(config, target, workers)
    progress.total = config.requests
    progress.duration = config.duration
    progress.sessions = config.workload.kind in ("multiturn", "agent")
    return jobs


async def run_workers_on(
    config: BenchConfig, target: OpenTarget, *, workers: int, progress: Progress
) -> BenchResult:
    """Run ``config`` against an opened ``target`` from ``workers`` processes (see
    :func:`limelight.harness.run`)."""
    jobs = _prepare(config, target, workers, progress)
    return await _run_workers(
        config, target, [_ProcessWorker(k, job) for k, job in enumerate(jobs)], progress
    )


async def _run_workers(
    config: BenchConfig, target: OpenTarget, workers: list[_Worker], progress: Progress
) -> BenchResult:
    """Run the workers on one schedule and summarise their records together."""
    parent = _Parent(config, workers, progress)
    async with anyio.create_task_group() as tg:
        for worker in workers:
            tg.start_soon(parent.run, worker)
        error = await parent.start()
    if error is not None:
        raise ConfigError(error)
    records: list[RequestRecord] = []
    failures: list[str] = []
    for worker in workers:
        records += worker.records
        if not worker.done:
            lost = parent.lost(worker)
            records += lost
            what = f"{worker.failed}: " if worker.failed else ""
            failures.append(
                f"worker {worker.index} of {len(workers)} {worker.exit_reason()} before its "
                f"end: {what}{len(lost)} unfinished sessions counted as failed ({WORKER_DIED})"
            )
    clients = sorted({w.client for w in workers if w.client})
    client = f"{len(workers)} {workers[0].kind}, each: {clients[0] if clients else 'none finished'}"
    extra: dict[str, Any] = {"workers": len(workers), "worker_failures": failures}
    return _result(
        config,
        target,
        records,
        client=client,
        started_at=parent.started_at.isoformat(timespec="seconds"),
        **extra,
    )
