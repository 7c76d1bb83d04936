"""Batches' implementation (see :mod:`limelight.batch`).

:func:`run_batch` with its concurrency bound and JSON-lines checkpoint, in this process or
sharded over the hosts of a cluster (whose side of it is :class:`Shards`)."""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final, Generic, Protocol, TypeVar

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
    :ivar requeued: on a cluster, runs of items sent again because their host died under
        them (not counted as attempts: the item did not fail).
    """

    items: list[BatchItem[R]]
    completed: int
    failed: int
    resumed: int
    corrupt_lines: int = 0
    duration: float = 0.0
    requeued: int = 0

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


# -- items on the hosts of a cluster ------------------------------------------------------


class Shards(Protocol):
    """What :func:`run_batch` needs of a cluster (:class:`limelight.cluster.Cluster` is
    one): run ``fn`` on items over its hosts, ``concurrency`` at a time in all, each item in
    a host's process through :func:`run_shipped`, and hand each item's outcome (the bytes
    :func:`run_shipped` returned) to ``finished`` in the caller's process, once per item.
    An item whose host died under it is run again elsewhere. Returns how many times that
    happened.

    :raises ConfigError: the cluster is not running, or ``fn`` cannot be shipped.
    :raises HostDied: every host is down for good with items left to run.
    """

    async def _run_batch(
        self,
        fn: Callable[[Any], Awaitable[Any]],
        items: Sequence[Any],
        *,
        concurrency: int,
        finished: Callable[[int, bytes], Awaitable[None]],
    ) -> int: ...


class _Shipped(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """One item's outcome as a host sends it back (MessagePack): the value is its
    checkpoint JSON, with the name of its type (``module:qualname``; ``""``: plain JSON)."""

    ok: bool
    kind: str = ""
    value: bytes = b""
    error: str | None = None
    error_type: str | None = None
    duration: float = 0.0


_SHIPPED_ENCODER: Final = msgspec.msgpack.Encoder()
_SHIPPED_DECODER: Final = msgspec.msgpack.Decoder(_Shipped)
_VALUE_ENCODER: Final = msgspec.json.Encoder(enc_hook=_enc_hook)


async def run_shipped(fn: Callable[[Any], Awaitable[Any]], item: Any) -> bytes:
    """Run ``fn`` on ``item`` (on a host's loop) and encode its outcome for the way back;
    ``fn``'s error is an outcome, as in :func:`run_batch`."""
    begun = time.perf_counter()
    try:
        value = await fn(item)
    except Exception as exc:
        shipped = _Shipped(
            ok=False,
            error=str(exc) or type(exc).__name__,
            error_type=type(exc).__name__,
            duration=time.perf_counter() - begun,
        )
        return _SHIPPED_ENCODER.encode(shipped)
    duration = time.perf_counter() - begun
    kind = type(value)
    name = "" if kind.__module__ == "builtins" else f"{kind.__module__}:{kind.__qualname__}"
    try:
        data = _VALUE_ENCODER.encode(value)
    except (TypeError, NotImplementedError) as exc:
        shipped = _Shipped(
            ok=False,
            error=f"its value cannot be sent back from the host ({exc}); return "
            "msgspec-encodable values (Structs, dicts, lists, str, numbers)",
            error_type="CheckpointError",
            duration=duration,
        )
    else:
        shipped = _Shipped(ok=True, kind=name, value=data, duration=duration)
    return _SHIPPED_ENCODER.encode(shipped)


class _Values:
    """Decodes the values hosts send back: to ``result_type``, or by default to the type
    the host named (a Struct comes back a Struct, as from a local run), plain JSON when that
    type cannot be found here."""

    def __init__(self, result_type: Any) -> None:
        self._fixed = (
            None if result_type is Any else msgspec.json.Decoder(result_type, dec_hook=_dec_hook)
        )
        self._by_kind: dict[str, msgspec.json.Decoder[Any]] = {}
        self._plain = msgspec.json.Decoder(dec_hook=_dec_hook)

    def outcome(self, data: bytes, *, key: str, attempts: int) -> BatchItem[Any]:
        shipped = _SHIPPED_DECODER.decode(data)
        if not shipped.ok:
            return BatchItem(
                key=key,
                ok=False,
                error=shipped.error,
                error_type=shipped.error_type,
                duration=shipped.duration,
                attempts=attempts,
            )
        try:
            value = self._decoder(shipped.kind).decode(shipped.value)
        except (msgspec.DecodeError, msgspec.ValidationError, NotImplementedError) as exc:
            return BatchItem(
                key=key,
                ok=False,
                error=f"its value cannot be read as the result_type ({exc})",
                error_type="CheckpointError",
                duration=shipped.duration,
                attempts=attempts,
            )
        return BatchItem(
            key=key, ok=True, value=value, duration=shipped.duration, attempts=attempts
        )

    def _decoder(self, kind: str) -> msgspec.json.Decoder[Any]:
        if self._fixed is not None:
            return self._fixed
        if not kind:
            return self._plain
        decoder = self._by_kind.get(kind)
        if decoder is None:
            decoder = self._by_kind[kind] = self._plain
            module, _, qualname = kind.partition(":")
            try:
                target: Any = importlib.import_module(module)
                for part in qualname.split("."):
                    target = getattr(target, part)
                decoder = self._by_kind[kind] = msgspec.json.Decoder(target, dec_hook=_dec_hook)
            except (ImportError, AttributeError, TypeError):
                pass  # a type defined in a function, or one msgspec cannot decode into
        return decoder


# -- the checkpoint -------------------------------------------------------------------------


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
    cluster: Shards | None = None,
) -> BatchReport[R]:
    """Run ``fn`` on every item, at most ``concurrency`` at once.

    :param concurrency: items in flight at once; with ``cluster``, over the whole cluster,
        spread evenly over its hosts (pass at least ``cluster.hosts`` to use them all).
    :param checkpoint: the JSON-lines file recording outcomes (``None``: none is kept).
        Values must be msgspec-encodable (Structs, dicts, lists, str, numbers...).
    :param key: an item's key (default: its position, as a string). Keys must be unique.
    :param result_type: the type values are decoded to when read back from the checkpoint
        (e.g. ``AgentResult``); by default plain JSON values.
    :param retry_failed: run again items that failed in an earlier run.
    :param on_item: called with each outcome as it is known (resumed ones included), on
        the event loop; for progress displays.
    :param cluster: a running :class:`limelight.cluster.Cluster`: items are sharded over
        its hosts. ``fn`` (and each item) is pickled with cloudpickle and sent to the hosts,
        where ``fn`` runs on the host's event loop; values come back as JSON (as the
        checkpoint holds them), decoded to ``result_type`` or to the type the host
        returned. The checkpoint is written here only, as without a cluster. An item whose
        host died under it (``kill -9``: its ask failed with
        :class:`~limelight.errors.HostDied`) is run again on a live host (counted in
        :attr:`BatchReport.requeued`, not as an attempt), so ``fn`` may have run twice for
        it, but its outcome is recorded once.
    :raises ConfigError: bad options, or two items share a key; with ``cluster``: the
        cluster is not running, or ``fn`` or an item cannot be pickled.
    :raises HostDied: with ``cluster``, every host is down for good (restart intensity
        exceeded) with items left to run; those done are in the checkpoint: rerun to
        resume.
    """
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency!r}")
    if cluster is not None and not callable(getattr(cluster, "_run_batch", None)):
        raise ConfigError(
            f"cluster must be a limelight.cluster.Cluster (from `Cluster.start(...)`), "
            f"got {type(cluster).__name__}"
        )
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
        await record(index, outcome)

    async def record(index: int, outcome: BatchItem[R]) -> None:
        if store is not None:
            try:
                line = store.encode(outcome)
            except (TypeError, NotImplementedError) as exc:
                outcome = BatchItem(
                    key=outcome.key,
                    ok=False,
                    error=f"its value cannot be written to the checkpoint ({exc}); "
                    "return msgspec-encodable values (Structs, dicts, lists, str, numbers)",
                    error_type="CheckpointError",
                    duration=outcome.duration,
                    attempts=outcome.attempts,
                )
                line = store.encode(outcome)
            # Shielded: an outcome computed is an outcome recorded, even when the batch
            # is being cancelled right now.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(store.append, line)
        finished(index, outcome)

    requeued = 0
    if cluster is None:
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
    else:
        # The hosts run ``fn``; this process keeps the checkpoint, its only writer.
        todo: list[tuple[int, str, T, int]] = []
        for index, (item_key, item) in enumerate(zip(keys, listed, strict=True)):
            before = earlier.get(item_key)
            if before is not None and (before.ok or not retry_failed):
                finished(index, msgspec.structs.replace(before, resumed=True))
                continue
            todo.append((index, item_key, item, 1 if before is None else before.attempts + 1))
        values = _Values(result_type)

        async def landed(position: int, data: bytes) -> None:
            index, item_key, _, attempts = todo[position]
            await record(index, values.outcome(data, key=item_key, attempts=attempts))

        requeued = await cluster._run_batch(
            fn, [entry[2] for entry in todo], concurrency=concurrency, finished=landed
        )
    done = [o for o in outcomes if o is not None]
    assert len(done) == len(listed)
    return BatchReport(
        items=done,
        completed=sum(1 for o in done if o.ok),
        failed=sum(1 for o in done if not o.ok),
        resumed=sum(1 for o in done if o.resumed),
        corrupt_lines=0 if store is None else store.corrupt,
        duration=time.perf_counter() - started,
        requeued=requeued,
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
