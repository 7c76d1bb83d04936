"""Batches' implementation (see :mod:`limelight.batch`).

:func:`run_batch` with its concurrency bound and JSON-lines checkpoint."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import anyio
import msgspec

from ._files import make_private_dirs, open_private
from .errors import ConfigError
from .runtime import Slots

T = TypeVar("T")
R = TypeVar("R")


class BatchItem(msgspec.Struct, Generic[R], kw_only=True):
    """The outcome of one item.

    :ivar key: the item's key.
    :ivar ok: ``fn`` returned (``value``) rather than raised (``error``, ``error_type``).
    :ivar duration: seconds ``fn`` took.
    :ivar attempts: runs of this item over all the batch's runs.
    :ivar resumed: the outcome was read back from the checkpoint, not computed now.
    """

    key: str
    ok: bool
    value: R | None = None
    error: str | None = None
    error_type: str | None = None
    duration: float = 0.0
    attempts: int = 1
    resumed: bool = False


class BatchReport(msgspec.Struct, Generic[R], kw_only=True):
    """A batch's outcome: ``items`` in the order of the input.

    :ivar completed: items that succeeded (now or in an earlier run).
    :ivar failed: items whose last run raised.
    :ivar resumed: items taken from the checkpoint without running.
    :ivar corrupt_lines: checkpoint lines that could not be read (a crash mid-write).
    """

    items: list[BatchItem[R]]
    completed: int
    failed: int
    resumed: int
    corrupt_lines: int = 0
    duration: float = 0.0

    def values(self) -> list[R | None]:
        """Each item's value (``None`` for failed ones), in input order."""
        return [item.value for item in self.items]

    def errors(self) -> dict[str, str]:
        """Failed items' errors by key."""
        return {i.key: i.error or "" for i in self.items if not i.ok}


def _enc_hook(obj: Any) -> Any:
    # Objects that save themselves as JSON (a Conversation, inside an AgentResult).
    to_json = getattr(obj, "to_json", None)
    if callable(to_json) and callable(getattr(type(obj), "from_json", None)):
        return msgspec.Raw(to_json())
    raise NotImplementedError(f"cannot write a {type(obj).__name__} to a checkpoint")


def _dec_hook(kind: type, obj: Any) -> Any:
    from_json = getattr(kind, "from_json", None)
    if callable(from_json):
        return from_json(msgspec.json.encode(obj))
    raise NotImplementedError(f"cannot read a {kind.__name__} from a checkpoint")


