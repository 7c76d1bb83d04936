"""Result files and the HTML report.

A run writes a JSON summary (``<name>.json``: configuration, metrics, throughput over time),
its per-request records (``<name>.records.jsonl``) and a self-contained HTML report
(``<name>.html``): inline SVG plots drawn here (latency CDFs, throughput over time, TTFT
against load for sweeps), no script and nothing fetched from a network.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

import msgspec

from .._files import make_private_dirs, open_private
from ..errors import ConfigError
from ._metrics import Distribution, RequestRecord, Summary
from ._runner import BenchResult, SweepResult

__all__ = [
    "load_records",
    "load_result",
    "render_html",
    "write_result",
]

_COLORS: Final = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2")
_MAX_POINTS: Final = 400
_encoder = msgspec.json.Encoder()
_result_decoder = msgspec.json.Decoder(BenchResult)
_sweep_decoder = msgspec.json.Decoder(SweepResult)
_record_decoder = msgspec.json.Decoder(RequestRecord)


def write_result(result: BenchResult | SweepResult, base: str | Path) -> dict[str, Path]:
    """Write ``<base>.json`` (the summary), ``<base>.records.jsonl`` (a run's per-request
    records) and ``<base>.html`` (the report). Returns the paths by kind."""
    base = Path(base)
    if base.suffix in (".json", ".html"):
        base = base.with_suffix("")
    make_private_dirs(base.parent)
    paths = {"json": base.with_suffix(".json"), "html": base.with_suffix(".html")}
    records: list[RequestRecord] = []
    if isinstance(result, BenchResult):
        records = result.records
        paths["records"] = base.parent / (base.name + ".records.jsonl")
        with open_private(paths["records"], "wb") as out:
            for record in records:
                out.write(_encoder.encode(record))
                out.write(b"\n")
        result = msgspec.structs.replace(result, records=[], records_file=paths["records"].name)
    with open_private(paths["json"], "wb") as out:
        out.write(msgspec.json.format(_encoder.encode(result)))
    with open_private(paths["html"], "wb") as out:
        out.write(render_html(result, records).encode())
    return paths


def load_result(path: str | Path) -> BenchResult | SweepResult:
    """Read a result file written by :func:`write_result` (a run's or a sweep's).

    :raises ConfigError: the file cannot be read or is not a result file.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the result file {str(path)!r}: {exc}") from exc
    try:
        raw = msgspec.json.decode(data)
        if isinstance(raw, dict) and "points" in raw:
            return _sweep_decoder.decode(data)
        return _result_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ConfigError(
            f"{str(path)!r} is not a limelight bench result file (written by `limelight bench "
            f"run` or `sweep`): {exc}"
        ) from exc


def load_records(result_path: str | Path, result: BenchResult) -> list[RequestRecord]:
    """The per-request records next to a run's result file (``[]`` when there are none)."""
    if not result.records_file:
        return []
    path = Path(result_path).parent / result.records_file
    if not path.exists():
        return []
    try:
        lines = path.read_bytes().splitlines()
        return [_record_decoder.decode(line) for line in lines if line.strip()]
    except msgspec.DecodeError as exc:
        raise ConfigError(
            f"{str(path)!r} holds a line that is not a request record: {exc}"
        ) from exc


# -- SVG plots -------------------------------------------------------------------------------


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(lo / step) * step
    last = math.ceil(hi / step - 1e-9) * step
    ticks = []
    value = first
    while value <= last + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}"
    return f"{value:.3g}"


Series = tuple[str, Sequence[float], Sequence[float]]


