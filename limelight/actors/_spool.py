"""The analytics shipper's durable spool: events that could not be shipped, kept on local disk
as append-only JSONL segment files (fsync'd), one folder per sink, re-sent on the next start.

Layout under the spool directory::

    <key>/<time_ns>-<pid>-<n>.jsonl     sealed segments, ready to replay to sink <key>
    <key>/<time_ns>-<pid>-<n>.open      a segment a live process is still appending to
    <key>/<...>.claimed-<pid>           a segment a process is replaying right now
    _all/...                            events no sink has received yet (queue overflow)
    dead-letter/<key>.jsonl             batches a sink rejected (never replayed)

A segment whose writer died (``.open`` or ``.claimed-<pid>`` of a process that is gone) is
sealed again at the next start, so nothing written is ever orphaned.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

from ..errors import EventDecodeError
from ..schemas._events import Event, decode_event, encode_event

__all__ = ["ALL_SINKS", "DEAD_LETTER", "Spool", "spool_key"]

#: The key of segments meant for every sink (events that never left the queue).
ALL_SINKS: Final = "_all"
#: The folder of rejected batches.
DEAD_LETTER: Final = "dead-letter"

_SEALED = ".jsonl"
_OPEN = ".open"
_CLAIMED = ".claimed-"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def spool_key(name: str) -> str:
    """A sink name made safe as a folder name (never one of the reserved keys)."""
    key = _UNSAFE.sub("_", name).strip("._") or "sink"
    return f"sink_{key}" if key in (ALL_SINKS, DEAD_LETTER) else key


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _encode_lines(events: Iterable[Event]) -> tuple[bytes, int, int]:
    """The events as JSON lines; returns (data, encoded, unencodable)."""
    parts: list[bytes] = []
    bad = 0
    for event in events:
        try:
            parts.append(encode_event(event))
        except (TypeError, ValueError):
            bad += 1  # a payload holding something JSON cannot carry
    if not parts:
        return b"", 0, bad
    return b"\n".join(parts) + b"\n", len(parts), bad


class Spool:
    """Durable, append-only storage of events per sink key. Thread-safe; blocking (call it
    from a worker thread in async code).

    :param directory: where the segments live (created if missing).
    :param max_segment_events: an appended-to segment is sealed after this many events.
    """

    def __init__(self, directory: str | os.PathLike[str], *, max_segment_events: int = 10_000):
        self.directory = Path(directory)
        self.max_segment_events = max_segment_events
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        #: key -> (fd, path, events in it) of the segment being appended to.
        self._open: dict[str, tuple[int, Path, int]] = {}
        #: Segments this object is replaying right now.
        self._claims: set[Path] = set()
        _spools.add(self)
        #: Events that could not be encoded (and so could not be stored), counted.
        self.unencodable = 0
        #: Lines found corrupt when reading segments back (a write torn by a crash).
        self.corrupt = 0

    # -- writing -------------------------------------------------------------------------

    def _new_name(self, key: str, suffix: str) -> Path:
        folder = self.directory / key
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{time.time_ns():020d}-{os.getpid()}-{next(self._counter)}{suffix}"

    def write_segment(self, key: str, events: Sequence[Event]) -> int:
        """Store ``events`` as one new sealed segment for ``key``, atomically (written to a
        ``.open`` file, fsync'd, renamed). Returns how many were stored (the unencodable ones
        are counted in :attr:`unencodable`, not stored)."""
        data, stored, bad = _encode_lines(events)
        if bad:
            with self._lock:
                self.unencodable += bad
        if not stored:
            return 0
        path = self._new_name(key, _OPEN)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(path, path.with_suffix(_SEALED))
        _fsync_dir(path.parent)
        return stored

    def append(self, key: str, event: Event) -> bool:
        """Append one event to ``key``'s open segment (unbuffered, so a fork never duplicates
        it; fsync'd by :meth:`seal`). Returns False if it could not be encoded (counted)."""
        try:
            line = encode_event(event) + b"\n"
        except (TypeError, ValueError):
            with self._lock:
                self.unencodable += 1
            return False
        with self._lock:
            current = self._open.get(key)
            if current is None:
                path = self._new_name(key, _OPEN)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                current = (fd, path, 0)
            fd, path, count = current
            os.write(fd, line)
            count += 1
            self._open[key] = (fd, path, count)
            if count >= self.max_segment_events:
                self._seal_one(key)
        return True

    def _seal_one(self, key: str) -> None:
        fd, path, _ = self._open.pop(key)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(path, path.with_suffix(_SEALED))
        _fsync_dir(path.parent)

    def seal(self) -> None:
        """Make every appended event durable and replayable (fsync, then rename to sealed)."""
        with self._lock:
            for key in list(self._open):
                self._seal_one(key)

    def has_open(self) -> bool:
        return bool(self._open)

    def forget_open_after_fork(self) -> None:
        """In a forked child: drop the parent's open segments without touching them (the
        parent still writes them). Closing our copies of the descriptors is harmless."""
        for fd, _, _ in self._open.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._open = {}
        self._claims = set()
        self._lock = threading.Lock()

    def dead_letter(self, key: str, events: Sequence[Event], reason: str) -> int:
        """Append a rejected batch to ``dead-letter/<key>.jsonl`` (kept, never replayed)."""
        data, stored, bad = _encode_lines(events)
        with self._lock:
            self.unencodable += bad
            folder = self.directory / DEAD_LETTER
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{key}.jsonl"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                note = encode_reason(reason)
                os.write(fd, note + data)
                os.fsync(fd)
            finally:
                os.close(fd)
        return stored

    # -- reading back --------------------------------------------------------------------

    def sink_keys(self) -> list[str]:
        """Sink keys that have a folder in the spool."""
        if not self.directory.is_dir():
            return []
        return sorted(
            p.name for p in self.directory.iterdir() if p.is_dir() and p.name != DEAD_LETTER
        )

    def segments(self, key: str) -> list[Path]:
        """Sealed segments of ``key``, oldest first."""
        folder = self.directory / key
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.suffix == _SEALED)

    def pending(self) -> int:
        """How many sealed segments wait to be replayed, over all keys."""
        return sum(len(self.segments(k)) for k in self.sink_keys())

    def _orphaned(self, pid: int | None, path: Path) -> bool:
        """Whether the process that wrote or claimed ``path`` is gone. Our own pid counts as
        gone for a file this object did not make: a previous process had the same pid (a
        container's pid 1, say)."""
        if pid is None:
            return False
        if pid == os.getpid():
            return path not in self._mine()
        return not _pid_alive(pid)

    def _mine(self) -> set[Path]:
        """Segments some Spool of this process has open or claimed."""
        mine: set[Path] = set()
        for spool in list(_spools):
            with spool._lock:
                mine.update(p for _, p, _ in spool._open.values())
                mine.update(spool._claims)
        return mine

    def recover(self) -> int:
        """Seal the segments of processes that died while writing or replaying them.
        Returns how many were recovered."""
        recovered = 0
        for key in self.sink_keys():
            for path in (self.directory / key).iterdir():
                name = path.name
                if name.endswith(_OPEN):
                    if not self._orphaned(_pid_of(name), path):
                        continue
                    target = path.with_name(name[: -len(_OPEN)] + _SEALED)
                elif _CLAIMED in name:
                    stem, _, owner = name.partition(_CLAIMED)
                    if not owner.isdigit() or not self._orphaned(int(owner), path):
                        continue
                    target = path.with_name(stem)
                else:
                    continue
                try:
                    os.rename(path, target)
                    recovered += 1
                except FileNotFoundError:
                    pass  # another process recovered it first
        return recovered

    def claim(self, path: Path) -> Path | None:
        """Take ``path`` for replay (renamed so no other process takes it too); None if
        another process took it first."""
        claimed = path.with_name(f"{path.name}{_CLAIMED}{os.getpid()}")
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            return None
        with self._lock:
            self._claims.add(claimed)
        return claimed

    def release(self, claimed: Path) -> None:
        """Give a claimed segment back (its replay failed): it stays for a later try."""
        stem = claimed.name.partition(_CLAIMED)[0]
        os.rename(claimed, claimed.with_name(stem))
        with self._lock:
            self._claims.discard(claimed)

    def read(self, path: Path) -> list[Event]:
        """The events of a segment; corrupt lines (a torn last write) are skipped and
        counted in :attr:`corrupt`."""
        events: list[Event] = []
        for line in path.read_bytes().splitlines():
            if not line.strip():
                continue
            try:
                events.append(decode_event(line))
            except EventDecodeError:
                with self._lock:
                    self.corrupt += 1
        return events

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        with self._lock:
            self._claims.discard(path)


#: Every live Spool of this process (their open and claimed segments are not orphans).
_spools: weakref.WeakSet[Spool] = weakref.WeakSet()


def _pid_of(name: str) -> int | None:
    parts = name.split("-")
    if len(parts) >= 3 and parts[1].isdigit():
        return int(parts[1])
    return None


def encode_reason(reason: str) -> bytes:
    """A dead-letter header line (a JSON object that is not an event)."""
    import msgspec

    return msgspec.json.encode({"rejected": reason, "at": time.time()}) + b"\n"
