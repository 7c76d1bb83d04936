"""Response-cache benchmark: what a hit and a miss cost the calling process, for each of
limelight's caches (memory, SQLite, Redis, PostgreSQL + Redis, Qdrant) beside LiteLLM's Redis
cache, on the same loopback ``redis-server`` in the same run.

The servers are real and started here (``redis-server`` with no persistence, a PostgreSQL
cluster made by ``initdb``; see ``tests/caches/_servers.py``). Qdrant runs in qdrant-client's
local mode (in process; no server binary can be had here), with a local hashing embedder
(async, in the loop) whose cost is included in its rows.

Per operation, sequential in one task: wall µs and CPU µs (``time.process_time()`` of this
process, worker threads included; the servers' own CPU is not, except the ``srv`` column:
``redis-server``'s CPU per operation, from /proc). Medians of the runs.

- **hit**: the cache layer answering a stored request: limelight's
  ``cache.get(cache_key(request))`` → a ``CompletionResult`` (Qdrant: ``get_for(request)``);
  LiteLLM's ``Cache.async_get_cache(model=, messages=)`` → the stored dict.
- **hit, as a call**: what a hit adds to a call, up to the response object the caller gets:
  ``CachingProvider.complete(request)`` answered from the cache; LiteLLM's
  ``async_get_cache`` then ``convert_to_model_response_object`` (the two steps its hit path
  takes to a ``ModelResponse``; its logging callbacks left out). A whole
  ``litellm.acompletion(..., caching=True)`` hit cannot run here: litellm 1.106's hit path
  imports its proxy server (fastapi), which is not installed.
- **miss**: a lookup that finds nothing, then the store of the answer (limelight ``get`` +
  ``set``; LiteLLM ``async_get_cache`` + ``async_add_cache``).

    python bench/cache.py            # full run: medians of 5 runs, 2,000 operations each
    python bench/cache.py --quick    # CI smoke run: 1 run, 200 operations
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import anyio

HERE = Path(__file__).parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE.parent))  # the servers' helpers live with the tests

from limelight.cache import (  # noqa: E402
    CachingProvider,
    MemoryCache,
    PostgresRedisCache,
    QdrantSemanticCache,
    RedisCache,
    SQLiteCache,
    cache_key,
)
from limelight.schemas import CompletionRequest, CompletionResult, Message, Usage  # noqa: E402
from tests.caches._servers import postgres_server, redis_server  # noqa: E402

QUESTION = "What is the capital of France, and what is it known for?"
ANSWER = "Paris is the capital of France. " * 12  # ~400 characters, as a short answer
MODEL = "gpt-4o-mini"

Op = Callable[[int], Awaitable[object]]


def request(text: str = QUESTION) -> CompletionRequest:
    return CompletionRequest(model=MODEL, messages=[Message.user(text)], max_tokens=200)


SALT = uuid.uuid4().hex[:6]
RUN = [0]  # bumped by each run, so no run finds another's entries


def miss_text(i: int) -> str:
    """A question no cache has seen: new words (a semantic cache would find the stored
    question with a suffix), as long as the stored one, cheap to make (it is timed)."""
    return " ".join(f"{SALT}{RUN[0]}x{i}{letter}" for letter in "abcdefghij")


RESULT = CompletionResult(
    content=ANSWER, model=MODEL, usage=Usage.of(16, 96), finish_reason="stop", cost=0.0001
)


async def hashing_embedder(text: str) -> list[float]:
    """Words hashed into 256 dimensions, normalised (no model: the cache is measured)."""
    vector = [0.0] * 256
    for word in text.lower().split():
        vector[int(hashlib.blake2b(word.encode(), digest_size=2).hexdigest(), 16) % 256] += 1
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


class NoCall:
    """The backend of a caching provider measured on hits: a call would be a bug."""

    name = "none"
    model = MODEL

    async def complete(self, req: CompletionRequest) -> CompletionResult:
        raise AssertionError("a hit must not call the backend")

    async def aclose(self) -> None:
        return None


# -- the subjects: each gives (hit, hit as a call, miss) operations --------------------------


@dataclass
class Subject:
    name: str
    prepare: Callable[[], Awaitable[None]]  # stores the entry the hits find
    hit: Op
    call: Op
    miss: Op
    close: Callable[[], Awaitable[None]]


def limelight_subject(name: str, cache: Any, semantic: bool = False) -> Subject:
    stored = request()
    key = cache_key(stored)
    model = CachingProvider(NoCall(), cache)  # type: ignore[arg-type]

    async def hit(i: int) -> object:
        found = await (cache.get_for(stored) if semantic else cache.get(key))
        assert found is not None, f"{name}: no hit"
        return found

    async def call(i: int) -> object:
        found = await model.complete(stored)
        assert found.metadata["cache"] == "hit"
        return found

    async def miss(i: int) -> object:
        fresh = request(miss_text(i))
        if semantic:
            assert await cache.get_for(fresh) is None
            await cache.set_for(fresh, RESULT)
        else:
            fresh_key = cache_key(fresh)
            assert await cache.get(fresh_key) is None
            await cache.set(fresh_key, RESULT)
        return None

    async def close() -> None:
        closing = getattr(cache, "aclose", None) or getattr(cache, "close", None)
        outcome = closing() if closing is not None else None  # a MemoryCache has nothing
        if outcome is not None:
            await outcome

    async def prepare() -> None:
        if semantic:
            await cache.set_for(stored, RESULT)
        else:
            await cache.set(key, RESULT)

    return Subject(name, prepare, hit, call, miss, close)


def litellm_subject(port: int) -> Subject:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm
    from litellm.caching.caching import Cache
    from litellm.utils import convert_to_model_response_object

    cache = Cache(type="redis", host="127.0.0.1", port=str(port), namespace="litellm-bench")
    messages = [{"role": "user", "content": QUESTION}]
    response = litellm.ModelResponse(
        model=MODEL,
        choices=[{"message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
        usage={"prompt_tokens": 16, "completion_tokens": 96, "total_tokens": 112},
    )

    async def hit(i: int) -> object:
        found = await cache.async_get_cache(model=MODEL, messages=messages)
        assert found is not None, "litellm: no hit"
        return found

    async def call(i: int) -> object:
        found = await cache.async_get_cache(model=MODEL, messages=messages)
        assert isinstance(found, dict)
        return convert_to_model_response_object(
            response_object=found, model_response_object=litellm.ModelResponse()
        )

    async def miss(i: int) -> object:
        fresh = [{"role": "user", "content": miss_text(i)}]
        assert await cache.async_get_cache(model=MODEL, messages=fresh) is None
        await cache.async_add_cache(response, model=MODEL, messages=fresh)
        return None

    async def close() -> None:
        await cache.cache.disconnect()  # type: ignore[union-attr]

    async def prepare() -> None:
        await cache.async_add_cache(response, model=MODEL, messages=messages)

    return Subject("LiteLLM Redis", prepare, hit, call, miss, close)


# -- measuring -------------------------------------------------------------------------------


def server_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(op: Op, n: int, redis_pid: int | None) -> dict[str, float]:
    for i in range(max(10, n // 10)):  # warm: connections, prepared statements, lazies
        await op(-1 - i)
    srv0, cpu0, wall0 = server_cpu(redis_pid), time.process_time(), time.perf_counter()
    for i in range(n):
        await op(i)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    srv = server_cpu(redis_pid) - srv0
    return {"wall_us": wall / n * 1e6, "cpu_us": cpu / n * 1e6, "srv_us": srv / n * 1e6}


async def run_once(
    backend: str, n: int, redis_url: str, redis_pid: int, pg_dsn: str, tmp: Path, with_litellm: bool
) -> dict[str, dict[str, dict[str, float]]]:
    RUN[0] += 1
    subjects = [
        limelight_subject("memory", MemoryCache(max_entries=None)),
        limelight_subject("SQLite", SQLiteCache(tmp / f"cache-{backend}-{time.time_ns()}.db")),
        limelight_subject("Redis", RedisCache(redis_url, namespace=f"bench:{backend}:")),
        limelight_subject(
            "PostgreSQL + Redis",
            PostgresRedisCache(pg_dsn, redis_url, table=f"bench_{backend}"),
        ),
        limelight_subject(
            "Qdrant (local mode)",
            QdrantSemanticCache(location=":memory:", embedder=hashing_embedder, threshold=0.95),
            semantic=True,
        ),
    ]
    if with_litellm:
        subjects.append(litellm_subject(int(redis_url.rsplit(":", 1)[1].split("/")[0])))
    out: dict[str, dict[str, dict[str, float]]] = {}
    uses_redis = {"Redis", "PostgreSQL + Redis", "LiteLLM Redis"}
    for subject in subjects:
        await subject.prepare()
        pid = redis_pid if subject.name in uses_redis else None
        rows = {
            "hit": await measure(subject.hit, n, pid),
            "call": await measure(subject.call, n, pid),
            "miss": await measure(subject.miss, max(20, n // 4), pid),
        }
        await subject.close()
        out[subject.name] = rows
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 run, 200 operations (CI)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("-n", type=int, default=2000, help="operations per measure")
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    n = 200 if args.quick else args.n
    per_run: dict[str, list[dict[str, dict[str, dict[str, float]]]]] = {
        "asyncio": [],
        "trio": [],
    }
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        redis = stack.enter_context(redis_server(tmp / "redis"))
        postgres = stack.enter_context(postgres_server())
        for _ in range(runs):
            for backend in ("asyncio", "trio"):
                per_run[backend].append(
                    anyio.run(
                        run_once,
                        backend,
                        n,
                        redis.url,
                        redis.process.pid,
                        postgres.dsn,
                        tmp,
                        backend == "asyncio",  # LiteLLM's async cache runs on asyncio only
                        backend=backend,
                    )
                )
    results: dict[str, Any] = {
        "runs": runs,
        "operations": n,
        "python": platform.python_version(),
        "versions": {
            name: metadata.version(name)
            for name in ("anyio", "trio", "litellm", "redis", "psycopg", "qdrant-client")
        },
        "median": {},
        "per_run": per_run,
    }
    for backend, all_runs in per_run.items():
        table: dict[str, dict[str, dict[str, float]]] = {}
        for subject in all_runs[0]:
            table[subject] = {
                kind: {
                    figure: statistics.median(r[subject][kind][figure] for r in all_runs)
                    for figure in all_runs[0][subject][kind]
                }
                for kind in all_runs[0][subject]
            }
        results["median"][backend] = table
    print_table(results, runs)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"cache{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


def figure(us: float) -> str:
    return f"{us:.1f}" if us < 10 else f"{us:,.0f}"


def print_table(results: dict[str, Any], runs: int) -> None:
    print(f"cache benchmark (loopback servers; medians of {runs}; µs per operation)")
    head = (
        f"{'subject':<22} {'loop':<8} {'hit wall':>9} {'hit CPU':>8} {'srv':>5} "
        f"{'call CPU':>9} {'miss wall':>10} {'miss CPU':>9}"
    )
    print(head)
    for backend, table in results["median"].items():
        for subject, rows in table.items():
            hit, call, miss = rows["hit"], rows["call"], rows["miss"]
            srv = figure(hit["srv_us"]) if hit["srv_us"] else ""
            print(
                f"{subject:<22} {backend:<8} {figure(hit['wall_us']):>9} "
                f"{figure(hit['cpu_us']):>8} {srv:>5} {figure(call['cpu_us']):>9} "
                f"{figure(miss['wall_us']):>10} {figure(miss['cpu_us']):>9}"
            )
    ours = results["median"]["asyncio"]["Redis"]
    theirs = results["median"]["asyncio"]["LiteLLM Redis"]
    hit_ratio = ours["hit"]["cpu_us"] / theirs["hit"]["cpu_us"]
    call_ratio = ours["call"]["cpu_us"] / theirs["call"]["cpu_us"]
    miss_ratio = ours["miss"]["cpu_us"] / theirs["miss"]["cpu_us"]
    results["ratios"] = {"hit_cpu": hit_ratio, "call_cpu": call_ratio, "miss_cpu": miss_ratio}
    print(
        f"limelight Redis vs LiteLLM Redis, CPU per op (asyncio): hit {hit_ratio:.2f}x, "
        f"hit as a call {call_ratio:.2f}x, miss + store {miss_ratio:.2f}x (goal: hit <= 0.5x)"
    )


if __name__ == "__main__":
    main()
