from __future__ import annotations

import pytest
from trio.testing import MockClock


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> object:
    """Both backends. In a module that sets ``VIRTUAL_TIME = True``, trio runs on a MockClock
    that jumps ahead whenever every task waits (virtual time); asyncio always runs in real
    time, so such tests use small delays there and assert no durations."""
    if request.param == "trio" and getattr(request.module, "VIRTUAL_TIME", False):
        return ("trio", {"clock": MockClock(autojump_threshold=0)})
    return request.param


@pytest.fixture
def virtual_time(anyio_backend: object) -> bool:
    return isinstance(anyio_backend, tuple)
