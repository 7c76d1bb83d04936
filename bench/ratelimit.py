"""Rate limiting against a quota: how much of an RPM/TPM quota each client uses, how many 429s
it draws, and how long calls queue. The server is ``limelight sim``'s engine enforcing
OpenAI's quota rules (charges prompt + max_tokens at admission, refunds nothing), in a
subprocess of its own per client, counting admissions and 429s itself. The clients:

- limelight: ProviderPool + RateLimiter/RateLimitHook (this repository);
- cookbook: a reimplementation of the throttling of the OpenAI cookbook's
  api_request_parallel_processor.py (capacity refilled continuously up to the per-minute
  limits, requests launched while capacity lasts, a 15 s pause after any 429, retries);
- litellm: litellm's Router with ``rpm``/``tpm`` set on the deployment.

Each client gets the same backlog: two minutes' worth of quota (a full bucket plus 60 s of
refill) of mixed-size requests submitted at once, so a perfect client finishes in ~60 s.
Utilisation is measured by the server: tokens (or requests) admitted over what the quota
offered from the first admission to the last (a full bucket plus the refill in between).
Queueing delay is each call's time from submission to its answer, less the server's fixed
answer time.

    python bench/ratelimit.py              # 1 run of each client (about 4 minutes)
    python bench/ratelimit.py --runs 3     # medians of 3 runs
    python bench/ratelimit.py --quick      # CI smoke run: a 5 s backlog
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
TTFT = 0.05  # the server's answer time: no jitter, no token pacing
RPM = 600
TPM = 100_000
COOKBOOK_PAUSE = 15.0


# -- the server (subprocess) ------------------------------------------------------------


def serve(rpm: int, tpm: int) -> None:
    """Run the simulator with quotas; on SIGTERM print what it admitted and refused."""
    from aiohttp import web

    from limelight.providers import SimulatedConfig
    from limelight.sim import SimServer

    config = SimulatedConfig(
        rpm=rpm, tpm=tpm, ttft=TTFT, ttft_jitter=0.0, tokens_per_second=None, output_tokens=40
    )
    server = SimServer(config)
    engine = server.engine
    counts: dict[str, Any] = {"admitted": 0, "refused": 0, "tokens": 0, "first": None, "last": 0.0}
    plan = engine.plan

    def counting_plan(request: Any) -> Any:
        result = plan(request)
        if result.status == 429:
            counts["refused"] += 1
        elif result.ticket is not None:
            now = time.monotonic()
            counts["admitted"] += 1
            budget = request.max_tokens or config.default_output_budget
            counts["tokens"] += result.prompt_tokens + budget
            counts["first"] = counts["first"] or now
            counts["last"] = now
        return result

    engine.plan = counting_plan  # type: ignore[method-assign]

    async def main() -> None:
        runner = web.AppRunner(server.app(), access_log=None, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=2048)
        await site.start()
        host, port = runner.addresses[0][:2]
        print(f"http://{host}:{port}/v1", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        print(json.dumps(counts), flush=True)
        await runner.cleanup()

    asyncio.run(main())


@contextmanager
def sim(rpm: int, tpm: int) -> Iterator[tuple[str, dict[str, Any]]]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(rpm), str(tpm)], stdout=subprocess.PIPE, text=True
    )
    counts: dict[str, Any] = {}
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"server did not start: {url!r}")
        yield url, counts
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.stdout is not None
        line = process.stdout.readline()
        process.wait(timeout=30)
        process.stdout.close()
        if line:
            counts.update(json.loads(line))


# -- the workload -----------------------------------------------------------------------


def workload(seconds: float, seed: int = 0) -> list[tuple[str, int]]:
    """(prompt, max_tokens) pairs costing a full bucket plus ``seconds`` of refill."""
    from limelight.sim import estimate_tokens

    rng = random.Random(seed)
    budget = TPM + TPM / 60 * seconds
    requests: list[tuple[str, int]] = []
    total = 0
    while True:
        prompt = "word " * rng.randint(5, 600)
        max_tokens = rng.randint(16, 512)
        cost = max(1, estimate_tokens(prompt)) + max_tokens
        if total + cost > budget:
            return requests
        total += cost
        requests.append((prompt, max_tokens))


def prompt_tokens(prompt: str) -> int:
    """The server's own estimate, given to every client alike."""
    from limelight.sim import estimate_tokens

    return max(1, estimate_tokens(prompt))


# -- the clients (subprocess each) --------------------------------------------------------


