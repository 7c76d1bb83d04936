"""Agents at scale: N concurrent agents, each a run of three model turns (the first two ask
for two tool calls each, run in parallel; the third answers), against the Scripted provider
with realistic delays. limelight's Agent actors (a shared ProviderPool, a ToolExecutor per
agent) side by side with the floor: the same workload as plain ``asyncio.gather`` over the
same provider and tools, no actors (and the same with trio nurseries, beside the trio rows).
Between the two, two skeletons of the floor with only what an actor design cannot skip (the
model call an ask to a worker actor that runs it under a timeout scope, the tool calls an ask
to an executor actor that runs them in a task group): "raw-anyio", written with plain anyio
tasks, memory object streams and events, and "skeleton", written on limelight's kernel (its
Runtime, actors and asks). They show what actors on anyio cost by themselves, apart from what
limelight's agents do. And the agent frameworks users pick, as peers on the same workload,
each written the way its documentation shows with an in-process fake model following the
same script (``bench/_agent_peers.py``): pydantic-ai, openai-agents, langgraph, langchain and
autogen-agentchat; the ratio of the cheapest of them to limelight closes the table. A peer
that is not installed is skipped.

Each variant runs in its own subprocess (clean memory figures), the variants taking turns
round by round (``--runs`` interleaved rounds, medians reported). Reported: wall time, CPU
time per model turn (``time.process_time()`` over the run, divided by N x 3), and memory
per live agent (peak RSS over the run less the RSS before it, divided by N); of that CPU,
the cyclic collector's full and young collections (``gc.callbacks``), and the longest single
collection. limelight runs with the runtime's defaults (its collector policy: the young
threshold follows the actor population), and also with the collector left alone
(``limelight-gc-untouched``, ``gc_policy=None``) and with freezing (``limelight-gc-policy``,
``GcPolicy(freeze=True)``). Then the CPU
cost of the kernel primitives an actor-based turn cannot skip (two ask round trips, the
per-attempt timeout scope, a task group for the parallel tool calls), measured alone.

    python bench/agents.py              # 10,000 agents, 3 interleaved rounds
    python bench/agents.py --quick      # CI smoke run: 200 agents, 1 run (peers: GC untuned)
    python bench/agents.py --only limelight,langgraph   # some variants (and the floor)
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
RESULTS = HERE / "results"
TURNS = 3
TOOL_CALLS_PER_TURN = 2
#: Seconds a model call takes (Scripted's delay) and a tool call (an async sleep).
MODEL_DELAY = 0.2
#: Set by --gc-tuned in the child: gc.freeze() and higher thresholds once agents are spawned.
GC_TUNED = False
TOOL_DELAY = 0.05


class _Collections:
    """A run's measured window, from :meth:`start` to :meth:`stop`: its wall and CPU time, and
    the cyclic collector's share of that CPU, in full (generation 2) and young collections,
    timed by ``gc.callbacks``."""

    def __init__(self) -> None:
        self.on = False
        self.begun = 0.0
        self.cpu0 = 0.0
        self.t0 = 0.0
        self.full_n = 0
        self.full_s = 0.0
        self.young_s = 0.0
        self.longest_s = 0.0  # the longest single collection: the program stands still

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if not self.on:
            return
        if phase == "start":
            self.begun = time.process_time()
            return
        spent = time.process_time() - self.begun
        self.longest_s = max(self.longest_s, spent)
        if info["generation"] == 2:
            self.full_n += 1
            self.full_s += spent
        else:
            self.young_s += spent

    def start(self) -> None:
        if self not in gc.callbacks:
            gc.callbacks.append(self)
        self.on = True
        self.cpu0, self.t0 = time.process_time(), time.perf_counter()

    def stop(self) -> tuple[float, float]:
        """The window's wall and CPU seconds."""
        wall, cpu = time.perf_counter() - self.t0, time.process_time() - self.cpu0
        self.on = False
        return wall, cpu

    def figures(self) -> dict[str, Any]:
        return {
            "gc_full_n": self.full_n,
            "gc_full_s": self.full_s,
            "gc_young_s": self.young_s,
            "gc_longest_s": self.longest_s,
        }


