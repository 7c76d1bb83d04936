"""Runs sent from several worker processes (``run(..., workers=N)``, ``limelight bench
--workers N``) against the simulator over real HTTP: one schedule over the workers, records
merged exactly, bad values refused, a killed worker reported."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from limelight.cli import main
from limelight.errors import ConfigError
from limelight.harness import (
    BenchConfig,
    BenchResult,
    ClosedLoop,
    ConstantRate,
    Gamma,
    Load,
    Poisson,
    Prices,
    RequestRecord,
    Target,
    Workload,
    arrivals,
    load_records,
    load_result,
    percentile,
    run,
    summarize,
)
from limelight.harness._targets import sim_process

FAST = [
    *("--ttft", "0.005", "--ttft-jitter", "0.001", "--tps", "4000"),
    *("--output-tokens", "100000"),
]
PRICES = Prices(input=1.0, output=2.0)
OPEN_LOOPS: list[Load] = [
    ConstantRate(rate=80.0),
    Poisson(rate=80.0, seed=3),
    Gamma(rate=80.0, shape=0.5, seed=3),
]


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    """A ``limelight sim`` subprocess shared by the module's runs."""
    with sim_process([sys.executable, "-m", "limelight", "sim", "--port", "0", *FAST]) as url:
        yield url


def _config(url: str, load: Load, *, kind: str = "stream", **options: object) -> BenchConfig:
    return BenchConfig(
        target=Target(base_url=url, price_input=1.0, price_output=2.0),
        # An agent task ends when the simulator answers without a tool call (a coin flip each
        # turn): 12 turns leave a task failing (agent:max_turns) once in 4,096.
        workload=Workload(
            kind=kind,  # type: ignore[arg-type]
            prompt_tokens="20",
            output_tokens="3-6",
            turns=2,
            max_turns=12,
        ),
        load=load,
        slos={"ttft": 10_000},
        percentiles=(50.0, 90.0, 99.0),
        **options,  # type: ignore[arg-type]
    )


def _assert_exact(result: BenchResult, workers: int) -> None:
    """The summary is ``summarize`` of every worker's records taken together."""
    config = result.config
    parts = [[r for r in result.records if r.worker == k] for k in range(workers)]
    assert all(parts)
    assert sum(map(len, parts)) == len(result.records)
    assert result.summary == summarize(
        [r for part in parts for r in part],
        duration=result.summary.duration_s,
        slos=config.slos,
        percentiles=config.percentiles,
        prices=PRICES,
    )


@pytest.mark.anyio
@pytest.mark.parametrize("load", OPEN_LOOPS, ids=lambda load: type(load).__name__)
async def test_an_open_loop_is_one_schedule_over_the_workers(sim_url: str, load: Load) -> None:
    assert not isinstance(load, ClosedLoop)
    result = await run(_config(sim_url, load, requests=24), workers=3)
    assert (result.workers, result.worker_failures) == (3, [])
    s = result.summary
    assert (s.completed, s.failed) == (24, 0)
    requests = sorted(result.records, key=lambda r: r.index)
    # Request i is worker (i mod 3)'s, sent at the schedule's i-th time: together the workers
    # send the one-process schedule, at the configured rate.
    assert [r.index for r in requests] == list(range(24))
    assert [r.worker for r in requests] == [i % 3 for i in range(24)]
    schedule = list(itertools.islice(arrivals(load), 24))
    assert [r.intended for r in requests] == pytest.approx(schedule)
    # Every worker's clock started at the common instant: none sent before its time.
    assert all(r.sent >= r.intended - 1e-6 for r in requests)
    assert all(r.sent < (r.first or 0) <= (r.end or 0) for r in requests)
    assert result.offered_rate == 80.0
    _assert_exact(result, 3)


@pytest.mark.anyio
async def test_a_closed_loop_splits_its_clients(sim_url: str) -> None:
    result = await run(_config(sim_url, ClosedLoop(concurrency=3), requests=18), workers=2)
    assert (result.summary.completed, result.summary.failed) == (18, 0)
    requests = sorted(result.records, key=lambda r: r.index)
    # Request i is client (i mod 3)'s, client c worker (c mod 2)'s: worker 0 runs clients 0
    # and 2, worker 1 client 1.
    assert [r.index for r in requests] == list(range(18))
    assert [r.worker for r in requests] == [i % 3 % 2 for i in range(18)]
    _assert_exact(result, 2)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["multiturn", "agent"])
async def test_sessions_over_workers(sim_url: str, kind: str) -> None:
    result = await run(_config(sim_url, ConstantRate(rate=40.0), kind=kind, requests=6), workers=2)
    tasks = sorted((r for r in result.records if r.kind == "task"), key=lambda r: r.index)
    assert [(t.index, t.worker, t.ok) for t in tasks] == [(i, i % 2, True) for i in range(6)]
    # Each kind of record has unique indices over the workers (agent calls included).
    for kind_ in ("request", "call"):
        indices = [r.index for r in result.records if r.kind == kind_]
        assert len(indices) == len(set(indices))
    assert result.summary.tasks == 6
    _assert_exact(result, 2)


