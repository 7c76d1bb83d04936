"""``.ci/check_extras.py``: each extra declares what its modules import.

It passes on the tree as it is, and fails, naming the file, the distribution and the extra,
on a copy of the package with a violation put in: a module-level import its extra does not
declare, one that arrives through another limelight module, a lazy import no extra declares
or that the error's extra does not, and a lazily served module whose named extra is wrong.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / ".ci" / "check_extras.py"


def check(root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=50,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the package and its pyproject.toml, to break."""
    shutil.copytree(
        ROOT / "limelight", tmp_path / "limelight", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def prepend(path: Path, line: str) -> None:
    path.write_text(f"{line}\n{path.read_text(encoding='utf-8')}", encoding="utf-8")


def append(path: Path, text: str) -> None:
    path.write_text(f"{path.read_text(encoding='utf-8')}\n{text}", encoding="utf-8")


def line_of(path: Path, text: str) -> int:
    """The number of the first line of ``path`` that starts with ``text``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.startswith(text))


def test_the_tree_passes() -> None:
    result = check()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("\n") == 1
    assert "each extra declares what its modules import" in result.stdout


@pytest.mark.parametrize(
    ("module", "owner"),
    [
        # tiktoken is the `ratelimit` extra's: neither `sim` nor the core has it.
        ("limelight/sim/_server.py", "extra 'sim' does not declare (nor the core)"),
        # The rest of limelight.sim is core: the `sim:` backend runs without any extra.
        ("limelight/sim/__init__.py", "the core does not declare"),
    ],
)
def test_a_module_level_import_its_extra_lacks_fails(tree: Path, module: str, owner: str) -> None:
    prepend(tree / module, "import tiktoken")
    result = check(tree)
    assert result.returncode == 1
    assert f"{module}:1: imports tiktoken (distribution tiktoken), which {owner}" in result.stdout


def test_an_import_through_another_module_fails_where_it_crosses(tree: Path) -> None:
    # A core module importing the Pusher client (the `http` extra's httpx) at module level.
    append(tree / "limelight" / "_buckets.py", "from . import _pusher as _pusher\n")
    line = line_of(tree / "limelight" / "_buckets.py", "from . import _pusher")
    httpx = line_of(tree / "limelight" / "_pusher.py", "import httpx")
    result = check(tree)
    assert result.returncode == 1
    problems = result.stdout.splitlines()[:-1]
    assert problems == [
        f"limelight/_buckets.py:{line}: imports limelight._pusher at module level, which needs "
        f"httpx (distribution httpx) through limelight._pusher (limelight/_pusher.py:{httpx}), "
        "which the core does not declare (and [tool.limelight.extras] puts the module in no "
        "extra)"
    ]


def test_lazy_imports(tree: Path) -> None:
    path = tree / "limelight" / "_files.py"
    start = path.read_text(encoding="utf-8").count("\n") + 2
    append(
        path,
        "def _undeclared():\n"  # start
        "    import idna\n"  # start + 1: only other packages bring it
        "    return idna\n"
        "\n"
        "def _wrong_extra():\n"
        "    try:\n"
        "        import tiktoken\n"  # start + 6: the `ratelimit` extra's
        "    except ImportError as exc:\n"
        "        raise ImportError(\"pip install 'limelight[sim]'\") from exc\n"
        "    return tiktoken\n"
        "\n"
        "def _right_extra():\n"
        "    from .errors import MissingExtra\n"
        "    try:\n"
        "        import tiktoken\n"
        "    except ImportError as exc:\n"
        "        raise MissingExtra('x', missing='tiktoken', extra='ratelimit') from exc\n"
        "    return tiktoken\n"
        "\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    import idna\n",  # never imported at runtime
    )
    result = check(tree)
    assert result.returncode == 1
    assert result.stdout.splitlines()[:-1] == [
        f"limelight/_files.py:{start + 1}: imports idna (distribution idna) in a function, "
        "which no extra declares (nor the core)",
        f"limelight/_files.py:{start + 6}: imports tiktoken (distribution tiktoken) in a "
        "function whose error names extra 'sim', which does not declare it (nor the core)",
    ]


def test_a_lazily_served_module_needs_what_its_named_extra_declares(tree: Path) -> None:
    path = tree / "limelight" / "cluster" / "__init__.py"
    source = path.read_text(encoding="utf-8")
    assert '"._ray_quota": "ray"' in source
    path.write_text(source.replace('"._ray_quota": "ray"', '"._ray_quota": "qdrant"'))
    ray = line_of(tree / "limelight" / "cluster" / "_ray_quota.py", "import ray")
    result = check(tree)
    assert result.returncode == 1
    [problem] = result.stdout.splitlines()[:-1]
    assert problem.startswith("limelight/cluster/__init__.py:")
    assert problem.endswith(
        f"serves limelight.cluster._ray_quota lazily, which needs ray (distribution ray) when "
        f"imported (at limelight/cluster/_ray_quota.py:{ray}): the extra it names, 'qdrant', does "
        "not declare it (nor the core)"
    )


def test_the_table_names_real_modules_and_extras(tree: Path) -> None:
    path = tree / "pyproject.toml"
    source = path.read_text(encoding="utf-8")
    entry = '"limelight/sim/_server.py" = "sim"\n'
    assert entry in source
    path.write_text(
        source.replace(entry, f'{entry}"limelight/gone/" = "sim"\n"limelight/sim/" = "simm"\n')
    )
    result = check(tree)
    assert result.returncode == 1
    problems = result.stdout.splitlines()[:-1]
    assert (
        "pyproject.toml: [tool.limelight.extras] maps 'limelight/gone/', which is no folder "
        "of the project" in problems
    )
    assert (
        "pyproject.toml: [tool.limelight.extras] maps 'limelight/sim/' to extra 'simm', which "
        "[project.optional-dependencies] does not define" in problems
    )
