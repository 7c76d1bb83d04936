"""The running event loop's clock as a plain callable, looked up once.

``anyio.current_time()`` looks the backend up at every call (sniffio, then the backend
class), which costs more than reading the clock; the kernel's hot paths (a timed ask, the
expiry check before a handler) read it through the callable :func:`loop_clock` returns for
the running loop instead. It is the same clock: ``loop.time`` on asyncio, ``trio.current_time``
on trio (a MockClock included).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import anyio

__all__ = ["loop_clock"]


def loop_clock() -> Callable[[], float]:
    """The clock of the running event loop (``anyio.current_time`` on another backend)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        loop = asyncio.events._get_running_loop()
        if loop is not None:
            clock: Callable[[], float] = loop.time
            return clock
    trio = sys.modules.get("trio")
    if trio is not None and trio.lowlevel.in_trio_run():
        trio_clock: Callable[[], float] = trio.current_time
        return trio_clock
    return anyio.current_time
