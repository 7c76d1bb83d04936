"""A sink appending events to a file, one JSON object per line (easy to ``grep`` and ship)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import anyio.to_thread

from .._files import make_private_dirs, open_private
from ..errors import SinkUnavailable
from ..schemas._events import Event, decode_event, encode_event

__all__ = ["JSONLSink", "read_jsonl"]


def read_jsonl(path: Path | str) -> list[Event]:
    """The events of a file written by :class:`JSONLSink`, in file order (blocking).

    :raises EventDecodeError: a line is not an event; the message names the line.
    """
    from ..errors import EventDecodeError

    events = []
    with open(path, "rb") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                events.append(decode_event(line))
            except EventDecodeError as exc:
                raise EventDecodeError(f"{path}, line {number}: {exc}") from exc
    return events


class JSONLSink:
    """Appends each event as one JSON line to ``path`` (created with its folder).

    It does not dedupe: a batch retried after a failure may appear twice (readers dedupe by
    ``event_id``). A batch is written with one ``write`` call and flushed.

    :param fsync: also ``fsync`` after each batch (durable across a power cut; slower).
    """

    name = "jsonl"
    dedupes = False

    def __init__(self, path: Path | str, *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.written = 0
        self._file: IO[bytes] | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"JSONLSink({str(self.path)!r})"

    def _write_sync(self, data: bytes, count: int) -> None:
        with self._lock:
            try:
                if self._file is None or self._pid != os.getpid():
                    make_private_dirs(self.path.parent)
                    self._file = open_private(self.path, "ab")  # 0600; kept open across batches
                    self._pid = os.getpid()
                file = self._file
                start = file.tell()
                try:
                    file.write(data)
                    file.flush()
                    if self.fsync:
                        os.fsync(file.fileno())
                except OSError:
                    # No half line left behind for the retry to append after; the original
                    # error is the one raised, whatever the clean-up meets.
                    self._file = None
                    try:
                        file.truncate(start)
                    finally:
                        with contextlib.suppress(OSError):
                            file.close()
                    raise
            except OSError as exc:
                raise SinkUnavailable(
                    f"could not append to {self.path}: {exc}", sink=self.name
                ) from exc
            self.written += count

    async def write(self, batch: Sequence[Event]) -> None:
        data = b"".join(encode_event(event) + b"\n" for event in batch)
        await anyio.to_thread.run_sync(self._write_sync, data, len(batch))

    def _close_sync(self) -> None:
        with self._lock:
            file, self._file = self._file, None
            if file is not None and self._pid == os.getpid():
                file.close()

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self._close_sync)
