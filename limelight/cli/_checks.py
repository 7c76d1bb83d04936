"""Checks of the commands' options that more than one command makes, before anything runs."""

from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path

from .._files import make_private_dirs
from ..errors import ConfigError, MissingExtra

__all__ = ["check_backend", "check_writable"]


def check_backend(backend: str) -> None:
    """Check that the event loop ``backend`` names can run (trio is an optional dependency).

    :raises MissingExtra: trio is asked for and cannot be imported.
    """
    if backend == "trio":
        try:
            importlib.import_module("trio")
        except ImportError as exc:
            raise MissingExtra("--backend trio", missing="trio", extra="trio") from exc


def check_writable(path: Path, *, flag: str, given: str | Path | None = None) -> None:
    """Check that a file can be written at ``path`` (its directory is created if need be),
    before a run whose results would go there.

    :param flag: the option that gave the path, named in the error.
    :param given: what the option said, when ``path`` was made from it (default: ``path``).
    :raises ConfigError: it cannot be written.
    """
    said = f"{flag} {given if given is not None else path}"
    if path.is_dir():
        raise ConfigError(f"{said}: {path} is a directory; give a file path")
    try:
        make_private_dirs(path.parent)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
        if path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(f"{path} is read-only")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            f"{said}: cannot write {path} ({reason}); give a path in a writable directory"
        ) from None
