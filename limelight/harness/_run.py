"""The entry points of a benchmark run: one run, a run on an opened target, a sweep.

:func:`run` and :func:`sweep` open the target; :func:`run_on` runs on an opened one, in this
process (the engine of ``_runner``) or from worker processes (``_workers``) or Ray actors
(``_ray_workers``)."""

from __future__ import annotations

import contextlib
import datetime
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import msgspec

from .._version import __version__
from ..errors import ConfigError
from ._config import BenchConfig, check_workers, with_rate
from ._metrics import METRIC_DEFINITIONS
from ._runner import BenchResult, Progress, SweepPoint, SweepResult, _collect, _result
from ._targets import OpenTarget, open_target
from ._workers import run_workers_on

if TYPE_CHECKING:
    from ..actors import RateLimitHook
    from ..runtime import ActorRef

__all__ = ["run", "run_on", "sweep"]


async def run_on(
    config: BenchConfig,
    target: OpenTarget,
    *,
    progress: Progress | None = None,
    limiter: ActorRef | RateLimitHook | None = None,
    workers: int | None = None,
    ray: bool | str = False,
) -> BenchResult:
    """Run ``config`` against an opened ``target`` (see :func:`run`)."""
    progress = progress if progress is not None else Progress()
    _check_ray(workers, ray)
    if workers is not None:
        if limiter is not None:
            raise ConfigError(
                "a rate limiter lives in one process: a run sharing one cannot use workers"
            )
        if ray is False:
            return await run_workers_on(config, target, workers=workers, progress=progress)
        from ._ray_workers import run_ray_workers_on

        return await run_ray_workers_on(
            config,
            target,
            workers=workers,
            progress=progress,
            address=None if ray is True else ray,
        )
    records, client, started_at = await _collect(config, target, progress, limiter)
    return _result(config, target, records, client=client, started_at=started_at)


async def run(
    config: BenchConfig,
    *,
    progress: Progress | None = None,
    limiter: ActorRef | RateLimitHook | None = None,
    workers: int | None = None,
    ray: bool | str = False,
) -> BenchResult:
    """Run one benchmark: open the target (starting the simulator if it is one), send the
    workload under the load, and summarize. Works on asyncio and trio.

    :param progress: counters updated live, for a progress display.
    :param limiter: a :class:`~limelight.actors.RateLimiter` shared with other callers (its
        reference, or a :class:`~limelight.actors.RateLimitHook` on one) that admits every
        model call of the run (provider mode and agent workloads, which go through a provider
        pool; the lean HTTP client does not); the run must then happen inside the limiter's
        runtime.
    :param workers: send the load from this many worker processes (1 to
        :data:`~limelight.harness.MAX_WORKERS`) sharing one schedule: an open loop's session
        ``i`` goes to worker ``i mod workers`` at its scheduled time; a closed loop's clients
        are split among them. The simulator (or an HTTP target) is shared; the records of
        every worker are summarised together. ``None``: this process sends it.
    :param ray: the workers are Ray actors (one process each, 1 CPU reserved) rather than
        processes of this machine: ``True`` on a local Ray instance started for the run (or
        the one this process has initialised already), or the address of a Ray cluster to
        join (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``); needs ``workers``. On
        other machines, the target must be reachable from them (the simulator started for
        the run listens on 127.0.0.1: give a ``base_url`` they can reach) and their clocks
        synchronised (the start instant travels as wall-clock time).
    :raises ConfigError: the configuration or the target is unusable, or Ray is asked for and
        not installed (the ``ray`` extra) or cannot be joined.
    """
    check_workers(workers)
    _check_ray(workers, ray)
    async with open_target(config.target) as target:
        return await run_on(
            config, target, progress=progress, limiter=limiter, workers=workers, ray=ray
        )


def _check_ray(workers: int | None, ray: bool | str) -> None:
    """:raises ConfigError: ``ray`` is asked for without ``workers``, or is an empty
    address."""
    if ray is not False and workers is None:
        raise ConfigError("ray= runs the workers on Ray: give workers=N too")
    if isinstance(ray, str) and not ray.strip():
        raise ConfigError(
            "ray= takes True or a Ray cluster's address (auto, HOST:6379, ray://HOST:10001), "
            "got an empty string"
        )


async def sweep(
    config: BenchConfig,
    *,
    rates: Sequence[float] | None = None,
    start: float = 1.0,
    max_rate: float = 1024.0,
    steps: int = 3,
    min_attainment: float = 0.95,
    max_send_lag: float = 0.010,
    on_point: Callable[[SweepPoint], None] | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    ray: bool | str = False,
) -> SweepResult:
    """Find the highest request rate that meets the SLOs: at each rate, the share of requests
    meeting every SLO (``config.slos``) must be at least ``min_attainment``, and the client
    must have kept its schedule (p99 send lag within ``max_send_lag`` seconds: beyond it the
    latencies measure the client, not the target). With ``rates``, try exactly those;
    otherwise double from ``start`` until a rate fails (or ``max_rate``), then bisect
    ``steps`` times. ``workers``: each rate is sent from this many processes, Ray actors
    with ``ray`` (see :func:`run`; one Ray instance serves every rate).

    :raises ConfigError: no SLOs were given, or ``min_attainment`` is not within (0, 1].
    """
    if not config.slos:
        raise ConfigError("a sweep needs SLOs to meet, such as slos={'ttft': 500}")
    if not 0 < min_attainment <= 1:
        raise ConfigError(f"min_attainment must be within (0, 1], got {min_attainment}")
    check_workers(workers)
    _check_ray(workers, ray)
    points: list[SweepPoint] = []
    description = ""
    async with contextlib.AsyncExitStack() as stack:
        if ray is not False:
            from ._ray_workers import ray_instance

            address = None if ray is True else ray
            await stack.enter_async_context(ray_instance(address, workers or 1))
        target = await stack.enter_async_context(open_target(config.target))
        description = target.description

        async def attempt(rate: float) -> bool:
            if progress is not None:
                for field in ("sent", "completed", "failed", "in_flight", "output_tokens", "tasks"):
                    setattr(progress, field, 0)
            result = await run_on(
                msgspec.structs.replace(config, load=with_rate(config.load, rate)),
                target,
                progress=progress,
                workers=workers,
                ray=ray,
            )
            s = result.summary
            lag = s.send_lag.percentiles.get("p99", s.send_lag.max) if s.send_lag else 0.0
            passed = (
                s.slo_attainment is not None
                and s.slo_attainment >= min_attainment
                and lag <= max_send_lag * 1000.0
            )
            point = SweepPoint(rate=rate, passed=passed, summary=s)
            points.append(point)
            if on_point is not None:
                on_point(point)
            return passed

        if rates:
            for rate in sorted(rates):
                await attempt(rate)
        else:
            good, bad = 0.0, math.inf
            rate = start
            while rate <= max_rate:
                if await attempt(rate):
                    good = rate
                    rate *= 2
                else:
                    bad = rate
                    break
            if good and bad < math.inf:
                for _ in range(steps):
                    middle = (good + bad) / 2
                    if await attempt(middle):
                        good = middle
                    else:
                        bad = middle
    passed = [p.rate for p in points if p.passed]
    return SweepResult(
        version=__version__,
        started_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        config=config,
        target=description,
        min_attainment=min_attainment,
        max_send_lag=max_send_lag,
        best_rate=max(passed) if passed else None,
        points=sorted(points, key=lambda p: p.rate),
        definitions=dict(METRIC_DEFINITIONS),
    )
