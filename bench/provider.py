"""Provider client CPU: what one OpenAI-compatible chat completion costs the calling process,
for limelight's OpenAICompatible and its peers (raw aiohttp, httpx with and without the
aiohttp transport, the openai SDK, litellm), plus streamed chunks per second.

Every client runs in its own subprocess (imports never mix) against one raw-asyncio server
(bench/_rawserver.py) in another; CPU is ``time.process_time()`` of the client process over
the measured requests, divided by their number; the median of the runs is reported.

    python bench/provider.py            # full run: 3 runs, 3,000 requests each
    python bench/provider.py --quick    # CI smoke run: 1 run, few requests
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import anyio

HERE = Path(__file__).parent
RESULTS = HERE / "results"
MODEL = "bench-model"
MESSAGES = [{"role": "user", "content": "Say hello."}]
API_KEY = "sk-bench"
MAX_CONNECTIONS = 4096
STREAM_CHUNKS = 64

Call = Callable[[], Awaitable[object]]
Client = Callable[[str], contextlib.AbstractAsyncContextManager[Call | None]]


# -- the clients: each yields a coroutine function making one chat completion -----------------


@contextlib.asynccontextmanager
async def raw_aiohttp(url: str) -> AsyncIterator[Call]:
    """The floor: aiohttp with a pre-encoded body, msgspec decoding the answer."""
    import aiohttp
    import msgspec

    body = msgspec.json.encode({"model": MODEL, "messages": MESSAGES})
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    endpoint = url + "/chat/completions"
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:

        async def call() -> object:
            async with session.post(endpoint, data=body, headers=headers) as response:
                data = await response.read()
                assert response.status == 200
                return msgspec.json.decode(data)

        yield call


def _httpx_call(client: Any, url: str) -> Call:
    import msgspec

    body = msgspec.json.encode({"model": MODEL, "messages": MESSAGES})
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    endpoint = url + "/chat/completions"

    async def call() -> object:
        response = await client.post(endpoint, content=body, headers=headers)
        assert response.status_code == 200
        return msgspec.json.decode(response.content)

    return call


@contextlib.asynccontextmanager
async def httpx_aiohttp(url: str) -> AsyncIterator[Call]:
    """httpx's AsyncClient over the httpx-aiohttp transport (what openai's DefaultAioHttpClient
    is), the cheapest way to use httpx measured here; pre-encoded body, msgspec decoding."""
    import httpx
    from httpx_aiohttp import HttpxAiohttpClient

    limits = httpx.Limits(
        max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
    )
    async with HttpxAiohttpClient(limits=limits) as client:
        yield _httpx_call(client, url)


@contextlib.asynccontextmanager
async def plain_httpx(url: str) -> AsyncIterator[Call]:
    """httpx's AsyncClient with its own connection pool (httpcore)."""
    import httpx

    limits = httpx.Limits(
        max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
    )
    async with httpx.AsyncClient(limits=limits) as client:
        yield _httpx_call(client, url)


@contextlib.asynccontextmanager
async def limelight(url: str) -> AsyncIterator[Call]:
    """limelight's OpenAICompatible, called directly."""
    from limelight.providers import OpenAICompatible
    from limelight.schemas import CompletionRequest, Message

    request = CompletionRequest(messages=[Message.user(MESSAGES[0]["content"])])
    async with OpenAICompatible(url, API_KEY, model=MODEL) as provider:

        async def call() -> object:
            return await provider.complete(request)

        yield call


@contextlib.asynccontextmanager
async def limelight_worker_row(url: str) -> AsyncIterator[Call | None]:
    """The same request through a ProviderPool: a leased ProviderWorker (its call run in the
    caller's task under a cancel scope the worker's stop cancels, the retry policy, usage
    counted) driving OpenAICompatible. 256 workers, so the pool never limits concurrency
    here."""
    from limelight.actors import ProviderPool
    from limelight.providers import OpenAICompatible
    from limelight.runtime import Runtime
    from limelight.schemas import CompletionRequest, Message

    request = CompletionRequest(messages=[Message.user(MESSAGES[0]["content"])])
    async with Runtime() as rt:
        pool = await ProviderPool.start(
            rt, OpenAICompatible(url, API_KEY, model=MODEL), name="bench", size=256
        )

        async def call() -> object:
            return await pool.complete(request)

        yield call


