"""``limelight bench``: run, sweep, compare and report benchmarks.

A thin layer over :mod:`limelight.harness`. The live display and the tables use rich (the
``harness`` extra).

One module: the options, the live display and the tables are this one command's; the engine
stays in :mod:`limelight.harness`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import anyio

from .._files import open_private
from ..errors import ConfigError, LimelightError
from ..harness import (
    BenchConfig,
    BenchResult,
    ClosedLoop,
    ConstantRate,
    Distribution,
    Gamma,
    Load,
    Poisson,
    Progress,
    SimTarget,
    Summary,
    SweepPoint,
    SweepResult,
    Target,
    Workload,
    load_records,
    load_result,
    parse_slos,
    render_html,
    sweep,
    write_result,
)
from ..harness import run as run_benchmark
from ..harness._config import MAX_WORKERS, parse_length
from ._checks import check_backend, check_writable

__all__ = ["add_arguments", "config_from_args", "print_summary", "run"]

T = TypeVar("T")
_REFRESH = 0.5


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers such as 50,90,99, got {text!r}"
        ) from None


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"expected a number of processes from 1 to {MAX_WORKERS}, got {text!r}"
        )
    return value


def _ray_address(text: str) -> str:
    address = text.strip()
    if not address or any(c.isspace() for c in address):
        raise argparse.ArgumentTypeError(
            f"expected a Ray cluster's address such as auto, HOST:6379 or ray://HOST:10001 "
            f"(or --ray alone: a local Ray instance), got {text!r}"
        )
    return address


def _backend_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE with KEY a Python name, such as mock_response=hi, got {text!r}"
        )
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    target = parser.add_argument_group("target (default: the simulator, started for the run)")
    target.add_argument(
        "--model",
        default="sim-1",
        help="model name; without --base-url: sim-1 (the simulator), or a model string for "
        "the backend resolver (gpt-4o-mini, mlx:PATH, hf:PATH, ...) (%(default)s)",
    )
    target.add_argument(
        "--base-url", help="an OpenAI-compatible API root, such as http://h:8000/v1"
    )
    target.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="the environment variable holding the API key (OPENAI_API_KEY, ...)",
    )
    target.add_argument(
        "--backend-option",
        action="append",
        type=_backend_option,
        default=[],
        metavar="KEY=VALUE",
        help="an option of a model string's backend, passed to the resolver "
        "(mock_response=hi, api_base=http://..., max_new_tokens=64); VALUE is read as JSON "
        "when it parses, else as text (repeatable)",
    )
    target.add_argument("--price-input", type=float, help="USD per 1M prompt tokens")
    target.add_argument("--price-output", type=float, help="USD per 1M completion tokens")
    sim = parser.add_argument_group("simulator target")
    sim.add_argument("--sim-ttft", type=float, default=0.1, help="seconds (%(default)s)")
    sim.add_argument("--sim-tps", type=float, default=100.0, help="tokens/s, 0: no delay")
    sim.add_argument("--sim-tool-call-probability", type=float, default=0.5)
    sim.add_argument("--sim-error-rate", type=float, default=0.0, help="5xx answers, 0 to 1")

    workload = parser.add_argument_group("workload")
    workload.add_argument(
        "--workload", choices=["chat", "stream", "multiturn", "agent"], default="stream"
    )
    workload.add_argument("--prompt-tokens", default="128", metavar="N|LOW-HIGH|lognormal:MEAN:SD")
    workload.add_argument("--output-tokens", default="64", metavar="N|LOW-HIGH|lognormal:MEAN:SD")
    workload.add_argument("--prompts-file", metavar="JSONL", help='{"prompt": ...} per line')
    workload.add_argument("--turns", type=int, default=3, help="user turns per conversation")
    workload.add_argument("--tools", type=int, default=2, help="scripted tools of the agent")
    workload.add_argument("--tool-latency", type=float, default=0.05, help="seconds per tool call")
    workload.add_argument("--tool-latency-jitter", type=float, default=0.0)
    workload.add_argument("--max-turns", type=int, default=4, help="model calls per agent task")
    workload.add_argument(
        "--agent-factory", metavar="MODULE:FUNCTION", help="your agent: factory(model) -> Agent"
    )
    workload.add_argument("--ignore-eos", action="store_true", help="send vLLM's ignore_eos")
    workload.add_argument("--seed", type=int, default=0)

    load = parser.add_argument_group("load (a closed loop by default)")
    load.add_argument(
        "--concurrency", type=int, default=8, help="closed loop clients (%(default)s)"
    )
    load.add_argument("--rate", type=float, help="open loop: requests (sessions) per second")
    load.add_argument("--arrival", choices=["constant", "poisson", "gamma"], default="poisson")
    load.add_argument("--burstiness", type=float, default=1.0, help="gamma shape (%(default)s)")
    load.add_argument(
        "--workers",
        type=_workers,
        metavar="N",
        help="send from N processes on one schedule: open-loop request i from process i mod N, "
        "the closed loop's clients split among them; results merged over all requests "
        "(default: this process; Ray actors with --ray)",
    )
    load.add_argument(
        "--ray",
        nargs="?",
        const=True,
        default=False,
        type=_ray_address,
        metavar="ADDRESS",
        help="with --workers: the workers are Ray actors, on a local Ray instance started for "
        "the run, or on the Ray cluster at ADDRESS (auto, HOST:6379, ray://HOST:10001), whose "
        "hosts must reach the target (give --base-url) and keep synchronised clocks "
        "(pip install 'limelight[ray]')",
    )

    limits = parser.add_argument_group("limits")
    limits.add_argument("--requests", type=int, help="requests (sessions) to send (default 100)")
    limits.add_argument("--duration", type=float, help="seconds to keep sending")
    limits.add_argument("--warmup", type=float, default=0.0, help="seconds not measured at start")
    limits.add_argument("--cooldown", type=float, default=0.0, help="seconds not measured at end")
    limits.add_argument("--max-errors", type=int, help="stop sending after this many failures")
    limits.add_argument("--timeout", type=float, default=600.0, help="seconds per request")

    out = parser.add_argument_group("metrics and output")
    out.add_argument(
        "--slo",
        action="append",
        metavar="METRIC:MS",
        help="an SLO for goodput: ttft:500, tpot:50, e2el:2000 (repeatable)",
    )
    out.add_argument(
        "--percentiles",
        type=_floats,
        default=(90.0, 99.0),
        help="percentiles to report besides mean and median (90,99)",
    )
    out.add_argument(
        "-o",
        "--output",
        help="base path of the result files (.json, .records.jsonl, .html); "
        "default bench-results/<kind>-<time>",
    )
    out.add_argument("--no-progress", action="store_true", help="no live display")
    out.add_argument("--open", action="store_true", help="open the HTML report in a browser")
    out.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``limelight bench`` subcommands to ``parser``."""
    commands = parser.add_subparsers(dest="bench_command", metavar="SUBCOMMAND", required=True)
    run_parser = commands.add_parser("run", help="run one benchmark")
    _add_run_options(run_parser)
    sweep_parser = commands.add_parser("sweep", help="find the highest rate meeting SLOs")
    _add_run_options(sweep_parser)
    sweep_parser.add_argument("--rates", type=_floats, help="try exactly these rates")
    sweep_parser.add_argument("--start", type=float, default=1.0, help="first rate (%(default)s)")
    sweep_parser.add_argument("--max-rate", type=float, default=1024.0)
    sweep_parser.add_argument("--steps", type=int, default=3, help="bisection steps")
    sweep_parser.add_argument(
        "--min-attainment",
        type=float,
        default=0.95,
        help="share of requests that must meet the SLOs (%(default)s)",
    )
    sweep_parser.add_argument(
        "--max-send-lag",
        type=float,
        default=10.0,
        metavar="MS",
        help="p99 send lag beyond which a rate fails: the client fell behind (%(default)s)",
    )
    compare = commands.add_parser("compare", help="compare two or more result files")
    compare.add_argument("results", nargs="+", metavar="RESULT.json", help="two or more")
    report = commands.add_parser("report", help="write the HTML report of a result file")
    report.add_argument("result", metavar="RESULT.json")
    report.add_argument("-o", "--output", help="the HTML file (default: next to the result)")
    report.add_argument("--open", action="store_true", help="open it in a browser")


