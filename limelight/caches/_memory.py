"""An in-process LRU response cache."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from ..schemas import CompletionResult
from ._base import CacheStatistics, Counts, check_bounds

__all__ = ["MemoryCache"]


class MemoryCache:
    """An in-process LRU cache.

    :param max_entries: entries kept; the least recently used goes first (``None``: no
        bound).
    :param ttl: seconds an entry stays valid (``None``: for ever).
    :param clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(
        self,
        *,
        max_entries: int | None = 10_000,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_bounds(max_entries, ttl)
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, CompletionResult]] = OrderedDict()
        self._counts = Counts()

    async def get(self, key: str) -> CompletionResult | None:
        entry = self._entries.get(key)
        if entry is not None and self.ttl is not None and self._clock() - entry[0] > self.ttl:
            del self._entries[key]
            self._counts.evictions += 1
            entry = None
        if entry is None:
            self._counts.misses += 1
            return None
        self._entries.move_to_end(key)
        self._counts.hits += 1
        return entry[1]

    async def set(self, key: str, result: CompletionResult) -> None:
        self._entries[key] = (self._clock(), result)
        self._entries.move_to_end(key)
        self._counts.stores += 1
        if self.max_entries is not None:
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
                self._counts.evictions += 1

    def clear(self) -> None:
        self._entries.clear()

    def statistics(self) -> CacheStatistics:
        return self._counts.snapshot(len(self._entries))
