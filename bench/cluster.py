"""Scale-out: one quota shared by many processes, the cost of a remote ask, scaling over Ray
hosts, and host deaths.

- quota: 4 client processes send one backlog (a full bucket plus ``--seconds`` of refill of
  mixed-size requests, split evenly) to ``limelight sim`` in a process of its own, enforcing
  one RPM/TPM quota (bench/ratelimit.py's server, which counts admissions and 429s itself).
  Clients: limelight with the quota shared through Redis; 4 Ray hosts with the quota shared
  through the Ray quota actor; today's local limiter in each process configured with the whole
  quota, and with a quarter of it each; LiteLLM's Router with its Redis backend on the same
  ``redis-server``. Utilisation is measured by the server: tokens admitted over what the quota
  offered from the first admission to the last.
- overhead: a sequential ask to an actor: local, to the same actor on a Ray host
  (RemoteRef.ask), and a bare Ray actor method call (a plain class: Ray's default actor, one
  call at a time; beside it the same class taking calls at once, ``max_concurrency=1000`` as a
  host does, an async one, and a threaded one that hands each call to an asyncio loop in a
  thread of its own, the leanest such hop), per call; the Ray variants take turns in blocks
  of 100 calls, medians over the blocks.
- scaling: a CPU-bound agent workload (Scripted model and tool, no delays) on 1 and 2 hosts,
  agent turns per second. One remote call carries a slice of 50 agents (3 turns each) and
  its reply their turn count, 2 slices in flight a host, so the driver's share of the CPU is
  a call per ~150 turns; 1 and 2 hosts alternate over 5 rounds, medians. Beside it, in the
  same rounds, the same slices in 1 and 2 plain processes without Ray: the speedup this
  machine allowed two processes at that time (other work shares its cores), and how many
  cores the hosts' processes got. Ray's workers run at nice 0 here, as the plain processes
  and the other work do (Ray's default, 15, lets any other work starve them).
- faults: a host killed with ``kill -9`` under a load of asks, ``--trials`` times: how long
  each ask in flight took to fail with HostDied, and whether the host came back.
- batch faults: ``run_batch(..., cluster=)`` over 2 hosts, ``--trials`` batches of 200 items
  (20 ms each, 8 at a time), one host killed with ``kill -9`` in each after a random number
  of items finished: items lost and lines duplicated in the checkpoint (both should be 0),
  items run again, how long after the kill their calls failed with HostDied, and the
  batch's time against the same batch with no kill.

    python bench/cluster.py                  # everything (several minutes)
    python bench/cluster.py --only quota     # one section
    python bench/cluster.py --quick          # CI smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.metadata
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import msgspec

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

import ratelimit as rl  # noqa: E402  (bench/ratelimit.py: the counting server, the workload)

PROCESSES = 4
TPM = rl.TPM
RPM = rl.RPM


# -- quota: the client processes ------------------------------------------------------


def share(seconds: float, index: int) -> list[tuple[str, int]]:
    """Process ``index``'s part of the backlog."""
    return rl.workload(seconds)[index::PROCESSES]


async def run_limelight_client(
    url: str, requests: list[tuple[str, int]], *, tpm: int, rpm: int, shared: Any
) -> dict[str, Any]:
    from limelight._buckets import DeploymentLimits
    from limelight.actors import ProviderPool
    from limelight.actors._ratelimit import GetStatistics, RateLimiter, RateLimitHook
    from limelight.errors import RateLimited
    from limelight.providers import OpenAICompatible
    from limelight.runtime import RetryPolicy, Runtime
    from limelight.schemas import CompletionRequest, Message
    from limelight.sim import estimate_prompt_tokens

    failures: list[str] = []
    limited = 0
    async with Runtime() as rt:
        limiter = await RateLimiter.start(
            rt, {"sim": DeploymentLimits(rpm=rpm, tpm=tpm)}, environ={}, shared=shared
        )
        pool = await ProviderPool.start(
            rt,
            OpenAICompatible(url),
            name="sim",
            size=64,
            retry=RetryPolicy(attempts=8, initial_delay=0.5, max_delay=10.0),
            hooks=[RateLimitHook(limiter, estimator=estimate_prompt_tokens)],
        )

        async def one(prompt: str, max_tokens: int) -> None:
            nonlocal limited
            try:
                await pool.complete(
                    CompletionRequest(messages=[Message.user(prompt)], max_tokens=max_tokens)
                )
            except RateLimited:
                limited += 1
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {str(exc)[:200]}")

        async with anyio.create_task_group() as tg:
            for prompt, max_tokens in requests:
                tg.start_soon(one, prompt, max_tokens)
        stats = (await limiter.ask(GetStatistics())).deployments["sim"]
    if shared is not None:
        await shared.aclose()
    return {"client_429s": stats.rate_limited, "failed": len(failures) + limited}