def _output_base(args: argparse.Namespace, kind: str, *, records: bool) -> Path:
    """The base path of the result files (as :func:`write_result` takes it), checked to be
    writable before the run, so that a run's results are not lost at its end."""
    base = Path(args.output) if args.output else _default_output(kind)
    if base.suffix in (".json", ".html"):
        base = base.with_suffix("")
    files = [base.with_suffix(".json"), base.with_suffix(".html")]
    if records:
        files.append(base.parent / (base.name + ".records.jsonl"))
    for path in files:
        if args.output:
            check_writable(path, flag="-o", given=args.output)
        else:
            check_writable(path, flag="the default output (-o to change it)")
    return base


def _write(result: BenchResult | SweepResult, base: Path) -> dict[str, Path] | None:
    """Write the result files; ``None`` (after saying so on stderr) when that failed."""
    try:
        return write_result(result, base)
    except OSError as exc:
        print(
            f"limelight bench: the result files could not be written at {base}: {exc}; only "
            "the output above is left",
            file=sys.stderr,
        )
        return None


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """The :class:`BenchConfig` the parsed options describe.

    :raises ConfigError: an option's value is invalid.
    """
    parse_length(args.prompt_tokens, what="--prompt-tokens")
    parse_length(args.output_tokens, what="--output-tokens")
    load: Load
    if args.rate is not None:
        if args.arrival == "constant":
            load = ConstantRate(rate=args.rate)
        elif args.arrival == "poisson":
            load = Poisson(rate=args.rate, seed=args.seed)
        else:
            load = Gamma(rate=args.rate, shape=args.burstiness, seed=args.seed)
    else:
        load = ClosedLoop(concurrency=args.concurrency)
    sim = SimTarget(
        ttft=args.sim_ttft,
        ttft_jitter=min(0.02, args.sim_ttft / 5),
        tokens_per_second=args.sim_tps or None,
        tool_call_probability=args.sim_tool_call_probability,
        seed=args.seed,
        server_error_rate=args.sim_error_rate,
    )
    requests = args.requests
    if requests is None and args.duration is None:
        requests = 100
    return BenchConfig(
        target=Target(
            model=args.model,
            base_url=args.base_url,
            api_key_env=args.api_key_env,
            sim=sim if args.base_url is None and args.model in ("sim", "sim-1") else None,
            price_input=args.price_input,
            price_output=args.price_output,
            options=dict(args.backend_option),
        ),
        workload=Workload(
            kind=args.workload,
            prompt_tokens=args.prompt_tokens,
            output_tokens=args.output_tokens,
            prompts_file=args.prompts_file,
            turns=args.turns,
            tools=args.tools,
            tool_latency=args.tool_latency,
            tool_latency_jitter=args.tool_latency_jitter,
            max_turns=args.max_turns,
            agent_factory=args.agent_factory,
            ignore_eos=args.ignore_eos,
            seed=args.seed,
        ),
        load=load,
        requests=requests,
        duration=args.duration,
        warmup=args.warmup,
        cooldown=args.cooldown,
        max_errors=args.max_errors,
        timeout=args.timeout,
        slos=parse_slos(args.slo),
        percentiles=args.percentiles,
    )


