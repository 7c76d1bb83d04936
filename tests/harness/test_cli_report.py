"""``limelight bench`` driven as a user would (subprocesses, the simulator started by the
harness as its own process), and the HTML reports rendered by headless Chromium (Debian's
``chromium`` package) and checked for their plots."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from limelight.harness import BenchResult, SweepResult, load_records, load_result

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FAST_SIM = ["--sim-ttft", "0.01", "--sim-tps", "2000", "--output-tokens", "6"]


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "limelight", "bench", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


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
    out = _bench("compare", "missing.json")
    assert out.returncode == 2
    assert "cannot read the result file" in out.stderr
