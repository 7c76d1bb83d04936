"""Metric computation on synthetic timelines whose answers are worked out by hand, with
vLLM's definitions (TTFT, ITL pooled, TPOT = (E2EL - TTFT) / (N_out - 1), E2EL, throughput,
goodput), plus arrival schedules and the result file round trip."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest

from limelight.errors import ConfigError
from limelight.harness import (
    BenchConfig,
    ConstantRate,
    Gamma,
    Poisson,
    Prices,
    RequestRecord,
    arrivals,
    parse_slos,
    percentile,
    summarize,
)
from limelight.harness._metrics import distribution, timeline
from limelight.harness._runner import _mark_window


def _records() -> list[RequestRecord]:
    return [
        # TTFT 100 ms, E2EL 500 ms, 5 tokens: TPOT 400/4 = 100 ms; four 100 ms gaps.
        RequestRecord(
            index=0,
            intended=0.0,
            sent=0.0,
            first=0.1,
            end=0.5,
            ok=True,
            prompt_tokens=10,
            output_tokens=5,
            itl=[0.1, 0.1, 0.1, 0.1],
        ),
        # TTFT 200 ms, E2EL 400 ms, 3 tokens: TPOT 200/2 = 100 ms; gaps 50 and 150 ms.
        # Sent 2 ms after its intended time.
        RequestRecord(
            index=1,
            intended=0.998,
            sent=1.0,
            first=1.2,
            end=1.4,
            ok=True,
            prompt_tokens=20,
            output_tokens=3,
            itl=[0.05, 0.15],
        ),
        RequestRecord(
            index=2, intended=1.5, sent=1.5, end=1.6, error="ServerError", error_message="500"
        ),
    ]


def test_percentile_interpolates_linearly_between_ranks() -> None:
    data = [1.0, 2.0, 3.0, 4.0]
    assert percentile(data, 0) == 1.0
    assert percentile(data, 50) == 2.5
    assert percentile(data, 90) == pytest.approx(3.7)
    assert percentile(data, 99) == pytest.approx(3.97)
    assert percentile(data, 100) == 4.0
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ConfigError):
        percentile([], 50)
    with pytest.raises(ConfigError):
        percentile(data, 101)


def test_summary_follows_vllm_definitions_on_a_known_timeline() -> None:
    prices = Prices(input=1.0, output=4.0)
    s = summarize(_records(), duration=2.0, slos={"ttft": 150}, prices=prices)
    assert (s.completed, s.failed) == (2, 1)
    assert s.errors == {"ServerError": 1}
    # TTFT: 100 and 200 ms.
    assert s.ttft is not None
    assert s.ttft.mean == pytest.approx(150.0)
    assert s.ttft.median == pytest.approx(150.0)
    assert s.ttft.percentiles["p99"] == pytest.approx(199.0)
    # TPOT: 100 ms for both.
    assert s.tpot is not None
    assert s.tpot.mean == pytest.approx(100.0)
    # ITL pooled: six gaps (not two per-request means).
    assert s.itl is not None
    assert s.itl.count == 6
    assert s.itl.mean == pytest.approx(100.0)
    assert s.itl.min == pytest.approx(50.0)
    assert s.itl.max == pytest.approx(150.0)
    # E2EL: 500 and 400 ms.
    assert s.e2el is not None
    assert s.e2el.mean == pytest.approx(450.0)
    # Throughput over the 2 s window, failed requests excluded.
    assert s.request_throughput == pytest.approx(1.0)
    assert s.output_throughput == pytest.approx(4.0)
    assert s.total_token_throughput == pytest.approx(19.0)
    # Goodput: only request 0 has TTFT <= 150 ms.
    assert s.goodput == pytest.approx(0.5)
    assert s.slo_attainment == pytest.approx(1 / 3)
    # Cost: (10*1 + 5*4)/1e6 + (20*1 + 3*4)/1e6 = 62e-6.
    assert s.cost == pytest.approx(62e-6)
    assert s.cost_per_request == pytest.approx(31e-6)
    assert s.cost_per_million_tokens == pytest.approx(62e-6 / 38 * 1e6)
    # Send lag: 0, 2 ms and 0.
    assert s.send_lag is not None
    assert s.send_lag.max == pytest.approx(2.0)
    assert s.fell_behind  # p99 of (0, 0, 2 ms) is 1.96 ms > 1 ms


def test_one_token_answers_count_tpot_zero_for_goodput_and_are_left_out_of_tpot() -> None:
    one = RequestRecord(index=0, intended=0, sent=0, first=0.05, end=0.05, ok=True, output_tokens=1)
    assert one.tpot == 0.0
    s = summarize([one], duration=1.0, slos={"tpot": 10})
    assert s.tpot is None
    assert s.goodput == 1.0


def test_non_streamed_requests_have_no_ttft() -> None:
    done = RequestRecord(index=0, intended=0, sent=0, end=0.3, ok=True, output_tokens=8)
    s = summarize([done], duration=1.0, slos={"ttft": 100})
    assert s.ttft is None
    assert s.tpot is None
    assert s.e2el is not None
    assert s.e2el.mean == pytest.approx(300.0)
    # An SLO on a metric the request does not have is not met.
    assert s.goodput == 0.0


def test_agent_tasks_report_turns_tool_latency_and_task_time() -> None:
    tasks = [
        RequestRecord(
            index=i,
            kind="task",
            intended=0,
            sent=0,
            end=end,
            ok=True,
            turns=turns,
            tool_latencies=tools,
            prompt_tokens=100,
            output_tokens=10,
        )
        for i, (end, turns, tools) in enumerate([(1.0, 2, [0.05]), (3.0, 4, [0.05, 0.1, 0.15])])
    ]
    calls = [
        RequestRecord(
            index=i, kind="call", intended=0, sent=0, first=0.1, end=0.2, ok=True, output_tokens=5
        )
        for i in range(6)
    ]
    s = summarize(tasks + calls, duration=4.0, prices=Prices(input=1e6, output=1e6))
    assert (s.tasks, s.calls) == (2, 6)
    assert s.task is not None
    assert s.task.mean == pytest.approx(2000.0)
    assert s.turns is not None
    assert s.turns.mean == pytest.approx(3.0)
    assert s.tool_latency is not None
    assert s.tool_latency.count == 4
    assert s.tool_latency.mean == pytest.approx(87.5)
    # Request metrics come from the LLM calls inside the tasks.
    assert s.completed == 6
    assert s.ttft is not None
    assert s.ttft.mean == pytest.approx(100.0)
    # Cost per request is per task.
    assert s.cost == pytest.approx(30.0)
    assert s.cost_per_request == pytest.approx(15.0)


def test_distribution_statistics() -> None:
    d = distribution([0.001, 0.002, 0.003, 0.004, 0.010], (50, 90), scale=1000)
    assert d is not None
    assert d.mean == pytest.approx(4.0)
    assert d.median == pytest.approx(3.0)
    assert d.std == pytest.approx(statistics.pstdev([1, 2, 3, 4, 10]))
    assert d.percentiles == {"p50": pytest.approx(3.0), "p90": pytest.approx(7.6)}
    assert distribution([]) is None


def test_slos_parse_like_vllm_goodput() -> None:
    assert parse_slos("ttft:500 tpot:50") == {"ttft": 500.0, "tpot": 50.0}
    assert parse_slos(["e2el:2000", "ttft:1.5"]) == {"e2el": 2000.0, "ttft": 1.5}
    assert parse_slos("ttft:500,e2el:900") == {"ttft": 500.0, "e2el": 900.0}
    assert parse_slos(None) == {}
    for bad in ("itl:5", "ttft:fast", "ttft:0", "ttft"):
        with pytest.raises(ConfigError):
            parse_slos(bad)


def test_timeline_buckets_completions_by_end_second() -> None:
    points = timeline(_records())
    assert [(p.t, p.completed, p.failed, p.output_tokens) for p in points] == [
        (0.0, 1, 0, 5),
        (1.0, 1, 1, 3),
    ]


def test_warmup_and_cooldown_leave_out_requests_sent_outside_the_window() -> None:
    records = [
        RequestRecord(index=i, intended=i * 0.5, sent=i * 0.5, end=i * 0.5 + 0.1, ok=True)
        for i in range(10)
    ]  # sent 0.0 .. 4.5; the last ends at 4.6
    window = _mark_window(records, BenchConfig(requests=10, warmup=1.0, cooldown=1.0))
    assert window == pytest.approx(2.6)  # [1.0, 3.6]
    assert [r.index for r in records if r.measured] == [2, 3, 4, 5, 6, 7]
    with pytest.raises(ConfigError, match="cover the whole run"):
        _mark_window(records, BenchConfig(requests=10, warmup=3.0, cooldown=2.0))


def test_without_windows_the_duration_is_start_to_last_answer() -> None:
    records = _records()
    assert _mark_window(records, BenchConfig(requests=3)) == pytest.approx(1.6)
    assert all(r.measured for r in records)


def test_constant_arrivals_are_evenly_spaced_from_the_start() -> None:
    times = list(itertools.islice(arrivals(ConstantRate(rate=4.0)), 5))
    assert times == [0.0, 0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize(
    ("load", "cv"),
    [(Poisson(rate=50.0, seed=3), 1.0), (Gamma(rate=50.0, shape=0.25, seed=3), 2.0)],
)
def test_random_arrivals_have_the_mean_rate_and_their_burstiness(
    load: Poisson | Gamma, cv: float
) -> None:
    times = list(itertools.islice(arrivals(load), 20001))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    mean = statistics.fmean(gaps)
    assert mean == pytest.approx(1 / 50.0, rel=0.05)
    # Coefficient of variation: 1 for exponential gaps, 1/sqrt(shape) for gamma.
    assert statistics.pstdev(gaps) / mean == pytest.approx(cv, rel=0.08)
    # Seeded: the same schedule again.
    assert list(itertools.islice(arrivals(load), 50)) == times[:50]


def test_bad_loads_and_configs_are_config_errors() -> None:
    for make in (
        lambda: ConstantRate(rate=0),
        lambda: Poisson(rate=math.inf),
        lambda: Gamma(rate=1, shape=0),
        lambda: BenchConfig(requests=None, duration=None),
        lambda: BenchConfig(warmup=-1),
        lambda: BenchConfig(percentiles=(120.0,)),
    ):
        with pytest.raises(ConfigError):
            make()
