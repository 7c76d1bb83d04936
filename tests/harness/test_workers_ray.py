"""Runs sent from worker Ray actors (``run(..., workers=N, ray=True)``, ``limelight bench
--workers N --ray``) against the simulator over real HTTP, on a local Ray instance: one
schedule over the workers, records merged exactly, a killed worker reported, Ray imported
only when asked for and named when missing, bad options refused."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from limelight.cli import main
from limelight.errors import ConfigError
from limelight.harness import (
    BenchConfig,
    BenchResult,
    ClosedLoop,
    ConstantRate,
    Load,
    Progress,
    Target,
    Workload,
    arrivals,
    run,
    sweep,
)
from limelight.harness._targets import sim_process

from .test_workers import _assert_exact

FAST = [
    *("--ttft", "0.005", "--ttft-jitter", "0.001", "--tps", "4000"),
    *("--output-tokens", "100000"),
]


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    """A local Ray instance of 2 CPUs for the module's runs (the session's, when another
    module started one already: it is left running)."""
    ray = pytest.importorskip("ray", reason="pip install 'limelight[ray]'")
    if ray.is_initialized():
        yield
        return
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    """A ``limelight sim`` subprocess shared by the module's runs."""
    with sim_process([sys.executable, "-m", "limelight", "sim", "--port", "0", *FAST]) as url:
        yield url


