"""Loads the nearest ``.env`` file when :mod:`limelight.compat.llm_client` is imported.

The earlier agent client did so on import (``OPENAI_API_KEY``, ``PG_DSN``, ``REDIS_URL``...).

Variables already set in the environment win over the file's (the earlier package let the
file override them; a deployment's real settings are never replaced by a developer's file
here). Use :func:`limelight.load_dotenv` to load another file, or with ``override=True``.
"""

from __future__ import annotations

from .._dotenv import load_dotenv

__all__ = ["DOTENV_LOADED"]

#: Whether a ``.env`` file was found (in the working directory or a parent) and loaded.
DOTENV_LOADED: bool = load_dotenv()
