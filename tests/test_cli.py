"""The `limelight` command, run as a user would."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

import limelight
from limelight.harness._targets import sim_process
from limelight.models import get_model_profile


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "limelight", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version() -> None:
    out = _run("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"limelight {limelight.__version__}"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("http", [False, True], ids=["in-process", "http"])
def test_demo_runs_an_agent_tree_and_summarizes_its_events(backend: str, http: bool) -> None:
    out = _run("demo", "--backend", backend, *(["--http"] if http else []))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    # It says what is simulated.
    assert "simulator" in text
    assert "simulated" in text
    assert ("over HTTP at http://127.0.0.1:" in text) is http
    # The tree: three coordinators, each with its sub-agents as supervised children.
    tree = text[text.index("actor tree:") :]
    for team in ("team-1", "team-2", "team-3"):
        assert f"── {team}  Agent" in tree
    assert tree.count("researcher  Agent") == 3
    assert tree.count("writer  Agent") == 3
    # Every team's outcome, then the analytics summary read back from the SQLite store.
    outcomes = [line for line in text.splitlines() if line.startswith("  team-")]
    assert len(outcomes) == 3
    assert "limelight events:" in text
    events = int(text.split("limelight events:")[1].split("events in")[0].split()[-1])
    assert events > 0
    assert "llm_request" in text
    assert "llm_response" in text


@pytest.fixture(scope="module")
def sim_server() -> Iterator[str]:
    """``limelight sim`` as a subprocess (an OpenAI-compatible server the demo does not
    know is simulated), serving a priced model name and an unknown one."""
    command = [sys.executable, "-m", "limelight", "sim", "--port", "0", "--ttft", "0.01"]
    command += ["--tps", "2000", "--model", "gpt-4o-mini", "--model", "house-model"]
    with sim_process(command) as url:
        yield url


def _tree_and_summary(text: str) -> tuple[int, int, str]:
    """Check the demo printed its tree, outcomes and summary; return the summary's input and
    output tokens and its cost text."""
    tree = text[text.index("actor tree:") :]
    for team in ("team-1", "team-2", "team-3"):
        assert f"── {team}  Agent" in tree
    assert tree.count("researcher  Agent") == 3
    assert tree.count("writer  Agent") == 3
    outcomes = [line for line in text.splitlines() if line.startswith("  team-")]
    assert len(outcomes) == 3
    summary = " ".join(text[text.index("limelight events:") :].split())
    match = re.search(
        r"(\d+) events in \d+ runs, .*?; (\d+) input \+ (\d+) output tokens, cost (\S+), "
        r"\d+ errors",
        summary,
    )
    assert match is not None, summary
    assert int(match.group(1)) > 0
    assert "llm_request" in summary
    assert "llm_response" in summary
    return int(match.group(2)), int(match.group(3)), match.group(4)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_demo_against_a_server_by_base_url(sim_server: str, backend: str) -> None:
    out = _run("demo", "--base-url", sim_server, "--model", "gpt-4o-mini", "--backend", backend)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert f"Model: gpt-4o-mini via {sim_server}" in text
    prompt, completion, cost = _tree_and_summary(text)
    assert prompt > 0
    assert completion > 0
    # The answers are priced from the model's price data (USD per 1M tokens).
    profile = get_model_profile("gpt-4o-mini")
    assert profile is not None
    assert profile.input_price is not None
    assert profile.output_price is not None
    expected = (prompt * profile.input_price + completion * profile.output_price) / 1e6
    assert cost == f"${expected:,.4f}"
    assert all("$" in line for line in text.splitlines() if line.startswith("  team-"))


def test_demo_with_a_model_without_prices(sim_server: str) -> None:
    out = _run("demo", "--base-url", sim_server, "--model", "house-model")
    assert out.returncode == 0, out.stderr
    prompt, completion, cost = _tree_and_summary(out.stdout)
    assert prompt > 0
    assert completion > 0
    assert cost == "-"  # no price data for the name: no cost, rather than a made-up one
    assert not any("$" in line for line in out.stdout.splitlines() if line.startswith("  team-"))


def test_demo_base_url_needs_a_model() -> None:
    out = _run("demo", "--base-url", "http://127.0.0.1:9/v1")
    assert out.returncode == 2
    assert "--base-url needs --model" in out.stderr


def test_no_command_prints_help() -> None:
    out = _run()
    assert out.returncode == 2
    assert "demo" in out.stdout
