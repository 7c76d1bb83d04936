"""The README's kernel example runs as printed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def test_kernel_example_runs_as_printed() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    kernel = next(b for b in blocks if "class Counter(Actor)" in b)
    out = subprocess.run(
        [sys.executable, "-c", kernel], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.splitlines()[0] == "20"
    assert "counter  Counter  running" in out


def test_agent_example_runs_as_printed() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(b for b in blocks if "def get_weather" in b)
    out = subprocess.run(
        [sys.executable, "-c", example], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.strip() == "completed 2 It is 18 degrees and sunny in Lisbon."
