"""The public surface: every package re-exports its names once, and `import limelight` stays
cheap (no optional dependency is imported)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from typing import TypeVar

import pytest

#: Packages and modules that gather names from private modules: each such name is public.
REEXPORTING = [
    "limelight",
    "limelight.runtime",
    "limelight.schemas",
    "limelight.errors",
    "limelight.actors",
    "limelight.providers",
    "limelight.testing",
    "limelight.agents",
    "limelight.tools",
    "limelight.conversation",
    "limelight.models",
    "limelight.streaming",
    "limelight.sinks",
    "limelight.harness",
    "limelight.integrations",
]
#: Modules that hold their own code: each public name they define is public.
MODULES = [
    "limelight.roles",
    "limelight.usage",
    "limelight.client",
    "limelight.cache",
    "limelight.batch",
]
PACKAGES = REEXPORTING + MODULES


@pytest.mark.parametrize("name", PACKAGES)
def test_all_lists_each_public_name_once_and_every_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), "a name is listed twice in __all__"
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ lists {attr!r}, which does not exist"

    def counts(value: object) -> bool:
        where = getattr(value, "__module__", "")
        if name in MODULES:  # what it defines, not what it imports to use
            return where == name and not isinstance(value, TypeVar)
        return where.startswith("limelight")

    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_")
        and counts(v)
        and not isinstance(v, type(sys))
        and n not in {"annotations"}
    }
    missing = public - set(exported)
    assert not missing, f"{name} has public names missing from __all__: {sorted(missing)}"


def test_import_limelight_pulls_no_optional_dependency() -> None:
    code = (
        "import sys, json; import limelight; "
        "print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    loaded = set(json.loads(out))
    heavy = {"httpx", "aiohttp", "litellm", "openai", "mlx", "mlx_lm", "transformers", "torch"}
    heavy |= {"structlog", "trio", "rich", "redis", "opentelemetry", "langchain_core", "google"}
    assert not loaded & heavy, f"import limelight loaded {sorted(loaded & heavy)}"


def test_a_missing_optional_dependency_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['httpx'] = None\n"
        "from limelight.errors import MissingExtra\n"
        "try:\n"
        "    from limelight.providers import OpenAICompatible\n"
        "except MissingExtra as exc:\n"
        "    print(exc.extra, '|', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.startswith("http |")
    assert "pip install 'limelight[http]'" in out