async def run_litellm_redis(
    url: str, requests: list[tuple[str, int]], redis_url: str
) -> dict[str, Any]:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm
    from litellm import Router

    from limelight.caches._resp import parse_redis_url

    address = parse_redis_url(redis_url, where="redis")
    litellm.suppress_debug_info = True
    litellm.telemetry = False
    router = Router(
        model_list=[
            {
                "model_name": "sim",
                "litellm_params": {
                    "model": "openai/sim-1",
                    "api_base": url,
                    "api_key": "sk-bench",
                    "rpm": RPM,
                    "tpm": TPM,
                },
            }
        ],
        redis_host=address.host,
        redis_port=address.port,
        routing_strategy="usage-based-routing-v2",
        enable_pre_call_checks=True,
        num_retries=8,
        retry_after=1,
    )
    failures: list[str] = []
    semaphore = asyncio.Semaphore(64)

    async def one(prompt: str, max_tokens: int) -> None:
        try:
            async with semaphore:
                await router.acompletion(
                    model="sim",
                    messages=[{"role": "user", "content": prompt}],
                    max_tokens=max_tokens,
                )
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {str(exc)[:200]}")

    async with asyncio.TaskGroup() as tg:
        for prompt, max_tokens in requests:
            tg.create_task(one(prompt, max_tokens))
    return {"failed": len(failures), "failures": failures[:2]}


def client_main(variant: str, url: str, seconds: float, index: int, redis_url: str) -> None:
    requests = share(seconds, index)
    start = time.monotonic()
    if variant == "litellm-redis":
        result = asyncio.run(run_litellm_redis(url, requests, redis_url))
    else:
        from limelight.cluster import RedisQuota

        shared = (
            RedisQuota(redis_url, namespace=f"bench:{redis_url}:") if variant == "redis" else None
        )
        tpm, rpm = (
            (TPM // PROCESSES, RPM // PROCESSES) if variant == "local-quarter" else (TPM, RPM)
        )
        result = asyncio.run(run_limelight_client(url, requests, tpm=tpm, rpm=rpm, shared=shared))
    result["wall_s"] = time.monotonic() - start
    print(json.dumps(result), flush=True)


class _RedisServer:
    """A ``redis-server`` on a free port in a temporary folder."""

    def __enter__(self) -> str:
        import socket

        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed: apt-get install redis-server")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.folder = tempfile.TemporaryDirectory()
        self.process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", "--dir", self.folder.name],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.3)
        return f"redis://127.0.0.1:{port}/0"

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.folder.cleanup()


def _utilisation(counts: dict[str, Any], seconds: float) -> dict[str, Any]:
    first, last = counts.get("first"), counts.get("last", 0.0)
    span = (last - first) if first else 0.0
    offered = TPM + TPM / 60 * span
    return {
        "admitted": counts.get("admitted", 0),
        "server_429s": counts.get("refused", 0),
        "utilisation": counts.get("tokens", 0) / offered if first else 0.0,
        "span_s": span,
        "ideal_span_s": seconds,
    }


def run_processes(variant: str, seconds: float, redis_url: str) -> dict[str, Any]:
    with rl.sim(RPM, TPM) as (url, counts):
        start = time.monotonic()
        client = [sys.executable, __file__, "--client", variant, url, str(seconds)]
        processes = [
            subprocess.Popen(
                [*client, str(i), redis_url],
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(PROCESSES)
        ]
        outputs = [p.communicate(timeout=seconds * 10 + 300)[0] for p in processes]
        wall = time.monotonic() - start
    clients = [json.loads(o.strip().splitlines()[-1]) for o in outputs if o.strip()]
    return {
        "variant": variant,
        "wall_s": wall,
        "failed": sum(c.get("failed", 0) for c in clients),
        **_utilisation(counts, seconds),
    }


def run_ray_hosts(seconds: float) -> dict[str, Any]:
    """The same backlog from 4 Ray hosts, each with its own limiter, through the Ray quota
    actor."""
    import ray

    from limelight.cluster import Cluster, RayQuota

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(HERE)}})  # fmt: skip
    try:
        with rl.sim(RPM, TPM) as (url, counts):

            async def main() -> float:
                quota = RayQuota(f"bench-{os.getpid()}")
                async with Cluster.start(PROCESSES, num_cpus=0.5) as cluster:
                    refs = [
                        await cluster.spawn(_Backlog, name="backlog", host=i)
                        for i in range(PROCESSES)
                    ]
                    start = time.monotonic()
                    async with anyio.create_task_group() as tg:
                        for i, ref in enumerate(refs):
                            tg.start_soon(
                                ref.ask, Run(url=url, seconds=seconds, index=i, quota=quota.name)
                            )
                    return time.monotonic() - start

            wall = anyio.run(main)
    finally:
        ray.shutdown()
    return {"variant": "ray-hosts", "wall_s": wall, "failed": 0, **_utilisation(counts, seconds)}


