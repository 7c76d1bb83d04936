"""The README's example of the agent's pieces (tool registry and executor, model profiles,
conversations, agent.reset) runs as printed, and prints what its comments say."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parents[2] / "README.md"


def test_the_pieces_example_runs_as_printed() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(b for b in blocks if "ToolRegistry([add])" in b)
    out = subprocess.run(
        [sys.executable, "-c", example], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    printed = out.splitlines()
    assert printed == ["5 True", "['1', '2', '3']", "64", "20 5", "True 21", "4", "2"]
    # Each print's comment says what it prints (before any ": explanation").
    promised = [
        line.split("# ", 1)[1].split(": ", 1)[0]
        for line in example.splitlines()
        if line.lstrip().startswith("print(")
    ]
    assert promised == printed
