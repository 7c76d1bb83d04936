"""``limelight bench`` driven as a user would (subprocesses, the simulator started by the
harness as its own process), and the HTML reports rendered by headless Chromium (Debian's
``chromium`` package) and checked for their plots."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import msgspec
import pytest

from limelight.cli.bench import print_summary
from limelight.harness import BenchResult, SweepResult, load_records, load_result, render_html

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FAST_SIM = ["--sim-ttft", "0.01", "--sim-tps", "2000", "--output-tokens", "6"]


def _bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "limelight", "bench", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=None if env is None else {**os.environ, **env},
    )


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _words(text: str) -> str:
    """``text`` without terminal escapes, its whitespace runs made single spaces (rich wraps
    long lines at the console's width)."""
    return " ".join(_ANSI.sub("", text).split())


def _dom(html_file: Path, tmp_path: Path) -> str:
    """The DOM headless Chromium builds from ``html_file`` (no network: file URL only)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    out = subprocess.run(
        [
            CHROMIUM,
            *("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"),
            *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--dump-dom",
            html_file.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout


def _plots(dom: str) -> dict[str, list[int]]:
    """Each plot's name and the number of points of each of its lines."""
    plots: dict[str, list[int]] = {}
    for match in re.finditer(r'<svg class="plot" data-plot="([^"]+)".*?</svg>', dom, re.S):
        lines = re.findall(r'<polyline[^>]* points="([^"]*)"', match.group(0))
        plots[match.group(1)] = [len(points.split()) for points in lines]
    return plots


@pytest.fixture(scope="module")
def stream_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("bench") / "stream"
    out = _bench(
        "run",
        *("--requests", "30", "--rate", "60", "--arrival", "poisson"),
        *FAST_SIM,
        *("--slo", "ttft:500", "--price-input", "0.15", "--price-output", "0.6"),
        *("-o", str(base)),
    )
    assert out.returncode == 0, out.stderr
    assert "TTFT (ms)" in out.stdout
    assert "goodput" in out.stdout
    assert f"json: {base}.json" in out.stdout
    return base.with_suffix(".json")


def test_run_writes_the_summary_records_and_report(stream_run: Path, tmp_path: Path) -> None:
    data = json.loads(stream_run.read_text())
    assert data["summary"]["completed"] == 30
    assert data["config"]["load"] == {"type": "poisson", "rate": 60.0, "seed": 0}
    assert "TTFT (vLLM)" in data["definitions"]["ttft"]
    assert data["summary"]["cost"] > 0
    result = load_result(stream_run)
    assert isinstance(result, BenchResult)
    records = load_records(stream_run, result)
    assert len(records) == 30
    assert all(r.ttft is not None for r in records)
    dom = _dom(stream_run.with_suffix(".html"), tmp_path)
    plots = _plots(dom)
    for name in ("ttft-cdf", "e2el-cdf", "itl-cdf", "lag-cdf", "throughput", "token-throughput"):
        assert name in plots, f"the report lacks the {name} plot"
    assert plots["ttft-cdf"] == [30]  # one point per request
    assert plots["e2el-cdf"] == [30]
    assert "TTFT (vLLM)" in dom  # the definitions are in the report
    assert "http://" not in dom.replace("http://www.w3.org/2000/svg", "")  # nothing fetched


def test_report_rewrites_the_html_from_the_result_files(stream_run: Path, tmp_path: Path) -> None:
    out_html = tmp_path / "again.html"
    out = _bench("report", str(stream_run), "-o", str(out_html))
    assert out.returncode == 0, out.stderr
    assert _plots(_dom(out_html, tmp_path))["ttft-cdf"] == [30]


def test_agent_run_and_compare(stream_run: Path, tmp_path: Path) -> None:
    base = tmp_path / "agent"
    out = _bench(
        "run",
        *("--workload", "agent", "--requests", "4", "--concurrency", "2", "--tool-latency", "0.01"),
        *FAST_SIM,
        *("-o", str(base)),
    )
    assert out.returncode == 0, out.stderr
    assert "task time (ms)" in out.stdout
    assert "tool latency (ms)" in out.stdout
    assert "task-cdf" in _plots(_dom(base.with_suffix(".html"), tmp_path))
    compared = _bench("compare", str(stream_run), str(base.with_suffix(".json")))
    assert compared.returncode == 0, compared.stderr
    assert "request throughput" in compared.stdout
    assert re.search(r"\(\d+\.\d\dx\)", compared.stdout), compared.stdout


def test_sweep_reports_ttft_against_load(tmp_path: Path) -> None:
    base = tmp_path / "sweep"
    out = _bench(
        "sweep",
        *("--rates", "10,20", "--requests", "8", "--slo", "e2el:5000", "--no-progress"),
        *FAST_SIM,
        *("-o", str(base)),
    )
    assert out.returncode == 0, out.stderr
    assert "rate 10 req/s" in out.stdout
    assert "rate 20 req/s" in out.stdout
    assert "highest rate meeting the SLOs" in out.stdout
    result = load_result(base.with_suffix(".json"))
    assert isinstance(result, SweepResult)
    assert [p.rate for p in result.points] == [10.0, 20.0]
    plots = _plots(_dom(base.with_suffix(".html"), tmp_path))
    assert plots["ttft-vs-load"] == [2, 2]  # mean and p99, one point per rate
    assert "throughput-vs-load" in plots


def test_bad_input_is_a_clear_error() -> None:
    out = _bench("run", "--slo", "itl:5")
    assert out.returncode == 2
    assert "ttft, tpot, e2el" in out.stderr
    out = _bench("run", "--model", "sim-1", "--base-url", "not a url", "--requests", "1")
    assert out.returncode == 2
    assert "base_url" in out.stderr
    out = _bench("compare", "missing.json", "other.json")
    assert out.returncode == 2
    assert "cannot read the result file" in out.stderr


def test_report_output_path_is_checked(stream_run: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")  # a file where the report's directory should be
    html = blocker / "report.html"
    out = _bench("report", str(stream_run), "-o", str(html))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.splitlines() == [
        f"limelight bench: -o {html}: cannot write {html} (Not a directory); give a path in "
        "a writable directory"
    ]


def test_a_run_whose_results_cannot_be_written_keeps_its_summary(tmp_path: Path) -> None:
    # The output directory is checked before the run; if it goes away during the run, the
    # summary is printed all the same, and the failure said in one line (status 1).
    base = tmp_path / "gone" / "out"
    script = (
        "import shutil, sys\n"
        "from limelight.cli import main\n"
        "import limelight.cli.bench as bench\n"
        "run = bench.run_benchmark\n"
        "async def run_then_remove(config, **kw):\n"
        "    result = await run(config, **kw)\n"
        f"    shutil.rmtree({str(base.parent)!r})\n"
        f"    open({str(base.parent)!r}, 'w').close()\n"
        "    return result\n"
        "bench.run_benchmark = run_then_remove\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    command = ["bench", "run", "--requests", "2", "--no-progress", *FAST_SIM, "-o", str(base)]
    out = subprocess.run(
        [sys.executable, "-c", script, *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1, out.stderr
    assert "TTFT (ms)" in out.stdout  # the summary
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"limelight bench: the result files could not be written at {base}")


def test_backend_options_reach_the_resolver(tmp_path: Path) -> None:
    if importlib.util.find_spec("litellm") is None:  # the CLI imports it, not this process
        pytest.skip("pip install 'limelight[litellm]'")
    base = tmp_path / "mock"
    out = _bench(
        "run",
        "--model",
        "gpt-4o-mini",
        "--backend-option",
        "mock_response=A mocked answer of LiteLLM's.",
        "--backend-option",
        "num_retries=0",
        "--workload",
        "chat",
        "--requests",
        "3",
        "--no-progress",
        "-o",
        str(base),
    )
    assert out.returncode == 0, out.stderr
    result = load_result(base.with_suffix(".json"))
    assert isinstance(result, BenchResult)
    assert result.summary.completed == 3
    assert "LiteLLM" in result.client
    out = _bench("run", "--backend-option", "no equals sign")
    assert out.returncode == 2
    assert "KEY=VALUE" in out.stderr


def test_compare_needs_two_or_more_files(stream_run: Path) -> None:
    out = _bench("compare", str(stream_run))
    assert out.returncode == 2
    assert "compare needs two or more result files, got 1" in out.stderr
    assert out.stdout == ""
    out = _bench("compare")
    assert out.returncode == 2
    assert "RESULT.json" in out.stderr  # argparse's usage line
    three = _bench("compare", str(stream_run), str(stream_run), str(stream_run))
    assert three.returncode == 0, three.stderr
    assert three.stdout.count("(1.00x)") >= 2  # each later column against the first


def test_live_progress_on_a_terminal(tmp_path: Path) -> None:
    # FORCE_COLOR makes rich treat stderr (a pipe here) as a terminal, as it is for a user.
    terminal = {"FORCE_COLOR": "1", "COLUMNS": "120", "TERM": "xterm-256color"}
    out = _bench(
        "run",
        *("--requests", "12", "--rate", "40", "--arrival", "constant"),
        *FAST_SIM,
        *("-o", str(tmp_path / "live")),
        env=terminal,
    )
    assert out.returncode == 0, out.stderr
    # A live display: the cursor hidden while it runs, the frame redrawn in place (cursor up,
    # erase line) at least once, then the cursor shown again.
    assert "\x1b[?25l" in out.stderr
    assert "\x1b[1A\x1b[2K" in out.stderr
    assert out.stderr.rstrip().endswith("\x1b[?25h")
    shown = _words(out.stderr)
    assert shown.startswith("bench stream")
    assert shown.count("bench stream") >= 2  # frames
    # The last frame has the final counts: the bar full, every request sent and done.
    last = shown[shown.rindex("bench stream") :]
    assert "12/12" in last
    assert "sent 12 done 12 failed 0 in flight 0" in last
    assert "max send lag" in last
    # Agent tasks: the bar counts tasks, the status line their model calls too.
    agents = _bench(
        "run",
        *("--workload", "agent", "--requests", "3", "--concurrency", "2"),
        *("--tool-latency", "0.01", *FAST_SIM, "-o", str(tmp_path / "agents")),
        env=terminal,
    )
    assert agents.returncode == 0, agents.stderr
    shown = _words(agents.stderr)
    last = shown[shown.rindex("bench agent") :]
    assert "3/3" in last
    result = load_result(tmp_path / "agents.json")
    assert isinstance(result, BenchResult)
    calls = [r for r in load_records(tmp_path / "agents.json", result) if r.kind == "call"]
    done = sum(1 for r in calls if r.ok)
    assert f"tasks 3 sent {len(calls)} done {done} failed {len(calls) - done} " in last
    # Without it, nothing is drawn.
    quiet = _bench(
        "run",
        *("--requests", "2", "--no-progress", *FAST_SIM, "-o", str(tmp_path / "quiet")),
        env=terminal,
    )
    assert quiet.returncode == 0, quiet.stderr
    assert "bench stream" not in quiet.stderr
    assert "\x1b[?25l" not in quiet.stderr


def test_a_client_that_fell_behind_is_flagged(tmp_path: Path) -> None:
    # A million requests per second: no client starts 300 requests within 0.3 ms, so the
    # p99 send lag is far beyond 1 ms.
    base = tmp_path / "behind"
    out = _bench(
        "run",
        *("--requests", "300", "--rate", "1000000", "--arrival", "constant", "--no-progress"),
        *FAST_SIM,
        *("-o", str(base)),
    )
    assert out.returncode == 0, out.stderr
    text = _words(out.stdout)
    assert "warning: the client fell behind its schedule (p99 send lag" in text
    assert "latencies include the client's own delay" in text
    result = load_result(base.with_suffix(".json"))
    assert isinstance(result, BenchResult)
    assert result.summary.fell_behind
    dom = _words(_dom(base.with_suffix(".html"), tmp_path))
    assert "The client fell behind its schedule: p99 send lag" in dom


def test_the_warning_follows_the_summary(stream_run: Path) -> None:
    result = load_result(stream_run)
    assert isinstance(result, BenchResult)
    records = load_records(stream_run, result)
    for behind in (False, True):
        summary = msgspec.structs.replace(result.summary, fell_behind=behind)
        page = render_html(msgspec.structs.replace(result, summary=summary), records)
        assert ("<p class=warn>The client fell behind" in page) is behind
        printed = io.StringIO()
        print_summary(summary, title="t", file=printed)
        assert ("the client fell behind its schedule" in _words(printed.getvalue())) is behind


@pytest.fixture
def browser(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A ``$BROWSER`` that records the URL it is asked to open (and opens nothing)."""
    log = tmp_path / "opened.txt"
    script = tmp_path / "record_url.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            with open({str(log)!r}, "a") as out:
                out.write(sys.argv[1] + "\\n")
            """
        )
    )
    return {"BROWSER": f"{sys.executable} {script} %s"}, log


def test_open_shows_the_report_in_a_browser(
    stream_run: Path, tmp_path: Path, browser: tuple[dict[str, str], Path]
) -> None:
    env, log = browser
    base = tmp_path / "opened"
    out = _bench(
        "run", "--requests", "2", "--no-progress", *FAST_SIM, "-o", str(base), "--open", env=env
    )
    assert out.returncode == 0, out.stderr
    assert log.read_text().splitlines() == [base.with_suffix(".html").resolve().as_uri()]
    again = tmp_path / "again.html"
    out = _bench("report", str(stream_run), "-o", str(again), "--open", env=env)
    assert out.returncode == 0, out.stderr
    assert log.read_text().splitlines()[1:] == [again.resolve().as_uri()]
    # Without --open, no browser.
    out = _bench("report", str(stream_run), "-o", str(again), env=env)
    assert out.returncode == 0, out.stderr
    assert len(log.read_text().splitlines()) == 2