class Run(msgspec.Struct, frozen=True, kw_only=True):
    """To a host: send its share of the backlog through the Ray quota actor."""

    url: str
    seconds: float
    index: int
    quota: str


# Named by the module the hosts import (bench/ is on their PYTHONPATH), not __main__.
Run.__module__ = "cluster"


def _backlog_actor() -> Any:
    from limelight.runtime import Actor, Context

    class Backlog(Actor):
        async def handle(self, message: Any, ctx: Context) -> Any:
            from limelight.cluster import RayQuota

            requests = share(message.seconds, message.index)
            return await run_limelight_client(
                message.url, requests, tpm=TPM, rpm=RPM, shared=RayQuota(message.quota)
            )

    return Backlog


_Backlog = _backlog_actor()


def quota_section(seconds: float) -> list[dict[str, Any]]:
    rows = []
    with _RedisServer() as redis_url:
        for variant in ("redis", "local-full", "local-quarter", "litellm-redis"):
            print(f"  quota: {variant} ...", file=sys.stderr, flush=True)
            rows.append(run_processes(variant, seconds, redis_url))
    print("  quota: ray-hosts ...", file=sys.stderr, flush=True)
    rows.append(run_ray_hosts(seconds))
    return rows


# -- overhead, scaling, faults (on Ray hosts) ------------------------------------------


def _work_actor() -> Any:
    from limelight.runtime import Actor, Context

    class Echo(Actor):
        async def handle(self, message: Any, ctx: Context) -> Any:
            return message

    class BareEcho:
        """What a user writes as a bare Ray actor: a class with a method (Ray's default
        threaded actor, one call at a time)."""

        def echo(self, message: Any) -> Any:
            return message

    class BareAsyncEcho:
        """The same as a Ray async actor (calls on Ray's asyncio loop, many at once): the
        kind of Ray actor a host on asyncio was until stop 34 (now a threaded one, as on
        trio, with a hop of its own to the Runtime's loop)."""

        async def echo(self, message: Any) -> Any:
            return message

    class HopEcho:
        """A threaded Ray actor with an asyncio loop in a thread of its own, each call handed
        to that loop and waited for with the leanest hop there is (``call_soon_threadsafe``
        and a ``concurrent.futures.Future``): the least a host whose Runtime keeps its own
        loop could pay per call on top of Ray's threaded dispatch."""

        def __init__(self) -> None:
            import asyncio
            import threading

            self.loop = asyncio.new_event_loop()
            threading.Thread(target=self.loop.run_forever, daemon=True).start()

        def echo(self, message: Any) -> Any:
            import concurrent.futures

            done: concurrent.futures.Future[Any] = concurrent.futures.Future()
            self.loop.call_soon_threadsafe(done.set_result, message)
            return done.result()

    return Echo, BareEcho, BareAsyncEcho, HopEcho


Echo, BareEcho, BareAsyncEcho, HopEcho = _work_actor()

#: Calls per block of the overhead section; the variants take turns block by block, so
#: that a change in the machine's load touches them alike.
BLOCK = 100


