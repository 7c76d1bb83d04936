"""A benchmark run's workers as Ray actors (``limelight bench --workers N --ray``).

The same run as with worker processes (``_workers``: one schedule, records merged, a dead
worker's sessions counted as failed), over another transport: each worker is a Ray actor
(one process, 1 CPU reserved) running the worker's engine (:func:`~._workers._work`) on its
own loop thread. Its job goes in as the argument of a call whose streamed results (a Ray
generator) are the worker's messages, msgpack-encoded as over a pipe; the start instant and
the stop are two more actor calls. When the actor's process dies, Ray fails the stream, and
the parent reports the worker as dead.

Ray is imported only here, when a run asks for it. Without an address, the run starts a
local Ray instance (as many CPUs as workers, at least the machine's) and stops it at its
end; when Ray is already initialised in this process, that instance is used as it is.

On a cluster of several machines, mind two things:

- The target must be reachable from the hosts: the simulator the parent starts listens on
  127.0.0.1 of the parent's machine, fine for a local instance only; give a target URL the
  hosts can reach (``--base-url``), and set its key's environment variable on the hosts
  (the parent's environment does not travel).
- The start instant travels as wall-clock time (``time.time()``), which each worker turns
  into its own monotonic clock: the schedule is one across hosts only as far as their clocks
  are synchronised (NTP keeps them within milliseconds; a skew shows as a shifted start).
  Latencies are measured within each worker, so they do not depend on it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Final

import anyio
import anyio.to_thread

from ..errors import ConfigError
from ._config import BenchConfig
from ._runner import BenchResult, Progress
from ._targets import OpenTarget
from ._workers import (
    _ENCODER,
    _FROM_WORKER,
    _TO_WORKER,
    _FromWorker,
    _Handler,
    _Job,
    _prepare,
    _run_workers,
    _Start,
    _work,
    _Worker,
)

__all__ = ["RayWorker", "ray_instance", "ray_workers", "run_ray_workers_on"]

#: Seconds between sending the start instant and the start: an actor call takes longer than
#: a pipe write, more so to another machine.
_LEAD: Final = 0.5
#: Seconds Ray may take to start a worker (place the actor and start its process).
_PLACE_TIMEOUT: Final = 60.0
#: Calls a worker's actor serves at once: the stream, the start, the stop.
_CONCURRENCY: Final = 4


def _import_ray() -> Any:
    """The ``ray`` module.

    :raises ConfigError: Ray is not installed.
    """
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "workers on Ray need ray, which is not installed: pip install 'limelight[ray]' "
            "(or send from worker processes: leave out --ray)"
        ) from exc
    return ray


# -- the worker's side: the actor ------------------------------------------------------------


class _QueueLink:
    """The worker's end of its transport, between the actor's calls and its loop thread."""

    def __init__(self) -> None:
        self._out: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._in: deque[_Start] = deque()
        self._stopped = False
        self._changed = threading.Condition()

    def send(self, message: _FromWorker) -> None:
        self._out.put(_ENCODER.encode(message))

    def receive(self) -> _Start | None:
        with self._changed:
            self._changed.wait_for(lambda: bool(self._in) or self._stopped)
            return self._in.popleft() if self._in else None

    def put(self, start: _Start) -> None:
        with self._changed:
            self._in.append(start)
            self._changed.notify_all()

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()

    def end(self) -> None:
        """The worker has sent its last message."""
        self._out.put(None)

    def sent(self) -> Iterator[bytes]:
        """What the worker sends, until its end."""
        while (message := self._out.get()) is not None:
            yield message


class RayWorker:
    """One worker of a run, as Ray instantiates it in its actor's process: a threaded actor
    (the stream, the start and the stop are served at once)."""

    def __init__(self) -> None:
        self._link = _QueueLink()

    def pid(self) -> int:
        return os.getpid()

    def run(self, job: bytes) -> Iterator[bytes]:
        """Run ``job`` (a ``_Job``) on a loop thread; yield the worker's messages as it sends
        them (Ray streams them to the parent)."""
        decoded = _TO_WORKER.decode(job)
        assert isinstance(decoded, _Job)
        errors: list[BaseException] = []

        def loop() -> None:
            try:
                anyio.run(_work, decoded, self._link, backend=decoded.backend)
            except BaseException as exc:  # re-raised by the stream, to the parent
                errors.append(exc)
            finally:
                self._link.end()

        thread = threading.Thread(target=loop, name=f"limelight-worker-{decoded.worker}")
        thread.start()
        yield from self._link.sent()
        thread.join()
        if errors:
            raise errors[0]

    def start(self, at: float) -> None:
        self._link.put(_Start(at=at))

    def stop(self) -> None:
        self._link.stop()


# -- the parent's side -----------------------------------------------------------------------


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


class _RayWorkerProxy(_Worker):
    """The parent's view of a worker on Ray: its actor, called from threads (on asyncio and
    trio alike)."""

    kind = "Ray workers"
    lead = _LEAD

    def __init__(
        self, index: int, job: _Job, ray: Any, remote: Any, limiter: anyio.CapacityLimiter
    ) -> None:
        super().__init__(index, job)
        self._ray = ray
        self._remote = remote
        self._limiter = limiter
        self._actor: Any = None
        self._stopped = False
        self.pid: int | None = None
        self.how: str | None = None

    async def _get(self, ref: Any) -> Any:
        # Not on the streams' limiter: a start must not wait for a stream's next message.
        return await anyio.to_thread.run_sync(self._ray.get, ref, abandon_on_cancel=True)

    def _next(self, stream: Any) -> bytes | None:
        """The stream's next message, ``None`` at its end (blocks: run in a thread)."""
        try:
            ref = next(stream)
        except StopIteration:
            return None
        data: bytes = self._ray.get(ref)
        return data

    async def serve(self, handle: _Handler) -> None:
        exceptions = self._ray.exceptions
        self._actor = self._remote.remote()
        try:
            try:
                with anyio.fail_after(_PLACE_TIMEOUT):
                    self.pid = await self._get(self._actor.pid.remote())
            except TimeoutError:
                self.how = "was not started"
                self.failed = (
                    f"Ray did not start worker {self.index} within {_PLACE_TIMEOUT:g} s: each "
                    "worker needs 1 CPU of the cluster free"
                )
                return
            method = self._actor.run.options(num_returns="streaming")
            stream = method.remote(_ENCODER.encode(self.job))
            while True:
                data = await anyio.to_thread.run_sync(
                    self._next, stream, abandon_on_cancel=True, limiter=self._limiter
                )
                if data is None:
                    return
                await handle(self, _FROM_WORKER.decode(data))
        except exceptions.RayActorError as exc:
            where = "" if self.pid is None else f" in process {self.pid}"
            self.how = f"died (its Ray actor{where} was lost: {type(exc).__name__})"
        except exceptions.RayTaskError as exc:  # the worker's code raised
            self.how = f"failed ({_last_line(exc)})"
        except exceptions.RayError as exc:
            self.how = f"was lost ({type(exc).__name__}: {_last_line(exc)})"
        finally:
            with contextlib.suppress(exceptions.RayError):
                self._ray.kill(self._actor)

    async def start(self, message: _Start) -> None:
        with contextlib.suppress(self._ray.exceptions.RayError):
            await self._get(self._actor.start.remote(message.at))

    async def stop(self) -> None:
        if self._stopped or self._actor is None:
            return
        self._stopped = True
        with contextlib.suppress(self._ray.exceptions.RayError):
            await self._get(self._actor.stop.remote())

    def exit_reason(self) -> str:
        return self.how or "ended its output"


