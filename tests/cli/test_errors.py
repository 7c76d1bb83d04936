"""Bad input to the `limelight` command, run as a user would: one line on stderr saying what
was wrong and what to do, exit status 2, never a traceback, and nothing run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest


def _run(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "limelight", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def _refused(out: subprocess.CompletedProcess[str]) -> str:
    """The one line of a refused command (checked: status 2, one line on stderr, no
    traceback, nothing on stdout)."""
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert out.returncode == 2, out.stderr
    assert out.stdout == ""
    return lines[0]


BENCH = ["bench", "run", "--requests", "1", "--no-progress"]


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--output-tokens", "10-5", "--output-tokens '10-5': LOW-HIGH needs 1 <= LOW <= HIGH"),
        ("--prompt-tokens", "5-1", "--prompt-tokens '5-1': LOW-HIGH needs 1 <= LOW <= HIGH"),
        ("--output-tokens", "0", "--output-tokens '0': give at least 1 token"),
        ("--prompt-tokens", "lognormal:0:5", "lognormal:MEAN:SD needs MEAN > 0 and SD >= 0"),
        ("--output-tokens", "many", "--output-tokens 'many' not understood: expected N,"),
    ],
)
def test_bench_token_lengths(option: str, value: str, said: str, tmp_path: Path) -> None:
    line = _refused(_run(*BENCH, option, value, "-o", str(tmp_path / "out")))
    assert line.startswith("limelight bench: ")
    assert said in line
    assert not list(tmp_path.iterdir())  # nothing ran, nothing written


@pytest.mark.parametrize("port", ["99999", "-1", "65536"])
def test_sim_port_out_of_range(port: str) -> None:
    line = _refused(_run("sim", "--port", port))
    assert line == (
        f"limelight sim: argument --port: expected a port from 0 (any free one) to 65535, got "
        f"{port} (`limelight sim --help` lists the options)"
    )


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_bench_output_path_is_checked_before_the_run(command: str, tmp_path: Path) -> None:
    # A regular file where the output's directory should be: nothing can be written below
    # it (whoever runs the test, root included).
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    base = blocker / "out"
    extra = ["--rates", "10", "--slo", "ttft:500"] if command == "sweep" else []
    out = _run("bench", command, "--requests", "1", "--no-progress", *extra, "-o", str(base))
    line = _refused(out)  # nothing on stdout: no run, no summary
    assert line.startswith(f"limelight bench: -o {base}: cannot write {base}.json (")
    assert line.endswith("give a path in a writable directory")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ([], "a sweep needs SLOs to meet: give --slo, such as --slo ttft:500"),
        (["--slo", "ttft:500", "--rates", "0,10"], "must be finite numbers > 0"),
        (["--slo", "ttft:500", "--min-attainment", "0"], "--min-attainment must be within"),
    ],
)
def test_bench_sweep_options(args: list[str], said: str, tmp_path: Path) -> None:
    # Checked before anything starts (the live display included: stderr holds one line).
    out = _run("bench", "sweep", "--requests", "1", *args, cwd=tmp_path)
    assert said in _refused(out)
    assert not list(tmp_path.iterdir())


def test_bench_prompts_file_not_utf8(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_bytes('{"prompt": "café"}\n'.encode("latin-1"))
    out = _run(*BENCH, "--prompts-file", str(prompts), "-o", str(tmp_path / "out"))
    line = _refused(out)
    assert line.startswith(f"limelight bench: the prompts file {str(prompts)!r} is not UTF-8")
    assert line.endswith("save it as UTF-8 JSONL")


def test_bench_api_key_env_unset(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LIMELIGHT_TEST_UNSET_KEY"}
    out = subprocess.run(
        [sys.executable, "-m", "limelight", *BENCH, "--api-key-env", "LIMELIGHT_TEST_UNSET_KEY"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    line = _refused(out)
    assert "LIMELIGHT_TEST_UNSET_KEY is not set" in line


def test_demo_api_key_env_unset() -> None:
    # Unset, --api-key-env is an error in the demo as in bench, even for the simulator.
    env = {k: v for k, v in os.environ.items() if k != "LIMELIGHT_TEST_UNSET_KEY"}
    out = subprocess.run(
        [sys.executable, "-m", "limelight", "demo", "--api-key-env", "LIMELIGHT_TEST_UNSET_KEY"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    line = _refused(out)
    assert line == (
        "limelight demo: --api-key-env LIMELIGHT_TEST_UNSET_KEY: $LIMELIGHT_TEST_UNSET_KEY is "
        "not set: export it with the key, or name the variable that holds it"
    )


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("LIMELIGHT_BATCH_SIZE", "abc", "LIMELIGHT_BATCH_SIZE='abc' is not a whole number"),
        ("LIMELIGHT_FLUSH_INTERVAL", "soon", "LIMELIGHT_FLUSH_INTERVAL='soon' is not a number"),
        ("LIMELIGHT_ANALYTICS_LOOP", "curio", "LIMELIGHT_ANALYTICS_LOOP='curio' is not valid"),
    ],
)
def test_demo_malformed_limelight_variables(variable: str, value: str, said: str) -> None:
    line = _refused(_run("demo", env={variable: value}))
    assert line.startswith(f"limelight demo: {said}")


def test_demo_http_is_for_the_simulator() -> None:
    line = _refused(_run("demo", "--http", "--model", "gpt-4o-mini"))
    assert line.startswith("limelight demo: --http serves the simulator over HTTP")


def test_demo_db_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    line = _refused(_run("demo", "--db", str(blocker / "events.db")))
    assert line.startswith(f"limelight demo: --db {blocker / 'events.db'}: cannot write")


@pytest.fixture
def without_trio(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import trio`` fails, as where trio is not installed: a
    ``trio.py`` that raises ImportError comes first on the module path."""
    fake = tmp_path / "no-trio"
    fake.mkdir()
    (fake / "trio.py").write_text(
        'raise ImportError("No module named \'trio\'", name="trio")\n', encoding="utf-8"
    )
    path = os.pathsep.join(p for p in (str(fake), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path}


@pytest.mark.parametrize("command", [["demo"], BENCH])
def test_backend_trio_without_trio(
    command: list[str], without_trio: dict[str, str], tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    out = _run(*command, "--backend", "trio", env=without_trio, cwd=work)
    line = _refused(out)
    prog = "demo" if command == ["demo"] else "bench"
    assert line == (
        f"limelight {prog}: --backend trio needs trio, which is not installed: "
        "pip install 'limelight[trio]'"
    )
    assert not list(work.iterdir())  # bench wrote no results


def test_usage_errors_are_one_line() -> None:
    line = _refused(_run("bench", "run", "--concurrency", "many"))
    assert line == (
        "limelight bench run: argument --concurrency: invalid int value: 'many' "
        "(`limelight bench run --help` lists the options)"
    )
