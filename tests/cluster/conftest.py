"""Servers for the cluster tests: a real ``redis-server`` for the session (each test uses its
own namespace), one for a test alone, and a local Ray instance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..caches._servers import RedisServer, redis_server


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


ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="session")
def ray_instance() -> Iterator[None]:
    """A local Ray instance for the session's tests: 2 CPUs, no dashboard; its processes find
    the tests' actors (``tests.cluster._ray_actors``) through PYTHONPATH."""
    ray = pytest.importorskip("ray", reason="pip install 'limelight[ray]'")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
    )
    yield
    ray.shutdown()
