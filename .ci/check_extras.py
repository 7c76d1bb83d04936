"""Each extra declares what its modules import: the per-extra dependency check of ``.ci/run``.

``deptry`` accepts an import when *any* extra declares its distribution; a user who installs
one extra gets only that extra (and the core), though. This script parses every module of
``limelight/`` and checks, for each, what a user of its extra would meet:

- A module-level import (run when the module is imported) of a third-party distribution must
  be declared by the module's extra or by the core (``[project] dependencies``), and so must
  everything the limelight modules it imports at module level need in turn. The extra a
  module belongs to comes from ``[tool.limelight.extras]`` in pyproject.toml (a module path
  or a package's folder → an extra; the longest match wins); a module listed nowhere belongs
  to the core. Self-references such as ``limelight[http,sim]`` are expanded.
- An import inside a function (run on first use) must be declared by some runtime extra (not
  by ``[tool.limelight] dev-extras`` alone). When the function names the extra to install,
  in a :class:`~limelight.errors.MissingExtra` or a ``pip install 'limelight[...]'``
  message, that extra must declare it.
- A module a package serves lazily (``lazy_attributes(..., extras={...})``) must need, at
  import, nothing but the core and the extra the package names for it (none named: the core
  only), since that is what the error tells the user to install.
- Imports under ``if TYPE_CHECKING:`` are for type checkers and need nothing at runtime.
- Every extra the code names, and every extra and path of the table, exists.

A problem is reported once, where it arises: an import that reaches a module-level import
through other limelight modules is reported at the import that crosses from a module whose
extra lacks the distribution into one whose extra declares it.

An import's distribution comes from the installed packages' metadata
(:func:`importlib.metadata.packages_distributions`, refined by each distribution's files
for namespace packages such as ``opentelemetry`` or ``google``), so run it in the venv that
has every extra installed (the tests'). Only what a distribution itself declares counts:
an import that arrives through another package is undeclared.

Prints one line per problem and exits 1; prints a one-line summary and exits 0 when there
is none. ``--root DIR`` checks the project in DIR (its pyproject.toml and ``limelight/``).
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import importlib.util
import re
import sys
import tomllib
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "limelight"

# How an import runs: when its module is imported, on first call, or never (type checkers).
MODULE_LEVEL = "module level"
LAZY = "lazy"
TYPING = "typing"

# `pip install 'limelight[a,b]'` in a message.
_NAMED_EXTRA = re.compile(rf"\b{PACKAGE}\[([A-Za-z0-9_.,\- ]+)\]")
# A requirement's name and extras: `name[extra, ...] >= 1; marker`.
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")


def normalize(name: str) -> str:
    """A distribution's name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Import:
    """One import statement's target (absolute, dotted) in a module."""

    line: int
    name: str  # `from a import b` gives a.b: b may be a submodule
    how: str  # MODULE_LEVEL, LAZY or TYPING
    module: str  # the module as written (a, for `from a import b`)
    named_extras: frozenset[str] = frozenset()  # extras the enclosing function names


@dataclass
class Module:
    name: str
    path: Path  # relative to the root, as printed
    is_package: bool
    imports: list[Import] = field(default_factory=list)
    # lazy_attributes(...) calls: (line, served module (absolute), the extra named or None).
    lazy_served: list[tuple[int, str, str | None]] = field(default_factory=list)
    # Extras named anywhere in the module (messages, MissingExtra): (line, extra).
    named: list[tuple[int, str]] = field(default_factory=list)


# --- parsing ----------------------------------------------------------------------------


def _is_type_checking(test: ast.expr) -> bool | None:
    """True for `if TYPE_CHECKING:`, False for `if not TYPE_CHECKING:`, else None."""

    def names_it(node: ast.expr) -> bool:
        return (isinstance(node, ast.Name) and node.id == "TYPE_CHECKING") or (
            isinstance(node, ast.Attribute) and node.attr == "TYPE_CHECKING"
        )

    if names_it(test):
        return True
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and names_it(test.operand):
        return False
    return None


