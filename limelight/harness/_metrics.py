"""Per-request records and the metrics computed from them, with vLLM's definitions.

The definitions are ``vllm bench serve``'s, each named where it is computed:

- **TTFT** (time to first token): first streamed content chunk minus send time.
- **ITL** (inter-token latency): the gaps between consecutive content chunks, pooled over
  all requests (one sample per gap, not one per request).
- **TPOT** (time per output token): ``(E2EL - TTFT) / (N_out - 1)`` per request with
  ``N_out > 1``, N_out being the server's ``usage.completion_tokens``.
- **E2EL** (end-to-end latency): last byte minus send time.
- **Request / output / total token throughput**: completed requests, output tokens and
  prompt + output tokens of the measured requests, divided by the measurement window.
- **Goodput**: measured requests per second that met every SLO (TTFT, TPOT, E2EL in ms; a
  request with one output token counts TPOT 0, as vLLM does).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Literal

import msgspec

from ..errors import ConfigError

__all__ = [
    "DEFAULT_PERCENTILES",
    "METRIC_DEFINITIONS",
    "SLO_METRICS",
    "Distribution",
    "Prices",
    "RequestRecord",
    "Summary",
    "TimePoint",
    "distribution",
    "parse_slos",
    "percentile",
    "summarize",
    "timeline",
]

DEFAULT_PERCENTILES: Final = (90.0, 99.0)
#: Send lag (actual minus intended send time) above which the client is said to have fallen
#: behind its schedule, at the 99th percentile.
FELL_BEHIND_P99: Final = 0.001
SLO_METRICS: Final = ("ttft", "tpot", "e2el")

METRIC_DEFINITIONS: Final = {
    "ttft": "TTFT (vLLM): time from sending the request to its first streamed content chunk",
    "itl": "ITL (vLLM): gaps between consecutive content chunks, pooled over all requests",
    "tpot": "TPOT (vLLM): (E2EL - TTFT) / (N_out - 1) per request with N_out > 1",
    "e2el": "E2EL (vLLM): time from sending the request to the last byte of the answer",
    "request_throughput": "completed measured requests / measurement window (req/s)",
    "output_throughput": "output tokens (usage.completion_tokens) / measurement window (tok/s)",
    "total_token_throughput": "prompt + output tokens / measurement window (tok/s)",
    "goodput": "measured requests meeting every SLO / measurement window (req/s)",
    "send_lag": "actual minus intended send time of each request (the client's own delay)",
    "task": "end-to-end time of one agent task or conversation, every turn and tool included",
    "tool_latency": "seconds each tool call took, as the agent's tool executor measured it",
}

Kind = Literal["request", "call", "task"]


class RequestRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One request (``kind="request"``), one LLM call inside an agent task (``"call"``) or
    one agent task or conversation (``"task"``). Times are seconds since the run started.

    :ivar intended: when the schedule wanted it sent.
    :ivar sent: when it was actually sent.
    :ivar first: when its first content chunk arrived (streamed requests).
    :ivar end: when it ended (answer complete, or failed).
    :ivar itl: the gaps between its content chunks, in seconds.
    :ivar error: the error's type name, for a failed request.
    :ivar measured: it was sent inside the measurement window (after warm-up, before
        cool-down).
    :ivar worker: the worker process that sent it, in a run sent from several.
    """

    index: int
    kind: Kind = "request"
    session: int = -1
    turn: int = 0
    intended: float
    sent: float
    first: float | None = None
    end: float | None = None
    ok: bool = False
    error: str | None = None
    error_message: str | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0
    itl: list[float] = []
    cost: float | None = None
    turns: int = 0
    tool_latencies: list[float] = []
    measured: bool = True
    worker: int | None = None

    @property
    def ttft(self) -> float | None:
        return None if self.first is None else self.first - self.sent

    @property
    def e2el(self) -> float | None:
        return None if self.end is None else self.end - self.sent

    @property
    def tpot(self) -> float | None:
        """vLLM's TPOT; 0 for a one-token answer (as vLLM's goodput counts it), ``None``
        when not streamed."""
        ttft, e2el = self.ttft, self.e2el
        if ttft is None or e2el is None:
            return None
        if self.output_tokens <= 1:
            return 0.0
        return (e2el - ttft) / (self.output_tokens - 1)

    @property
    def lag(self) -> float:
        return self.sent - self.intended


