"""`.env` files: one call loads a project's settings into the environment.

The CLI and :mod:`limelight.compat.llm_client` call :func:`load_dotenv` on start (as the
earlier agent client did on import); anyone else opts in with one line::

    import limelight

    limelight.load_dotenv()

Variables already set in the environment win over the file's, unless ``override=True``:
a deployment's real settings are never replaced by a developer's file.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError

__all__ = ["load_dotenv"]


def load_dotenv(path: str | os.PathLike[str] | None = None, *, override: bool = False) -> bool:
    """Load ``KEY=value`` lines from a `.env` file into ``os.environ``.

    :param path: the file; by default the nearest ``.env`` in the working directory or one of
        its parents (none found: nothing happens).
    :param override: replace variables the environment already has.
    :returns: True when a file was found and read.
    :raises ConfigError: ``path`` was given and is not a readable file.
    """
    import dotenv  # python-dotenv; imported here so `import limelight` stays cheap

    if path is None:
        found = dotenv.find_dotenv(usecwd=True)
        if not found:
            return False
        file = Path(found)
    else:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(
                f"no .env file at {str(file)!r}: give the path of an existing file, or leave "
                "path out to use the nearest .env above the working directory"
            )
    try:
        dotenv.load_dotenv(file, override=override, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the .env file {str(file)!r}: {exc}") from exc
    return True