@contextlib.asynccontextmanager
async def ray_instance(address: str | None, workers: int) -> AsyncIterator[Any]:
    """Ray, initialised for as long as the context lasts: a local instance started for it
    (``address`` ``None``) or the cluster at ``address`` joined, and stopped or left at its
    end; when Ray is initialised in this process already, that instance, left as it is.
    Yields the ``ray`` module.

    :raises ConfigError: Ray is not installed, or the cluster cannot be joined.
    """
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
    }
    if address is None:
        options["num_cpus"] = max(workers, os.cpu_count() or 1)
    init = functools.partial(ray.init, address=address or "local", **options)
    try:
        # Abandoned on cancel: Ray keeps trying an address where no cluster answers.
        await anyio.to_thread.run_sync(init, abandon_on_cancel=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "a local Ray instance" if address is None else f"the Ray cluster at {address}"
        raise ConfigError(
            f"could not start or join {where}: {_last_line(exc)} (give the address of a "
            "running cluster: auto, HOST:6379 or ray://HOST:10001)"
        ) from exc
    try:
        yield ray
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(ray.shutdown)


@contextlib.asynccontextmanager
async def ray_workers(
    address: str | None, workers: int
) -> AsyncIterator[Callable[[int, _Job], _Worker]]:
    """Ray for a run of ``workers`` workers (see :func:`ray_instance`); yields what makes
    each worker (its index, its job).

    :raises ConfigError: Ray is not installed, the cluster cannot be joined, or it has fewer
        CPUs than workers.
    """
    async with ray_instance(address, workers) as ray:
        cpus = ray.cluster_resources().get("CPU", 0)
        if cpus < workers:
            raise ConfigError(
                f"the Ray cluster has {cpus:g} CPUs, and each of the {workers} workers needs "
                "one: give fewer workers, or a bigger cluster"
            )
        decorate: Any = ray.remote  # typed for functions; a class is what it gets here
        remote = decorate(num_cpus=1, max_concurrency=_CONCURRENCY)(RayWorker)
        limiter = anyio.CapacityLimiter(workers)  # a thread per worker's stream
        yield lambda index, job: _RayWorkerProxy(index, job, ray, remote, limiter)


async def run_ray_workers_on(
    config: BenchConfig,
    target: OpenTarget,
    *,
    workers: int,
    progress: Progress,
    address: str | None = None,
) -> BenchResult:
    """Run ``config`` against an opened ``target`` from ``workers`` Ray actors, on a local
    Ray instance or the cluster at ``address`` (see :func:`limelight.harness.run`)."""
    jobs = _prepare(config, target, workers, progress)
    async with ray_workers(address, workers) as make:
        return await _run_workers(
            config, target, [make(k, job) for k, job in enumerate(jobs)], progress
        )
