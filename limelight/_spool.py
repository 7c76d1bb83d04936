"""The analytics shipper's write-ahead log: events kept on disk until every sink confirms them.

Every accepted event is written here (group commit) before any sink sees it, and a segment is
deleted only once every sink it was meant for has confirmed all of its events. Blocking code:
the shipper calls it from worker threads.

Layout under the spool directory::

    wal/<id>~<owner>.open       a segment its owner is still appending to
    wal/<id>~<owner>.log        a sealed segment (complete), still owed to some sink
    wal/<id>~<owner>.tmp        a segment being created (no event in it yet)
    wal/<id>.ack-<key>          how many events of segment <id> sink <key> confirmed
    wal/owners/<owner>.lock     held (``flock``) by the live process that owns <owner>
    quarantine/                 segments that could not be read, set aside
    dead-letter/<key>.jsonl     batches a sink rejected (kept, never replayed)

A segment is JSON lines: a header (``{"wal": 1, "sinks": [...]}``, the sinks it is meant
for), then one event per line. Each writer (a :class:`Spool`) is an *owner* with a random id
and a lock file it holds with ``flock`` for as long as it lives; the kernel drops the lock when
the process dies, however it dies. A segment whose owner's lock can be taken is an orphan:
:meth:`Spool.adopt` renames it to its own owner and replays it. A process id is never used to
decide this (it may have been reused).

One module: one file format. Writing, sealing, acknowledging, adopting and quarantining
segments are the same layout's rules, kept together.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import threading
import time
from array import array
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import msgspec

from ._files import make_private_dirs
from .errors import ConfigError
from .schemas._events import Event

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock
    fcntl = None  # type: ignore[assignment]

#: Without flock (Windows) an owner is never presumed dead: nothing is adopted.
_FLOCK: bool = fcntl is not None

__all__ = [
    "ALL_SINKS",
    "DEAD_LETTER",
    "DEFAULT_MAX_SEGMENT_BYTES",
    "FSYNC_MODES",
    "QUARANTINE",
    "Chunk",
    "ReadResult",
    "Segment",
    "Spool",
    "spool_key",
]

#: The folder of the spool layout before the write-ahead log (adopted at start).
ALL_SINKS: Final = "_all"
#: The folder of rejected batches.
DEAD_LETTER: Final = "dead-letter"
#: The folder of segments that could not be read.
QUARANTINE: Final = "quarantine"
#: A live segment is sealed and a new one begun past this size.
DEFAULT_MAX_SEGMENT_BYTES: Final = 4 * 1024 * 1024
#: ``"never"``: segments reach the OS page cache (they survive the process being killed, not a
#: power cut); ``"always"``: every group commit is fsync'd (it survives a power cut too).
FSYNC_MODES: Final = ("never", "always")

WAL: Final = "wal"
_OWNERS: Final = "owners"
_OPEN: Final = ".open"
_SEALED: Final = ".log"
_TMP: Final = ".tmp"
_ACK: Final = ".ack-"
_LOCK: Final = ".lock"
_LEGACY_SEALED: Final = ".jsonl"
_RESERVED: Final = (WAL, DEAD_LETTER, QUARANTINE)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_SEGMENT = re.compile(r"^(\d{20}-[0-9a-f]{8})~([0-9a-f]{12})(\.open|\.log|\.tmp)$")
_ACK_NAME = re.compile(r"^(\d{20}-[0-9a-f]{8})\.ack-(.+)$")

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)
#: The spool's one call of ``os.write`` (a seam: the disk-full test replaces it).
_write = os.write


class _Header(msgspec.Struct):
    wal: int
    sinks: list[str]


_header_decoder = msgspec.json.Decoder(_Header)


def spool_key(name: str) -> str:
    """A sink name made safe as a file name part (never one of the reserved folder names)."""
    key = _UNSAFE.sub("_", name).strip("._") or "sink"
    return f"sink_{key}" if key in (ALL_SINKS, *_RESERVED) else key


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = _write(fd, view)
        if written <= 0:  # pragma: no cover - write(2) reports errors by raising
            raise OSError(errno.EIO, "write returned nothing")
        view = view[written:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encode_lines(events: list[Event]) -> tuple[list[Event], bytes, list[Event]]:
    """The events as JSON lines, in one call when they all encode (the fast path): returns
    (the encodable events, their lines, the unencodable events)."""
    try:
        return events, _encoder.encode_lines(events), []
    except (TypeError, ValueError):
        pass  # a payload holding something JSON cannot carry: find which
    kept: list[Event] = []
    lines: list[bytes] = []
    bad: list[Event] = []
    encode = _encoder.encode
    for event in events:
        try:
            lines.append(encode(event) + b"\n")
        except (TypeError, ValueError):
            bad.append(event)
            continue
        kept.append(event)
    return kept, b"".join(lines), bad


@dataclass(slots=True, eq=False)
class Chunk:
    """Events of one group commit kept in memory (so that sinks need not read them back),
    from index ``start`` of their segment. ``nbytes`` is the length of their JSON lines: a
    JSON array of any of them is at most that long (plus 1)."""

    start: int
    events: list[Event]
    nbytes: int

    @property
    def end(self) -> int:
        return self.start + len(self.events)


@dataclass(slots=True, eq=False)
class Segment:
    """One segment file. The shipper's event loop owns every field but ``fd``, ``size`` and
    ``path``, which the writing thread changes.

    :ivar count: events in the segment (lines after the header).
    :ivar acked: per sink key, how many events from the start that sink confirmed.
    :ivar first_seq: for segments a shipper writes itself, the commit number of event 0.
    :ivar origin: ``"live"`` (group commits), ``"overflow"`` (past the queue bound) or
        ``"adopted"`` (left by a process that died, or by an older layout).
    """

    id: str
    path: Path
    sinks: tuple[str, ...]
    origin: Literal["live", "overflow", "adopted"]
    count: int = 0
    sealed: bool = False
    acked: dict[str, int] = field(default_factory=dict)
    first_seq: int | None = None
    chunks: deque[Chunk] = field(default_factory=deque)
    #: Indices of lines found corrupt (counted once).
    corrupt: set[int] = field(default_factory=set)
    fd: int | None = None
    size: int = 0
    #: Events written so far (by the writing thread; ``count`` follows on the loop).
    written: int = 0
    #: A failed write could not be undone: nothing more is written to it.
    broken: bool = False

    def complete_for(self, keys: Iterable[str]) -> bool:
        return all(self.acked.get(k, 0) >= self.count for k in keys)


@dataclass(slots=True)
class ReadResult:
    """Events read back from a segment: ``indices[i]`` is the line of ``events[i]`` and
    ``sizes[i]`` its length; lines in ``corrupt`` could not be decoded; ``total`` is how many
    lines the segment holds."""

    indices: list[int]
    events: list[Event]
    sizes: array[int]
    corrupt: list[int]
    total: int


@dataclass(slots=True)
class AdoptResult:
    segments: list[Segment] = field(default_factory=list)
    #: (where the file was moved, why)
    quarantined: list[tuple[Path, str]] = field(default_factory=list)


class SegmentUnreadable(Exception):
    """A segment's header is missing or not a write-ahead-log header."""


