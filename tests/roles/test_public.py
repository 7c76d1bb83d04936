"""The public surface of the facades: roles, usage and client list each public name once in
``__all__``, and importing them loads no optional dependency."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

FACADES = ["limelight.roles", "limelight.usage", "limelight.client"]


@pytest.mark.parametrize("name", FACADES)
def test_all_lists_existing_names_once(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported))
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ lists {attr!r}, which does not exist"


def test_importing_the_facades_loads_no_optional_dependency() -> None:
    code = (
        "import sys, json; import limelight.roles, limelight.usage, limelight.client; "
        "print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    loaded = set(json.loads(out))
    heavy = {"httpx", "aiohttp", "litellm", "openai", "mlx", "mlx_lm", "transformers", "torch"}
    heavy |= {"rich", "genai_prices", "jsonschema", "structlog", "trio"}
    assert not loaded & heavy, f"the facades loaded {sorted(loaded & heavy)}"