COLLECTIONS = _Collections()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _workload() -> tuple[Any, Any]:
    """The provider and the tool both variants use."""
    import anyio

    from limelight.providers._scripted import Reply, Scripted
    from limelight.schemas import CompletionRequest, ToolCall

    class LeanScripted(Scripted):
        """Scripted without its record of every request (which would dominate memory)."""

        def _take(self, request: CompletionRequest) -> tuple[int, Any]:
            assert self._script is not None
            return 0, self._script(request)

    def answer(request: CompletionRequest) -> Reply:
        turn = sum(1 for m in request.messages if m.role == "assistant")
        if turn < TURNS - 1:
            return Reply(
                tool_calls=[
                    ToolCall(id=f"t{turn}-{k}", name="lookup", arguments=f'{{"key": "k{k}"}}')
                    for k in range(TOOL_CALLS_PER_TURN)
                ]
            )
        return Reply(text="All looked up: the answer is 42.")

    async def lookup(key: str) -> str:
        """Look a key up.

        :param key: the key.
        """
        await anyio.sleep(TOOL_DELAY)
        return f"value of {key}"

    return LeanScripted(answer, delay=MODEL_DELAY), lookup


def _tune_gc() -> None:
    """What a long-lived server may do after start-up (both variants get it, in the tuned
    rows): move everything alive now out of the collector's sight, and collect the young
    generation less often (objects of requests in flight for a whole model delay otherwise
    reach the old generation and make full collections frequent)."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


async def _all_at_once(run: Callable[[int], Awaitable[Any]], n: int) -> list[Any]:
    """``run(0)`` to ``run(n - 1)`` started at once, their results in order: the way the
    floor and the peers start theirs on asyncio (``asyncio.gather``, a bare task each), in a
    nursery on trio (whose tasks are bare already). Not an anyio task group: on asyncio its
    ``TaskHandle`` per task (~2 KB and ~15 GC-tracked objects, alive for the whole run, with
    anyio >= 4.14) is the caller's cost, which the floor's figures do not include either."""
    import sniffio

    if sniffio.current_async_library() == "asyncio":
        import asyncio

        return list(await asyncio.gather(*(run(i) for i in range(n))))
    import trio

    results: list[Any] = [None] * n

    async def one(i: int) -> None:
        results[i] = await run(i)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)
    return results


def _nursery_gather(*calls: Awaitable[Any]) -> Awaitable[list[Any]]:
    """``asyncio.gather`` as a trio program writes it (see :func:`_all_at_once`)."""
    return _all_at_once(lambda i: calls[i], len(calls))


async def _floor(n: int) -> dict[str, Any]:
    """The floor: plain ``asyncio.gather`` on asyncio; on trio, the same written with nurseries
    (what trio itself costs this workload, beside limelight's trio rows)."""
    import asyncio

    import msgspec
    import sniffio

    from limelight.schemas import CompletionRequest, Message

    provider, lookup = _workload()

    # asyncio.gather itself on asyncio; on trio a nursery, a task per call.
    gather: Callable[..., Awaitable[list[Any]]] = (
        asyncio.gather if sniffio.current_async_library() == "asyncio" else _nursery_gather
    )

    async def one(i: int) -> str | None:
        messages = [Message.system("You look things up."), Message.user(f"task {i}")]
        for _ in range(TURNS):
            result = await provider.complete(CompletionRequest(model="scripted", messages=messages))
            messages.append(result.message())
            if not result.tool_calls:
                return result.content
            outputs = await gather(
                *(lookup(**msgspec.json.decode(c.arguments)) for c in result.tool_calls)
            )
            messages.extend(
                Message.tool(o, tool_call_id=c.id, name=c.name)
                for c, o in zip(result.tool_calls, outputs, strict=True)
            )
        return None

    gc.collect()
    if GC_TUNED:
        _tune_gc()
    rss0 = _rss_bytes()
    COLLECTIONS.start()
    answers = await _all_at_once(one, n)
    wall, cpu = COLLECTIONS.stop()
    assert all(a for a in answers)
    return {"wall_s": wall, "cpu_s": cpu, "setup_cpu_s": 0.0, "rss0": rss0}


async def _raw_anyio(n: int) -> dict[str, Any]:
    """The same skeleton with no limelight at all: each actor is a plain anyio task reading
    ``(message, reply slot)`` pairs from an anyio memory object stream, the reply an
    ``anyio.Event``. What anyio actors cost, written the way anyio's documentation shows."""
    import anyio
    import msgspec

    from limelight.schemas import CompletionRequest, Message

    provider, lookup = _workload()

    class Slot:
        __slots__ = ("event", "value")

        def __init__(self) -> None:
            self.event = anyio.Event()
            self.value: Any = None

    async def worker(inbox: Any) -> None:
        async for request, slot in inbox:
            with anyio.move_on_after(120):
                slot.value = await provider.complete(request)
            slot.event.set()

    async def executor(inbox: Any) -> None:
        async for calls, slot in inbox:
            outputs: list[str] = [""] * len(calls)

            async def call(k: int, calls: Any = calls, outputs: list[str] = outputs) -> None:
                outputs[k] = await lookup(**msgspec.json.decode(calls[k].arguments))

            async with anyio.create_task_group() as tg:
                for k in range(1, len(calls)):
                    tg.start_soon(call, k)
                await call(0)
            slot.value = outputs
            slot.event.set()

    async def ask(outbox: Any, message: Any) -> Any:
        slot = Slot()
        await outbox.send((message, slot))
        await slot.event.wait()
        return slot.value

    gc.collect()
    rss0 = _rss_bytes()
    async with anyio.create_task_group() as actors:
        cpu_setup = time.process_time()
        outboxes = []
        for _ in range(n):
            to_worker, worker_inbox = anyio.create_memory_object_stream[Any](16)
            to_executor, executor_inbox = anyio.create_memory_object_stream[Any](16)
            actors.start_soon(worker, worker_inbox)
            actors.start_soon(executor, executor_inbox)
            outboxes.append((to_worker, to_executor))
        await anyio.lowlevel.checkpoint()  # the actors reach their first receive
        setup_cpu = time.process_time() - cpu_setup

        async def one(i: int) -> str | None:
            to_worker, to_executor = outboxes[i]
            messages = [Message.system("You look things up."), Message.user(f"task {i}")]
            for _ in range(TURNS):
                request = CompletionRequest(model="scripted", messages=messages)
                result = await ask(to_worker, request)
                messages.append(result.message())
                if not result.tool_calls:
                    return str(result.content)
                outputs = await ask(to_executor, result.tool_calls)
                messages.extend(
                    Message.tool(o, tool_call_id=c.id, name=c.name)
                    for c, o in zip(result.tool_calls, outputs, strict=True)
                )
            return None

        if GC_TUNED:
            _tune_gc()
        COLLECTIONS.start()
        answers = await _all_at_once(one, n)
        wall, cpu = COLLECTIONS.stop()
        assert len(answers) == n
        assert all(answers)
        for to_worker, to_executor in outboxes:
            to_worker.close()
            to_executor.close()
    return {"wall_s": wall, "cpu_s": cpu, "setup_cpu_s": setup_cpu, "rss0": rss0}


async def _skeleton(n: int) -> dict[str, Any]:
    """The floor plus only what an anyio actor design cannot skip, and nothing else: each
    agent's loop is the floor's plain coroutine, but its model call is an ask to an actor of
    its own that runs the call under a timeout scope, and its tool calls an ask to a second
    actor that runs them in a task group (the first call inline, the rest spawned). No
    conversation, no usage or cost, no validation, no supervision beyond the kernel's.
    A lower bound for any design that keeps provider workers and tool executors as actors."""
    import anyio
    import msgspec

    from limelight.runtime import Actor, Context, Runtime
    from limelight.schemas import CompletionRequest, Message

    provider, lookup = _workload()

    class Worker(Actor):
        async def handle(self, message: Any, ctx: Context) -> Any:
            with anyio.move_on_after(120):
                return await provider.complete(message)

    class Executor(Actor):
        async def handle(self, message: Any, ctx: Context) -> Any:
            outputs: list[str] = [""] * len(message)

            async def call(k: int) -> None:
                outputs[k] = await lookup(**msgspec.json.decode(message[k].arguments))

            async with anyio.create_task_group() as tg:
                for k in range(1, len(message)):
                    tg.start_soon(call, k)
                await call(0)
            return outputs

    gc.collect()
    rss0 = _rss_bytes()
    async with Runtime() as rt:
        cpu_setup = time.process_time()
        refs = [
            (await rt.spawn(Worker(), name=f"w{i}"), await rt.spawn(Executor(), name=f"x{i}"))
            for i in range(n)
        ]
        setup_cpu = time.process_time() - cpu_setup

        async def one(i: int) -> str | None:
            worker, executor = refs[i]
            messages = [Message.system("You look things up."), Message.user(f"task {i}")]
            for _ in range(TURNS):
                request = CompletionRequest(model="scripted", messages=messages)
                result = await worker.ask(request)
                messages.append(result.message())
                if not result.tool_calls:
                    return str(result.content)
                outputs = await executor.ask(result.tool_calls)
                messages.extend(
                    Message.tool(o, tool_call_id=c.id, name=c.name)
                    for c, o in zip(result.tool_calls, outputs, strict=True)
                )
            return None

        if GC_TUNED:
            _tune_gc()
        COLLECTIONS.start()
        answers = await _all_at_once(one, n)
        wall, cpu = COLLECTIONS.stop()
        assert len(answers) == n
        assert all(answers)
    return {"wall_s": wall, "cpu_s": cpu, "setup_cpu_s": setup_cpu, "rss0": rss0}


async def _limelight(n: int, collector: str = "default") -> dict[str, Any]:
    """limelight's agents; ``collector`` is the runtime's collector policy: ``"default"``
    (``Runtime()``: the young threshold follows the population), ``"untouched"``
    (``gc_policy=None``: CPython's collector as it is) or ``"freeze"``
    (``GcPolicy(freeze=True)``)."""

    from limelight._models import load_price_lists
    from limelight.actors import ProviderPool
    from limelight.agents import Agent, AgentConfig, AgentResult
    from limelight.runtime import GcPolicy, Runtime
    from limelight.tools import tool

    provider, lookup = _workload()
    lookup_tool = tool(lookup)
    # Process-wide data read once, as imports are (the pool reads it at its start): ~50 MB
    # of RSS, which is no agent's memory.
    load_price_lists()
    gc.collect()
    rss0 = _rss_bytes()
    options: dict[str, dict[str, Any]] = {
        "default": {},  # Runtime() as users write it
        "untouched": {"gc_policy": None},
        "freeze": {"gc_policy": GcPolicy(freeze=True)},
    }
    async with Runtime(**options[collector]) as rt:
        cpu_setup = time.process_time()
        pool = await ProviderPool.start(rt, provider, name="model", size=n)
        agents = [
            Agent(
                model=pool,
                tools=[lookup_tool],
                system="You look things up.",
                config=AgentConfig(max_turns=TURNS),
                name=f"agent-{i}",
            )
            for i in range(n)
        ]
        for agent in agents:
            await rt.spawn(agent, name=agent.name)
        setup_cpu = time.process_time() - cpu_setup
        if GC_TUNED:
            _tune_gc()
        COLLECTIONS.start()
        results: list[AgentResult] = await _all_at_once(lambda i: agents[i].run(f"task {i}"), n)
        wall, cpu = COLLECTIONS.stop()
        assert len(results) == n
        assert all(r.status == "completed" and r.num_turns == TURNS for r in results), {
            r.status for r in results
        }
        actors = rt.statistics().actors
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "setup_cpu_s": setup_cpu,
        "rss0": rss0,
        "actors": actors,
    }


