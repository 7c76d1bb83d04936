"""End-to-end runs of the harness against the simulator over real HTTP (a ``limelight sim``
subprocess, started once for the module), for every workload and load type, on asyncio and
trio."""

from __future__ import annotations

import math
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from limelight.errors import ConfigError
from limelight.harness import (
    BenchConfig,
    ClosedLoop,
    ConstantRate,
    Gamma,
    Load,
    Poisson,
    Progress,
    SweepPoint,
    Target,
    Workload,
    run,
    sweep,
)
from limelight.harness._targets import sim_process

pytestmark = pytest.mark.anyio

#: ``limelight sim`` answering fast; ``max_tokens`` (the workload's) decides every length.
FAST = [
    *("--ttft", "0.005", "--ttft-jitter", "0.001", "--tps", "4000"),
    *("--output-tokens", "100000"),
]
LOADS: list[Load] = [
    ClosedLoop(concurrency=3),
    ConstantRate(rate=100.0),
    Poisson(rate=100.0, seed=1),
    Gamma(rate=100.0, shape=0.5, seed=1),
]


def _sim(*options: str) -> list[str]:
    return [sys.executable, "-m", "limelight", "sim", "--port", "0", *FAST, *options]


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    """A ``limelight sim`` subprocess for the module's runs; stopped at the end."""
    with sim_process(_sim()) as url:
        yield url


