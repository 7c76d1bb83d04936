"""The `limelight` command loads the nearest `.env` on start, run as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest


def _limelight(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m limelight ARGS`` in ``cwd``, without any LIMELIGHT_ variable of ours."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LIMELIGHT_")}
    environ["HOME"] = str(cwd / "home")  # the default events database, if one is used
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "limelight", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environ,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory whose `.env` sets LIMELIGHT_HOME, which `limelight events`
    reads (it names the database it looked for); the command runs in a subdirectory."""
    if any((parent / ".env").is_file() for parent in tmp_path.parents):
        pytest.skip(f"a .env file above {tmp_path} would be found too")
    (tmp_path / ".env").write_text(f"LIMELIGHT_HOME={tmp_path / 'from-dotenv'}\n")
    (tmp_path / "src").mkdir()
    return tmp_path


def _database(out: subprocess.CompletedProcess[str]) -> str:
    """The events database the command looked for (there is none: exit 1, one line)."""
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert "no events database at " in out.stderr, out.stderr
    return out.stderr.split("no events database at ", 1)[1].split(":", 1)[0]


def test_the_nearest_env_file_configures_the_command(project: Path) -> None:
    out = _limelight("events", "--json", cwd=project / "src")
    assert _database(out) == str(project / "from-dotenv" / "events.db")


def test_a_variable_already_set_wins_over_the_file(project: Path) -> None:
    mine = project / "mine"
    out = _limelight("events", cwd=project / "src", env={"LIMELIGHT_HOME": str(mine)})
    assert _database(out) == str(mine / "events.db")


@pytest.mark.parametrize("how", ["option", "variable"])
def test_loading_can_be_switched_off(project: Path, how: str) -> None:
    if how == "option":
        out = _limelight("--no-dotenv", "events", cwd=project / "src")
    else:
        out = _limelight("events", cwd=project / "src", env={"LIMELIGHT_NO_DOTENV": "1"})
    assert _database(out) == str(project / "src" / "home" / ".limelight" / "events.db")


def test_an_unreadable_env_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    if any((parent / ".env").is_file() for parent in tmp_path.parents):
        pytest.skip(f"a .env file above {tmp_path} would be found too")
    (tmp_path / ".env").write_bytes(b"LIMELIGHT_HOME=\xff\n")
    out = _limelight("events", cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert "cannot read the .env file" in lines[0]
    assert "--no-dotenv" in lines[0]
    assert _database(_limelight("--no-dotenv", "events", cwd=tmp_path))
