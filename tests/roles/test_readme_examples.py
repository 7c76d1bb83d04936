"""The README's role router and sync client examples run as printed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parent.parent.parent / "README.md"


def run_example(marker: str) -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(b for b in blocks if marker in b)
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", example],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.splitlines()


def test_roles_example_runs_as_printed() -> None:
    assert run_example("set_role_models(") == ["5 ['plan', 'act']", "5"]


def test_sync_client_example_runs_as_printed() -> None:
    assert run_example("from limelight.client import") == ["length ['sim-1']"]
