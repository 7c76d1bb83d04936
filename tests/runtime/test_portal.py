"""The blocking facade: a runtime driven from plain threads, on both backends, and what
happens when it is misused from the event loop's own thread."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any

import anyio
import anyio.to_thread
import pytest

from limelight.runtime import (
    Actor,
    ActorCrashed,
    ActorStopped,
    AskTimeout,
    Context,
    Runtime,
    RuntimeNotRunning,
    Supervision,
    start_blocking_runtime,
)

from ._actors import Crash, Recorder

BACKENDS = pytest.mark.parametrize("backend", ["asyncio", "trio"])
THREADS = 8


class Counter(Actor):
    def __init__(self) -> None:
        self.total = 0
        self.threads: set[str] = set()

    async def handle(self, message: Any, ctx: Context) -> Any:
        match message:
            case ("add", str() as thread, int() as n):
                self.total += n
                self.threads.add(thread)
            case "total":
                return self.total, len(self.threads)


@BACKENDS
def test_eight_threads_share_one_blocking_runtime(backend: str) -> None:
    barrier = threading.Barrier(THREADS)
    with start_blocking_runtime(
        backend=backend, supervision=Supervision(max_restarts=THREADS, backoff_initial=0)
    ) as rt:
        counter = rt.spawn(Counter(), name="counter")

        def worker(i: int) -> list[str]:
            barrier.wait()  # all threads hit the runtime at once
            ref = rt.spawn(Recorder, name=f"w{i}")
            for n in range(50):
                rt.tell(counter, ("add", threading.current_thread().name, 1))
                rt.tell(ref, n)
            assert rt.ask(ref, "seen", timeout=10) == list(range(50))
            assert list(rt.stream(ref, ("count", 4))) == [0, 1, 2, 3]
            assert rt.lookup(f"/w{i}") == ref
            with pytest.raises(ActorCrashed) as info:
                rt.ask(ref, "crash")
            assert isinstance(info.value.cause, Crash)
            assert rt.ask(ref, "after restart") == "after restart"
            paths = [node.path for node in rt.tree().walk()]
            rt.stop(ref)
            assert not ref.alive
            with pytest.raises(ActorStopped):
                rt.ask(ref, "late")
            return paths

        with ThreadPoolExecutor(THREADS) as pool:
            seen_paths = list(pool.map(worker, range(THREADS)))

        assert all(f"/w{i}" in paths for i, paths in enumerate(seen_paths))
        assert rt.ask(counter, "total") == (THREADS * 50, THREADS)
        assert [node.path for node in rt.tree().walk()] == ["/", "/counter"]
        assert rt.call(lambda: rt.runtime.statistics().restarts) == THREADS


@BACKENDS
def test_timed_asks_from_threads(backend: str) -> None:
    """Threads ask with timeouts: each times its own wait, and has the loop abandon a request
    it gave up on (the actor drops it unhandled); one still pending when the runtime stops
    fails."""
    barrier = threading.Barrier(THREADS)
    with start_blocking_runtime(backend=backend) as rt:
        ref = rt.spawn(Recorder(), name="r")
        held = rt.spawn(Recorder(), name="held")
        rt.tell(held, ("sleep", 3600.0))  # busy for good: asks to it time out

        def worker(i: int) -> tuple[list[Any], AskTimeout]:
            barrier.wait()
            answers = [rt.ask(ref, (i, n), timeout=30) for n in range(20)]
            with pytest.raises(AskTimeout) as info:
                rt.ask(held, ("late", i), timeout=0.02 * (1 + i % 3))
            return answers, info.value

        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(worker, range(THREADS)))
        for i, (answers, error) in enumerate(results):
            assert answers == [(i, n) for n in range(20)]
            assert error.path == "/held"
            assert str(error).startswith("ask tuple to /held timed out after 0.0")
        held_cell = held._cell
        assert rt.call(lambda: len(held_cell.mailbox)) == THREADS
        assert (
            rt.call(lambda: [e.abandoned() for e in held_cell.mailbox._items]) == [True] * THREADS
        )

        pending: list[BaseException] = []

        def ask_pending() -> None:
            try:
                rt.ask(held, "pending", timeout=3600)
            except BaseException as exc:
                pending.append(exc)

        thread = threading.Thread(target=ask_pending)
        thread.start()
        while rt.call(lambda: len(held_cell.mailbox)) != THREADS + 1:
            time.sleep(0.001)
    thread.join(10)
    assert not thread.is_alive()
    assert len(pending) == 1
    assert isinstance(pending[0], ActorStopped)


@BACKENDS
def test_leaving_a_blocking_stream_early_frees_the_actor(backend: str) -> None:
    with start_blocking_runtime(backend=backend) as rt:
        ref = rt.spawn(Recorder(), name="r")
        with closing(rt.stream(ref, ("count", 10_000))) as replies:
            got = [next(replies) for _ in range(3)]
        assert got == [0, 1, 2]
        assert rt.ask(ref, "free", timeout=10) == "free"


@BACKENDS
def test_blocking_runtime_options_and_shutdown(backend: str) -> None:
    log: list[str] = []
    with start_blocking_runtime(backend=backend, mailbox_size=7) as rt:
        ref = rt.spawn(Recorder(log, "r"), name="r")
        assert ref.statistics().mailbox_capacity == 7
        assert rt.runtime.mailbox_size == 7
    assert log == ["start r", "stop r"]
    assert not ref.alive


@pytest.mark.anyio
async def test_runtime_blocking_from_a_worker_thread() -> None:
    async with Runtime() as rt:
        ref = await rt.spawn(Recorder(), name="r")

        def in_thread() -> tuple[Any, ...]:
            blocking = rt.blocking
            blocking.tell(ref, "told")
            seen = blocking.ask(ref, "seen", timeout=10)
            streamed = list(blocking.stream(ref, ("count", 3)))
            other = blocking.spawn(Recorder(), name="from-thread")
            found = blocking.lookup("/from-thread")
            blocking.stop(other)
            return seen, streamed, found == other, other.alive

        assert await anyio.to_thread.run_sync(in_thread) == (["told"], [0, 1, 2], True, False)
        assert await ref.ask("seen") == ["told"]
        blocking = rt.blocking
    with pytest.raises(RuntimeNotRunning):
        _ = rt.blocking
    with pytest.raises(RuntimeError):
        await anyio.to_thread.run_sync(blocking.ask, ref, "after shutdown")


@pytest.mark.anyio
async def test_blocking_calls_from_the_event_loop_thread_raise() -> None:
    async with Runtime() as rt:
        ref = await rt.spawn(Recorder(), name="r")
        blocking = rt.blocking
        # Each would deadlock (the loop waiting for itself) if it did not raise at once.
        with pytest.raises(RuntimeError, match="event loop thread"):
            blocking.ask(ref, "x")
        with pytest.raises(RuntimeError, match="event loop thread"):
            blocking.tell(ref, "x")
        with pytest.raises(RuntimeError, match="event loop thread"):
            blocking.spawn(Recorder())
        with pytest.raises(RuntimeError, match="event loop thread"):
            list(blocking.stream(ref, ("count", 2)))
        with pytest.raises(RuntimeError, match="event loop thread"):
            blocking.tree()
        assert await ref.ask("still fine") == "still fine"
        assert [node.path for node in rt.tree().walk()] == ["/", "/r"]
