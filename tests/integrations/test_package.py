"""limelight.integrations: lazy exports, a missing framework named with its extra, and the
README's example running as printed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import limelight.integrations as integrations

README = Path(__file__).parent.parent.parent / "README.md"


def test_importing_the_package_loads_no_framework() -> None:
    code = "import sys, json; import limelight.integrations; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    loaded = set(json.loads(out))
    heavy = {"langchain_core", "litellm", "google.genai", "httpx", "aiohttp"}
    assert not loaded & heavy, f"import limelight.integrations loaded {sorted(loaded & heavy)}"


@pytest.mark.parametrize("name", integrations.__all__)
def test_each_export_loads_from_its_module(name: str) -> None:
    value = getattr(integrations, name)
    assert value.__module__.startswith("limelight.integrations.")
    assert value.__name__ == name
    assert sorted(integrations.__all__) == sorted(set(integrations.__all__))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        integrations.nope  # noqa: B018


@pytest.mark.parametrize(
    ("blocked", "name", "extra"),
    [
        ("langchain_core", "LimelightCallbackHandler", "integrations"),
        ("litellm", "enable_litellm_analytics", "litellm"),
    ],
)
def test_a_missing_framework_names_the_extra(blocked: str, name: str, extra: str) -> None:
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "from limelight.errors import MissingExtra\n"
        "try:\n"
        f"    from limelight.integrations import {name}\n"
        "except MissingExtra as exc:\n"
        "    print(exc.extra, '|', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.startswith(f"{extra} |"), out
    assert f"pip install 'limelight[{extra}]'" in out


def test_the_readme_example_runs_as_printed(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(b for b in blocks if "LimelightCallbackHandler(user_id" in b)
    out = subprocess.run(
        [sys.executable, "-c", example],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert out.splitlines()[:2] == ["4", "['llm_request', 'llm_response']"]
    vertex = next(b for b in blocks if "track_genai(genai.Client(" in b)
    compile(vertex, "README.md", "exec")  # needs Google Cloud to run; its names must exist
    assert "from limelight.integrations import track_genai" in vertex