def _config(url: str, workload: Workload, load: Load, **options: object) -> BenchConfig:
    return BenchConfig(
        target=Target(base_url=url, price_input=1.0, price_output=2.0),
        workload=workload,
        load=load,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("load", LOADS, ids=lambda load: type(load).__name__)
@pytest.mark.parametrize("kind", ["chat", "stream"])
async def test_single_requests_under_every_load(sim_url: str, kind: str, load: Load) -> None:
    workload = Workload(kind=kind, prompt_tokens="40", output_tokens="5-9", seed=2)  # type: ignore[arg-type]
    progress = Progress()
    config = _config(sim_url, workload, load, requests=12, slos={"e2el": 10_000})
    result = await run(config, progress=progress)
    s = result.summary
    assert (s.completed, s.failed, s.errors) == (12, 0, {})
    # The live counters end where the summary does (total and finished: requests).
    assert (progress.sent, progress.completed, progress.in_flight) == (12, 12, 0)
    assert (progress.total, progress.finished, progress.sessions) == (12, 12, False)
    requests = [r for r in result.records if r.kind == "request"]
    assert len(requests) == 12
    # max_tokens sampled in 5..9; the simulator answers exactly that many tokens.
    assert all(5 <= r.output_tokens <= 9 for r in requests)
    assert s.output_tokens == sum(r.output_tokens for r in requests)
    assert all(r.prompt_tokens >= 40 for r in requests)
    if kind == "stream":
        assert s.ttft is not None
        assert s.ttft.count == 12
        assert s.tpot is not None
        assert s.itl is not None
        assert s.itl.count == sum(len(r.itl) for r in requests)
        assert all(r.sent < (r.first or 0) <= (r.end or 0) for r in requests)
    else:
        assert s.ttft is None
        assert s.itl is None
    assert s.goodput == pytest.approx(s.request_throughput)
    assert s.cost == pytest.approx(
        sum(r.prompt_tokens + 2 * r.output_tokens for r in requests) / 1e6
    )
    # Every request's intended send time is on the schedule, and it was sent at or after it.
    if isinstance(load, ConstantRate):
        assert [r.intended for r in requests] == pytest.approx([i / 100.0 for i in range(12)])
    assert all(r.sent >= r.intended - 1e-6 for r in requests)
    assert result.offered_rate == (None if isinstance(load, ClosedLoop) else 100.0)


@pytest.mark.parametrize("load", LOADS, ids=lambda load: type(load).__name__)
async def test_multi_turn_conversations(sim_url: str, load: Load) -> None:
    workload = Workload(kind="multiturn", turns=3, prompt_tokens="20", output_tokens="4")
    progress = Progress()
    result = await run(_config(sim_url, workload, load, requests=5), progress=progress)
    s = result.summary
    assert (s.completed, s.failed, s.tasks) == (15, 0, 5)
    # total and finished count conversations; sent and completed, requests.
    assert (progress.total, progress.finished, progress.tasks) == (5, 5, 5)
    assert (progress.sent, progress.completed, progress.in_flight) == (15, 15, 0)
    assert s.turns is not None
    assert s.turns.mean == 3.0
    by_session: dict[int, list[int]] = {}
    for r in result.records:
        if r.kind == "request":
            by_session.setdefault(r.session, []).append(r.prompt_tokens)
    assert sorted(by_session) == [0, 1, 2, 3, 4]
    for prompts in by_session.values():
        # Each turn re-sends the conversation so far: the prompt grows turn by turn.
        assert len(prompts) == 3
        assert prompts[0] < prompts[1] < prompts[2]
    tasks = [r for r in result.records if r.kind == "task"]
    turns = [r for r in result.records if r.kind == "request"]
    for task in tasks:
        own = [t for t in turns if t.session == task.session]
        assert task.sent <= min(t.sent for t in own)
        assert task.end is not None
        assert task.end >= max(t.end or 0 for t in own)


@pytest.mark.parametrize("load", LOADS, ids=lambda load: type(load).__name__)
async def test_agent_tasks_with_scripted_tools(sim_url: str, load: Load) -> None:
    workload = Workload(kind="agent", tools=2, tool_latency=0.02, max_turns=4, output_tokens="6")
    progress = Progress()
    result = await run(_config(sim_url, workload, load, requests=6), progress=progress)
    s = result.summary
    assert s.tasks == 6
    # total and finished count tasks; sent and completed, the tasks' model calls.
    assert (progress.total, progress.finished, progress.sessions) == (6, 6, True)
    assert progress.sent == progress.completed + progress.failed == s.calls
    assert progress.in_flight == 0
    tasks = [r for r in result.records if r.kind == "task"]
    calls = [r for r in result.records if r.kind == "call"]
    # Every model call of every task is recorded; a task makes one to max_turns calls.
    assert sum(t.turns for t in tasks) == len(calls) == s.calls
    assert all(1 <= t.turns <= 4 for t in tasks)
    # A task either completed or used its max turns (the simulator keeps calling tools).
    for task in tasks:
        assert task.ok or task.error == "agent:max_turns"
        assert len(task.tool_latencies) >= task.turns - 1
    latencies = [x for t in tasks for x in t.tool_latencies]
    assert latencies, "the simulator calls the offered tools half of the time"
    assert all(x >= 0.02 for x in latencies)
    assert s.tool_latency is not None
    assert s.tool_latency.count == len(latencies)
    assert s.cost is not None
    assert s.cost > 0


async def test_a_user_agent_factory(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_bench_agents.py").write_text(
        textwrap.dedent(
            """
            from limelight.agents import Agent, AgentConfig

            made = []

            def make(model):
                made.append(model)
                return Agent(model=model, config=AgentConfig(max_turns=1, max_tokens=3))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_bench_agents", raising=False)
    workload = Workload(kind="agent", agent_factory="my_bench_agents:make")
    result = await run(_config(sim_url, workload, ClosedLoop(concurrency=2), requests=4))
    assert result.summary.tasks == 4
    assert result.summary.calls == 4  # one turn each, no tools offered
    assert all(r.ok for r in result.records if r.kind == "task")
    assert len(sys.modules["my_bench_agents"].made) == 4
    with pytest.raises(ConfigError, match="agent_factory"):
        Workload(kind="agent", agent_factory="no_colon")
    bad = Workload(kind="agent", agent_factory="my_bench_agents:missing")
    with pytest.raises(ConfigError, match="no callable"):
        await run(_config(sim_url, bad, ClosedLoop(concurrency=1), requests=1))


async def test_prompts_from_a_jsonl_file(sim_url: str, tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text(
        '{"prompt": "short one", "max_tokens": 2}\n\n'
        '{"messages": [{"role": "system", "content": "Be brief."}, '
        '{"role": "user", "content": "' + "long " * 200 + '"}], "max_tokens": 7}\n'
    )
    workload = Workload(kind="stream", prompts_file=str(path))
    result = await run(_config(sim_url, workload, ClosedLoop(concurrency=1), requests=4))
    outputs = [r.output_tokens for r in sorted(result.records, key=lambda r: r.index)]
    assert outputs == [2, 7, 2, 7]  # in order, cycling
    prompts = [r.prompt_tokens for r in sorted(result.records, key=lambda r: r.index)]
    assert prompts[0] < 10 < 200 < prompts[1]
    path.write_text('{"text": "no prompt"}\n')
    with pytest.raises(ConfigError, match="neither 'prompt' nor 'messages'"):
        await run(_config(sim_url, workload, ClosedLoop(concurrency=1), requests=1))
    missing = Workload(prompts_file=str(tmp_path / "missing.jsonl"))
    with pytest.raises(ConfigError, match="cannot read the prompts file"):
        await run(_config(sim_url, missing, ClosedLoop(concurrency=1), requests=1))


async def test_duration_limits_sending_on_the_schedule(sim_url: str) -> None:
    workload = Workload(kind="chat", output_tokens="2")
    config = _config(sim_url, workload, ConstantRate(rate=40.0), requests=None, duration=0.25)
    result = await run(config)
    # Intended times 0, 0.025, ... < 0.25: exactly 10 requests.
    assert result.summary.completed == 10


async def test_warmup_and_cooldown_windows(sim_url: str) -> None:
    workload = Workload(kind="chat", output_tokens="2")
    config = _config(
        sim_url, workload, ConstantRate(rate=50.0), requests=25, warmup=0.1, cooldown=0.1
    )
    result = await run(config)
    measured = [r for r in result.records if r.measured]
    assert 0 < len(measured) < 25
    assert all(r.sent >= 0.1 for r in measured)
    assert result.summary.measured == len(measured)
    assert result.summary.duration_s < max(r.end or 0 for r in result.records)


async def test_max_errors_stops_sending_and_errors_are_counted_by_type() -> None:
    with sim_process(_sim("--server-error-rate", "0.5", "--seed", "5")) as url:
        workload = Workload(kind="stream", output_tokens="3")
        config = _config(url, workload, ClosedLoop(concurrency=1), requests=200, max_errors=3)
        # Seed 5: the first (warm-up) request succeeds, then about half fail.
        result = await run(config)
    s = result.summary
    assert s.failed == 3
    assert s.requests < 200
    assert set(s.errors) == {"ServerError"}
    failed = [r for r in result.records if not r.ok]
    assert all(r.error_message for r in failed)


async def test_an_unreachable_target_fails_at_once_with_a_config_error() -> None:
    config = BenchConfig(target=Target(base_url="http://127.0.0.1:9/v1"), requests=3, timeout=5)
    with pytest.raises(ConfigError, match="did not answer a first request"):
        await run(config)


async def test_sweep_finds_the_highest_rate_meeting_the_slo(sim_url: str) -> None:
    workload = Workload(kind="stream", output_tokens="3")
    config = _config(
        sim_url, workload, Poisson(rate=1.0, seed=2), requests=8, slos={"e2el": 10_000}
    )
    result = await sweep(config, rates=[20.0, 40.0])
    assert [p.rate for p in result.points] == [20.0, 40.0]
    assert all(p.summary.completed == 8 for p in result.points)
    passed = [p.rate for p in result.points if p.passed]
    assert result.best_rate == (max(passed) if passed else None)
    # An SLO nothing can meet: no rate passes.
    impossible = msgspec.structs.replace(config, slos={"ttft": 0.001})
    result = await sweep(impossible, start=10.0, max_rate=20.0)
    assert result.best_rate is None
    assert [p.rate for p in result.points] == [10.0]
    # A client that cannot keep its schedule fails the rate, whatever the SLOs say.
    strict = await sweep(config, rates=[20.0], max_send_lag=1e-9)
    assert strict.points[0].summary.slo_attainment == 1.0
    assert strict.best_rate is None
    with pytest.raises(ConfigError, match="needs SLOs"):
        await sweep(msgspec.structs.replace(config, slos={}))


def _search(outcomes: list[bool], *, start: float, max_rate: float, steps: int) -> list[float]:
    """The rates the sweep's search tries when its attempts pass or fail as ``outcomes`` say:
    doubling from ``start`` until a rate fails or passes ``max_rate``, then ``steps``
    bisections between the highest pass and the lowest fail."""
    answers = iter(outcomes)
    tried: list[float] = []

    def attempt(rate: float) -> bool:
        tried.append(rate)
        return next(answers)

    good, bad, rate = 0.0, math.inf, start
    while rate <= max_rate:
        if attempt(rate):
            good, rate = rate, rate * 2
        else:
            bad = rate
            break
    if good and bad < math.inf:
        for _ in range(steps):
            middle = (good + bad) / 2
            if attempt(middle):
                good = middle
            else:
                bad = middle
    return tried


async def test_sweep_search_finds_a_passing_rate_by_doubling_then_bisecting() -> None:
    # The simulator serves one request at a time and refuses (429) one more in flight: at
    # 10 req/s requests rarely overlap, at hundreds per second most are refused, so the
    # search passes low rates and fails high ones (where exactly is the machine's business:
    # the test replays the search from the outcomes it got).
    with sim_process(_sim("--ttft", "0.01", "--max-concurrency", "1")) as url:
        workload = Workload(kind="stream", output_tokens="2")
        config = _config(url, workload, ConstantRate(rate=1.0), requests=10, slos={"e2el": 2000})
        tried: list[SweepPoint] = []
        result = await sweep(
            config,
            start=10.0,
            max_rate=640.0,
            steps=2,
            min_attainment=0.8,
            max_send_lag=1.0,  # the refusals fail the high rates, not the client's schedule
            on_point=tried.append,
        )
    outcomes = [p.passed for p in tried]
    assert [p.rate for p in tried] == _search(outcomes, start=10.0, max_rate=640.0, steps=2)
    assert sorted(result.points, key=lambda p: p.rate) == result.points
    assert sorted(p.rate for p in tried) == [p.rate for p in result.points]
    passing = [p.rate for p in tried if p.passed]
    assert passing, f"not even 10 req/s passed: {[(p.rate, p.summary.errors) for p in tried]}"
    assert result.best_rate is not None
    assert result.best_rate > 0
    assert result.best_rate == max(passing)
    failing = [p for p in tried if not p.passed]
    if failing:
        # A higher rate failed, for the refusals (RateLimited), below the attainment asked.
        assert any(p.rate > result.best_rate for p in failing)
        assert all((p.summary.slo_attainment or 0) < 0.8 for p in failing)
        assert any(p.summary.errors for p in failing)
    else:
        # Every doubling passed: the search stopped at its maximum.
        assert result.best_rate == 640.0
    for point in tried:
        assert point.summary.requests == 10
        assert point.passed == ((point.summary.slo_attainment or 0) >= 0.8)


async def test_model_strings_go_through_the_backend_resolver() -> None:
    # "sim:<name>" is the resolver's in-process simulator: no HTTP, no lean client.
    config = BenchConfig(
        target=Target(model="sim:tiny"),
        workload=Workload(kind="stream", output_tokens="3"),
        load=ClosedLoop(concurrency=2),
        requests=4,
    )
    result = await run(config)
    assert "Simulated" in result.client
    assert result.summary.completed == 4
    assert result.summary.output_tokens == 12