def _catches_import_error(handlers: list[ast.ExceptHandler]) -> bool:
    caught = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
    for handler in handlers:
        if handler.type is None:
            return True
        types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(isinstance(t, ast.Name) and t.id in caught for t in types):
            return True
    return False


def _extras_named_in(node: ast.AST) -> set[str]:
    """The extras ``node`` names: ``MissingExtra(..., extra="x")`` and ``limelight[x]`` text."""
    found: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            for keyword in sub.keywords:
                if (
                    keyword.arg == "extra"
                    and isinstance(keyword.value, ast.Constant)
                    and isinstance(keyword.value.value, str)
                    and _call_name(sub) == "MissingExtra"
                ):
                    found.add(keyword.value.value)
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            for match in _NAMED_EXTRA.finditer(sub.value):
                found.update(e.strip() for e in match.group(1).split(",") if e.strip())
    return found


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


class _Collector(ast.NodeVisitor):
    def __init__(self, module: Module) -> None:
        self.module = module
        self.how = MODULE_LEVEL
        self.named: frozenset[str] = frozenset()
        # The module's own package, for relative imports (a package's is itself).
        self.package = module.name if module.is_package else module.name.rpartition(".")[0]

    # Context: functions run later; TYPE_CHECKING blocks never; guarded imports may fail.

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        saved = self.how, self.named
        if self.how != TYPING:
            self.how = LAZY
        self.named = self.named | _extras_named_in(node)
        for statement in node.body:
            self.visit(statement)
        self.how, self.named = saved

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def visit_If(self, node: ast.If) -> None:
        typing_only = _is_type_checking(node.test)
        if typing_only is None:
            self.generic_visit(node)
            return
        saved = self.how
        for branch, is_typing in ((node.body, typing_only), (node.orelse, not typing_only)):
            self.how = TYPING if is_typing else saved
            for statement in branch:
                self.visit(statement)
        self.how = saved

    def visit_Try(self, node: ast.Try) -> None:
        # `try: import x / except ImportError:` at module level: the module copes without x.
        saved = self.how
        if self.how == MODULE_LEVEL and _catches_import_error(node.handlers):
            self.how = LAZY
        for statement in node.body:
            self.visit(statement)
        self.how = saved
        for part in (*node.handlers, *node.orelse, *node.finalbody):
            self.visit(part)

    visit_TryStar = visit_Try

    # Imports.

    def _add(self, line: int, name: str, module: str | None = None) -> None:
        self.module.imports.append(Import(line, name, self.how, module or name, self.named))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(node.lineno, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            if node.level > 1:
                base = base[: -(node.level - 1)]
            module = ".".join([*base, *([node.module] if node.module else [])])
        else:
            module = node.module or ""
        # `from a import b`: b may be a submodule (resolved later) or a name in a.
        for alias in node.names:
            if alias.name == "*":
                self._add(node.lineno, module)
            else:
                self._add(node.lineno, f"{module}.{alias.name}", module)

    def visit_Call(self, node: ast.Call) -> None:
        name = _call_name(node)
        if name == "import_module" and node.args:
            first = node.args[0]
            if (
                isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and not first.value.startswith(".")
            ):
                self._add(node.lineno, first.value)
        elif name.endswith("lazy_attributes"):
            self._lazy_attributes(node)
        self.generic_visit(node)

    def _lazy_attributes(self, node: ast.Call) -> None:
        # lazy_attributes(__name__, {module: [names]}, extras={module: extra}): modules are
        # resolved against the calling module's __name__, as importlib.import_module does.
        served = node.args[1] if len(node.args) > 1 else None
        extras = next((k.value for k in node.keywords if k.arg == "extras"), None)
        named: dict[str, str] = {}
        if isinstance(extras, ast.Dict):
            for key, value in zip(extras.keys, extras.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(value, ast.Constant):
                    named[str(key.value)] = str(value.value)
        if isinstance(served, ast.Dict):
            for key in served.keys:
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    target = importlib.util.resolve_name(key.value, self.module.name)
                    self.module.lazy_served.append((node.lineno, target, named.get(key.value)))

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            for match in _NAMED_EXTRA.finditer(node.value):
                for extra in match.group(1).split(","):
                    if extra.strip():
                        self.module.named.append((node.lineno, extra.strip()))


def parse_package(root: Path) -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        relative = path.relative_to(root)
        parts = list(relative.with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        module = Module(".".join(parts), relative, is_package)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(relative))
        _Collector(module).visit(tree)
        for line, extra in _missing_extra_calls(tree):
            module.named.append((line, extra))
        modules[module.name] = module
    return modules


def _missing_extra_calls(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node) == "MissingExtra":
            for keyword in node.keywords:
                if (
                    keyword.arg == "extra"
                    and isinstance(keyword.value, ast.Constant)
                    and isinstance(keyword.value.value, str)
                ):
                    yield node.lineno, keyword.value.value


# --- the project's declarations ---------------------------------------------------------


class Declarations:
    """What the core and each extra declare (distribution names, normalized)."""

    def __init__(self, pyproject: dict[str, object]) -> None:
        project = pyproject["project"]
        assert isinstance(project, dict)
        self.name = normalize(project["name"])
        self.raw_extras: dict[str, list[str]] = {
            normalize(extra): list(requirements)
            for extra, requirements in project.get("optional-dependencies", {}).items()
        }
        self.core = self._expand(project.get("dependencies", []), set())
        self.extras = {extra: self._expand_extra(extra, set()) for extra in self.raw_extras}
        tool = pyproject.get("tool", {})
        assert isinstance(tool, dict)
        config = tool.get(PACKAGE, {})
        self.dev_extras = {normalize(e) for e in config.get("dev-extras", [])}
        self.table: dict[str, str] = dict(config.get("extras", {}))

    def _expand_extra(self, extra: str, seen: set[str]) -> set[str]:
        if extra in seen:
            return set()
        seen.add(extra)
        return self._expand(self.raw_extras.get(extra, []), seen)

    def _expand(self, requirements: Iterable[str], seen: set[str]) -> set[str]:
        declared: set[str] = set()
        for requirement in requirements:
            match = _REQUIREMENT.match(requirement)
            if match is None:
                continue
            name = normalize(match.group(1))
            extras = [normalize(e) for e in (match.group(2) or "").split(",") if e.strip()]
            if name == self.name:  # limelight[http,sim]: those extras' requirements
                for extra in extras:
                    declared |= self._expand_extra(extra, seen)
            else:
                declared.add(name)
                declared |= _extra_requirements(name, extras)
        return declared

    def runtime_extras(self) -> list[str]:
        return [e for e in self.extras if e not in self.dev_extras]

    def extra_of(self, path: Path) -> str | None:
        """The extra the module at ``path`` belongs to (longest prefix in the table)."""
        text = path.as_posix()
        matches = [
            prefix
            for prefix in self.table
            if text == prefix or (prefix.endswith("/") and text.startswith(prefix))
        ]
        return normalize(self.table[max(matches, key=len)]) if matches else None

    def allowed(self, extra: str | None) -> set[str]:
        return self.core | (self.extras.get(extra, set()) if extra else set())


def _extra_requirements(distribution: str, extras: list[str]) -> set[str]:
    """What ``distribution[extras]`` adds: its own requirements under those extras.

    ``mlx[cpu]`` declares ``mlx-cpu`` as well, for instance.
    """
    if not extras:
        return set()
    try:
        requires = importlib.metadata.requires(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return set()
    added: set[str] = set()
    for requirement in requires:
        _, _, marker = requirement.partition(";")
        named = re.findall(r"extra\s*==\s*[\"']([^\"']+)[\"']", marker)
        if any(normalize(e) in extras for e in named):
            match = _REQUIREMENT.match(requirement)
            if match:
                added.add(normalize(match.group(1)))
    return added


# --- import names → distributions -------------------------------------------------------


class Distributions:
    """The distribution(s) an import name comes from, in this environment."""

    def __init__(self) -> None:
        self.by_top = {
            top: sorted({normalize(d) for d in dists})
            for top, dists in importlib.metadata.packages_distributions().items()
        }
        self._files: dict[str, set[str]] = {}

    def _paths(self, distribution: str) -> set[str]:
        """The module paths (``a/b/c``, no suffix; folders too) a distribution installs."""
        if distribution not in self._files:
            paths: set[str] = set()
            try:
                files = importlib.metadata.distribution(distribution).files or []
            except importlib.metadata.PackageNotFoundError:
                files = []
            for file in files:
                parts = file.parts
                for depth in range(1, len(parts)):
                    paths.add("/".join(parts[:depth]))
                last = parts[-1].split(".", 1)[0]
                paths.add("/".join([*parts[:-1], last]))
            self._files[distribution] = paths
        return self._files[distribution]

    def of(self, imp: Import) -> Origin:
        """The distributions that may provide what ``imp`` imports."""
        parts = imp.name.split(".")
        written = imp.module.count(".") + 1
        candidates = self.by_top.get(parts[0])
        if not candidates:  # not installed here: its own name is the best guess
            return Origin((normalize(parts[0]),), imp.module, installed=False)
        if len(candidates) > 1:
            # A namespace shared by several: the ones that hold the longest part of the name.
            for depth in range(len(parts), 1, -1):
                path = "/".join(parts[:depth])
                holders = tuple(d for d in candidates if path in self._paths(d))
                if holders:
                    return Origin(holders, ".".join(parts[: max(depth, written)]))
        return Origin(tuple(candidates), imp.module)


@dataclass(frozen=True)
class Origin:
    """Where an import comes from: its distribution(s), and the module named in messages."""

    distributions: tuple[str, ...]
    shown: str
    installed: bool = True

    def __str__(self) -> str:
        label = "distribution" if len(self.distributions) == 1 else "distributions"
        where = "" if self.installed else ", not installed here"
        return f"{self.shown} ({label} {' or '.join(self.distributions)}{where})"


# --- the check --------------------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    """A third-party distribution a module needs when imported, and how it gets there."""

    origin: Origin
    where: str  # "path:line" of the import itself
    chain: tuple[str, ...]  # the limelight modules from the first one to the importer


class Checker:
    def __init__(self, root: Path) -> None:
        self.root = root
        with (root / "pyproject.toml").open("rb") as file:
            self.declared = Declarations(tomllib.load(file))
        self.modules = parse_package(root)
        self.distributions = Distributions()
        self.problems: list[str] = []
        self._needs: dict[str, list[Need]] = {}

    # Which limelight modules an import runs, and which third-party name it reaches.

    def is_first_party(self, name: str) -> bool:
        return name == PACKAGE or name.startswith(PACKAGE + ".")

    def is_third_party(self, name: str) -> bool:
        top = name.split(".")[0]
        return not self.is_first_party(name) and top not in sys.stdlib_module_names

    def executed(self, name: str) -> list[str]:
        """The limelight modules importing ``name`` runs: each package on the way, itself."""
        parts = name.split(".")
        return [
            ".".join(parts[:depth])
            for depth in range(1, len(parts) + 1)
            if ".".join(parts[:depth]) in self.modules
        ]

    def direct(self, module: Module) -> Iterator[tuple[Import, str]]:
        """(import, limelight module it runs) for each module-level first-party import."""
        for imp in module.imports:
            if imp.how == MODULE_LEVEL and self.is_first_party(imp.name):
                for target in self.executed(imp.name):
                    if target != module.name:
                        yield imp, target

    def needs(self, name: str) -> list[Need]:
        """Every third-party import importing module ``name`` runs (breadth first)."""
        if name in self._needs:
            return self._needs[name]
        start = self.executed(name)
        parent: dict[str, str | None] = dict.fromkeys(start)
        queue = deque(start)
        found: list[Need] = []
        while queue:
            current = queue.popleft()
            module = self.modules[current]
            chain: list[str] = []
            step: str | None = current
            while step is not None:
                chain.append(step)
                step = parent[step]
            found.extend(
                Need(
                    self.distributions.of(imp),
                    f"{module.path.as_posix()}:{imp.line}",
                    tuple(reversed(chain)),
                )
                for imp in module.imports
                if imp.how == MODULE_LEVEL and self.is_third_party(imp.name)
            )
            for _, target in self.direct(module):
                if target not in parent:
                    parent[target] = current
                    queue.append(target)
        self._needs[name] = found
        return found

    # The rules.

    def run(self) -> list[str]:
        self.check_table()
        for module in self.modules.values():
            extra = self.declared.extra_of(module.path)
            self.check_own_imports(module, extra)
            self.check_imported_modules(module, extra)
            self.check_lazy_served(module)
            self.check_named_extras(module)
        return self.problems

    def problem(self, where: str, text: str) -> None:
        line = f"{where}: {text}"
        if line not in self.problems:
            self.problems.append(line)

    def undeclared(self, extra: str | None) -> str:
        """Who fails to declare it, for a module of ``extra`` (None: the core)."""
        if extra is None:
            return (
                f"the core does not declare (and [tool.{PACKAGE}.extras] puts the module in "
                "no extra)"
            )
        return f"extra '{extra}' does not declare (nor the core)"

    def declares(self, allowed: set[str], distributions: Iterable[str]) -> bool:
        return any(d in allowed for d in distributions)

    def check_table(self) -> None:
        pyproject = "pyproject.toml"
        for prefix, extra in self.declared.table.items():
            if normalize(extra) not in self.declared.extras:
                self.problem(
                    pyproject,
                    f"[tool.{PACKAGE}.extras] maps {prefix!r} to extra {extra!r}, "
                    "which [project.optional-dependencies] does not define",
                )
            target = self.root / prefix
            if not (target.is_dir() if prefix.endswith("/") else target.is_file()):
                self.problem(
                    pyproject,
                    f"[tool.{PACKAGE}.extras] maps {prefix!r}, which is no "
                    f"{'folder' if prefix.endswith('/') else 'file'} of the project",
                )

    def check_own_imports(self, module: Module, extra: str | None) -> None:
        allowed = self.declared.allowed(extra)
        runtime = self.declared.runtime_extras()
        for imp in module.imports:
            if imp.how == TYPING or not self.is_third_party(imp.name):
                continue
            origin = self.distributions.of(imp)
            where = f"{module.path.as_posix()}:{imp.line}"
            if imp.how == MODULE_LEVEL:
                if not self.declares(allowed, origin.distributions):
                    self.problem(
                        where,
                        f"imports {origin}, which {self.undeclared(extra)}",
                    )
                continue
            # Lazy: the extra its error names, else any runtime extra (or the core).
            named = sorted(normalize(e) for e in imp.named_extras)
            if named:
                if not self.declares(self.declared.core, origin.distributions) and not any(
                    self.declares(self.declared.extras.get(e, set()), origin.distributions)
                    for e in named
                ):
                    extras = " or ".join(f"'{e}'" for e in named)
                    self.problem(
                        where,
                        f"imports {origin} in a function whose error names extra {extras}, "
                        "which does not declare it (nor the core)",
                    )
                continue
            if not self.declares(self.declared.core, origin.distributions) and not any(
                self.declares(self.declared.extras[e], origin.distributions) for e in runtime
            ):
                self.problem(
                    where,
                    f"imports {origin} in a function, which no extra declares (nor the core)",
                )

    def check_imported_modules(self, module: Module, extra: str | None) -> None:
        """A module-level import of another limelight module brings what that one needs."""
        allowed = self.declared.allowed(extra)
        reported: set[tuple[int, tuple[str, ...]]] = set()
        for imp, target in self.direct(module):
            for need in self.needs(target):  # the shortest way to each import first
                key = (imp.line, need.origin.distributions)
                if key in reported or self.declares(allowed, need.origin.distributions):
                    continue
                # Reported where the import crosses into a module whose extra declares it;
                # not at every importer of a module that should not need it in the first place.
                if not self.declares(
                    self.declared.allowed(self.declared.extra_of(self.modules[target].path)),
                    need.origin.distributions,
                ):
                    continue
                reported.add(key)
                self.problem(
                    f"{module.path.as_posix()}:{imp.line}",
                    f"imports {target} at module level, which needs {need.origin} through "
                    f"{' -> '.join(need.chain)} ({need.where}), which {self.undeclared(extra)}",
                )

    def check_lazy_served(self, module: Module) -> None:
        for line, target, extra in module.lazy_served:
            where = f"{module.path.as_posix()}:{line}"
            if target not in self.modules:
                self.problem(where, f"serves {target} lazily, which is no module of {PACKAGE}")
                continue
            normalized = normalize(extra) if extra else None
            allowed = self.declared.allowed(normalized)
            # What the served module's own extra lacks is reported where it is imported.
            own = self.declared.allowed(self.declared.extra_of(self.modules[target].path))
            reported: set[tuple[str, ...]] = set()
            for need in self.needs(target):
                if self.declares(allowed, need.origin.distributions) or not self.declares(
                    own, need.origin.distributions
                ):
                    continue
                if need.origin.distributions in reported:
                    continue
                reported.add(need.origin.distributions)
                said = (
                    f"the extra it names, '{normalized}', does not declare it (nor the core)"
                    if normalized
                    else "it names no extra for it, and the core does not declare it"
                )
                self.problem(
                    where,
                    f"serves {target} lazily, which needs {need.origin} when imported "
                    f"(at {need.where}): {said}",
                )

    def check_named_extras(self, module: Module) -> None:
        for line, extra in sorted(set(module.named)):
            if normalize(extra) not in self.declared.extras:
                self.problem(
                    f"{module.path.as_posix()}:{line}",
                    f"names extra '{extra}', which pyproject.toml does not define",
                )
        for line, _, extra in module.lazy_served:
            if extra and normalize(extra) not in self.declared.extras:
                self.problem(
                    f"{module.path.as_posix()}:{line}",
                    f"names extra '{extra}', which pyproject.toml does not define",
                )

    def summary(self) -> str:
        counts = {MODULE_LEVEL: 0, LAZY: 0, TYPING: 0}
        for module in self.modules.values():
            for imp in module.imports:
                if self.is_third_party(imp.name):
                    counts[imp.how] += 1
        mapped = len({normalize(e) for e in self.declared.table.values()})
        return (
            f"each extra declares what its modules import: {len(self.modules)} modules, "
            f"{counts[MODULE_LEVEL]} module-level and {counts[LAZY]} lazy third-party imports "
            f"checked ({counts[TYPING]} under TYPE_CHECKING skipped), "
            f"{len(self.declared.table)} table entries over {mapped} extras"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="the project to check: its pyproject.toml and limelight/ (default: this repo)",
    )
    args = parser.parse_args(argv)
    checker = Checker(args.root.resolve())
    problems = checker.run()
    for line in problems:
        print(line)
    if problems:
        print(f"{len(problems)} problem(s): see [tool.{PACKAGE}.extras] in pyproject.toml")
        return 1
    print(checker.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