def test_percentiles_are_of_the_union_not_averaged() -> None:
    """Two workers' records with different latencies: the merged p99 is the union's, which
    the mean of the two workers' p99s is not."""

    def records(worker: int, latencies: list[float]) -> list[RequestRecord]:
        return [
            RequestRecord(
                index=2 * i + worker,
                intended=0.0,
                sent=0.0,
                first=e / 2,
                end=e,
                ok=True,
                output_tokens=4,
                worker=worker,
            )
            for i, e in enumerate(latencies)
        ]

    fast = records(0, [0.010 + i / 1000 for i in range(90)])
    slow = records(1, [0.500 + i / 100 for i in range(10)])
    merged = summarize(fast + slow, duration=1.0, percentiles=(99.0,))
    e2el = sorted(r.e2el * 1000 for r in fast + slow if r.e2el is not None)
    assert merged.e2el is not None
    assert merged.e2el.percentiles["p99"] == pytest.approx(percentile(e2el, 99.0))
    per_worker = [summarize(part, duration=1.0, percentiles=(99.0,)) for part in (fast, slow)]
    averaged = sum(s.e2el.percentiles["p99"] for s in per_worker if s.e2el) / 2
    assert merged.e2el.percentiles["p99"] != pytest.approx(averaged)


@pytest.mark.anyio
async def test_bad_worker_counts_and_an_unsplittable_closed_loop(sim_url: str) -> None:
    config = _config(sim_url, ConstantRate(rate=10.0), requests=2)
    for workers in (0, -1, 65):
        with pytest.raises(ConfigError, match="workers must be within 1 to 64"):
            await run(config, workers=workers)
    with pytest.raises(ConfigError, match="2 clients cannot be split over 3 workers"):
        await run(_config(sim_url, ClosedLoop(concurrency=2), requests=2), workers=3)


@pytest.mark.anyio
async def test_a_target_that_does_not_answer_fails_the_run() -> None:
    config = _config("http://127.0.0.1:9/v1", ConstantRate(rate=10.0), requests=2, timeout=5.0)
    with pytest.raises(ConfigError, match="did not answer a first request"):
        await run(config, workers=2)


@pytest.mark.parametrize("value", ["0", "-3", "65", "two"])
def test_the_command_refuses_bad_worker_counts(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "run", f"--workers={value}", "--no-progress"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"limelight bench run: argument --workers: expected a number of processes from 1 to "
        f"64, got {value!r} (`limelight bench run --help` lists the options)"
    ]


def _workers_of(pid: int) -> list[int]:
    """The worker processes ``pid`` started (its children running the worker's main)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"limelight.harness._workers import main" in cmdline:
            found.append(int(entry))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds workers in /proc")
def test_a_killed_worker_is_reported_and_its_requests_failed(tmp_path: Path) -> None:
    base = tmp_path / "killed"
    command = [sys.executable, "-m", "limelight", "bench", "run", "--workers", "2"]
    command += ["--rate", "6", "--arrival", "constant", "--requests", "30", "--no-progress"]
    command += ["--sim-ttft", "0.01", "--sim-tps", "2000", "--output-tokens", "6"]
    bench = subprocess.Popen(
        [*command, "-o", str(base)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while len(workers := _workers_of(bench.pid)) < 2:
            assert bench.poll() is None, bench.communicate()
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.05)
        time.sleep(1.0)  # into the run (5 s of sends once the workers are ready)
        os.kill(workers[1], signal.SIGKILL)
        out, err = bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.communicate()
    assert bench.returncode == 1, err
    lines = [line for line in err.splitlines() if "worker" in line]
    assert len(lines) == 1
    assert "was killed by SIGKILL before its end" in lines[0]
    assert "counted as failed (WorkerDied)" in lines[0]
    assert "WorkerDied" in out  # in the printed summary
    result = load_result(base.with_suffix(".json"))
    assert isinstance(result, BenchResult)
    assert result.worker_failures == [lines[0].removeprefix("limelight bench: ")]
    s = result.summary
    assert s.completed + s.failed == 30
    assert s.errors["WorkerDied"] == s.failed > 0
    # Every request of the schedule is accounted for exactly once: answered, or lost with
    # the worker that had it.
    records = load_records(base.with_suffix(".json"), result)
    assert sorted(r.index for r in records) == list(range(30))
    lost = [r for r in records if r.error == "WorkerDied"]
    assert {r.index % 2 for r in lost} == {r.worker for r in lost} == {lost[0].worker}
    assert json.loads(base.with_suffix(".json").read_text())["workers"] == 2
