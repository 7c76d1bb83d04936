"""The `limelight` command, run as a user would."""

from __future__ import annotations

import subprocess
import sys

import pytest

import limelight


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


def test_demo_base_url_needs_a_model() -> None:
    out = _run("demo", "--base-url", "http://127.0.0.1:9/v1")
    assert out.returncode == 2
    assert "--base-url needs --model" in out.stderr


def test_no_command_prints_help() -> None:
    out = _run()
    assert out.returncode == 2
    assert "demo" in out.stdout