# -- live display ----------------------------------------------------------------------------


def _status_line(progress: Progress) -> str:
    elapsed = progress.elapsed
    rate = progress.completed / elapsed if elapsed > 0 else 0.0
    tasks = f"tasks {progress.tasks}  " if progress.sessions else ""
    return (
        f"{tasks}sent {progress.sent}  done {progress.completed}  failed {progress.failed}  "
        f"in flight {progress.in_flight}  {rate:.1f} req/s  "
        f"{progress.output_tokens / elapsed if elapsed > 0 else 0:.0f} tok/s  "
        f"max send lag {progress.max_lag * 1000:.2f} ms"
    )


async def _with_progress(
    work: Callable[[Progress], Awaitable[T]], *, enabled: bool, label: str
) -> T:
    """Run ``work`` with a rich live display on stderr refreshed from the event loop (no
    refresh thread competing with the client for the GIL)."""
    progress = Progress()
    if not enabled:
        return await work(progress)
    from rich.console import Console, Group
    from rich.live import Live
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar
    from rich.text import Text

    bar = Bar(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
    )
    task = bar.add_task(label, total=None)
    status = Text("starting", style="dim")
    result: list[T] = []
    with Live(Group(bar, status), console=bar.console, auto_refresh=False) as live:
        async with anyio.create_task_group() as tg:

            def show() -> None:
                total = progress.total
                completed: float = progress.finished
                if total is None and progress.duration and progress.started:
                    total, completed = (
                        int(progress.duration),
                        min(progress.elapsed, progress.duration),
                    )
                bar.update(task, total=total, completed=completed)
                status.plain = _status_line(progress)
                live.refresh()

            async def refresh() -> None:
                while True:
                    show()
                    await anyio.sleep(_REFRESH)

            tg.start_soon(refresh)
            try:
                result.append(await work(progress))
            except BaseException:
                # A run that failed (or was interrupted) leaves its one line of error on
                # stderr, not the display beside it.
                live.transient = True
                raise
            tg.cancel_scope.cancel()
        show()  # the final counts, not those of the last tick
    return result[0]


