"""Private files and folders: what limelight writes is readable by its owner only.

Files that hold prompts, answers or events (the SQLite event store, the JSONL sink, the
response cache, batch checkpoints, bench results) are created readable by their owner only
(0600), in folders limelight creates for its owner only (0700), as the spool's are.

Folders that already exist are left as they are: they may be the user's (the working
directory, a shared one). Only ``~/.limelight``, limelight's own home, is narrowed when found
wider (an earlier version made it 0755).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO, Final, Literal

__all__ = [
    "PRIVATE_DIR",
    "PRIVATE_FILE",
    "create_private_sqlite",
    "make_private_dirs",
    "open_private",
]

#: The mode of files limelight creates.
PRIVATE_FILE: Final = 0o600
#: The mode of folders limelight creates.
PRIVATE_DIR: Final = 0o700


def _own_home() -> Path | None:
    try:
        return Path.home() / ".limelight"
    except RuntimeError:  # no home directory known
        return None


def make_private_dirs(folder: Path) -> None:
    """Create ``folder`` and its missing parents, each 0700 (whatever the umask).

    :raises OSError: a folder cannot be created.
    """
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, PRIVATE_DIR)
        except FileExistsError:
            continue  # made meanwhile by someone else: theirs, left as it is
        # mkdir's mode is narrowed by the umask, never widened; chmod makes it exactly 0700
        # (an odd umask such as 0o100 would leave a folder its owner cannot enter).
        os.chmod(path, PRIVATE_DIR)
    home = _own_home()
    if home is not None and home not in missing and (home == folder or home in folder.parents):
        info = home.lstat()
        if (
            stat.S_ISDIR(info.st_mode)
            and info.st_uid == os.getuid()
            and stat.S_IMODE(info.st_mode) & 0o077
        ):
            os.chmod(home, PRIVATE_DIR)


def open_private(path: Path, mode: Literal["ab", "wb"]) -> BinaryIO:
    """``open(path, mode)`` for writing, except that a file it creates is 0600 from the start
    (never readable by others, not even for a moment). An existing file keeps its mode."""
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    flags |= os.O_APPEND if mode == "ab" else os.O_TRUNC
    fd = os.open(path, flags, PRIVATE_FILE)
    try:
        return os.fdopen(fd, mode)
    except BaseException:
        os.close(fd)
        raise


def create_private_sqlite(path: Path) -> None:
    """Create the SQLite database file ``path`` empty and 0600 when it does not exist yet (an
    empty file is an empty database), so that SQLite, which gives its ``-wal`` and ``-shm``
    files the mode of the database, makes those 0600 too. ``:memory:`` and ``file:`` URIs
    are left to SQLite."""
    name = os.fspath(path)
    if name in ("", ":memory:") or name.startswith("file:"):
        return
    make_private_dirs(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return
    os.close(fd)