async def overhead(calls: int) -> dict[str, Any]:
    import ray

    from limelight.cluster import Cluster
    from limelight.runtime import Runtime

    async with Runtime() as rt:
        local = await rt.spawn(Echo, name="echo")
        await local.ask("warm")
        t0 = time.perf_counter()
        for i in range(calls):
            await local.ask(i)
        local_us = (time.perf_counter() - t0) / calls * 1e6
    # A quarter of a CPU each, so that the four and the host fit a 2-core machine's Ray.
    bare = ray.remote(num_cpus=0.25)(BareEcho).remote()
    bare_async = ray.remote(num_cpus=0.25)(BareAsyncEcho).remote()
    hop = ray.remote(num_cpus=0.25)(HopEcho).remote()
    concurrent = ray.remote(num_cpus=0.25, max_concurrency=1000)(BareEcho).remote()
    try:
        async with Cluster.start(1, num_cpus=0.5) as cluster:
            remote = await cluster.spawn(Echo, name="echo")
            variants = {
                "remote_ask": remote.ask,
                "bare_ray_call": lambda i: bare.echo.remote(i),
                "bare_ray_concurrent_call": lambda i: concurrent.echo.remote(i),
                "bare_ray_async_call": lambda i: bare_async.echo.remote(i),
                "threaded_hop_call": lambda i: hop.echo.remote(i),
            }
            for call in variants.values():  # warm up
                for i in range(20):
                    await call(i)
            blocks: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(max(1, calls // BLOCK)):
                for name, call in variants.items():
                    t0 = time.perf_counter()
                    for i in range(BLOCK):
                        await call(i)
                    blocks[name].append((time.perf_counter() - t0) / BLOCK * 1e6)
    finally:
        for actor in (bare, bare_async, hop, concurrent):
            ray.kill(actor)
    us = {name: statistics.median(values) for name, values in blocks.items()}
    return {
        "calls_each": len(blocks["remote_ask"]) * BLOCK,
        "local_ask_us": local_us,
        "remote_ask_us": us["remote_ask"],
        "bare_ray_call_us": us["bare_ray_call"],
        "bare_ray_async_call_us": us["bare_ray_async_call"],
        "bare_ray_concurrent_call_us": us["bare_ray_concurrent_call"],
        "threaded_hop_call_us": us["threaded_hop_call"],
        "concurrent_vs_bare": us["bare_ray_concurrent_call"] / us["bare_ray_call"],
        "remote_vs_bare": us["remote_ask"] / us["bare_ray_call"],
        "hop_vs_bare": us["threaded_hop_call"] / us["bare_ray_call"],
        "remote_vs_bare_async": us["remote_ask"] / us["bare_ray_async_call"],
    }


#: Agents one remote call of the scaling section runs on its host (3 turns each): the call
#: carries the number, the reply the turns run.
SLICE = 50
#: Slices in flight per host, so that a host never waits for the driver between two.
IN_FLIGHT = 2


def _agents_actor() -> Any:
    from limelight.runtime import Actor, Context

    class Agents(Actor):
        """Runs ``n`` agents at once, each 3 turns (2 tool calls a turn) on a Scripted
        model, no delays; replies with the turns run. Its provider pool lives as long as
        the actor."""

        async def on_start(self, ctx: Context) -> None:
            from limelight.actors import ProviderPool
            from limelight.providers._scripted import Reply, Scripted
            from limelight.schemas import CompletionRequest, ToolCall
            from limelight.tools import tool

            def answer(request: CompletionRequest) -> Reply:
                turn = sum(1 for m in request.messages if m.role == "assistant")
                if turn < 2:
                    calls = [
                        ToolCall(id=f"t{turn}-{k}", name="lookup", arguments='{"key": "k"}')
                        for k in range(2)
                    ]
                    return Reply(tool_calls=calls)
                return Reply(text="done")

            def lookup(key: str) -> str:
                """Look a key up.

                :param key: the key.
                """
                return key

            self.pool = await ProviderPool.start(
                ctx.runtime, Scripted(answer), name="model", size=64
            )
            self.tools = [tool(lookup)]

        async def handle(self, message: Any, ctx: Context) -> Any:
            from limelight.agents import Agent, AgentConfig

            if message == "cpu":  # the host process's CPU time so far
                return time.process_time()
            turns = 0

            async def one(i: int) -> None:
                nonlocal turns
                agent = Agent(model=self.pool, tools=self.tools, config=AgentConfig(max_turns=3))
                result = await agent.run(f"task {i}")
                turns += result.num_turns  # after the await: ``+=`` would read turns before it

            async with anyio.create_task_group() as tg:
                for i in range(int(message)):
                    tg.start_soon(one, i)
            return turns

    return Agents


Agents = _agents_actor()


async def _drive(refs: list[Any], agents: int) -> tuple[int, float, float]:
    """Run ``agents`` in slices over ``refs`` (each host takes the next slice when one of
    its own finishes); the turns run, the wall time, and the driver's CPU time."""
    slices = [SLICE] * (agents // SLICE) + ([agents % SLICE] if agents % SLICE else [])
    turns = 0

    async def feed(ref: Any) -> None:
        nonlocal turns
        while slices:
            run = await ref.ask(slices.pop(), timeout=600)
            turns += run

    t0, cpu0 = time.perf_counter(), time.process_time()
    async with anyio.create_task_group() as tg:
        for ref in refs:
            for _ in range(IN_FLIGHT):
                tg.start_soon(feed, ref)
    return turns, time.perf_counter() - t0, time.process_time() - cpu0


def scaling_child(agents: int) -> None:
    """One plain process (no Ray) running ``agents`` agents in slices, as a host does, once
    the parent says go; prints its turns and when it started and ended."""
    from limelight.runtime import Runtime

    async def main() -> None:
        async with Runtime() as rt:
            ref = await rt.spawn(Agents, name="agents")
            await ref.ask(SLICE, timeout=120)  # warm up
            print("ready", flush=True)
            await anyio.to_thread.run_sync(sys.stdin.readline)
            start = time.time()
            turns, _, _ = await _drive([ref], agents)
            print(json.dumps({"turns": turns, "start": start, "end": time.time()}), flush=True)

    anyio.run(main)


def _plain_processes(count: int, agents: int) -> float:
    """Turns/s of ``agents`` agents split over ``count`` plain processes started at once."""
    command = [sys.executable, __file__, "--scaling-child", str(agents // count)]
    children = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            while child.stdout.readline().strip() != "ready":
                pass
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        runs = []
        for child in children:
            assert child.stdout is not None
            line = child.stdout.readline()
            while not line.startswith("{"):
                line = child.stdout.readline()
            runs.append(json.loads(line))
    finally:
        for child in children:
            child.wait(60)
    wall = max(r["end"] for r in runs) - min(r["start"] for r in runs)
    return sum(r["turns"] for r in runs) / wall


async def scaling(agents: int, rounds: int = 5) -> dict[str, Any]:
    """``agents`` agents on 1 host, then on 2 (the order alternating), ``rounds`` times, in
    one cluster of 2 hosts (the 1-host runs leave host 1 idle); medians of turns/s. In the
    same rounds, the same work in 1 and 2 plain processes (no Ray): what the machine gave two
    processes at that time."""
    from limelight.cluster import Cluster

    rates: dict[int, list[float]] = {1: [], 2: []}
    plain: dict[int, list[float]] = {1: [], 2: []}
    cores: dict[int, list[float]] = {1: [], 2: []}
    driver_cpu: list[float] = []
    calls = 0
    async with Cluster.start(2, num_cpus=1) as cluster:
        refs = [await cluster.spawn(Agents, name="agents", host=i) for i in range(2)]
        for ref in refs:  # warm up: imports, the pool, first agents
            await ref.ask(SLICE, timeout=120)
        for round_ in range(rounds):
            for hosts in (1, 2) if round_ % 2 == 0 else (2, 1):
                before = [await ref.ask("cpu") for ref in refs]
                turns, wall, cpu = await _drive(refs[:hosts], agents)
                after = [await ref.ask("cpu") for ref in refs]
                assert turns == agents * 3, turns
                rates[hosts].append(turns / wall)
                cores[hosts].append((sum(after) - sum(before)) / wall)
                plain[hosts].append(await anyio.to_thread.run_sync(_plain_processes, hosts, agents))
                driver_cpu.append(cpu)
                calls += -(-agents // SLICE)
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    return {
        "agents": agents,
        "rounds": rounds,
        "one_call_carries": f"{SLICE} agents ({SLICE * 3} turns); the reply: the turn count",
        "calls_in_flight_per_host": IN_FLIGHT,
        "turns_per_s_1_host": one,
        "turns_per_s_2_host": two,
        "speedup": two / one,
        "per_round_1_host": [round(r) for r in rates[1]],
        "per_round_2_host": [round(r) for r in rates[2]],
        # CPU seconds the host processes used per second of wall time: how much of the 2
        # cores they got.
        "host_cores_used_1_host": statistics.median(cores[1]),
        "host_cores_used_2_host": statistics.median(cores[2]),
        "driver_cpu_ms_per_call": sum(driver_cpu) / calls * 1e3,
        "plain_processes_turns_per_s_1": statistics.median(plain[1]),
        "plain_processes_turns_per_s_2": statistics.median(plain[2]),
        "plain_processes_speedup": statistics.median(plain[2]) / statistics.median(plain[1]),
    }


async def faults(trials: int) -> dict[str, Any]:
    from limelight.cluster import Cluster
    from limelight.errors import HostDied

    latencies: list[float] = []
    typed = untyped = recovered = 0
    # Every trial restarts the host: allow that many restarts (the default intensity, 3 in a
    # minute, would give the host up, as a local supervisor does).
    async with Cluster.start(2, num_cpus=0.5, max_restarts=trials) as cluster:
        ref = await cluster.spawn(_Sleeper, name="sleeper", host=0)
        for _ in range(trials):
            pid = await cluster.pid(0)
            killed: list[float] = []

            async def ask(killed: list[float] = killed) -> None:
                nonlocal typed, untyped
                try:
                    await ref.ask(30.0, timeout=60)
                except HostDied:
                    typed += 1
                    latencies.append(time.perf_counter() - killed[0])
                except Exception:
                    untyped += 1

            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(ask)
                await anyio.sleep(0.5)
                killed.append(time.perf_counter())
                os.kill(pid, signal.SIGKILL)
            with anyio.fail_after(60):
                while True:
                    try:
                        await ref.ask(0.0, timeout=30)
                        recovered += 1
                        break
                    except HostDied:
                        await anyio.sleep(0.1)
    return {
        "trials": trials,
        "asks_in_flight": trials * 8,
        "host_died_errors": typed,
        "other_errors": untyped,
        "fail_p50_s": statistics.median(latencies) if latencies else None,
        "fail_max_s": max(latencies) if latencies else None,
        "recovered": recovered,
    }


def _sleeper_actor() -> Any:
    from limelight.runtime import Actor, Context

    class Sleeper(Actor):
        async def handle(self, message: Any, ctx: Context) -> Any:
            await anyio.sleep(float(message))
            return "slept"

    return Sleeper


_Sleeper = _sleeper_actor()


async def _batch_item(n: int) -> int:
    await anyio.sleep(0.02)
    return n


async def batch_faults(trials: int) -> dict[str, Any]:
    import structlog

    from limelight.batch import run_batch
    from limelight.cluster import Cluster

    items = 60 if trials < 10 else 200
    # When the batch saw each item's host die under it: its log line, timed here.
    noticed: list[float] = []

    def stamp(logger: Any, method: str, event: Any) -> Any:
        if str(event.get("event", "")).startswith("a batch item's host died"):
            noticed.append(time.perf_counter())
        raise structlog.DropEvent

    structlog.configure(processors=[stamp])
    rows: list[dict[str, Any]] = []
    latencies: list[float] = []
    rng = random.Random(7)
    try:
        async with Cluster.start(2, num_cpus=0.5, max_restarts=trials + 1) as cluster:
            with tempfile.TemporaryDirectory() as folder:
                t0 = time.perf_counter()
                await run_batch(range(items), _batch_item, concurrency=8, cluster=cluster,
                                checkpoint=Path(folder) / "baseline.jsonl")  # fmt: skip
                baseline = time.perf_counter() - t0
                for trial in range(trials):
                    noticed.clear()
                    row, killed_at = await _batch_fault_trial(
                        cluster,
                        Path(folder) / f"trial-{trial}.jsonl",
                        items,
                        host=rng.randrange(2),
                        kill_after=rng.randrange(items // 10, items * 3 // 4),
                    )
                    rows.append(row)
                    latencies += [t - killed_at for t in noticed]
    finally:
        structlog.reset_defaults()
    walls = [r["wall_s"] for r in rows]
    return {
        "trials": trials,
        "items_per_batch": items,
        "items_lost": sum(r["lost"] for r in rows),
        "duplicated_lines": sum(r["duplicated_lines"] for r in rows),
        "items_failed": sum(r["failed"] for r in rows),
        "requeued": sum(r["requeued"] for r in rows),
        "host_died_p50_s": statistics.median(latencies) if latencies else None,
        "host_died_max_s": max(latencies) if latencies else None,
        "baseline_wall_s": baseline,
        "wall_p50_s": statistics.median(walls),
        "wall_p50_vs_baseline": statistics.median(walls) / baseline,
        "per_trial": rows,
    }


async def _batch_fault_trial(
    cluster: Any, checkpoint: Path, items: int, *, host: int, kill_after: int
) -> tuple[dict[str, Any], float]:
    """One batch, ``host`` killed once ``kill_after`` items finished; its row, and when the
    kill was sent."""
    from limelight.batch import run_batch

    pid = await cluster.pid(host)  # waits for the last trial's restart
    enough = anyio.Event()
    done = 0
    killed_at = 0.0

    def progress(_item: Any) -> None:
        nonlocal done
        done += 1
        if done == kill_after:
            enough.set()

    async def kill() -> None:
        nonlocal killed_at
        await enough.wait()
        killed_at = time.perf_counter()
        os.kill(pid, signal.SIGKILL)

    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(kill)
        report = await run_batch(
            range(items), _batch_item, concurrency=8, cluster=cluster, checkpoint=checkpoint,
            on_item=progress,
        )  # fmt: skip
    wall = time.perf_counter() - t0
    keys = _checkpoint_keys(checkpoint)
    row = {
        "host": host,
        "killed_after_items": kill_after,
        "lost": items - len(set(keys) & {str(n) for n in range(items)}),
        "duplicated_lines": len(keys) - len(set(keys)),
        "requeued": report.requeued,
        "failed": report.failed,
        "wall_s": wall,
    }
    return row, killed_at


def _checkpoint_keys(checkpoint: Path) -> list[str]:
    lines = checkpoint.read_bytes().splitlines()
    return [msgspec.json.decode(line)["key"] for line in lines if line.strip()]


def ray_sections(args: argparse.Namespace) -> dict[str, Any]:
    import ray

    # Ray starts its workers (the hosts, the bare actors) at nice 15; on a machine shared with
    # other work at nice 0 that starves them, and the plain processes beside them run at 0.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(HERE)}},
             _system_config={"worker_niceness": 0})  # fmt: skip
    out: dict[str, Any] = {}
    sections = {
        "overhead": (overhead, 200 if args.quick else 2_000),
        "scaling": (
            functools.partial(scaling, rounds=1 if args.quick else 5),
            200 if args.quick else 3_000,
        ),
        "faults": (faults, 2 if args.quick else args.trials),
        "batch_faults": (batch_faults, 2 if args.quick else args.trials),
    }
    try:
        for name, (run, size) in sections.items():
            if args.only in (None, name):
                print(f"  {name} ...", file=sys.stderr, flush=True)
                try:
                    out[name] = anyio.run(run, size)
                except Exception as exc:  # one section's failure is reported, not fatal
                    out[name] = {"error": repr(exc)[:500]}
                print(f"  {name}: {json.dumps(out[name])}", file=sys.stderr, flush=True)
    finally:
        ray.shutdown()
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--scaling-child":
        scaling_child(int(sys.argv[2]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        variant, url, seconds, index, redis_url = sys.argv[2:7]
        client_main(variant, url, float(seconds), int(index), redis_url)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", choices=["quota", "overhead", "scaling", "faults", "batch_faults"]
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="refill in the backlog")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seconds = 5.0 if args.quick else args.seconds
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "versions": {
            name: importlib.metadata.version(name) for name in ("ray", "litellm", "limelight")
        },
    }
    if args.only in (None, "quota"):
        results["quota"] = quota_section(seconds)
        print(summarise({"quota": results["quota"]}), file=sys.stderr, flush=True)
    if args.only != "quota":
        results.update(ray_sections(args))
    print(summarise(results))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cluster.json").write_text(json.dumps(results, indent=2))


def summarise(results: dict[str, Any]) -> str:
    lines = []
    if "quota" in results:
        lines.append(
            f"{'quota: 4 processes':<22} {'util':>6} {'429s':>6} {'failed':>7} {'span':>7}"
        )
        for row in results["quota"]:
            lines.append(
                f"{row['variant']:<22} {row['utilisation']:>6.1%} {row['server_429s']:>6} "
                f"{row['failed']:>7} {row['span_s']:>6.1f}s"
            )
    for section in ("overhead", "scaling", "faults", "batch_faults"):
        if section in results:
            shown = {k: v for k, v in results[section].items() if k != "per_trial"}
            lines.append(f"{section}: " + json.dumps(shown))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
