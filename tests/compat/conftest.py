"""Real servers for the compatibility tests that use them: one redis-server and one
PostgreSQL for the session, as the cache tests start them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..caches._servers import PostgresServer, RedisServer, postgres_server, redis_server


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real ``redis-server`` shared by the session's tests."""
    with redis_server(tmp_path_factory.mktemp("compat-redis")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server shared by the session's tests."""
    with postgres_server() as server:
        yield server
