from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test runs on both backends."""
    return str(request.param)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny llama model built here (random weights, a tokenizer trained on the spot)."""
    pytest.importorskip("mlx.core", reason="mlx cannot run here: pip install 'limelight[mlx]'")
    from .providers._tiny_mlx import build_tiny_mlx_model

    return build_tiny_mlx_model(tmp_path_factory.mktemp("mlx") / "tiny-llama")


@pytest.fixture(scope="session")
def mlx_server(tiny_model: Path) -> Iterator[str]:
    """``mlx_lm.server`` (a third-party OpenAI-compatible server) serving the tiny model, one
    process for the whole session; yields its base URL."""
    from .providers._tiny_mlx import serve_mlx_model

    with serve_mlx_model(tiny_model) as base_url:
        yield base_url