async def run_limelight(url: str, requests: list[tuple[str, int]]) -> dict[str, Any]:
    from limelight._buckets import DeploymentLimits
    from limelight.actors import ProviderPool
    from limelight.actors._ratelimit import GetStatistics, RateLimiter, RateLimitHook
    from limelight.providers import OpenAICompatible
    from limelight.runtime import Runtime
    from limelight.schemas import CompletionRequest, Message
    from limelight.sim import estimate_prompt_tokens

    delays: list[float] = []
    async with Runtime() as rt:
        limiter = await RateLimiter.start(
            rt, {"sim": DeploymentLimits(rpm=RPM, tpm=TPM)}, environ={}
        )
        pool = await ProviderPool.start(
            rt,
            OpenAICompatible(url),
            name="sim",
            size=128,
            hooks=[RateLimitHook(limiter, estimator=estimate_prompt_tokens)],
        )

        async def one(prompt: str, max_tokens: int) -> None:
            start = time.monotonic()
            await pool.complete(
                CompletionRequest(messages=[Message.user(prompt)], max_tokens=max_tokens)
            )
            delays.append(time.monotonic() - start)

        async with asyncio.TaskGroup() as tg:
            for prompt, max_tokens in requests:
                tg.create_task(one(prompt, max_tokens))
        stats = (await limiter.ask(GetStatistics())).deployments["sim"]
    return {"delays": delays, "client_429s": stats.rate_limited}


async def run_cookbook(url: str, requests: list[tuple[str, int]]) -> dict[str, Any]:
    """The throttling loop of openai-cookbook's api_request_parallel_processor.py, with the
    server's token estimate in place of tiktoken (so that only the throttling differs)."""
    import aiohttp

    queue = [(prompt, max_tokens, time.monotonic(), 5) for prompt, max_tokens in requests]
    queue.reverse()
    retry: list[tuple[str, int, float, int]] = []
    delays: list[float] = []
    state = {"last_429": 0.0, "429s": 0, "in_progress": 0, "failed": 0}
    available_requests, available_tokens = float(RPM), float(TPM)
    last_update = time.monotonic()

    async def call(session: aiohttp.ClientSession, item: tuple[str, int, float, int]) -> None:
        prompt, max_tokens, submitted, attempts = item
        body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
        try:
            async with session.post(f"{url}/chat/completions", json=body) as response:
                data = await response.json()
            if "error" in data:
                if "Rate limit" in data["error"].get("message", ""):
                    state["last_429"] = time.monotonic()
                    state["429s"] += 1
                if attempts > 1:
                    retry.append((prompt, max_tokens, submitted, attempts - 1))
                else:
                    state["failed"] += 1
            else:
                delays.append(time.monotonic() - submitted)
        finally:
            state["in_progress"] -= 1

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session, asyncio.TaskGroup() as tg:
        next_item = None
        while True:
            if next_item is None:
                if retry:
                    next_item = retry.pop(0)
                elif queue:
                    next_item = queue.pop()
            now = time.monotonic()
            available_requests = min(RPM, available_requests + RPM * (now - last_update) / 60)
            available_tokens = min(TPM, available_tokens + TPM * (now - last_update) / 60)
            last_update = now
            if next_item is not None:
                cost = prompt_tokens(next_item[0]) + next_item[1]
                if available_requests >= 1 and available_tokens >= cost:
                    available_requests -= 1
                    available_tokens -= cost
                    state["in_progress"] += 1
                    tg.create_task(call(session, next_item))
                    next_item = None
            if next_item is None and not queue and not retry and state["in_progress"] == 0:
                break
            await asyncio.sleep(0.001)
            since = time.monotonic() - state["last_429"]
            if since < COOKBOOK_PAUSE:
                await asyncio.sleep(COOKBOOK_PAUSE - since)
    return {"delays": delays, "client_429s": state["429s"], "failed": state["failed"]}


async def run_litellm(url: str, requests: list[tuple[str, int]]) -> dict[str, Any]:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm
    from litellm import Router

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
        routing_strategy="usage-based-routing-v2",
        enable_pre_call_checks=True,
        num_retries=8,
        retry_after=1,
    )
    delays: list[float] = []
    failures: list[str] = []
    semaphore = asyncio.Semaphore(128)

    async def one(prompt: str, max_tokens: int) -> None:
        start = time.monotonic()
        try:
            async with semaphore:
                await router.acompletion(
                    model="sim",
                    messages=[{"role": "user", "content": prompt}],
                    max_tokens=max_tokens,
                )
            delays.append(time.monotonic() - start)
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {str(exc)[:200]}")

    async with asyncio.TaskGroup() as tg:
        for prompt, max_tokens in requests:
            tg.create_task(one(prompt, max_tokens))
    return {"delays": delays, "failed": len(failures), "failures": failures[:3]}