def line_chart(
    name: str,
    title: str,
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    markers: bool = False,
    width: int = 640,
    height: int = 300,
) -> str:
    """An SVG line chart (``<svg class="plot" data-plot=name>``) of ``series``: (label, xs,
    ys) each. Empty series are left out; with none, a note says there is no data."""
    series = [s for s in series if len(s[1])]
    left, right, top, bottom = 64, 16, 34, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [
        f'<svg class="plot" data-plot="{html.escape(name)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
        f"<title>{html.escape(title)}</title>",
        f'<text x="{width / 2}" y="20" text-anchor="middle" class="title">'
        f"{html.escape(title)}</text>",
    ]
    if not series:
        parts.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no data</text></svg>'
        )
        return "".join(parts)
    xs_all = [x for s in series for x in s[1]]
    ys_all = [y for s in series for y in s[2]]
    x_ticks = _nice_ticks(min(xs_all), max(xs_all))
    y_ticks = _nice_ticks(min(0.0, min(ys_all)), max(ys_all))
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def sx(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1.0) * plot_w

    def sy(y: float) -> float:
        return top + plot_h - (y - y0) / ((y1 - y0) or 1.0) * plot_h

    parts.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" class="frame"/>')
    for t in x_ticks:
        x = sx(t)
        parts.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" class="grid"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{_fmt(t)}</text>'
        )
    for t in y_ticks:
        y = sy(t)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" class="grid"/>'
        )
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">'
        f"{html.escape(x_label)}</text>"
    )
    parts.append(
        f'<text x="14" y="{top + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + plot_h / 2})">{html.escape(y_label)}</text>'
    )
    for i, (label, xs, ys) in enumerate(series):
        color = _COLORS[i % len(_COLORS)]
        step = max(1, len(xs) // _MAX_POINTS)
        points = list(zip(xs[::step], ys[::step], strict=True))
        if (xs[-1], ys[-1]) != points[-1]:
            points.append((xs[-1], ys[-1]))
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        parts.append(
            f'<polyline class="series" data-series="{html.escape(label)}" fill="none" '
            f'stroke="{color}" stroke-width="2" points="{coords}"/>'
        )
        if markers:
            parts.extend(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>'
                for x, y in points
            )
        # style=, not fill=: the page's CSS for svg text would win over the attribute.
        legend_y = top + 16 + 16 * i
        parts.append(
            f'<line x1="{left + plot_w - 30}" y1="{legend_y - 4}" x2="{left + plot_w - 8}" '
            f'y2="{legend_y - 4}" stroke="{color}" stroke-width="2"/>'
            f'<text x="{left + plot_w - 36}" y="{legend_y}" text-anchor="end" '
            f'style="fill:{color}">{html.escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _cdf(values: Iterable[float]) -> tuple[list[float], list[float]]:
    data = sorted(values)
    n = len(data)
    return data, [(i + 1) / n * 100.0 for i in range(n)]


def _cdf_chart(name: str, title: str, values: Sequence[float]) -> str:
    xs, ys = _cdf(v * 1000.0 for v in values)
    return line_chart(
        name, title, [(title, xs, ys)], x_label="milliseconds", y_label="% of requests"
    )


# -- HTML ------------------------------------------------------------------------------------

_STYLE: Final = """
body{font-family:system-ui,sans-serif;margin:24px;color:#111;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 8px;
text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f5}td:first-child,
th:first-child{text-align:left}.plots{display:flex;flex-wrap:wrap;gap:12px}
svg.plot{background:#fff;border:1px solid #e5e7eb}svg text{font-size:11px;fill:#333}
svg text.title{font-size:13px;font-weight:600}.frame{fill:none;stroke:#999}
.grid{stroke:#eee}.warn{background:#fef3c7;border:1px solid #f59e0b;padding:8px}
.defs{color:#555;font-size:13px}
"""


def _dist_rows(summary: Summary) -> list[tuple[str, Distribution | None]]:
    return [
        ("TTFT (ms)", summary.ttft),
        ("TPOT (ms)", summary.tpot),
        ("ITL (ms)", summary.itl),
        ("E2EL (ms)", summary.e2el),
        ("Task time (ms)", summary.task),
        ("Turns per task", summary.turns),
        ("Tool latency (ms)", summary.tool_latency),
        ("Send lag (ms)", summary.send_lag),
    ]


def _dist_table(summary: Summary) -> str:
    rows = [(label, d) for label, d in _dist_rows(summary) if d is not None]
    if not rows:
        return ""
    labels = list(rows[0][1].percentiles) if rows[0][1] else []
    head = "".join(f"<th>{html.escape(q)}</th>" for q in labels)
    out = [f"<table><tr><th>metric</th><th>count</th><th>mean</th><th>median</th>{head}"]
    out.append("<th>max</th></tr>")
    for label, d in rows:
        assert d is not None
        cells = "".join(f"<td>{d.percentiles.get(q, math.nan):.2f}</td>" for q in labels)
        out.append(
            f"<tr><td>{html.escape(label)}</td><td>{d.count}</td><td>{d.mean:.2f}</td>"
            f"<td>{d.median:.2f}</td>{cells}<td>{d.max:.2f}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _money(value: float | None) -> str:
    return "n/a (no price)" if value is None else f"${value:.6g}"


def _totals_table(summary: Summary, offered: float | None) -> str:
    rows: list[tuple[str, str]] = [
        ("requests measured", f"{summary.measured}"),
        ("completed / failed", f"{summary.completed} / {summary.failed}"),
        ("measurement window", f"{summary.duration_s:.2f} s"),
        ("offered rate", "closed loop" if offered is None else f"{offered:g} req/s"),
        ("request throughput", f"{summary.request_throughput:.2f} req/s"),
        ("output token throughput", f"{summary.output_throughput:.1f} tok/s"),
        ("total token throughput", f"{summary.total_token_throughput:.1f} tok/s"),
        ("prompt / output tokens", f"{summary.prompt_tokens} / {summary.output_tokens}"),
    ]
    if summary.goodput is not None:
        slos = ", ".join(f"{k} ≤ {v:g} ms" for k, v in summary.slos_ms.items())
        rows.append((f"goodput ({slos})", f"{summary.goodput:.2f} req/s"))
        rows.append(("SLO attainment", f"{(summary.slo_attainment or 0) * 100:.1f} %"))
    if summary.tasks:
        rows.append(("agent tasks / conversations", f"{summary.tasks}"))
    rows += [
        ("cost", _money(summary.cost)),
        ("cost per request (task)", _money(summary.cost_per_request)),
        ("cost per 1M tokens", _money(summary.cost_per_million_tokens)),
    ]
    for kind, count in sorted(summary.errors.items()):
        rows.append((f"errors: {kind}", f"{count}"))
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _page(title: str, body: list[str]) -> str:
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        + "".join(body)
        + "</body></html>"
    )


def _definitions(definitions: dict[str, str]) -> str:
    items = "".join(f"<li>{html.escape(text)}</li>" for text in definitions.values())
    return f"<h2>Definitions</h2><ul class=defs>{items}</ul>"


def _run_html(result: BenchResult, records: Sequence[RequestRecord]) -> str:
    s = result.summary
    config = result.config
    load = msgspec.to_builtins(config.load)
    body = [
        f"<h1>limelight bench: {html.escape(config.workload.kind)} workload on "
        f"{html.escape(result.target)}</h1>",
        f"<p>{html.escape(result.started_at)} · limelight {html.escape(result.version)} · load "
        f"{html.escape(str(load))} · client: {html.escape(result.client)}</p>",
    ]
    if s.fell_behind:
        lag = s.send_lag.percentiles.get("p99") if s.send_lag else None
        body.append(
            "<p class=warn>The client fell behind its schedule: p99 send lag "
            f"{lag if lag is not None else math.nan:.2f} ms (more than 1 ms). The latencies "
            "include the client's own delay; lower the rate or the concurrency.</p>"
        )
    body += ["<h2>Summary</h2>", _totals_table(s, result.offered_rate), _dist_table(s)]
    measured = [r for r in records if r.measured and r.ok and r.kind != "task"]
    plots = []
    if any(r.first is not None for r in measured):
        plots.append(
            _cdf_chart("ttft-cdf", "TTFT CDF", [r.ttft for r in measured if r.ttft is not None])
        )
    plots.append(
        _cdf_chart("e2el-cdf", "E2EL CDF", [r.e2el for r in measured if r.e2el is not None])
    )
    gaps = [g for r in measured for g in r.itl]
    if gaps:
        plots.append(_cdf_chart("itl-cdf", "ITL CDF (pooled)", gaps))
    tasks = [r for r in records if r.measured and r.ok and r.kind == "task"]
    if tasks:
        plots.append(
            _cdf_chart("task-cdf", "Task time CDF", [t.e2el for t in tasks if t.e2el is not None])
        )
    lags = [r.lag for r in records if r.measured and r.kind != "call"]
    if lags:
        plots.append(_cdf_chart("lag-cdf", "Send lag CDF", lags))
    times = [p.t for p in result.timeline]
    plots.append(
        line_chart(
            "throughput",
            "Throughput over time",
            [
                ("completed req/s", times, [float(p.completed) for p in result.timeline]),
                ("failed req/s", times, [float(p.failed) for p in result.timeline]),
            ],
            x_label="seconds since start",
            y_label="requests per second",
        )
    )
    plots.append(
        line_chart(
            "token-throughput",
            "Output tokens over time",
            [("output tok/s", times, [float(p.output_tokens) for p in result.timeline])],
            x_label="seconds since start",
            y_label="tokens per second",
        )
    )
    body.append("<h2>Plots</h2><div class=plots>" + "".join(plots) + "</div>")
    body.append(_definitions(result.definitions))
    return _page("limelight bench report", body)


def _sweep_html(result: SweepResult) -> str:
    best = "none met the SLOs" if result.best_rate is None else f"{result.best_rate:g} req/s"
    slos = ", ".join(f"{k} ≤ {v:g} ms" for k, v in result.config.slos.items())
    body = [
        f"<h1>limelight bench sweep: {html.escape(result.config.workload.kind)} on "
        f"{html.escape(result.target)}</h1>",
        f"<p>Highest rate meeting the SLOs ({html.escape(slos)}, at least "
        f"{result.min_attainment * 100:g} % of requests, client on schedule: p99 send lag "
        f"within {result.max_send_lag * 1000:g} ms): "
        f"<b>{html.escape(best)}</b></p>",
        "<table><tr><th>rate (req/s)</th><th>passed</th><th>throughput</th><th>goodput</th>"
        "<th>attainment</th><th>TTFT mean</th><th>TTFT p99</th><th>E2EL p99</th>"
        "<th>send lag p99</th></tr>",
    ]

    def p(d: Distribution | None, q: str) -> str:
        if d is None:
            return "n/a"
        return f"{d.mean:.1f}" if q == "mean" else f"{d.percentiles.get(q, math.nan):.1f}"

    for point in result.points:
        s = point.summary
        body.append(
            f"<tr><td>{point.rate:g}</td><td>{'yes' if point.passed else 'no'}</td>"
            f"<td>{s.request_throughput:.2f}</td><td>{s.goodput or 0:.2f}</td>"
            f"<td>{(s.slo_attainment or 0) * 100:.1f} %</td><td>{p(s.ttft, 'mean')}</td>"
            f"<td>{p(s.ttft, 'p99')}</td><td>{p(s.e2el, 'p99')}</td>"
            f"<td>{p(s.send_lag, 'p99')}</td></tr>"
        )
    body.append("</table>")
    rates = [pt.rate for pt in result.points]

    def series(label: str, metric: str, q: str) -> Series:
        xs, ys = [], []
        for pt in result.points:
            d = getattr(pt.summary, metric)
            if d is not None:
                xs.append(pt.rate)
                ys.append(d.mean if q == "mean" else d.percentiles.get(q, math.nan))
        return (label, xs, ys)

    plots = [
        line_chart(
            "ttft-vs-load",
            "TTFT vs load",
            [series("TTFT mean", "ttft", "mean"), series("TTFT p99", "ttft", "p99")],
            x_label="offered rate (req/s)",
            y_label="milliseconds",
            markers=True,
        ),
        line_chart(
            "e2el-vs-load",
            "E2EL vs load",
            [series("E2EL mean", "e2el", "mean"), series("E2EL p99", "e2el", "p99")],
            x_label="offered rate (req/s)",
            y_label="milliseconds",
            markers=True,
        ),
        line_chart(
            "throughput-vs-load",
            "Throughput and goodput vs load",
            [
                ("throughput", rates, [pt.summary.request_throughput for pt in result.points]),
                ("goodput", rates, [pt.summary.goodput or 0.0 for pt in result.points]),
            ],
            x_label="offered rate (req/s)",
            y_label="requests per second",
            markers=True,
        ),
    ]
    body.append("<h2>Plots</h2><div class=plots>" + "".join(plots) + "</div>")
    body.append(_definitions(result.definitions))
    return _page("limelight bench sweep", body)


def render_html(result: BenchResult | SweepResult, records: Sequence[RequestRecord] = ()) -> str:
    """The self-contained HTML report of a run (with its records: the CDF plots need them)
    or of a sweep."""
    if isinstance(result, SweepResult):
        return _sweep_html(result)
    return _run_html(result, records)
