"""Module docstrings: a one-line summary first (PEP 257), and a reason to stay one module.

Every module under ``limelight/`` opens with a docstring whose first paragraph is a single line
of at most 100 columns (quotes and indentation included) that ends with a period. A module over
600 lines says why it stays one module, in a paragraph that starts with ``One module:``. The
files are read and parsed with :mod:`ast`, never imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "limelight"
MAX_COLUMNS = 100
MAX_LINES = 600

MODULES = sorted(PACKAGE.rglob("*.py"))
LONG_MODULES = [p for p in MODULES if len(p.read_text(encoding="utf-8").splitlines()) > MAX_LINES]


def _ids(paths: list[Path]) -> list[str]:
    return [p.relative_to(ROOT).as_posix() for p in paths]


def _parse(path: Path) -> tuple[str, ast.Module]:
    source = path.read_text(encoding="utf-8")
    return source, ast.parse(source, filename=str(path))


def _docstring(tree: ast.Module) -> ast.Constant | None:
    """The module docstring's literal: the first statement, when it is a string."""
    if tree.body:
        first = tree.body[0]
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            return first.value
    return None


def _paragraphs(doc: str) -> list[str]:
    return [p.strip() for p in doc.split("\n\n") if p.strip()]


def test_modules_found() -> None:
    assert len(MODULES) > 50
    assert PACKAGE / "__init__.py" in MODULES


@pytest.mark.parametrize("path", MODULES, ids=_ids(MODULES))
def test_one_line_summary(path: Path) -> None:
    source, tree = _parse(path)
    literal = _docstring(tree)
    assert literal is not None, f"{path.name} has no module docstring"
    doc = ast.get_docstring(tree)
    assert doc, "the module docstring is empty"
    summary = _paragraphs(doc)[0]
    assert "\n" not in summary, f"the summary wraps over several lines: {summary!r}"
    assert summary.endswith("."), f"the summary does not end with a period: {summary!r}"
    first_line = source.splitlines()[literal.lineno - 1]
    assert summary in first_line, "the summary does not start on the docstring's first line"
    assert len(first_line) <= MAX_COLUMNS, (
        f"the summary line is {len(first_line)} columns (at most {MAX_COLUMNS}): {first_line!r}"
    )


@pytest.mark.parametrize("path", LONG_MODULES, ids=_ids(LONG_MODULES))
def test_long_module_says_why(path: Path) -> None:
    source, tree = _parse(path)
    lines = len(source.splitlines())
    doc = ast.get_docstring(tree) or ""
    assert any(p.startswith("One module:") for p in _paragraphs(doc)), (
        f"{lines} lines (over {MAX_LINES}) and no paragraph starting 'One module:' in its "
        "docstring to say why it stays one module"
    )
