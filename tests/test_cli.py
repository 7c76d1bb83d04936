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
def test_demo_runs_a_supervised_tree_and_prints_it(backend: str) -> None:
    out = _run("demo", "--backend", backend)
    assert out.returncode == 0, out.stderr
    assert "16 jobs done" in out.stdout
    # worker-2 is flaky: it crashed and was restarted, and the tree shows it.
    worker2 = next(line for line in out.stdout.splitlines() if "worker-2" in line and "──" in line)
    assert "restarts=0" not in worker2
    assert "last_error=Flaky" in worker2
    assert "actor crashed" in out.stderr


def test_no_command_prints_help() -> None:
    out = _run()
    assert out.returncode == 2
    assert "demo" in out.stdout