async def _peer(name: str, n: int) -> dict[str, Any]:
    """One agent framework of ``bench/_agent_peers.py`` on the workload: its agents built
    (the setup), then ``n`` runs at once, on asyncio (which every peer requires). One agent
    runs first, unmeasured: the framework's imports, including those it makes on first use,
    are not the agents' memory (limelight's variants import theirs before measuring too)."""
    import asyncio

    from _agent_peers import PEERS, Script

    script = Script(
        turns=TURNS, calls=TOOL_CALLS_PER_TURN, model_delay=MODEL_DELAY, tool_delay=TOOL_DELAY
    )
    _, build = PEERS[name]
    assert await build(1, script)(0) == script.answer
    gc.collect()
    rss0 = _rss_bytes()
    cpu_setup = time.process_time()
    run = build(n, script)
    setup_cpu = time.process_time() - cpu_setup
    if GC_TUNED:
        _tune_gc()
    COLLECTIONS.start()
    answers = await asyncio.gather(*(run(i) for i in range(n)))
    wall, cpu = COLLECTIONS.stop()
    assert all(a == script.answer for a in answers), set(answers)
    return {"wall_s": wall, "cpu_s": cpu, "setup_cpu_s": setup_cpu, "rss0": rss0}


def _peer_versions() -> dict[str, str | None]:
    """The installed version of each peer's distribution (None: not installed)."""
    from _agent_peers import PEERS

    versions: dict[str, str | None] = {}
    for name, (dist, _) in PEERS.items():
        try:
            versions[name] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