class Spool:
    """The write-ahead log in ``directory``. Thread-safe where it says so; blocking (call it
    from worker threads in async code).

    :param directory: where the log lives (created when first written).
    :param fsync: ``"never"`` or ``"always"`` (see :data:`FSYNC_MODES`).
    :param max_segment_bytes: a segment is sealed past this size.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        fsync: str = "never",
        max_segment_bytes: int = DEFAULT_MAX_SEGMENT_BYTES,
    ) -> None:
        if fsync not in FSYNC_MODES:
            raise ConfigError(f"fsync must be 'never' or 'always', got {fsync!r}")
        if max_segment_bytes < 1:
            raise ConfigError(f"max_segment_bytes must be >= 1, got {max_segment_bytes}")
        self.directory = Path(directory)
        self.wal = self.directory / WAL
        self.fsync = fsync
        self.max_segment_bytes = max_segment_bytes
        self._owner: str | None = None
        self._owner_fd: int | None = None
        self._owner_guard = threading.Lock()
        self._overflow: Segment | None = None
        self._overflow_lock = threading.Lock()
        #: Events written past the queue bound so far (under the overflow lock).
        self.overflow_written = 0

    def __repr__(self) -> str:
        return f"Spool({str(self.directory)!r}, fsync={self.fsync!r})"

    @property
    def owner(self) -> str | None:
        """This writer's owner id, once it has written something."""
        return self._owner

    # -- ownership -----------------------------------------------------------------------

    def _ensure_owner(self) -> str:
        with self._owner_guard:
            if self._owner is not None:
                return self._owner
            folder = self.wal / _OWNERS
            make_private_dirs(folder)
            owner = secrets.token_hex(6)
            # Made under a temporary name and locked before it gets its real one: nobody can
            # see the lock file unlocked and take its owner for dead.
            tmp = folder / f"{owner}{_LOCK}{_TMP}"
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                if _FLOCK:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.rename(tmp, folder / f"{owner}{_LOCK}")
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self._owner, self._owner_fd = owner, fd
            return owner

    def release(self, *, timeout: float = 1.0) -> Segment | None:
        """Give up ownership: the open overflow segment is sealed (and returned), and every
        segment of this writer becomes an orphan that the next process (or another shipper)
        adopts. Writing again later makes a new owner."""
        try:
            return self.take_overflow(timeout)  # raises if it cannot be sealed: it stays open
        finally:
            with self._owner_guard:
                owner, fd = self._owner, self._owner_fd
                self._owner = self._owner_fd = None
                # Closing the descriptor is what frees the lock; the file is only tidied away.
                if owner is not None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.wal / _OWNERS / f"{owner}{_LOCK}")
                if fd is not None:
                    os.close(fd)

    def forget_after_fork(self) -> None:
        """In a forked child: close the inherited descriptors (so that the parent's death
        still frees its lock) without touching the parent's files."""
        for fd in (self._owner_fd, self._overflow.fd if self._overflow else None):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._owner = self._owner_fd = None
        self._overflow = None
        self._owner_guard = threading.Lock()
        self._overflow_lock = threading.Lock()

    def _owner_alive(self, owner: str) -> tuple[bool, int | None]:
        """(alive, the owner's lock file descriptor if we took its lock: held while adopting)."""
        path = self.wal / _OWNERS / f"{owner}{_LOCK}"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return False, None  # released, or already adopted by someone
        if not _FLOCK:  # pragma: no cover
            os.close(fd)
            return True, None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return True, None
        except BaseException:
            os.close(fd)
            raise
        return False, fd

    # -- writing -------------------------------------------------------------------------

    def create(self, sinks: Sequence[str], origin: Literal["live", "overflow"]) -> Segment:
        """A new open segment for ``sinks``. On any failure (a full disk) nothing is left."""
        owner = self._ensure_owner()
        make_private_dirs(self.wal)
        seg_id = f"{time.time_ns():020d}-{secrets.token_hex(4)}"
        tmp = self.wal / f"{seg_id}~{owner}{_TMP}"
        header = _encoder.encode({"wal": 1, "sinks": list(sinks)}) + b"\n"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            _write_all(fd, header)
            if self.fsync == "always":
                os.fsync(fd)
            path = tmp.with_suffix(_OPEN)
            os.rename(tmp, path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if self.fsync == "always":
            _fsync_dir(self.wal)
        return Segment(
            id=seg_id, path=path, sinks=tuple(sinks), origin=origin, fd=fd, size=len(header)
        )

    def append(self, seg: Segment, data: bytes) -> None:
        """Append ``data`` (whole lines) to an open segment, all or nothing: after a failed or
        short write the segment is cut back to where it was (or, if even that fails, marked
        ``broken`` so nothing more goes into it) and the error is raised."""
        fd = seg.fd
        if fd is None or seg.broken:
            raise OSError(errno.EBADF, f"segment {seg.path.name} is not open for writing")
        try:
            _write_all(fd, data)
            if self.fsync == "always":
                os.fsync(fd)
        except OSError:
            try:
                os.ftruncate(fd, seg.size)
                os.lseek(fd, seg.size, os.SEEK_SET)
            except OSError:
                seg.broken = True
            raise
        seg.size += len(data)

    def seal(self, seg: Segment) -> None:
        """Close an open segment and give it its sealed name."""
        fd, seg.fd = seg.fd, None
        if fd is not None:
            try:
                if self.fsync == "always" and not seg.broken:
                    os.fsync(fd)
            finally:
                os.close(fd)
        if seg.path.suffix == _OPEN:
            sealed = seg.path.with_suffix(_SEALED)
            os.rename(seg.path, sealed)
            seg.path = sealed
            if self.fsync == "always":
                _fsync_dir(self.wal)

    def append_overflow(self, event: Event, sinks: Sequence[str]) -> bool:
        """Write one event past the queue bound straight to an overflow segment (thread-safe;
        the caller is a producer). False if it cannot be encoded; raises ``OSError`` when the
        disk refuses (nothing half-written is left)."""
        try:
            line = _encoder.encode(event) + b"\n"
        except (TypeError, ValueError):
            return False
        with self._overflow_lock:
            seg = self._overflow
            if seg is None or seg.broken:
                if seg is not None:
                    with contextlib.suppress(OSError):
                        self.seal(seg)  # whatever it holds stays for a later adoption
                seg = self._overflow = self.create(sinks, "overflow")
            self.append(seg, line)
            seg.count += 1
            self.overflow_written += 1
        return True

    def take_overflow(self, timeout: float) -> Segment | None:
        """Seal the open overflow segment and hand it over for delivery (None if there is
        none, or a producer holds it for longer than ``timeout``: it is taken next time)."""
        if not self._overflow_lock.acquire(timeout=timeout):
            return None
        try:
            seg = self._overflow
            if seg is None or seg.count == 0:
                return None
            self._overflow = None
            self.seal(seg)
            return seg
        finally:
            self._overflow_lock.release()

    def write_acks(self, acks: Iterable[tuple[Segment, str, int]]) -> None:
        """Record how many events of each segment a sink confirmed (no fsync: an ack lost
        in a power cut only makes those events be sent again)."""
        for seg, key, count in acks:
            fd = os.open(
                self.wal / f"{seg.id}{_ACK}{key}", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
            try:
                os.pwrite(fd, b"%20d\n" % count, 0)
            finally:
                os.close(fd)

    def _read_ack(self, seg_id: str, key: str) -> int:
        try:
            return int((self.wal / f"{seg_id}{_ACK}{key}").read_bytes().strip() or b"0")
        except (OSError, ValueError):
            return 0  # unreadable: resend (the sinks dedupe)

    def remove(self, seg: Segment) -> None:
        """Delete a segment every sink has confirmed, and its acks."""
        for suffix in (_OPEN, _SEALED):
            (seg.path.with_suffix(suffix)).unlink(missing_ok=True)
        for key in seg.sinks:
            (self.wal / f"{seg.id}{_ACK}{key}").unlink(missing_ok=True)

    def dead_letter(self, key: str, events: Sequence[Event], reason: str) -> int:
        """Append a rejected batch to ``dead-letter/<key>.jsonl`` (kept, never replayed)."""
        kept, lines, _ = encode_lines(list(events))
        folder = self.directory / DEAD_LETTER
        make_private_dirs(folder)
        path = folder / f"{key}.jsonl"
        note = _encoder.encode({"rejected": reason, "at": time.time()}) + b"\n"
        data = note + lines
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return len(kept)

    # -- reading back --------------------------------------------------------------------

    def _read_bytes(self, seg: Segment) -> bytes:
        path = seg.path
        try:
            return path.read_bytes()
        except FileNotFoundError:
            # Sealed (renamed) by the writing thread meanwhile.
            other = path.with_suffix(_SEALED if path.suffix == _OPEN else _OPEN)
            return other.read_bytes()

    def read(self, seg: Segment, start: int, stop: int | None = None) -> ReadResult:
        """Events ``start`` to ``stop`` (default: the end) of a segment. A line that cannot
        be decoded is reported in ``corrupt``; an incomplete last line (its writer died in the
        middle of it) is not counted at all. Raises ``OSError`` or
        :class:`SegmentUnreadable` when the file cannot be read."""
        lines = self._read_bytes(seg).split(b"\n")
        _parse_header(lines[0])
        body = lines[1:-1]  # the last piece is an incomplete line, or empty
        total = len(body)
        stop = total if stop is None else min(stop, total)
        wanted = body[start:stop]
        sizes: array[int] = array("I", map(len, wanted))
        try:  # the fast path: every line is good
            events = _decoder.decode_lines(b"\n".join(wanted)) if wanted else []
        except msgspec.DecodeError:
            pass
        else:
            if len(events) == len(wanted):
                return ReadResult(list(range(start, stop)), events, sizes, [], total)
        indices: list[int] = []
        events = []
        sizes = array("I")
        corrupt: list[int] = []
        decode = _decoder.decode
        for i in range(start, stop):
            line = body[i]
            try:
                events.append(decode(line))
            except msgspec.DecodeError:
                corrupt.append(i)
                continue
            indices.append(i)
            sizes.append(len(line))
        return ReadResult(indices, events, sizes, corrupt, total)

    def segment_files(self) -> list[Path]:
        """Every segment file (any owner, open or sealed), oldest first."""
        if not self.wal.is_dir():
            return []
        return sorted(
            p for p in self.wal.iterdir() if p.suffix in (_OPEN, _SEALED) and _SEGMENT.match(p.name)
        )

    def pending(self) -> int:
        """How many segment files are in the log (delivered ones are deleted)."""
        return len(self.segment_files())

    def read_file(self, path: Path) -> list[Event]:
        """Every readable event of one segment file (for tools and tests)."""
        lines = path.read_bytes().split(b"\n")
        _parse_header(lines[0])
        out: list[Event] = []
        for line in lines[1:-1]:
            with contextlib.suppress(msgspec.DecodeError):
                out.append(_decoder.decode(line))
        return out

    def quarantine(self, path: Path, seg_id: str | None, reason: str) -> Path:
        """Move an unreadable segment aside (with a note saying why), and drop its acks."""
        folder = self.directory / QUARANTINE
        make_private_dirs(folder)
        dest = folder / path.name
        os.rename(path, dest)
        with contextlib.suppress(OSError):
            dest.with_name(dest.name + ".reason").write_text(reason + "\n")
        if seg_id is not None and self.wal.is_dir():
            for ack in self.wal.glob(f"{seg_id}{_ACK}*"):
                ack.unlink(missing_ok=True)
        return dest

    def adopt(self, known: set[str], legacy_sinks: Sequence[str]) -> AdoptResult:
        """Take over the segments whose owner is gone (its lock could be taken): rename them
        to this owner, sealed, and return them with their acks. Segments that cannot be read
        are quarantined instead. Files of the layout before the write-ahead log
        (``<key>/*.jsonl``) are adopted too (``_all`` meant every sink: ``legacy_sinks``).
        Never raises for one bad file."""
        result = AdoptResult()
        if self.wal.is_dir():
            self._adopt_orphans(known, result)
        if self.directory.is_dir():
            self._adopt_legacy(legacy_sinks, result)
        return result

    def _adopt_orphans(self, known: set[str], result: AdoptResult) -> None:
        me = self._ensure_owner()
        by_owner: dict[str, list[tuple[str, str, str]]] = {}
        present: set[str] = set()
        acks: list[tuple[str, str]] = []
        for name in os.listdir(self.wal):
            match = _SEGMENT.match(name)
            if match:
                seg_id, owner, suffix = match.groups()
                present.add(seg_id)
                by_owner.setdefault(owner, []).append((seg_id, suffix, name))
                continue
            ack = _ACK_NAME.match(name)
            if ack:
                acks.append((ack.group(1), name))
        for owner, files in sorted(by_owner.items()):
            if owner == me:
                continue
            alive, lock_fd = self._owner_alive(owner)
            if alive:
                continue
            try:
                for seg_id, suffix, name in sorted(files):
                    if seg_id in known:
                        continue
                    self._adopt_one(me, seg_id, suffix, name, result)
            finally:
                if lock_fd is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(self.wal / _OWNERS / f"{owner}{_LOCK}")
                    os.close(lock_fd)
        for seg_id, name in acks:  # acks of segments deleted before their acks were
            if seg_id not in present:
                (self.wal / name).unlink(missing_ok=True)
        owners = self.wal / _OWNERS
        if owners.is_dir():  # lock files a crash left under their temporary name
            for path in owners.glob(f"*{_LOCK}{_TMP}"):
                self._drop_if_unlocked(path)

    def _drop_if_unlocked(self, path: Path) -> None:
        if not _FLOCK:  # pragma: no cover
            return
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink(missing_ok=True)
        except OSError:
            pass  # held: its maker is alive and about to rename it
        finally:
            os.close(fd)

    def _adopt_one(self, me: str, seg_id: str, suffix: str, name: str, result: AdoptResult) -> None:
        src = self.wal / name
        if suffix == _TMP:  # died while creating it: no event was ever in it
            src.unlink(missing_ok=True)
            return
        dest = self.wal / f"{seg_id}~{me}{_SEALED}"
        try:
            os.rename(src, dest)
        except FileNotFoundError:
            return  # another process adopted it first
        try:
            lines = dest.read_bytes().split(b"\n")
            header = _parse_header(lines[0])
        except (OSError, SegmentUnreadable) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            try:
                result.quarantined.append((self.quarantine(dest, seg_id, reason), reason))
            except OSError as move:
                result.quarantined.append((dest, f"{reason}; could not be moved aside: {move}"))
            return
        sinks = tuple(header.sinks)
        result.segments.append(
            Segment(
                id=seg_id,
                path=dest,
                sinks=sinks,
                origin="adopted",
                count=len(lines) - 2,
                sealed=True,
                acked={key: self._read_ack(seg_id, key) for key in sinks},
            )
        )

    def _adopt_legacy(self, sinks: Sequence[str], result: AdoptResult) -> None:
        for folder in sorted(self.directory.iterdir()):
            if not folder.is_dir() or folder.name in _RESERVED:
                continue
            targets = tuple(sinks) if folder.name == ALL_SINKS else (folder.name,)
            for path in sorted(folder.glob(f"*{_LEGACY_SEALED}")):
                seg: Segment | None = None
                try:
                    data = path.read_bytes()
                    data = data[: data.rfind(b"\n") + 1]  # without a torn last line
                    seg = self.create(targets, "overflow")
                    self.append(seg, data)
                    self.seal(seg)
                except OSError as exc:
                    if seg is not None:
                        with contextlib.suppress(OSError):
                            self.seal(seg)
                        self.remove(seg)
                    result.quarantined.append((path, f"could not adopt an old spool file: {exc}"))
                    continue
                # Not deleted: adopted again later, and the sinks dedupe what comes twice.
                with contextlib.suppress(OSError):
                    path.unlink()
                seg.origin = "adopted"
                seg.sealed = True
                seg.count = data.count(b"\n")
                result.segments.append(seg)


def _parse_header(line: bytes) -> _Header:
    try:
        header = _header_decoder.decode(line)
    except msgspec.DecodeError as exc:
        raise SegmentUnreadable(f"not a write-ahead log segment (header: {exc})") from None
    if header.wal != 1:
        raise SegmentUnreadable(f"unknown write-ahead log version {header.wal}")
    return header
