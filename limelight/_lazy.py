"""Lazy attributes for a package's ``__init__``: names whose module loads on first access.

``import limelight`` stays cheap this way, and a backend whose optional dependency is missing
fails only when it is used, with an error that names the extra to install.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_attributes(
    package: str,
    modules: Mapping[str, Iterable[str]],
    *,
    extras: Mapping[str, str] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``, serving ``modules``.

    Use it in the package's ``__init__``, with the names also imported under
    ``if TYPE_CHECKING:`` for type checkers::

        __getattr__, __dir__ = lazy_attributes(__name__, {"._sqlite": ["SQLiteSink"]})

    A name is imported from its module on first access and kept in the package's namespace,
    so the next access is a plain attribute lookup.

    :param package: the package's ``__name__``.
    :param modules: each module (relative to ``package``, such as ``"._http"``) and the names
        it provides.
    :param extras: the extra that installs what a module needs, for those that need one. When
        importing such a module fails for want of a third-party package,
        :class:`~limelight.errors.MissingExtra` names the extra; a failure inside limelight
        itself propagates unchanged.
    """
    where = {name: module for module, names in modules.items() for name in names}
    extras = dict(extras or {})

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        try:
            loaded = importlib.import_module(module, package)
        except ImportError as exc:
            extra = extras.get(module)
            if extra is None or (exc.name or "").startswith("limelight"):
                raise
            from .errors import MissingExtra

            raise MissingExtra(f"{package}.{name}", missing=exc.name, extra=extra) from exc
        value = getattr(loaded, name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return __getattr__, __dir__