# -- printing --------------------------------------------------------------------------------


def _ms(d: Distribution | None, what: str) -> str:
    if d is None:
        return "-"
    value = d.mean if what == "mean" else d.median if what == "median" else d.percentiles.get(what)
    return "-" if value is None else f"{value:.2f}"


def print_summary(summary: Summary, *, title: str, file: IO[str] | None = None) -> None:
    """The metrics of a run as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file or sys.stdout, width=110)
    totals = Table(title=title, show_header=False)
    totals.add_column("metric")
    totals.add_column("value", justify="right")
    totals.add_row("requests completed / failed", f"{summary.completed} / {summary.failed}")
    totals.add_row("measurement window", f"{summary.duration_s:.2f} s")
    totals.add_row("request throughput", f"{summary.request_throughput:.2f} req/s")
    totals.add_row("output token throughput", f"{summary.output_throughput:.1f} tok/s")
    totals.add_row("total token throughput", f"{summary.total_token_throughput:.1f} tok/s")
    if summary.goodput is not None:
        totals.add_row("goodput", f"{summary.goodput:.2f} req/s")
        totals.add_row("SLO attainment", f"{(summary.slo_attainment or 0) * 100:.1f} %")
    if summary.tasks:
        totals.add_row("agent tasks / conversations", str(summary.tasks))
    if summary.cost is not None:
        totals.add_row("cost", f"${summary.cost:.6g}")
        totals.add_row("cost per request (task)", f"${summary.cost_per_request or 0:.6g}")
        totals.add_row("cost per 1M tokens", f"${summary.cost_per_million_tokens or 0:.6g}")
    for kind, count in sorted(summary.errors.items()):
        totals.add_row(f"errors: {kind}", str(count))
    console.print(totals)
    dists = [
        ("TTFT (ms)", summary.ttft),
        ("TPOT (ms)", summary.tpot),
        ("ITL (ms)", summary.itl),
        ("E2EL (ms)", summary.e2el),
        ("task time (ms)", summary.task),
        ("turns per task", summary.turns),
        ("tool latency (ms)", summary.tool_latency),
        ("send lag (ms)", summary.send_lag),
    ]
    present = [(label, d) for label, d in dists if d is not None]
    if present:
        first = present[0][1]
        assert first is not None
        labels = list(first.percentiles)
        table = Table(title="latency (vLLM definitions)")
        table.add_column("metric")
        for column in ["mean", "median", *labels]:
            table.add_column(column, justify="right")
        for label, d in present:
            table.add_row(label, _ms(d, "mean"), _ms(d, "median"), *(_ms(d, q) for q in labels))
        console.print(table)
    if summary.fell_behind:
        lag = summary.send_lag.percentiles.get("p99", math.nan) if summary.send_lag else math.nan
        console.print(
            f"[bold yellow]warning:[/] the client fell behind its schedule (p99 send lag "
            f"{lag:.2f} ms > 1 ms): latencies include the client's own delay."
        )


def _open_report(path: Path) -> None:
    """Open the HTML report at ``path`` in the user's browser (``$BROWSER`` if set)."""
    import webbrowser

    url = path.resolve().as_uri()
    if not webbrowser.open(url):
        print(f"limelight bench: no browser to open; open {url} yourself", file=sys.stderr)