CLIENTS = {"limelight": run_limelight, "cookbook": run_cookbook, "litellm": run_litellm}


def client_main(name: str, url: str, seconds: float) -> None:
    requests = workload(seconds)
    started = time.monotonic()
    result = asyncio.run(CLIENTS[name](url, requests))
    result["elapsed"] = time.monotonic() - started
    result["requests"] = len(requests)
    print("RESULT " + json.dumps(result), flush=True)


# -- the driver ---------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def measure(name: str, seconds: float) -> dict[str, Any]:
    with sim(RPM, TPM) as (url, counts):
        process = subprocess.run(
            [sys.executable, __file__, "--client", name, url, str(seconds)],
            capture_output=True,
            text=True,
            timeout=seconds * 6 + 120,
        )
    lines = [x for x in process.stdout.splitlines() if x.startswith("RESULT ")]
    if process.returncode != 0 or not lines:
        tail = (process.stderr or process.stdout)[-1500:]
        return {"client": name, "error": f"exit {process.returncode}: {tail}"}
    result = json.loads(lines[-1][len("RESULT ") :])
    span = max(0.0, counts["last"] - counts["first"]) if counts.get("first") else 0.0
    token_util = counts["tokens"] / (TPM + TPM / 60 * span)
    request_util = counts["admitted"] / (RPM + RPM / 60 * span)
    queueing = [max(0.0, d - TTFT) for d in result["delays"]]
    return {
        "client": name,
        "requests": result["requests"],
        "completed": len(result["delays"]),
        "failed": result.get("failed", 0),
        "server_429s": counts["refused"],
        "client_429s": result.get("client_429s"),
        "elapsed": result["elapsed"],
        "utilisation": max(token_util, request_util),
        "tokens_utilisation": token_util,
        "requests_utilisation": request_util,
        "p50": percentile(queueing, 0.5),
        "p99": percentile(queueing, 0.99),
        "failures": result.get("failures", []),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=60.0, help="refill time of the backlog")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=sorted(CLIENTS), action="append")
    parser.add_argument("--serve", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return
    if args.client:
        name, url, seconds = args.client
        client_main(name, url, float(seconds))
        return
    seconds = 5.0 if args.quick else args.seconds
    names = args.only or list(CLIENTS)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for run in range(1 if args.quick else args.runs):
        for name in names:
            result = measure(name, seconds)
            runs[name].append(result)
            shown = {k: v for k, v in result.items() if k != "failures"}
            print(f"run {run + 1} {name}: {json.dumps(shown)}", flush=True)
            if result.get("failures"):
                print(f"  failures: {result['failures']}", flush=True)
    table = summarise(runs)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"ratelimit-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(
        json.dumps(
            {
                "rpm": RPM,
                "tpm": TPM,
                "seconds": seconds,
                "python": platform.python_version(),
                "runs": runs,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


def summarise(runs: dict[str, list[dict[str, Any]]]) -> str:
    def median(name: str, key: str) -> float:
        values = [r[key] for r in runs[name] if key in r and r[key] is not None]
        return statistics.median(values) if values else float("nan")

    lines = [
        f"quota: {RPM:,} RPM, {TPM:,} TPM; backlog: a full bucket + 60 s of refill; "
        f"medians of {max(len(v) for v in runs.values())} run(s)",
        "",
        "| client | utilisation | tokens | requests | 429s | failed | p50 queue s | p99 queue s "
        "| elapsed s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in runs:
        if all("error" in r for r in runs[name]):
            lines.append(f"| {name} | error: {runs[name][0]['error'][:200]!r} |")
            continue
        cells = [
            f"{median(name, 'utilisation'):.2%}",
            f"{median(name, 'tokens_utilisation'):.2%}",
            f"{median(name, 'requests_utilisation'):.2%}",
            f"{median(name, 'server_429s'):.0f}",
            f"{median(name, 'failed'):.0f}",
            f"{median(name, 'p50'):.2f}",
            f"{median(name, 'p99'):.2f}",
            f"{median(name, 'elapsed'):.1f}",
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if "limelight" in runs:
        base = median("limelight", "utilisation")
        for name in runs:
            if name != "limelight":
                other = median(name, "utilisation")
                if other == other and other > 0:
                    lines.append(f"\nlimelight uses {base / other:.2f}x the quota {name} uses")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