@contextlib.asynccontextmanager
async def limelight_worker_stream(url: str) -> AsyncIterator[Call]:
    """A streamed completion through a ProviderPool's leased worker (events reach the caller
    from the backend's stream in the caller's own task)."""
    from limelight.actors import ProviderPool
    from limelight.providers import OpenAICompatible
    from limelight.runtime import Runtime
    from limelight.schemas import CompletionRequest, Message

    request = CompletionRequest(messages=[Message.user(MESSAGES[0]["content"])])
    async with Runtime() as rt:
        pool = await ProviderPool.start(
            rt, OpenAICompatible(url, API_KEY, model=MODEL), name="bench", size=256
        )

        async def call() -> object:
            count = 0
            async for _ in pool.stream(request):
                count += 1
            assert count == STREAM_CHUNKS + 2  # tokens, USAGE, DONE
            return count

        yield call


@contextlib.asynccontextmanager
async def openai_sdk(url: str) -> AsyncIterator[Call]:
    """The openai SDK's AsyncOpenAI with its defaults (httpx's pool), retries off."""
    from openai import AsyncOpenAI

    async with AsyncOpenAI(base_url=url, api_key=API_KEY, max_retries=0) as client:

        async def call() -> object:
            return await client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]

        yield call


@contextlib.asynccontextmanager
async def openai_sdk_aiohttp(url: str) -> AsyncIterator[Call]:
    """The openai SDK over its DefaultAioHttpClient (the httpx-aiohttp transport)."""
    from openai import AsyncOpenAI, DefaultAioHttpClient

    http_client = DefaultAioHttpClient()
    async with AsyncOpenAI(
        base_url=url, api_key=API_KEY, max_retries=0, http_client=http_client
    ) as client:

        async def call() -> object:
            return await client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]

        yield call


@contextlib.asynccontextmanager
async def litellm_acompletion(url: str) -> AsyncIterator[Call]:
    """litellm.acompletion with an ``openai/`` model on a custom api_base, retries off."""
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False

    async def call() -> object:
        return await litellm.acompletion(
            model=f"openai/{MODEL}",
            messages=MESSAGES,
            api_base=url,
            api_key=API_KEY,
            num_retries=0,
        )

    yield call


# Streams: each call reads one canned stream of STREAM_CHUNKS content chunks to its end.


@contextlib.asynccontextmanager
async def limelight_stream(url: str) -> AsyncIterator[Call]:
    """limelight's OpenAICompatible.stream, events assembled (TOKEN ... USAGE, DONE)."""
    from limelight.providers import OpenAICompatible
    from limelight.schemas import CompletionRequest, Message

    request = CompletionRequest(messages=[Message.user(MESSAGES[0]["content"])])
    async with OpenAICompatible(url, API_KEY, model=MODEL) as provider:

        async def call() -> object:
            count = 0
            async for _ in provider.stream(request):
                count += 1
            assert count == STREAM_CHUNKS + 2  # tokens, USAGE, DONE
            return count

        yield call


