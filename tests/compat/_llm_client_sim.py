"""The simulator as the agent client's "OpenAI": a real HTTP server the facade reaches the
way the earlier package reached a custom server, through ``OPENAI_BASE_URL`` (with
``OPENAI_API_KEY`` set), so the earlier examples run with their own lines."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from limelight.providers import SimulatedConfig
from limelight.testing import serve_in_thread_async


@contextlib.asynccontextmanager
async def openai_sim(monkeypatch: pytest.MonkeyPatch, **config: Any) -> AsyncIterator[str]:
    """Serve the simulator (instant answers of ``output_tokens`` words unless told) and point
    ``OPENAI_BASE_URL`` at it; yields its base URL. With the same ``seed`` the same sequence
    of requests gets the same answers and tool calls."""
    settings: dict[str, Any] = {"ttft": 0.0, "ttft_jitter": 0.0, "tokens_per_second": None}
    settings.setdefault("output_tokens", 6)
    settings.update(config)
    async with serve_in_thread_async(SimulatedConfig(**settings)) as url:
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
        yield url
