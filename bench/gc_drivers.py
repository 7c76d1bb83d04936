"""What drives the cyclic collector's share of the agents benchmark (``bench/agents.py``).

Two experiments on its workload, each run in a subprocess of its own, with the runtime's
collector policy off (``Runtime(gc_policy=None)``, the ``limelight-gc-untouched`` variant):
they show what CPython's collector does to the runtime left as it is, which is what the
default policy (the young threshold following the population) answers:

- **promotions**: how many objects per agent run survive a young (generation 1) collection,
  and so are promoted to the old generation, by type (counted at the start of every
  generation-1 collection: with no cyclic garbage in this workload, everything then in the
  young generations survives). CPython starts a full collection once the objects promoted
  since the last one exceed a quarter of those that survived it.
- **standing state**: the same run with the long-lived objects of the runtime's actors
  (cells, mailboxes, contexts, refs, wakers, slots, the agents, executors, workers,
  conversations and registries: 21 per agent) taken out of the collector's sight once they
  are spawned (``PyObject_GC_UnTrack`` through ctypes, an experiment only), against the same
  run with them tracked.

    python bench/gc_drivers.py [--agents 5000] [--backend asyncio]
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import gc
import json
from typing import Any

#: limelight's agents with CPython's collector as it is (``Runtime(gc_policy=None)``).
UNTOUCHED = "limelight-gc-untouched"
#: The runtime's long-lived objects the standing-state experiment untracks.
STANDING = {
    "Cell",
    "Mailbox",
    "Context",
    "ActorRef",
    "Waker",
    "Slots",
    "Agent",
    "ToolExecutor",
    "ProviderWorker",
    "Conversation",
    "ToolRegistry",
    "_FutureSignal",
}


def _name(obj: Any) -> str:
    if type(obj).__name__ == "coroutine":
        return f"coroutine {obj.cr_code.co_qualname}"
    return f"{type(obj).__module__.split('.')[0]}.{type(obj).__qualname__}"


def _child(experiment: str, variant: str, n: int, backend: str) -> dict[str, Any]:
    import agents as bench  # bench/ is the script's directory, first on sys.path
    import anyio

    promoted: collections.Counter[str] = collections.Counter()

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and bench.COLLECTIONS.on and info["generation"] == 1:
            for generation in (0, 1):
                promoted.update(_name(o) for o in gc.get_objects(generation=generation))

    untracked = 0
    if experiment == "promotions":
        gc.callbacks.insert(0, count)
    elif experiment == "untracked":
        untrack = ctypes.pythonapi.PyObject_GC_UnTrack
        untrack.argtypes = [ctypes.py_object]
        start = bench.COLLECTIONS.start

        def untrack_then_start() -> None:
            nonlocal untracked
            for obj in gc.get_objects():
                kind = type(obj)
                if kind.__name__ in STANDING and kind.__module__.startswith("limelight"):
                    untrack(obj)
                    untracked += 1
            start()

        bench.COLLECTIONS.start = untrack_then_start  # type: ignore[method-assign]
    out = anyio.run(bench.OURS[variant], n, backend=backend)
    turns = n * bench.TURNS
    figures = bench.COLLECTIONS.figures()
    return {
        "cpu_us_per_turn": out["cpu_s"] / turns * 1e6,
        "full_gc_us_per_turn": figures["gc_full_s"] / turns * 1e6,
        "full_gc_n": figures["gc_full_n"],
        "young_gc_us_per_turn": figures["gc_young_s"] / turns * 1e6,
        "promoted_per_run": sum(promoted.values()) / n,
        "promoted_by_type": {k: v / n for k, v in promoted.most_common(25)},
        "untracked_per_agent": untracked / n,
    }


def _run(experiment: str, variant: str, n: int, backend: str) -> dict[str, Any]:
    from agents import run_child  # bench/ is the script's directory, first on sys.path

    return run_child(__file__, "--child", experiment, variant, str(n), backend)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        experiment, variant, n, backend = args.child
        print(json.dumps(_child(experiment, variant, int(n), backend)))
        return
    n, backend = args.agents, args.backend
    print(f"{n:,} agents on {backend}; CPU and collector µs per turn")
    for variant in ("floor", UNTOUCHED):
        r = _run("promotions", variant, n, backend)
        print(
            f"\n{variant}: {r['promoted_per_run']:.0f} objects promoted per agent run "
            f"(CPU {r['cpu_us_per_turn']:.0f}, full GC {r['full_gc_us_per_turn']:.1f} "
            f"in {r['full_gc_n']}, young {r['young_gc_us_per_turn']:.1f}; counting included)"
        )
        for kind, per_run in r["promoted_by_type"].items():
            if per_run >= 1.0:
                print(f"  {per_run:6.1f}  {kind}")
    print(f"\n{UNTOUCHED}, standing state tracked vs untracked (alternating):")
    for _ in range(2):
        for experiment in ("tracked", "untracked"):
            r = _run(experiment, UNTOUCHED, n, backend)
            print(
                f"  {experiment:9} CPU {r['cpu_us_per_turn']:5.0f}  full GC "
                f"{r['full_gc_us_per_turn']:6.1f} in {r['full_gc_n']:2d}  young "
                f"{r['young_gc_us_per_turn']:5.1f}"
                + (
                    f"  ({r['untracked_per_agent']:.0f} objects per agent untracked)"
                    if experiment == "untracked"
                    else ""
                )
            )


if __name__ == "__main__":
    main()
