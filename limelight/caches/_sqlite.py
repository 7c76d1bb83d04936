"""A response cache in a local SQLite file."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.to_thread

from .._files import create_private_sqlite
from ..schemas import CompletionResult
from ._base import CacheStatistics, Counts, check_bounds, encode_result, result_decoder

__all__ = ["SQLiteCache"]


class SQLiteCache:
    """A cache in a local SQLite file, shared by processes and kept across restarts.

    :param path: the file (created with its folder).
    :param ttl: seconds an entry stays valid (``None``: for ever); age is wall-clock time.
    :param max_entries: entries kept; the oldest stored go first (``None``: no bound).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        ttl: float | None = None,
        max_entries: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_bounds(max_entries, ttl)
        self.path = Path(path)
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._counts = Counts()
        self._lock = threading.Lock()
        create_private_sqlite(self.path)  # 0600, and so its -wal and -shm; its folder 0700
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses "
                "(key TEXT PRIMARY KEY, stored REAL NOT NULL, result BLOB NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS responses_stored ON responses(stored)")

    async def get(self, key: str) -> CompletionResult | None:
        return await anyio.to_thread.run_sync(self._get, key)

    async def set(self, key: str, result: CompletionResult) -> None:
        await anyio.to_thread.run_sync(self._set, key, encode_result(result))

    def _get(self, key: str) -> CompletionResult | None:
        with self._lock:
            row = self._db.execute(
                "SELECT stored, result FROM responses WHERE key = ?", (key,)
            ).fetchone()
            if row is not None and self.ttl is not None and self._clock() - row[0] > self.ttl:
                self._db.execute("DELETE FROM responses WHERE key = ?", (key,))
                self._counts.evictions += 1
                row = None
            if row is None:
                self._counts.misses += 1
                return None
            self._counts.hits += 1
        return result_decoder.decode(row[1])

    def _set(self, key: str, blob: bytes) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, stored, result) VALUES (?, ?, ?)",
                (key, self._clock(), blob),
            )
            self._counts.stores += 1
            if self.max_entries is not None:
                over = self._size() - self.max_entries
                if over > 0:
                    self._db.execute(
                        "DELETE FROM responses WHERE key IN "
                        "(SELECT key FROM responses ORDER BY stored LIMIT ?)",
                        (over,),
                    )
                    self._counts.evictions += over

    def _size(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM responses")

    def statistics(self) -> CacheStatistics:
        with self._lock:
            return self._counts.snapshot(self._size())

    def close(self) -> None:
        with self._lock:
            self._db.close()
