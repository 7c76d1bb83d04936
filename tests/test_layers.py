"""The layers of ``limelight/__init__.py`` hold: the import-linter contracts in pyproject.toml
pass, and no module reaches another of limelight's through ``sys.modules`` (a dependency the
import graph cannot see)."""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from limelight import _instrument, analytics
from limelight.analytics import AnalyticsConfig
from limelight.sinks import MemorySink

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "limelight"


def _is_sys_modules(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "modules"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
    )


def _names_limelight(node: ast.AST | None) -> bool:
    """Whether ``node`` is a string literal (or an f-string starting with one) naming a
    limelight module."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value == "limelight" or node.value.startswith("limelight.")
    if isinstance(node, ast.JoinedStr) and node.values:
        return _names_limelight(node.values[0])
    return False


def limelight_lookups(source: str) -> list[int]:
    """Lines of ``source`` that look a limelight module up in ``sys.modules``: subscripts,
    ``.get()`` / ``.pop()`` / ``.setdefault()`` calls and ``in`` tests with such a name."""
    lines: list[int] = []
    for node in ast.walk(ast.parse(source)):
        key: ast.AST | None = None
        if isinstance(node, ast.Subscript) and _is_sys_modules(node.value):
            key = node.slice
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and _is_sys_modules(node.func.value)
            and node.args
        ):
            key = node.args[0]
        elif isinstance(node, ast.Compare) and any(_is_sys_modules(c) for c in node.comparators):
            key = node.left
        if _names_limelight(key):
            lines.append(node.lineno)
    return lines


def test_the_scan_finds_each_form_of_lookup() -> None:
    source = (
        "import sys\n"
        "a = sys.modules.get('limelight.analytics')\n"
        "b = sys.modules['limelight.analytics']\n"
        "c = 'limelight.analytics' in sys.modules\n"
        "d = sys.modules.get(f'limelight.{name}')\n"
        "e = sys.modules.get('asyncio')\n"  # a third-party loop: allowed
        "f = sys.modules[package]\n"  # a package's own namespace (limelight._lazy): allowed
    )
    assert limelight_lookups(source) == [2, 3, 4, 5]


def test_no_module_looks_limelight_up_in_sys_modules() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line in limelight_lookups(path.read_text(encoding="utf-8"))
    ]
    assert found == [], (
        f"import the module (downward), or go through limelight._instrument (upward): {found}"
    )


def test_import_linter_contracts_pass() -> None:
    if importlib.util.find_spec("importlinter") is None:
        pytest.skip("import-linter is not installed (the dev extra brings it)")
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    lint = lint or shutil.which("lint-imports")
    assert lint is not None, "import-linter is installed but its lint-imports command is not"
    done = subprocess.run(
        [lint, "--no-cache", "--no-logo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_analytics_registers_its_client_and_hook_while_initialized(tmp_path: Path) -> None:
    """The plug-in point the actors consult mirrors ``analytics.current()``: set by
    ``initialize()``, replaced by a second one, cleared by ``shutdown()`` or by the client's
    own shutdown."""
    assert _instrument.active is None
    config = AnalyticsConfig(spool_dir=str(tmp_path / "spool"))
    try:
        first = analytics.initialize(config=config, sinks=[MemorySink()], handle_signals=False)
        active = _instrument.active
        assert active is not None
        assert active.recorder is first
        assert [type(hook).__name__ for hook in active.attempt_hooks] == ["AnalyticsHook"]
        second = analytics.initialize(config=config, sinks=[MemorySink()], handle_signals=False)
        assert _instrument.recorder() is second
        first.shutdown(5)  # a replaced client shutting down late leaves its successor alone
        assert _instrument.recorder() is second
        assert analytics.shutdown(5)
        assert _instrument.active is None
        third = analytics.initialize(config=config, sinks=[MemorySink()], handle_signals=False)
        assert _instrument.recorder() is third
        third.shutdown(5)
        assert _instrument.active is None
        assert analytics.current() is None
    finally:
        analytics.shutdown(5)
