"""Simulator capacity: how fast `limelight sim` answers, so benchmarks know it is not their
bottleneck. Non-streamed requests/s at 64 and 256 concurrent requests, streamed tokens/s
(no simulated delays: ttft 0, no token pacing) and paced streams at 100 tokens/s each, with
the server's own CPU time per request. The reference beside it is bench/_rawserver.py, a
canned-answer asyncio server with no model (the ceiling for this client on this machine).

    python bench/sim_capacity.py            # medians of 3 runs
    python bench/sim_capacity.py --quick    # CI smoke run: 1 short run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

RESULTS = Path(__file__).parent / "results"
RAW_SERVER = Path(__file__).parent / "_rawserver.py"
CHAT = {"messages": [{"role": "user", "content": "Say something about benchmarks."}]}
STREAM_TOKENS = 1000
PACED_TPS = 100.0
PACED_TOKENS = 200
PACED_STREAMS = 256
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@contextmanager
def server(command: list[str], pattern: str) -> Iterator[tuple[str, int]]:
    """Start a server subprocess, wait for the line that says where it listens, stop it."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(pattern, line)
        if not match:
            raise RuntimeError(f"server did not start: {line!r}")
        yield match.group(1), process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def sim_server(*options: str) -> Any:
    command = [sys.executable, "-m", "limelight", "sim", "--port", "0", "--ttft", "0"]
    command += ["--ttft-jitter", "0", *options]
    return server(command, r"(http://\S+/v1)")


def raw_server(chunks: int) -> Any:
    command = [sys.executable, str(RAW_SERVER), "--port", "0", "--chunks", str(chunks)]
    return _raw_url(server(command, r"PORT (\d+)"))


@contextmanager
def _raw_url(inner: Any) -> Iterator[tuple[str, int]]:
    with inner as (port, pid):
        yield f"http://127.0.0.1:{port}/v1", pid


async def run_load(
    url: str,
    body: dict[str, Any],
    concurrency: int,
    duration: float,
    count: Callable[[bytes], int],
    server_pid: int,
) -> tuple[int, int, float, float]:
    """Every worker posts ``body`` back to back until ``duration`` passes.

    :returns: requests completed, units counted in their bodies, seconds elapsed, and the
        server's CPU seconds in that time.
    """
    payload = json.dumps(body).encode()
    warm = json.dumps(CHAT | {"max_tokens": 1}).encode()
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    requests = units = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        # Open every connection first, with a one-token answer, so that connection setup is
        # not measured.
        async def one() -> None:
            async with session.post(f"{url}/chat/completions", data=warm, headers=headers) as r:
                await r.read()

        await asyncio.gather(*(one() for _ in range(concurrency)))
        cpu_before = cpu_seconds(server_pid)
        start = time.perf_counter()
        deadline = start + duration

        async def worker() -> None:
            nonlocal requests, units
            while time.perf_counter() < deadline:
                async with session.post(
                    f"{url}/chat/completions", data=payload, headers=headers
                ) as response:
                    data = await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"status {response.status}: {data[:200]!r}")
                requests += 1
                units += count(data)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        return requests, units, elapsed, cpu_seconds(server_pid) - cpu_before


def count_tokens(body: bytes) -> int:
    """Content chunks in an SSE body: every event less role/finish/usage/[DONE] ones."""
    events = body.count(b"data: ")
    return events - body.count(b'"finish_reason":"') - body.count(b'"choices":[]') - 1


def measure(
    name: str,
    start_server: Callable[[], Any],
    body: dict[str, Any],
    concurrency: int,
    duration: float,
    repeats: int,
    *,
    streamed: bool,
    paced_tps: float = 0.0,
) -> dict[str, Any]:
    """Median of ``repeats`` runs against a fresh server: rate, and the server's CPU use."""
    runs = []
    with start_server() as (url, pid):
        for _ in range(repeats):
            requests, units, elapsed, server_cpu = asyncio.run(
                run_load(
                    url,
                    body,
                    concurrency,
                    duration,
                    count_tokens if streamed else (lambda data: 1),
                    pid,
                )
            )
            runs.append(
                {
                    "requests_per_s": requests / elapsed,
                    "tokens_per_s": units / elapsed if streamed else 0.0,
                    "server_cpu_us_per_request": server_cpu / requests * 1e6,
                    "server_cpu_share": server_cpu / elapsed,
                }
            )
    result: dict[str, Any] = {"name": name, "concurrency": concurrency}
    for key in runs[0]:
        result[key] = statistics.median(r[key] for r in runs)
    if paced_tps:
        # Each stream should deliver paced_tps tokens a second; how close did they get?
        result["of_target"] = result["tokens_per_s"] / (concurrency * paced_tps)
    result["runs"] = runs
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 short run per scenario")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    duration, repeats = (0.5, 1) if args.quick else (args.duration, args.repeats)
    raw = RAW_SERVER.exists()

    def sim(*options: str) -> Callable[[], Any]:
        return lambda: sim_server(*options)

    plain = CHAT | {"max_tokens": 16}
    streamed = CHAT | {"stream": True, "stream_options": {"include_usage": True}}
    rows: list[dict[str, Any]] = []
    for concurrency in (64, 256):
        rows.append(
            measure(
                "sim non-streamed (16 tokens)",
                sim("--tps", "0", "--output-tokens", "16"),
                plain,
                concurrency,
                duration,
                repeats,
                streamed=False,
            )
        )
        if raw:
            rows.append(
                measure(
                    "raw canned server (reference)",
                    lambda: raw_server(64),
                    plain,
                    concurrency,
                    duration,
                    repeats,
                    streamed=False,
                )
            )
    rows.append(
        measure(
            f"sim streamed ({STREAM_TOKENS} tokens, no pacing)",
            sim("--tps", "0", "--output-tokens", str(STREAM_TOKENS)),
            streamed,
            64,
            duration,
            repeats,
            streamed=True,
        )
    )
    if raw:
        rows.append(
            measure(
                f"raw canned stream ({STREAM_TOKENS} chunks, reference)",
                lambda: raw_server(STREAM_TOKENS),
                streamed,
                64,
                duration,
                repeats,
                streamed=True,
            )
        )
    paced_duration = max(duration, 2 * PACED_TOKENS / PACED_TPS)
    rows.append(
        measure(
            f"sim paced streams ({PACED_TOKENS} tokens at {PACED_TPS:g} tok/s each)",
            sim("--tps", str(PACED_TPS), "--output-tokens", str(PACED_TOKENS)),
            streamed,
            PACED_STREAMS,
            paced_duration,
            repeats,
            streamed=True,
            paced_tps=PACED_TPS,
        )
    )
    print(f"\nSimulator capacity ({'quick' if args.quick else f'median of {repeats}'} runs)\n")
    print(
        f"{'scenario':<52} {'conc':>5} {'req/s':>9} {'tok/s':>10} {'srv µs/req':>10} {'srv CPU':>8}"
    )
    for row in rows:
        print(
            f"{row['name']:<52} {row['concurrency']:>5} {row['requests_per_s']:>9,.0f} "
            f"{row['tokens_per_s']:>10,.0f} {row['server_cpu_us_per_request']:>10,.0f} "
            f"{row['server_cpu_share']:>7.0%}"
            + (f"  ({row['of_target']:.0%} of the paced target)" if "of_target" in row else "")
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "sim_capacity.json"
    out.write_text(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "aiohttp": aiohttp.__version__,
                },
                "quick": args.quick,
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