class _Checkpoint(Generic[R]):
    """The JSON-lines file of outcomes: read at the start, appended to as items finish."""

    def __init__(self, path: Path, result_type: Any) -> None:
        self.path = path
        self._decoder = msgspec.json.Decoder(BatchItem[result_type], dec_hook=_dec_hook)
        self._encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
        self._lock = threading.Lock()
        self.corrupt = 0

    def encode(self, item: BatchItem[R]) -> bytes:
        """The item's line; raises TypeError (or NotImplementedError) for a value that
        cannot be written."""
        return self._encoder.encode(msgspec.structs.replace(item, resumed=False)) + b"\n"

    def load(self) -> dict[str, BatchItem[R]]:
        done: dict[str, BatchItem[R]] = {}
        if not self.path.exists():
            return done
        with self.path.open("rb") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    item = self._decoder.decode(line)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    self.corrupt += 1
                    continue
                done[item.key] = item  # a later line (a retry) wins
        return done

    def append(self, line: bytes) -> None:
        with self._lock, open_private(self.path, "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


async def run_batch(
    items: Iterable[T],
    fn: Callable[[T], Awaitable[R]],
    *,
    concurrency: int = 8,
    checkpoint: str | Path | None = None,
    key: Callable[[T], str] | None = None,
    result_type: Any = Any,
    retry_failed: bool = True,
    on_item: Callable[[BatchItem[R]], None] | None = None,
) -> BatchReport[R]:
    """Run ``fn`` on every item, at most ``concurrency`` at once.

    :param checkpoint: the JSON-lines file recording outcomes (``None``: none is kept).
        Values must be msgspec-encodable (Structs, dicts, lists, str, numbers...).
    :param key: an item's key (default: its position, as a string). Keys must be unique.
    :param result_type: the type values are decoded to when read back from the checkpoint
        (e.g. ``AgentResult``); by default plain JSON values.
    :param retry_failed: run again items that failed in an earlier run.
    :param on_item: called with each outcome as it is known (resumed ones included), on
        the event loop; for progress displays.
    :raises ConfigError: bad options, or two items share a key.
    """
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency!r}")
    listed: Sequence[T] = list(items)
    keys = [str(i) if key is None else key(item) for i, item in enumerate(listed)]
    if len(set(keys)) != len(keys):
        seen: set[str] = set()
        twice = next(k for k in keys if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ConfigError(f"two items have the key {twice!r}: pass key= giving unique keys")
    store: _Checkpoint[R] | None = None
    earlier: dict[str, BatchItem[R]] = {}
    if checkpoint is not None:
        path = Path(checkpoint)
        make_private_dirs(path.parent)
        store = _Checkpoint(path, result_type)
        earlier = await anyio.to_thread.run_sync(store.load)
    started = time.perf_counter()
    outcomes: list[BatchItem[R] | None] = [None] * len(listed)
    slots = Slots(concurrency)

    def finished(index: int, item: BatchItem[R]) -> None:
        outcomes[index] = item
        if on_item is not None:
            on_item(item)

    async def one(index: int, item_key: str, item: T, attempts: int) -> None:
        try:
            await run_one(index, item_key, item, attempts)
        finally:
            slots.release()

    async def run_one(index: int, item_key: str, item: T, attempts: int) -> None:
        begun = time.perf_counter()
        try:
            value = await fn(item)
        except Exception as exc:
            outcome: BatchItem[R] = BatchItem(
                key=item_key,
                ok=False,
                error=str(exc) or type(exc).__name__,
                error_type=type(exc).__name__,
                duration=time.perf_counter() - begun,
                attempts=attempts,
            )
        else:
            outcome = BatchItem(
                key=item_key,
                ok=True,
                value=value,
                duration=time.perf_counter() - begun,
                attempts=attempts,
            )
        if store is not None:
            try:
                line = store.encode(outcome)
            except (TypeError, NotImplementedError) as exc:
                outcome = BatchItem(
                    key=item_key,
                    ok=False,
                    error=f"its value cannot be written to the checkpoint ({exc}); "
                    "return msgspec-encodable values (Structs, dicts, lists, str, numbers)",
                    error_type="CheckpointError",
                    duration=outcome.duration,
                    attempts=attempts,
                )
                line = store.encode(outcome)
            # Shielded: an outcome computed is an outcome recorded, even when the batch
            # is being cancelled right now.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(store.append, line)
        finished(index, outcome)

    async with anyio.create_task_group() as tg:
        for index, (item_key, item) in enumerate(zip(keys, listed, strict=True)):
            before = earlier.get(item_key)
            if before is not None and (before.ok or not retry_failed):
                finished(index, msgspec.structs.replace(before, resumed=True))
                continue
            attempts = 1 if before is None else before.attempts + 1
            # A slot is taken before the task exists: items start in input order, and a
            # long batch holds only ``concurrency`` tasks at a time.
            await slots.acquire()
            tg.start_soon(one, index, item_key, item, attempts)
    done = [o for o in outcomes if o is not None]
    assert len(done) == len(listed)
    return BatchReport(
        items=done,
        completed=sum(1 for o in done if o.ok),
        failed=sum(1 for o in done if not o.ok),
        resumed=sum(1 for o in done if o.resumed),
        corrupt_lines=0 if store is None else store.corrupt,
        duration=time.perf_counter() - started,
    )


def run_batch_sync(
    items: Iterable[T],
    fn: Callable[[T], Awaitable[R]],
    *,
    backend: str = "asyncio",
    **options: Any,
) -> BatchReport[R]:
    """:func:`run_batch` from synchronous code (it runs an event loop for the call)."""

    async def main() -> BatchReport[R]:
        return await run_batch(items, fn, **options)

    return anyio.run(main, backend=backend)
