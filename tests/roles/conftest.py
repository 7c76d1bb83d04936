"""Every router test starts from no role settings, no LIMELIGHT_* environment and an empty
usage tracker, and leaves them so."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from limelight.roles import clear_role_config
from limelight.usage import configure_usage, reset_usage


@pytest.fixture(autouse=True)
def clean_router(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("LIMELIGHT_"):
            monkeypatch.delenv(key)
    clear_role_config()
    configure_usage(enabled=True)
    reset_usage()
    yield
    clear_role_config()
    reset_usage()


@pytest.fixture(scope="session")
def tiny_hf_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny llama model saved for transformers (random weights), built once per session
    with the backend suite's builder."""
    pytest.importorskip("torch", reason="pip install 'limelight[transformers]' torch==2.13.0")
    pytest.importorskip("transformers", reason="pip install 'limelight[transformers]'")
    from ..backends.conftest import build_tiny_transformers_model

    return build_tiny_transformers_model(tmp_path_factory.mktemp("hf-roles") / "tiny-llama")
