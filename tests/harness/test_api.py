"""limelight.harness's public surface: every name exported once, and importing it loads no
HTTP stack, rich or trio (they load when a run needs them)."""

from __future__ import annotations

import json
import subprocess
import sys

import limelight.harness as harness


def test_all_lists_each_public_name_once() -> None:
    exported = list(harness.__all__)
    assert len(exported) == len(set(exported))
    for name in exported:
        assert hasattr(harness, name), name
    public = {
        name
        for name, value in vars(harness).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("limelight")
    }
    assert public <= set(exported), sorted(public - set(exported))


def test_import_is_light() -> None:
    code = (
        "import sys, json; import limelight.harness; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    loaded = set(json.loads(out))
    assert not loaded & {"httpx", "aiohttp", "rich", "trio", "litellm", "torch", "mlx"}
