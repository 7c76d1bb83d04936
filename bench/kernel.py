"""Kernel benchmark: tell throughput, ask round trip (with and without a timeout) and memory
per idle actor, side by side with bare anyio memory streams and asyncio.Queue, on asyncio and
trio.

    python bench/kernel.py            # full run (medians of 5)
    python bench/kernel.py --quick    # CI smoke run: small counts, 1 repeat
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from anyio import WouldBlock
from anyio.lowlevel import checkpoint

from limelight import Actor, Context, Runtime

RESULTS = Path(__file__).parent / "results"


# -- tell throughput --------------------------------------------------------------------


class Sink(Actor):
    def __init__(self, n: int, done: anyio.Event) -> None:
        self.n = n
        self.seen = 0
        self.done = done

    async def handle(self, message: Any, ctx: Context) -> None:
        self.seen += 1
        if self.seen == self.n:
            self.done.set()


async def tell_limelight(n: int) -> float:
    done = anyio.Event()
    async with Runtime() as rt:
        ref = await rt.spawn(Sink(n, done), mailbox_size=1024)
        t0 = time.perf_counter()
        for i in range(n):
            await ref.tell(i)
        await done.wait()
        return n / (time.perf_counter() - t0)


async def tell_anyio_await_send(n: int) -> float:
    send, receive = anyio.create_memory_object_stream[int](1024)
    seen = 0

    async def consumer() -> None:
        nonlocal seen
        async with receive:
            async for _ in receive:
                seen += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer)
        t0 = time.perf_counter()
        async with send:
            for i in range(n):
                await send.send(i)
    return n / (time.perf_counter() - t0)


async def tell_anyio_nowait(n: int) -> float:
    """The bare fast path: send_nowait/receive_nowait, awaiting only on WouldBlock, with a
    checkpoint every 64 messages on both sides (what a fair hot loop must do)."""
    send, receive = anyio.create_memory_object_stream[int](1024)
    done = anyio.Event()

    async def consumer() -> None:
        seen = 0
        batch = 0
        while seen < n:
            try:
                receive.receive_nowait()
            except WouldBlock:
                await receive.receive()
                batch = 0
            else:
                batch += 1
                if batch >= 64:
                    batch = 0
                    await checkpoint()
            seen += 1
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer)
        t0 = time.perf_counter()
        for i in range(n):
            try:
                send.send_nowait(i)
            except WouldBlock:
                await send.send(i)
            if not i % 64:
                await checkpoint()
        await done.wait()
        rate = n / (time.perf_counter() - t0)
    send.close()
    receive.close()
    return rate


async def tell_asyncio_queue(n: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue(1024)
    done = asyncio.Event()

    async def consumer() -> None:
        for _ in range(n):
            await queue.get()
        done.set()

    task = asyncio.get_running_loop().create_task(consumer())
    t0 = time.perf_counter()
    for i in range(n):
        await queue.put(i)
    await done.wait()
    rate = n / (time.perf_counter() - t0)
    await task
    return rate


# -- ask round trip ---------------------------------------------------------------------


class Echo(Actor):
    async def handle(self, message: Any, ctx: Context) -> Any:
        return message


#: The timeout of the timed asks: long enough never to fire, so that what is measured is what
#: timing an ask costs.
ASK_TIMEOUT = 60.0


async def ask_limelight(n: int, timeout: float | None = None) -> float:
    async with Runtime() as rt:
        ref = await rt.spawn(Echo())
        for i in range(100):
            await ref.ask(i, timeout=timeout)
        t0 = time.perf_counter()
        for i in range(n):
            await ref.ask(i, timeout=timeout)
        return (time.perf_counter() - t0) / n * 1e6


async def ask_limelight_timed(n: int) -> float:
    """The same loop, each ask with ``timeout=`` (the deadline travels with the request, and
    the handler runs under it)."""
    return await ask_limelight(n, ASK_TIMEOUT)


async def ask_bare_timed(n: int) -> float:
    """The bare loop, each request's wait under ``anyio.move_on_after`` (what timing a
    request costs in plain anyio; the server side knows nothing of the deadline)."""
    return await ask_bare(n, ASK_TIMEOUT)


async def ask_bare(n: int, timeout: float | None = None) -> float:
    """A bare request/reply loop on the same primitives: a memory stream used on the nowait
    fast path, an anyio Event for the reply."""
    send, receive = anyio.create_memory_object_stream[Any](1024)

    class Req:
        __slots__ = ("event", "message", "value")

        def __init__(self, message: int) -> None:
            self.message = message
            self.event = anyio.Event()
            self.value: Any = None

    async def server() -> None:
        while True:
            try:
                req = receive.receive_nowait()
            except WouldBlock:
                try:
                    req = await receive.receive()
                except anyio.EndOfStream:
                    return
            req.value = req.message
            req.event.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(server)

        async def ask(i: int) -> Any:
            req = Req(i)
            try:
                send.send_nowait(req)
            except WouldBlock:
                await send.send(req)
            await req.event.wait()
            return req.value

        async def timed_ask(i: int) -> Any:
            with anyio.move_on_after(timeout):
                return await ask(i)
            raise TimeoutError  # never: the timeout is long

        request = ask if timeout is None else timed_ask
        for i in range(100):
            await request(i)
        t0 = time.perf_counter()
        for i in range(n):
            await request(i)
        result = (time.perf_counter() - t0) / n * 1e6
        send.close()
    receive.close()
    return result


# -- memory per idle actor --------------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Idle(Actor):
    async def handle(self, message: Any, ctx: Context) -> None:
        return None


class IdleNonResident(Idle):
    """An idle actor that holds no task while it waits (``Actor.resident``)."""

    resident = False


async def idle_actors(n: int, resident: bool = True) -> dict[str, float]:
    kind = Idle if resident else IdleNonResident
    gc.collect()
    before = _rss()
    async with Runtime() as rt:
        t0 = time.perf_counter()
        refs = [await rt.spawn(kind(), mailbox_size=16) for _ in range(n)]
        spawn_s = time.perf_counter() - t0
        gc.collect()
        used = _rss() - before
        assert len(refs) == n
        t1 = time.perf_counter()
    stop_s = time.perf_counter() - t1
    return {
        "actors": n,
        "rss_bytes": used,
        "bytes_per_actor": used / n,
        "spawn_s": spawn_s,
        "shutdown_s": stop_s,
    }


def _memory_in_subprocess(backend: str, n: int, resident: bool = True) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            *("--memory-child", backend, str(n), "resident" if resident else "nonresident"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout))


# -- driver -----------------------------------------------------------------------------


def _median(backend: str, repeats: int, fn: Callable[[int], Awaitable[float]], n: int) -> float:
    return statistics.median(anyio.run(fn, n, backend=backend) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory-child", nargs=3)
    args = parser.parse_args()
    if args.memory_child:
        backend, n, kind = args.memory_child
        print(json.dumps(anyio.run(idle_actors, int(n), kind == "resident", backend=backend)))
        return
    repeats = 1 if args.quick else args.repeats
    n_tell = 20_000 if args.quick else 300_000
    n_ask = 2_000 if args.quick else 50_000
    n_idle = 2_000 if args.quick else 100_000
    results: dict[str, Any] = {"repeats": repeats, "python": sys.version.split()[0]}
    for backend in ("asyncio", "trio"):
        row: dict[str, Any] = {}
        row["tell_limelight"] = _median(backend, repeats, tell_limelight, n_tell)
        row["tell_anyio_await_send"] = _median(backend, repeats, tell_anyio_await_send, n_tell)
        row["tell_anyio_nowait"] = _median(backend, repeats, tell_anyio_nowait, n_tell)
        if backend == "asyncio":
            row["tell_asyncio_queue"] = _median(backend, repeats, tell_asyncio_queue, n_tell)
        row["ask_limelight_us"] = _median(backend, repeats, ask_limelight, n_ask)
        row["ask_limelight_timed_us"] = _median(backend, repeats, ask_limelight_timed, n_ask)
        row["ask_bare_us"] = _median(backend, repeats, ask_bare, n_ask)
        row["ask_bare_timed_us"] = _median(backend, repeats, ask_bare_timed, n_ask)
        row["idle"] = _memory_in_subprocess(backend, n_idle)
        row["idle_nonresident"] = _memory_in_subprocess(backend, n_idle, resident=False)
        results[backend] = row

    print(
        f"kernel benchmark (medians of {repeats}; tell msgs={n_tell}, asks={n_ask}, "
        f"timeout={ASK_TIMEOUT:g} s)\n"
    )
    print(f"{'backend':8} {'subject':36} {'value':>14}  vs.")
    for backend in ("asyncio", "trio"):
        r = results[backend]
        base = r.get("tell_asyncio_queue")
        for key, label in [
            ("tell_limelight", "tell: limelight ActorRef.tell"),
            ("tell_asyncio_queue", "tell: asyncio.Queue"),
            ("tell_anyio_await_send", "tell: anyio stream, await send()"),
            ("tell_anyio_nowait", "tell: anyio stream, nowait path"),
        ]:
            if key in r:
                vs = f"{r[key] / base:.2f}x asyncio.Queue" if base else ""
                print(f"{backend:8} {label:36} {r[key] / 1e6:10.2f} M/s  {vs}")
        bare, timed = r["ask_bare_us"], r["ask_limelight_timed_us"]
        print(
            f"{backend:8} {'ask: limelight round trip':36} {r['ask_limelight_us']:10.2f} µs  "
            f"{r['ask_limelight_us'] / bare:.2f}x bare loop"
        )
        print(
            f"{backend:8} {'ask: limelight round trip, timeout=':36} "
            f"{timed:10.2f} µs  {timed / bare:.2f}x bare loop, "
            f"{timed / r['ask_limelight_us']:.2f}x untimed ask, "
            f"{timed / r['ask_bare_timed_us']:.2f}x bare loop with move_on_after"
        )
        print(f"{backend:8} {'ask: bare stream + Event loop':36} {bare:10.2f} µs")
        print(
            f"{backend:8} {'ask: bare loop, move_on_after each':36} "
            f"{r['ask_bare_timed_us']:10.2f} µs  {r['ask_bare_timed_us'] / bare:.2f}x bare loop"
        )
        for key, label in [
            ("idle", "idle actors: bytes per actor"),
            ("idle_nonresident", "idle non-resident actors: per actor"),
        ]:
            idle = r[key]
            print(
                f"{backend:8} {label:36} {idle['bytes_per_actor']:10.0f} B   "
                f"{idle['actors']} actors = {idle['rss_bytes'] / 2**20:.0f} MiB, "
                f"spawned in {idle['spawn_s']:.1f} s, shut down in {idle['shutdown_s']:.1f} s"
            )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "kernel.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