def _default_output(kind: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("bench-results") / f"{kind}-{stamp}"


def _check_workers(args: argparse.Namespace) -> None:
    """:raises ConfigError: ``--ray`` is given without ``--workers``."""
    if args.ray is not False and args.workers is None:
        raise ConfigError("--ray runs the workers on Ray: give --workers N too")


def _run_one(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    _check_workers(args)
    check_backend(args.backend)
    base = _output_base(args, config.workload.kind, records=True)
    label = f"bench {config.workload.kind}"

    async def main() -> BenchResult:
        return await _with_progress(
            lambda p: run_benchmark(config, progress=p, workers=args.workers, ray=args.ray),
            enabled=not args.no_progress,
            label=label,
        )

    result = anyio.run(main, backend=args.backend)
    print_summary(
        result.summary, title=f"limelight bench: {config.workload.kind} on {result.target}"
    )
    for failure in result.worker_failures:
        print(f"limelight bench: {failure}", file=sys.stderr)
    paths = _write(result, base)
    if paths is None:
        return 1
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    if args.open:
        _open_report(paths["html"])
    return 1 if result.worker_failures else 0


def _check_sweep(args: argparse.Namespace, config: BenchConfig) -> None:
    """Check the sweep's own options before anything starts.

    :raises ConfigError: one is invalid.
    """
    if not config.slos:
        raise ConfigError("a sweep needs SLOs to meet: give --slo, such as --slo ttft:500")
    rates = [*(args.rates or ()), args.start, args.max_rate]
    if not all(0 < rate < math.inf for rate in rates):
        raise ConfigError(
            "rates (--rates, --start, --max-rate) must be finite numbers > 0 (requests per "
            f"second), got {', '.join(f'{rate:g}' for rate in rates)}"
        )
    if args.steps < 0:
        raise ConfigError(f"--steps must be 0 or more, got {args.steps}")
    if not 0 < args.min_attainment <= 1:
        raise ConfigError(f"--min-attainment must be within (0, 1], got {args.min_attainment}")


def _sweep(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    _check_sweep(args, config)
    _check_workers(args)
    check_backend(args.backend)
    base = _output_base(args, "sweep", records=False)

    def show(point: SweepPoint) -> None:
        s = point.summary
        print(
            f"rate {point.rate:g} req/s: {'pass' if point.passed else 'fail'}  "
            f"attainment {(s.slo_attainment or 0) * 100:.1f} %  "
            f"throughput {s.request_throughput:.2f} req/s  TTFT p99 {_ms(s.ttft, 'p99')} ms  "
            f"send lag p99 {_ms(s.send_lag, 'p99')} ms",
            flush=True,
        )

    async def main() -> SweepResult:
        return await _with_progress(
            lambda p: sweep(
                config,
                rates=args.rates,
                start=args.start,
                max_rate=args.max_rate,
                steps=args.steps,
                min_attainment=args.min_attainment,
                max_send_lag=args.max_send_lag / 1000.0,
                on_point=show,
                progress=p,
                workers=args.workers,
                ray=args.ray,
            ),
            enabled=not args.no_progress,
            label="sweep",
        )

    result = anyio.run(main, backend=args.backend)
    best = "none" if result.best_rate is None else f"{result.best_rate:g} req/s"
    print(f"highest rate meeting the SLOs: {best}")
    paths = _write(result, base)
    if paths is None:
        return 1
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    if args.open:
        _open_report(paths["html"])
    return 0


def _mean(d: Distribution | None) -> float | None:
    return None if d is None else d.mean


def _p99(d: Distribution | None) -> float | None:
    return None if d is None else d.percentiles.get("p99")


def _compare(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    if len(args.results) < 2:
        raise ConfigError(
            f"compare needs two or more result files, got {len(args.results)}: "
            "limelight bench compare A.json B.json [C.json ...]"
        )
    results = [(Path(p).name, load_result(p)) for p in args.results]
    runs: list[tuple[str, Summary]] = []
    for name, result in results:
        if isinstance(result, SweepResult):
            runs.extend((f"{name} @{point.rate:g}/s", point.summary) for point in result.points)
        else:
            runs.append((name, result.summary))
    rows: list[tuple[str, Callable[[Summary], float | None], bool]] = [
        ("request throughput (req/s)", lambda s: s.request_throughput, True),
        ("output throughput (tok/s)", lambda s: s.output_throughput, True),
        ("goodput (req/s)", lambda s: s.goodput, True),
        ("TTFT mean (ms)", lambda s: _mean(s.ttft), False),
        ("TTFT p99 (ms)", lambda s: _p99(s.ttft), False),
        ("TPOT mean (ms)", lambda s: _mean(s.tpot), False),
        ("ITL p99 (ms)", lambda s: _p99(s.itl), False),
        ("E2EL mean (ms)", lambda s: _mean(s.e2el), False),
        ("E2EL p99 (ms)", lambda s: _p99(s.e2el), False),
        ("task time mean (ms)", lambda s: _mean(s.task), False),
        ("failed", lambda s: float(s.failed), False),
        ("cost per request ($)", lambda s: s.cost_per_request, False),
        ("send lag p99 (ms)", lambda s: _p99(s.send_lag), False),
    ]
    table = Table(title=f"compared with {runs[0][0]} (ratio in brackets)")
    table.add_column("metric")
    for name, _ in runs:
        table.add_column(name, justify="right")
    for label, get, _higher_better in rows:
        values = [get(s) for _, s in runs]
        if all(v is None for v in values):
            continue
        base = values[0]
        cells = []
        for i, value in enumerate(values):
            if value is None:
                cells.append("-")
            elif i and base:
                cells.append(f"{value:.2f} ({value / base:.2f}x)")
            else:
                cells.append(f"{value:.2f}")
        table.add_row(label, *cells)
    Console(width=60 + 28 * len(runs)).print(table)
    return 0


def _report(args: argparse.Namespace) -> int:
    result = load_result(args.result)
    records = load_records(args.result, result) if isinstance(result, BenchResult) else []
    out = Path(args.output) if args.output else Path(args.result).with_suffix(".html")
    check_writable(out, flag="-o" if args.output else "the report")
    with open_private(out, "wb") as file:
        file.write(render_html(result, records).encode())
    print(f"html: {out}")
    if args.open:
        _open_report(out)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the ``limelight bench`` subcommand ``args`` describe.

    :returns: the exit status: 0 done, 2 bad options or input, 1 the run failed (or a worker
        process died: the results are written, its requests counted as failed), 130 after
        Ctrl-C.
    """
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": _run_one,
        "sweep": _sweep,
        "compare": _compare,
        "report": _report,
    }
    try:
        return commands[args.bench_command](args)
    except BaseException as exc:
        # Task groups wrap what their tasks raise: show the one error, not a group of one.
        inner: BaseException = exc
        while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
            inner = inner.exceptions[0]
        if isinstance(inner, LimelightError):
            print(f"limelight bench: {' '.join(str(inner).split())}", file=sys.stderr)
            return 2
        interrupted = isinstance(exc, BaseExceptionGroup) and exc.split(KeyboardInterrupt)[0]
        if isinstance(inner, KeyboardInterrupt) or interrupted:
            print("limelight bench: interrupted", file=sys.stderr)
            return 130
        raise