def _config(url: str, load: Load, **options: object) -> BenchConfig:
    return BenchConfig(
        target=Target(base_url=url, price_input=1.0, price_output=2.0),
        workload=Workload(kind="stream", prompt_tokens="20", output_tokens="3-6"),
        load=load,
        slos={"ttft": 10_000},
        percentiles=(50.0, 90.0, 99.0),
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.usefixtures("ray_instance")
async def test_an_open_loop_is_one_schedule_over_the_ray_workers(sim_url: str) -> None:
    load = ConstantRate(rate=40.0)
    result = await run(_config(sim_url, load, requests=24), workers=2, ray=True)
    assert (result.workers, result.worker_failures) == (2, [])
    assert result.client.startswith("2 Ray workers, each: ")
    s = result.summary
    assert (s.completed, s.failed) == (24, 0)
    requests = sorted(result.records, key=lambda r: r.index)
    assert [r.index for r in requests] == list(range(24))
    assert [r.worker for r in requests] == [i % 2 for i in range(24)]
    assert [r.intended for r in requests] == pytest.approx(
        list(itertools.islice(arrivals(load), 24))
    )
    # Both actors' clocks started at the common instant: none sent before its time.
    assert all(r.sent >= r.intended - 1e-6 for r in requests)
    _assert_exact(result, 2)


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.usefixtures("ray_instance")
async def test_a_closed_loop_splits_its_clients_over_the_ray_workers(sim_url: str) -> None:
    result = await run(
        _config(sim_url, ClosedLoop(concurrency=3), requests=12), workers=2, ray=True
    )
    assert (result.summary.completed, result.summary.failed) == (12, 0)
    requests = sorted(result.records, key=lambda r: r.index)
    assert [r.worker for r in requests] == [i % 3 % 2 for i in range(12)]
    _assert_exact(result, 2)


def _ray_workers_of(pid: int) -> set[int]:
    """The processes of Ray actors running a worker below ``pid`` (Ray's processes, started
    by it)."""

    def parent(entry: int) -> int:
        stat = Path(f"/proc/{entry}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[1])

    found = set()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if not Path(f"/proc/{entry}/cmdline").read_bytes().startswith(b"ray::RayWorker"):
                continue
            ancestor = int(entry)
            while ancestor > 1 and ancestor != pid:
                ancestor = parent(ancestor)
        except (OSError, ValueError):
            continue
        if ancestor == pid:
            found.add(int(entry))
    return found


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.usefixtures("ray_instance")
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds workers in /proc")
async def test_a_killed_ray_worker_is_reported_and_its_requests_failed(sim_url: str) -> None:
    config = _config(sim_url, ConstantRate(rate=10.0), requests=30)
    before = _ray_workers_of(os.getpid())
    progress = Progress()
    results: list[BenchResult] = []

    async def bench() -> None:
        results.append(await run(config, workers=2, ray=True, progress=progress))

    async with anyio.create_task_group() as tg:
        tg.start_soon(bench)
        with anyio.fail_after(40):
            while progress.sent < 6:  # into the run (3 s of sends)
                await anyio.sleep(0.05)
        workers = _ray_workers_of(os.getpid()) - before
        assert len(workers) == 2
        os.kill(max(workers), signal.SIGKILL)
    (result,) = results
    (failure,) = result.worker_failures
    assert f"died (its Ray actor in process {max(workers)} was lost: ActorDiedError)" in failure
    assert "counted as failed (WorkerDied)" in failure
    s = result.summary
    assert s.completed + s.failed == 30
    assert s.errors["WorkerDied"] == s.failed > 0
    # Every request of the schedule is accounted for exactly once: answered, or lost with
    # the worker that had it.
    assert sorted(r.index for r in result.records) == list(range(30))
    lost = [r for r in result.records if r.error == "WorkerDied"]
    assert {r.index % 2 for r in lost} == {r.worker for r in lost} == {lost[0].worker}
    assert failure.startswith(f"worker {lost[0].worker} of 2 died")


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.usefixtures("ray_instance")
async def test_a_sweep_on_ray_workers(sim_url: str) -> None:
    result = await sweep(
        _config(sim_url, ConstantRate(rate=1.0), requests=8), rates=[20.0], workers=2, ray=True
    )
    (point,) = result.points
    assert (point.summary.completed, point.summary.failed) == (8, 0)


@pytest.mark.anyio
@pytest.mark.usefixtures("ray_instance")
async def test_more_workers_than_the_cluster_has_cpus(sim_url: str) -> None:
    with pytest.raises(ConfigError, match="has 2 CPUs, and each of the 3 workers needs one"):
        await run(_config(sim_url, ConstantRate(rate=10.0), requests=3), workers=3, ray=True)


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.usefixtures("ray_instance")
async def test_a_target_that_does_not_answer_the_ray_workers_fails_the_run() -> None:
    config = _config("http://127.0.0.1:9/v1", ConstantRate(rate=10.0), requests=2, timeout=5.0)
    with pytest.raises(ConfigError, match="did not answer a first request"):
        await run(config, workers=2, ray=True)


@pytest.mark.anyio
async def test_ray_needs_workers_and_an_address(sim_url: str) -> None:
    config = _config(sim_url, ConstantRate(rate=10.0), requests=2)
    with pytest.raises(ConfigError, match="give workers=N too"):
        await run(config, ray=True)
    with pytest.raises(ConfigError, match="got an empty string"):
        await run(config, workers=2, ray=" ")


@pytest.mark.anyio
async def test_a_missing_ray_names_the_extra(sim_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    config = _config(sim_url, ConstantRate(rate=10.0), requests=2)
    with pytest.raises(ConfigError, match=r"pip install 'limelight\[ray\]'"):
        await run(config, workers=2, ray=True)


def test_ray_is_imported_only_when_asked_for() -> None:
    code = (
        "import sys, limelight.harness, limelight.cli.bench, limelight.harness._workers; "
        "assert 'ray' not in sys.modules, 'ray was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("options", "line"),
    [
        (
            ["--ray"],
            "limelight bench: --ray runs the workers on Ray: give --workers N too",
        ),
        (
            ["--workers", "2", "--ray="],
            "limelight bench run: argument --ray: expected a Ray cluster's address such as "
            "auto, HOST:6379 or ray://HOST:10001 (or --ray alone: a local Ray instance), got "
            "'' (`limelight bench run --help` lists the options)",
        ),
    ],
)
def test_the_command_refuses_bad_ray_options(
    options: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code: int | str | None
    try:
        code = main(["bench", "run", *options, "--no-progress"])
    except SystemExit as exit_:  # argparse's errors exit; a ConfigError is returned as 2
        code = exit_.code
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [line]
