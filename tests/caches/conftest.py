"""Servers for the cache tests: one Redis and one PostgreSQL for the whole session (each
test uses its own namespace or table), and the simulator over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from limelight.providers import SimulatedConfig, serve_in_thread

from ._servers import PostgresServer, RedisServer, postgres_server, redis_server

FAST = SimulatedConfig(ttft=0.0, ttft_jitter=0.0, tokens_per_second=None, output_tokens=4)


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real ``redis-server`` shared by the session's tests."""
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A real ``redis-server`` for one test alone (to kill it, say)."""
    with redis_server(tmp_path / "redis") as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server shared by the session's tests."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def sim_url() -> Iterator[str]:
    """The simulator's OpenAI-compatible server, over real HTTP (``.../v1``)."""
    with serve_in_thread(FAST) as url:
        yield url