async def _pieces() -> dict[str, float]:
    """CPU µs of the primitives one actor-based turn cannot do without, on the running
    backend: the two asks (to a provider worker, to the tool executor), the per-attempt
    timeout scope, and a task group running two tool calls (one spawned, one inline)."""
    import anyio

    from limelight.runtime import Actor, Context, Runtime

    class Echo(Actor):
        async def handle(self, message: Any, ctx: Context) -> Any:
            return message

    async def noop() -> None:
        pass

    async def scope() -> None:
        with anyio.move_on_after(120):
            await noop()  # what the scope bounds (a provider call) runs here

    async def group() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(noop)
            await noop()

    async def time_it(fn: Any, n: int = 20_000) -> float:
        for _ in range(500):
            await fn()
        cpu0 = time.process_time()
        for _ in range(n):
            await fn()
        return (time.process_time() - cpu0) / n * 1e6

    out = {"attempt scope": await time_it(scope), "task group, 2 calls": await time_it(group)}
    async with Runtime() as rt:
        ref = await rt.spawn(Echo(), name="echo")

        async def ask() -> None:
            await ref.ask(None)

        out["ask round trip"] = await time_it(ask)
    return out


async def _limelight_gc_policy(n: int) -> dict[str, Any]:
    """limelight's agents in a runtime that also freezes (``Runtime(gc_policy=GcPolicy(
    freeze=True))``): it freezes after the spawn burst by itself, during the run (its full
    collection included in the run's CPU), instead of the bench tuning the collector."""
    return await _limelight(n, collector="freeze")


