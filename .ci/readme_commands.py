"""Print one of the README's two commands (``demo`` or ``test``) exactly as written.

`.ci/run` runs what this prints, so the commands a newcomer copies are the ones CI checks.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def commands() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    if len(blocks) != 2:
        raise SystemExit(f"README's 'Two commands' section has {len(blocks)} bash blocks, not 2")
    demo, test = (block.strip() for block in blocks)
    if "limelight demo" not in demo or "pytest" not in test:
        raise SystemExit("README's first command must run `limelight demo`, the second `pytest`")
    return {"demo": demo, "test": test}


if __name__ == "__main__":
    print(commands()[sys.argv[1]])
