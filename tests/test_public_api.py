"""The public surface: every package re-exports its names once, and `import limelight` stays
cheap (no optional dependency is imported)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

PACKAGES = [
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
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_lists_each_public_name_once_and_every_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), "a name is listed twice in __all__"
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ lists {attr!r}, which does not exist"
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_")
        and getattr(v, "__module__", "").startswith("limelight")
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
    heavy |= {"structlog", "trio", "rich", "redis", "opentelemetry", "langchain_core"}
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