class Distribution(msgspec.Struct, frozen=True, kw_only=True):
    """Statistics of one metric, in the metric's unit (ms for latencies)."""

    count: int
    mean: float
    median: float
    min: float
    max: float
    std: float
    percentiles: dict[str, float]


class Prices(msgspec.Struct, frozen=True, kw_only=True):
    """USD per million prompt and completion tokens."""

    input: float
    output: float

    def cost(self, prompt_tokens: int, output_tokens: int) -> float:
        return (prompt_tokens * self.input + output_tokens * self.output) / 1e6


class TimePoint(msgspec.Struct, frozen=True, kw_only=True):
    """One second of the run: requests completed, failed and output tokens received."""

    t: float
    completed: int
    failed: int
    output_tokens: int


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    """The metrics of one run (latencies in ms). ``None`` where a metric does not apply
    (TTFT of non-streamed requests, cost without a price, task metrics without tasks)."""

    requests: int
    measured: int
    completed: int
    failed: int
    errors: dict[str, int]
    duration_s: float
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    prompt_tokens: int
    output_tokens: int
    goodput: float | None
    slo_attainment: float | None
    slos_ms: dict[str, float]
    ttft: Distribution | None
    tpot: Distribution | None
    itl: Distribution | None
    e2el: Distribution | None
    send_lag: Distribution | None
    fell_behind: bool
    tasks: int = 0
    task: Distribution | None = None
    turns: Distribution | None = None
    tool_latency: Distribution | None = None
    calls: int = 0
    cost: float | None = None
    cost_per_request: float | None = None
    cost_per_million_tokens: float | None = None


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ascending ``sorted_values`` with linear
    interpolation between closest ranks (numpy's default, which vLLM uses).

    :raises ConfigError: ``sorted_values`` is empty or ``q`` is outside [0, 100].
    """
    if not sorted_values:
        raise ConfigError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ConfigError(f"a percentile is within [0, 100], got {q}")
    rank = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = rank - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


def _label(q: float) -> str:
    return f"p{q:g}"


def distribution(
    values: Iterable[float], percentiles: Sequence[float] = DEFAULT_PERCENTILES, *, scale: float = 1
) -> Distribution | None:
    """Mean, median, min, max, population standard deviation and ``percentiles`` of
    ``values`` times ``scale``; ``None`` for no values."""
    data = sorted(v * scale for v in values)
    if not data:
        return None
    n = len(data)
    mean = math.fsum(data) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in data) / n)
    return Distribution(
        count=n,
        mean=mean,
        median=percentile(data, 50.0),
        min=data[0],
        max=data[-1],
        std=std,
        percentiles={_label(q): percentile(data, q) for q in percentiles},
    )


def parse_slos(text: str | Iterable[str] | None) -> dict[str, float]:
    """Parse SLOs as vLLM's ``--goodput`` takes them: ``"ttft:500 tpot:50"`` (ms); also
    comma-separated or as a list.

    :raises ConfigError: an unknown metric or a value that is not a positive number.
    """
    if text is None:
        return {}
    items = text.replace(",", " ").split() if isinstance(text, str) else list(text)
    slos: dict[str, float] = {}
    for item in items:
        name, _, value = item.partition(":")
        if name not in SLO_METRICS:
            raise ConfigError(
                f"SLO {item!r}: the metric must be one of {', '.join(SLO_METRICS)} "
                "(such as ttft:500 for 500 ms)"
            )
        try:
            ms = float(value)
        except ValueError:
            raise ConfigError(f"SLO {item!r}: {value!r} is not a number of milliseconds") from None
        if not ms > 0:
            raise ConfigError(f"SLO {item!r}: the limit must be > 0 ms")
        slos[name] = ms
    return slos


def _meets(record: RequestRecord, slos: Mapping[str, float]) -> bool:
    for name, limit_ms in slos.items():
        value: float | None = getattr(record, name)
        if value is None or value * 1000.0 > limit_ms:
            return False
    return True


def timeline(records: Iterable[RequestRecord], *, bucket: float = 1.0) -> list[TimePoint]:
    """Completions, failures and output tokens per ``bucket`` seconds, by end time."""
    done: dict[int, list[int]] = {}
    for record in records:
        if record.end is None or record.kind == "task":
            continue
        cell = done.setdefault(int(record.end // bucket), [0, 0, 0])
        if record.ok:
            cell[0] += 1
            cell[2] += record.output_tokens
        else:
            cell[1] += 1
    if not done:
        return []
    return [
        TimePoint(t=i * bucket, completed=c[0], failed=c[1], output_tokens=c[2])
        for i in range(min(done), max(done) + 1)
        for c in [done.get(i, [0, 0, 0])]
    ]


def summarize(
    records: Sequence[RequestRecord],
    *,
    duration: float,
    slos: Mapping[str, float] | None = None,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    prices: Prices | None = None,
) -> Summary:
    """The metrics of ``records`` over a measurement window of ``duration`` seconds.

    Request metrics come from the measured records of kind ``request`` (or, for agent runs,
    the LLM calls, kind ``call``); task metrics from kind ``task``. Failed requests count in
    ``errors`` by type and in no latency. Cost is the server's token counts at ``prices``.

    :raises ConfigError: ``duration`` is not > 0.
    """
    if not duration > 0:
        raise ConfigError(f"the measurement window must be > 0 s, got {duration}")
    slos = dict(slos or {})
    tasks = [r for r in records if r.kind == "task" and r.measured]
    requests = [r for r in records if r.kind == "request" and r.measured]
    calls = [r for r in records if r.kind == "call" and r.measured]
    units = requests or calls
    ok = [r for r in units if r.ok]
    errors: dict[str, int] = {}
    for r in units + tasks:
        if not r.ok:
            kind = r.error or "unknown"
            errors[kind] = errors.get(kind, 0) + 1
    prompt_tokens = sum(r.prompt_tokens for r in ok)
    output_tokens = sum(r.output_tokens for r in ok)

    def dist(values: Iterable[float | None], scale: float = 1000.0) -> Distribution | None:
        return distribution((v for v in values if v is not None), percentiles, scale=scale)

    good = sum(1 for r in ok if _meets(r, slos)) if slos else None
    lag = dist(r.lag for r in (requests or tasks))
    cost: float | None = None
    if prices is not None:
        # fsum: the same total whatever the order of the records (merged from workers).
        cost = math.fsum(prices.cost(r.prompt_tokens, r.output_tokens) for r in ok)
    completed_units = len(ok) if not tasks else sum(1 for t in tasks if t.ok)
    return Summary(
        requests=len(units),
        measured=len(units),
        completed=len(ok),
        failed=len(units) - len(ok),
        errors=errors,
        duration_s=duration,
        request_throughput=len(ok) / duration,
        output_throughput=output_tokens / duration,
        total_token_throughput=(prompt_tokens + output_tokens) / duration,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        goodput=None if good is None else good / duration,
        slo_attainment=None if good is None or not ok else good / len(units),
        slos_ms=slos,
        ttft=dist(r.ttft for r in ok),
        tpot=dist(r.tpot for r in ok if r.output_tokens > 1),
        itl=dist(gap for r in ok for gap in r.itl),
        e2el=dist(r.e2el for r in ok),
        send_lag=lag,
        fell_behind=_fell_behind(requests or tasks),
        tasks=len(tasks),
        task=dist(t.e2el for t in tasks if t.ok),
        turns=dist((float(t.turns) for t in tasks if t.ok), scale=1.0),
        tool_latency=dist(x for t in tasks for x in t.tool_latencies),
        calls=len(calls),
        cost=cost,
        cost_per_request=None if cost is None or not completed_units else cost / completed_units,
        cost_per_million_tokens=(
            None
            if cost is None or not (prompt_tokens + output_tokens)
            else cost / (prompt_tokens + output_tokens) * 1e6
        ),
    )


def _fell_behind(records: Sequence[RequestRecord]) -> bool:
    lags = sorted(r.lag for r in records)
    return bool(lags) and percentile(lags, 99.0) > FELL_BEHIND_P99