async def _limelight_gc_untouched(n: int) -> dict[str, Any]:
    """limelight's agents in a runtime that leaves CPython's collector alone
    (``Runtime(gc_policy=None)``): what the runtime's default policy saves."""
    return await _limelight(n, collector="untouched")


OURS = {
    "floor": _floor,
    "raw-anyio": _raw_anyio,
    "skeleton": _skeleton,
    "limelight": _limelight,
    "limelight-gc-untouched": _limelight_gc_untouched,
    "limelight-gc-policy": _limelight_gc_policy,
}


def _child(variant: str, n: int, backend: str, freeze: bool) -> None:
    import anyio

    global GC_TUNED
    GC_TUNED = freeze
    if variant == "pieces":
        print(json.dumps(anyio.run(_pieces, backend=backend)))
        return
    if variant in OURS:
        out = anyio.run(OURS[variant], n, backend=backend)
    else:
        import _agent_peers  # noqa: F401  (from bench/, before it leaves the path)

        # bench/ is sys.path[0], and this file would shadow openai-agents' `agents` package.
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE.resolve()]
        out = anyio.run(_peer, variant, n, backend=backend)
    out["peak_rss"] = _peak_rss_bytes()
    out.update(COLLECTIONS.figures())
    print(json.dumps(out))


def run_child(script: str, *args: str) -> dict[str, Any]:
    """``script`` run with ``args`` by this interpreter: the JSON object its last line prints."""
    proc = subprocess.run(
        [sys.executable, script, *args], check=True, capture_output=True, text=True
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _run(variant: str, n: int, backend: str, freeze: bool) -> dict[str, Any]:
    flags = ["--gc-tuned"] if freeze else []
    return run_child(__file__, "--child", variant, "--agents", str(n), "--backend", backend, *flags)


def main() -> None:
    from _agent_peers import PEERS

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", choices=[*OURS, *PEERS, "pieces"])
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    parser.add_argument("--gc-tuned", action="store_true")
    parser.add_argument(
        "--only",
        help="comma-separated variants to run (the floor always runs): "
        + ", ".join([*OURS, *PEERS]),
    )
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.agents, args.backend, args.gc_tuned)
        return
    n, runs = (200, 1) if args.quick else (args.agents, args.runs)
    versions = _peer_versions()
    only = set(args.only.split(",")) if args.only else None
    if only is not None and (unknown := only - {*OURS, *PEERS}):
        parser.error(f"unknown variants {sorted(unknown)}; known: {[*OURS, *PEERS]}")
    variants = [
        ("floor", "asyncio", False),
        ("floor", "asyncio", True),
        ("raw-anyio", "asyncio", False),
        ("raw-anyio", "asyncio", True),
        ("skeleton", "asyncio", False),
        ("skeleton", "asyncio", True),
        ("limelight", "asyncio", False),
        ("limelight", "asyncio", True),
        ("limelight-gc-untouched", "asyncio", False),
        ("limelight-gc-policy", "asyncio", False),
        ("limelight", "trio", False),
        ("limelight-gc-untouched", "trio", False),
        ("limelight-gc-policy", "trio", False),
        ("floor", "trio", False),
    ]
    # The peers, on asyncio; in a quick run with their default GC only (a CI smoke run).
    for name, version in versions.items():
        if version is None:
            print(f"{name}: not installed, skipped (pip install -c constraints.txt -e '.[bench]')")
            continue
        variants += [(name, "asyncio", False)] + ([] if args.quick else [(name, "asyncio", True)])
    variants = [v for v in variants if v[0] == "floor" or only is None or v[0] in only]
    # Interleaved rounds: each round runs every variant once, so that a slow or fast spell
    # of the machine (minutes long on a shared one) reaches all variants alike.
    runs_of: dict[tuple[str, str, bool], list[dict[str, Any]]] = {v: [] for v in variants}
    for _ in range(runs):
        for variant, backend, freeze in variants:
            runs_of[(variant, backend, freeze)].append(_run(variant, n, backend, freeze))
    rows: list[dict[str, Any]] = []
    for variant, backend, freeze in variants:
        samples = runs_of[(variant, backend, freeze)]
        turns = n * TURNS

        def med(key: str, samples: list[dict[str, Any]] = samples) -> float:
            return float(statistics.median(s[key] for s in samples))

        rows.append(
            {
                "variant": f"{variant} ({backend}{', gc tuned' if freeze else ''})",
                "name": variant,
                "peer": variant in PEERS,
                "version": versions.get(variant),
                "backend": backend,
                "gc_tuned": freeze,
                "agents": n,
                "wall_s": med("wall_s"),
                "cpu_us_per_turn": med("cpu_s") / turns * 1e6,
                "setup_cpu_us_per_agent": med("setup_cpu_s") / n * 1e6,
                "gc_full_us_per_turn": med("gc_full_s") / turns * 1e6,
                "gc_full_collections": med("gc_full_n"),
                "gc_young_us_per_turn": med("gc_young_s") / turns * 1e6,
                "gc_longest_pause_ms": med("gc_longest_s") * 1e3,
                "bytes_per_agent": statistics.median(
                    (s["peak_rss"] - s["rss0"]) / n for s in samples
                ),
                "actors": samples[0].get("actors"),
                "samples": samples,
            }
        )
    floors = {False: rows[0], True: rows[1]}  # each row is compared with its own GC setting
    print(
        f"{n:,} agents x {TURNS} turns ({TOOL_CALLS_PER_TURN} parallel tool calls on each of the "
        f"first {TURNS - 1}), model delay {MODEL_DELAY} s, tool delay {TOOL_DELAY} s; "
        f"median of {runs} interleaved rounds"
    )
    print(
        f"{'variant':<40} {'wall s':>8} {'CPU µs/turn':>12} {'vs.':>6} {'setup µs/agent':>15} "
        f"{'KiB/agent':>10} {'vs.':>6}  {'of CPU: full GC (n) / young GC µs/turn':>38}"
        f"  {'longest GC pause':>16}"
    )
    for row in rows:
        floor = floors[row["gc_tuned"]]
        print(
            f"{row['variant']:<40} {row['wall_s']:>8.2f} {row['cpu_us_per_turn']:>12.0f} "
            f"{row['cpu_us_per_turn'] / floor['cpu_us_per_turn']:>5.2f}x "
            f"{row['setup_cpu_us_per_agent']:>15.0f} {row['bytes_per_agent'] / 1024:>10.1f} "
            f"{row['bytes_per_agent'] / floor['bytes_per_agent']:>5.2f}x  "
            f"{row['gc_full_us_per_turn']:>25.1f} ({row['gc_full_collections']:.0f}) / "
            f"{row['gc_young_us_per_turn']:<5.1f} {row['gc_longest_pause_ms']:>14.0f} ms"
        )
    # Every row is compared with the asyncio floor (the goals are); on trio, also with the
    # floor written for trio, which shows what trio itself costs this workload.
    trio_floor = next((r for r in rows if r["name"] == "floor" and r["backend"] == "trio"), None)
    for row in rows:
        if trio_floor is not None and row["backend"] == "trio" and row is not trio_floor:
            print(
                f"{row['variant']} vs floor (trio): "
                f"{row['cpu_us_per_turn'] / trio_floor['cpu_us_per_turn']:.2f}x CPU per turn"
            )
    # limelight's agents against the cheapest peer per turn, with the same GC setting.
    # Also the runtime with the collector left alone (gc_policy=None) against the peers with
    # theirs: what the runtime's default policy is not part of.
    vs_peers: dict[str, dict[str, Any]] = {}
    for name, freeze, setting in (
        ("limelight", False, "default gc"),
        ("limelight-gc-untouched", False, "collector untouched"),
        ("limelight", True, "gc tuned"),
    ):
        ours = [r for r in rows if r["name"] == name and r["backend"] == "asyncio"]
        ours = [r for r in ours if r["gc_tuned"] == freeze]
        peers = [r for r in rows if r["peer"] and r["gc_tuned"] == freeze]
        if not ours or not peers:
            continue
        cheapest = min(peers, key=lambda r: r["cpu_us_per_turn"])
        leanest = min(peers, key=lambda r: r["bytes_per_agent"])
        vs_peers[setting] = {
            "cheapest_peer": cheapest["name"],
            "cpu_ratio": cheapest["cpu_us_per_turn"] / ours[0]["cpu_us_per_turn"],
            "leanest_peer": leanest["name"],
            "memory_ratio": leanest["bytes_per_agent"] / ours[0]["bytes_per_agent"],
        }
        print(
            f"limelight vs cheapest peer ({setting}): {vs_peers[setting]['cpu_ratio']:.2f}x less "
            f"CPU per turn than {cheapest['name']} ({cheapest['cpu_us_per_turn']:.0f} µs); "
            f"{vs_peers[setting]['memory_ratio']:.2f}x less memory per agent than "
            f"{leanest['name']} ({leanest['bytes_per_agent'] / 1024:.1f} KiB)"
        )
    # The structural minimum of an actor-based turn: the floor plus what it cannot skip.
    pieces = {b: _run("pieces", 0, b, False) for b in ("asyncio", "trio")}
    tool_turns = (TURNS - 1) / TURNS
    print("\nkernel primitives, CPU µs (one process per backend)")
    for backend, p in pieces.items():
        minimum = (
            2 * p["ask round trip"] + p["attempt scope"] + tool_turns * p["task group, 2 calls"]
        )
        p["minimum over the floor per turn"] = minimum
        print(
            f"  {backend:<8} ask round trip {p['ask round trip']:.1f}, attempt scope "
            f"{p['attempt scope']:.1f}, task group running 2 calls {p['task group, 2 calls']:.1f}: "
            f"{minimum:.0f} µs per turn over the floor at the least"
        )
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"agents-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "python": platform.python_version(),
                "turns": TURNS,
                "tool_calls_per_turn": TOOL_CALLS_PER_TURN,
                "model_delay": MODEL_DELAY,
                "tool_delay": TOOL_DELAY,
                "peer_versions": versions,
                "rows": rows,
                "limelight_vs_peers": vs_peers,
                "pieces": pieces,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
