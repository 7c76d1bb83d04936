"""Helpers for the kernel tests that wait on timers (see ``VIRTUAL_TIME`` in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

import anyio


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Wait for an effect of the kernel (polling, never asserting how long it took)."""
    with anyio.fail_after(10):
        while not predicate():
            await anyio.sleep(0.001)