@contextlib.asynccontextmanager
async def httpx_sse_stream(url: str) -> AsyncIterator[Call]:
    """The baseline for streams: httpx (aiohttp transport) + httpx-sse, msgspec per chunk."""
    import httpx
    import msgspec
    from httpx_aiohttp import HttpxAiohttpClient
    from httpx_sse import aconnect_sse

    body = msgspec.json.encode(
        {
            "model": MODEL,
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    limits = httpx.Limits(
        max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
    )
    async with HttpxAiohttpClient(limits=limits) as client:

        async def call() -> object:
            parts = []
            async with aconnect_sse(
                client, "POST", url + "/chat/completions", content=body, headers=headers
            ) as source:
                async for sse in source.aiter_sse():
                    if sse.data == "[DONE]":
                        continue
                    chunk = msgspec.json.decode(sse.data)
                    for choice in chunk["choices"]:
                        parts.append(choice["delta"].get("content") or "")
            return "".join(parts)

        yield call


CLIENTS: dict[str, tuple[str, Client]] = {
    # name: (label, client)
    "raw_aiohttp": ("raw aiohttp", raw_aiohttp),
    "httpx_aiohttp": ("httpx + httpx-aiohttp transport", httpx_aiohttp),
    "httpx": ("plain httpx", plain_httpx),
    "limelight": ("limelight OpenAICompatible", limelight),
    "limelight_worker": ("limelight via ProviderWorker", limelight_worker_row),
    "openai": ("openai SDK AsyncOpenAI", openai_sdk),
    "openai_aiohttp": ("openai SDK + DefaultAioHttpClient", openai_sdk_aiohttp),
    "litellm": ("litellm.acompletion", litellm_acompletion),
}
TRIO_CLIENTS = ("limelight", "limelight_worker", "httpx")
STREAM_CLIENTS: dict[str, tuple[str, Client]] = {
    "limelight_stream": ("limelight OpenAICompatible.stream", limelight_stream),
    "limelight_worker_stream": ("limelight via ProviderWorker, streamed", limelight_worker_stream),
    "httpx_sse_stream": ("httpx + aiohttp transport + httpx-sse", httpx_sse_stream),
}
TRIO_STREAM_CLIENTS = ("limelight_stream", "limelight_worker_stream")


# -- one measurement, in a child process ------------------------------------------------------


async def measure(client: Client, url: str, concurrency: int, requests: int) -> dict[str, Any]:
    async with client(url) as call:
        if call is None:
            return {"skipped": True}
        per_task = max(requests // concurrency, 1)
        total = per_task * concurrency

        async def worker(count: int) -> None:
            for _ in range(count):
                await call()

        async def run(count: int) -> None:
            async with anyio.create_task_group() as tg:
                for _ in range(concurrency):
                    tg.start_soon(worker, count)

        # Warm up: open every connection the run will use, fill caches, import lazies.
        await run(max(2, 200 // concurrency))
        # Then one full collection: what the warm-up loaded once (lazy imports, the price
        # lists the usage tracker reads on a worker's first answer) would otherwise make the
        # collector run a full pass inside a measured window this short, in some rows only.
        gc.collect()
        cpu, wall = time.process_time(), time.perf_counter()
        await run(per_task)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"requests": total, "cpu_us": cpu / total * 1e6, "wall_us": wall / total * 1e6}


def child(args: argparse.Namespace) -> None:
    clients = {**CLIENTS, **STREAM_CLIENTS}
    client = clients[args.client][1]
    concurrency = args.concurrency[0]
    result = anyio.run(measure, client, args.url, concurrency, args.requests, backend=args.backend)
    print(json.dumps(result))


# -- the parent: server, subprocesses, medians, table -----------------------------------------


@contextlib.contextmanager
def raw_server() -> Any:
    process = subprocess.Popen(
        [sys.executable, str(HERE / "_rawserver.py"), "--chunks", str(STREAM_CHUNKS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"bench/_rawserver.py did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}/v1"
    finally:
        process.terminate()
        process.wait(timeout=10)


def run_child(name: str, backend: str, url: str, concurrency: int, requests: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", "--client", name, "--backend", backend]
    command += ["--url", url, "--concurrency", str(concurrency), "--requests", str(requests)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def median_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    if any("error" in r for r in results):
        return next(r for r in results if "error" in r)
    if any(r.get("skipped") for r in results):
        return {"skipped": True}
    return {
        "cpu_us": statistics.median(r["cpu_us"] for r in results),
        "wall_us": statistics.median(r["wall_us"] for r in results),
        "runs_cpu_us": [round(r["cpu_us"], 1) for r in results],
        "requests": results[0]["requests"],
    }


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in (
        "aiohttp",
        "httpx",
        "httpx-aiohttp",
        "httpx-sse",
        "openai",
        "litellm",
        "anyio",
        "trio",
        "msgspec",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def fmt(value: float | None, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{suffix}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="CI smoke run: 1 run, few requests")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3000, help="per run and concurrency")
    parser.add_argument("--streams", type=int, default=300, help="streams per run and concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--only", nargs="*", help="client names to run (default: all)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="asyncio", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.quick:
        args.runs, args.requests, args.streams = 1, 300, 20

    plan = [(name, "asyncio") for name in CLIENTS] + [(name, "trio") for name in TRIO_CLIENTS]
    stream_plan = [(name, "asyncio") for name in STREAM_CLIENTS]
    stream_plan += [(name, "trio") for name in TRIO_STREAM_CLIENTS]
    if args.only:
        plan = [p for p in plan if p[0] in args.only]
        stream_plan = [p for p in stream_plan if p[0] in args.only]
    rows: dict[str, dict[str, Any]] = {}
    with raw_server() as url:
        for name, backend in plan + stream_plan:
            is_stream = name in STREAM_CLIENTS
            count = args.streams if is_stream else args.requests
            key = f"{name}/{backend}"
            rows[key] = {}
            for concurrency in args.concurrency:
                runs = [run_child(name, backend, url, concurrency, count) for _ in range(args.runs)]
                rows[key][str(concurrency)] = median_of(runs)
                print(
                    f"  {key:30} c={concurrency:<4} {rows[key][str(concurrency)]}", file=sys.stderr
                )

    report(rows, args)


def report(rows: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    labels = {**CLIENTS, **STREAM_CLIENTS}

    def cpu(key: str, concurrency: int) -> float | None:
        value = rows.get(key, {}).get(str(concurrency), {})
        return value.get("cpu_us") if isinstance(value, dict) else None

    lines = []
    header = f"{'client':40} {'backend':8}"
    for c in args.concurrency:
        header += f" | c={c}: {'µs CPU/req':>10} {'vs raw aiohttp':>14} {'vs openai SDK':>13}"
    lines.append(header)
    lines.append("-" * len(header))
    for key, per_c in rows.items():
        name, backend = key.split("/")
        if name in STREAM_CLIENTS:
            continue
        line = f"{labels[name][0]:40} {backend:8}"
        for c in args.concurrency:
            value = cpu(key, c)
            raw, sdk = cpu("raw_aiohttp/asyncio", c), cpu("openai/asyncio", c)
            note = per_c[str(c)].get("error") or ("skipped" if per_c[str(c)].get("skipped") else "")
            line += f" | {'':4}{fmt(value):>10}" if value is not None else f" | {note[:10]:>14}"
            line += f" {fmt(value / raw if value and raw else None, 'x'):>14}"
            line += f" {fmt(value / sdk if value and sdk else None, 'x'):>13}"
        lines.append(line)
    lines.append("")
    lines.append(f"streams of {STREAM_CHUNKS} chunks (+ usage, [DONE]):")
    for key, per_c in rows.items():
        name, backend = key.split("/")
        if name not in STREAM_CLIENTS:
            continue
        line = f"{labels[name][0]:40} {backend:8}"
        for c in args.concurrency:
            value = cpu(key, c)
            if value is None:
                line += f" | c={c}: {per_c[str(c)].get('error', 'skipped')[:30]}"
                continue
            chunks_per_cpu_s = STREAM_CHUNKS / (value / 1e6)
            line += f" | c={c}: {value / STREAM_CHUNKS:6.1f} µs CPU/chunk"
            line += f" = {chunks_per_cpu_s:9,.0f} chunks/CPU-s"
        lines.append(line)

    # The goals, for the report.
    lines.append("")
    for c in args.concurrency:
        ll = cpu("limelight/asyncio", c)
        cheapest = min(
            (v for v in (cpu("httpx_aiohttp/asyncio", c), cpu("httpx/asyncio", c)) if v),
            default=None,
        )
        sdk, lite = cpu("openai/asyncio", c), cpu("litellm/asyncio", c)
        worker = cpu("limelight_worker/asyncio", c)
        if ll and cheapest:
            lines.append(
                f"c={c}: limelight alone = {ll / cheapest:.2f}x the cheapest httpx configuration"
            )
        if worker and cheapest:
            lines.append(
                f"c={c}: limelight via ProviderWorker = {worker / cheapest:.2f}x "
                "the cheapest httpx configuration"
            )
        if ll and sdk:
            lines.append(f"c={c}: openai SDK costs {sdk / ll:.1f}x limelight")
        if ll and lite:
            lines.append(f"c={c}: litellm costs {lite / ll:.1f}x limelight")
        raw = cpu("raw_aiohttp/asyncio", c)
        if worker and raw:
            lines.append(f"c={c}: limelight via ProviderWorker = {worker / raw:.2f}x raw aiohttp")
        for backend in ("asyncio", "trio"):
            alone = cpu(f"limelight_stream/{backend}", c)
            streamed = cpu(f"limelight_worker_stream/{backend}", c)
            if alone and streamed:
                lines.append(
                    f"c={c}: a streamed chunk via ProviderWorker = {streamed / alone:.2f}x "
                    f"the backend alone ({backend})"
                )
    text = "\n".join(lines)
    print(text)

    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"provider-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(
        json.dumps(
            {
                "benchmark": "provider client CPU",
                "command": " ".join([Path(sys.executable).name, *sys.argv]),
                "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
                "versions": versions(),
                "runs": args.runs,
                "requests": args.requests,
                "streams": args.streams,
                "stream_chunks": STREAM_CHUNKS,
                "rows": rows,
                "table": text,
            },
            indent=2,
        )
    )
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
