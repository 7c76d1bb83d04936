"""Tell throughput of two checkouts, interleaved: ``limelight`` tell against ``asyncio.Queue``.

Each round runs, for each checkout in turn and in a fresh process importing that checkout,
``tell_limelight`` and ``tell_asyncio_queue`` of its ``bench/kernel.py`` twice (300,000
messages each) and records the ratio of the sums: the machine's load drifts over minutes, so
the two sides take turns instead of running one after the other. Prints each round and the
medians.

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/tell_ab.py /tmp/before . --rounds 7
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import asyncio, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/bench"]
import kernel
n = int(sys.argv[2])
ours = [asyncio.run(kernel.tell_limelight(n)) for _ in range(2)]
queue = [asyncio.run(kernel.tell_asyncio_queue(n)) for _ in range(2)]
print(sum(ours) / sum(queue))
"""


def ratio(checkout: Path, messages: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(checkout.resolve()), str(messages)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=300_000)
    args = parser.parse_args()
    before: list[float] = []
    after: list[float] = []
    for r in range(args.rounds):
        before.append(ratio(args.before, args.messages))
        after.append(ratio(args.after, args.messages))
        print(f"round {r + 1}: before {before[-1]:.2f}x  after {after[-1]:.2f}x", flush=True)
    print(
        f"median of {args.rounds}: before {statistics.median(before):.2f}x, "
        f"after {statistics.median(after):.2f}x asyncio.Queue"
    )


if __name__ == "__main__":
    main()
