"""Backends: what ``import limelight`` costs beside ``import litellm``, and the tokens per second
of local models through limelight's MLX and transformers backends beside calling mlx-lm and
transformers directly.

Import times are measured in fresh subprocesses (``time.perf_counter()`` around the import
statement only, so interpreter start-up is left out); the median of the runs is reported.

For generation the bench builds a llama-type model on the spot (random weights, a tokenizer
trained on a few sentences; nothing is downloaded), saves it once for mlx-lm and once for
transformers, and generates the same number of tokens greedily from the same messages (the
chat template applied in each timed call, as limelight applies it): directly
(``mlx_lm.stream_generate``; ``model.generate``) and through ``MLX.complete`` /
``Transformers.complete``. Three kinds of fresh processes, alternating for ``--runs`` rounds:

- paired, one per loop (asyncio, trio): the direct call and limelight's ``complete`` take
  turns in one process, ``--reps`` timed generations each after a warm-up, both on the
  model's thread (the direct call handed to limelight's model thread as a job, with a model
  of its own loaded there), so both see the same process, thread and moments of the
  machine's load. Per-process differences (this machine's figures vary by up to 2x between
  processes, little within one) cancel out in the ratio of the two; the row's "paired"
  figure is the median of the processes' ratios. This is the goal's figure.
- direct, on the main thread, in processes of their own (no other torch or mlx user in the
  process); "vs. main" divides limelight's median by this one, with the between-process
  noise in it.
- direct, loaded and run in one plain ``threading.Thread`` (what a program that keeps its
  event loop free would do without limelight), in processes of their own: whether a thread
  other than the main one costs mlx or torch anything, limelight apart.

    python bench/backends.py            # full run: 15 import runs; tiny and small models
    python bench/backends.py --quick    # CI smoke: 3 import runs; tiny model, few tokens, 1 round
    python bench/backends.py --only transformers   # one backend's generation, no import times
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import anyio

HERE = Path(__file__).parent
ROOT = HERE.parent
RESULTS = HERE / "results"
sys.path.insert(0, str(ROOT))

#: Model sizes: "tiny" is the test suite's model; "small" makes each token cost more compute.
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "intermediate_size": 37},
    "small": {"hidden_size": 512, "num_hidden_layers": 8, "intermediate_size": 1376},
}
HEADS = {"tiny": 2, "small": 8}
PROMPT = [{"role": "user", "content": "Tokens stream from the model to the caller."}]


# -- import time -------------------------------------------------------------------------------


def import_seconds(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    # Bytecode caches on, as an installed package has them (pip compiles a wheel's modules;
    # an editable checkout under PYTHONDONTWRITEBYTECODE would compile limelight's sources on
    # every import, and litellm's, installed, would not be).
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
    ).stdout
    return float(out.strip().splitlines()[-1])


def bench_imports(runs: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {"limelight": [], "litellm": []}
    for module in samples:  # untimed: writes the bytecode caches a first import would
        import_seconds(module)
    for _ in range(runs):  # interleaved, so a burst of load on the machine hits both
        for module in samples:
            samples[module].append(import_seconds(module))
    return {
        module: {"median_ms": statistics.median(s) * 1000, "runs_ms": [x * 1000 for x in s]}
        for module, s in samples.items()
    }


# -- models ------------------------------------------------------------------------------------


def _config(size: str, vocab_size: int, eos: int) -> dict[str, Any]:
    from tests.providers._tiny_mlx import model_config

    config = model_config(vocab_size, eos)
    config.update(SIZES[size])
    config["num_attention_heads"] = config["num_key_value_heads"] = HEADS[size]
    return config


def build_mlx(path: Path, size: str) -> Path:
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama
    from tokenizers import Tokenizer

    from tests.providers._tiny_mlx import build_tokenizer

    build_tokenizer(path)
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    config = _config(size, tokenizer.get_vocab_size(), tokenizer.token_to_id("</s>"))
    (path / "config.json").write_text(json.dumps(config))
    mx.random.seed(0)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    weights = dict(tree_flatten(model.parameters()))
    mx.eval(weights)
    mx.save_safetensors(str(path / "model.safetensors"), weights)
    return path


def build_hf(path: Path, size: str) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from tests.providers._tiny_mlx import build_tokenizer

    build_tokenizer(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = _config(size, len(tokenizer), tokenizer.convert_tokens_to_ids("</s>"))
    del config["model_type"], config["architectures"]
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**config)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# -- generation --------------------------------------------------------------------------------


def direct_mlx(path: Path, tokens: int) -> Any:
    import mlx_lm
    from mlx_lm.sample_utils import make_sampler

    model, tokenizer = mlx_lm.load(str(path))[:2]
    sampler = make_sampler(temp=0.0)

    def run() -> int:  # from the messages, as limelight's call is
        prompt = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True)
        count = 0
        for response in mlx_lm.stream_generate(
            model, tokenizer, prompt=prompt, max_tokens=tokens, sampler=sampler
        ):
            count = response.generation_tokens
        return count

    return run


def direct_hf(path: Path, tokens: int) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()

    def run() -> int:  # from the messages, as limelight's call is
        inputs = tokenizer.apply_chat_template(
            PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        with torch.inference_mode():
            output = model.generate(
                **inputs,
                max_new_tokens=tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        return int(output.shape[-1] - inputs["input_ids"].shape[-1])

    return run


#: Process kinds of a generation row: the direct call on the main thread, the direct call
#: loaded and run in one plain thread (each in processes of its own), and pairs (the direct
#: call and limelight on limelight's model thread) on each loop.
KINDS = ("direct", "thread", "paired_asyncio", "paired_trio")


def _rates(run: Callable[[], int], reps: int) -> tuple[list[float], set[int]]:
    rates: list[float] = []
    counts: set[int] = set()
    for _ in range(reps):
        started = time.perf_counter()
        count = run()
        rates.append(count / (time.perf_counter() - started))
        counts.add(count)
    return rates, counts


def measure_kind(name: str, path: Path, tokens: int, kind: str, reps: int) -> dict[str, Any]:
    """Run in a fresh process: one kind's warm-up, then ``reps`` timed generations per column."""
    if kind.startswith("paired_"):
        loop = kind.removeprefix("paired_")
        return anyio.run(_measure_paired, name, path, tokens, reps, backend=loop)
    found: list[tuple[list[float], set[int]]] = []

    def job() -> None:
        direct = direct_mlx(path, tokens) if name == "mlx" else direct_hf(path, tokens)
        direct()  # warm-up
        found.append(_rates(direct, reps))

    if kind == "direct":
        job()
    else:  # "thread": the load, warm-up and timed runs all in one plain thread
        worker = threading.Thread(target=job, name="direct")
        worker.start()
        worker.join()
    if not found:
        raise RuntimeError(f"the {kind} run of {name} produced no figures")
    rates, counts = found[0]
    return {"direct": rates, "counts": sorted(counts)}


async def _measure_paired(name: str, path: Path, tokens: int, reps: int) -> dict[str, Any]:
    """The direct call and limelight's ``complete`` alternating in one process, both on the
    model's thread (limelight's own, which the direct call is handed to as a job: one thread
    for both, so the same mlx stream and the same torch thread pool serve both, and neither
    leaves an idle pool of its own spinning beside the other), so both see the same process
    and the same moments of the machine's load. The direct call is timed inside that thread
    (no hand-off counted); limelight's from the async caller."""
    from limelight.providers import MLX, Transformers
    from limelight.schemas import CompletionRequest, Message

    provider = (
        MLX(str(path), max_tokens=tokens)
        if name == "mlx"
        else Transformers(str(path), max_new_tokens=tokens)
    )
    request = CompletionRequest(messages=[Message.user(PROMPT[0]["content"])])
    counts: dict[str, set[int]] = {"direct_thread": set(), "limelight": set()}

    async def ours() -> float:
        started = time.perf_counter()
        result = await provider.complete(request)
        elapsed = time.perf_counter() - started
        assert result.usage is not None
        counts["limelight"].add(result.usage.completion_tokens)
        return result.usage.completion_tokens / elapsed

    await ours()  # warm-up (and the load, on the model's thread)
    builder = direct_mlx if name == "mlx" else direct_hf
    thread = provider.thread()
    direct: Callable[[], int] = await anyio.to_thread.run_sync(
        lambda: thread.call(lambda: builder(path, tokens))
    )

    def timed_direct() -> float:
        started = time.perf_counter()
        count = direct()
        elapsed = time.perf_counter() - started
        counts["direct_thread"].add(count)
        return count / elapsed

    async def theirs() -> float:
        rate: float = await anyio.to_thread.run_sync(lambda: thread.call(timed_direct))
        return rate

    await theirs()  # warm-up
    rates: dict[str, list[float]] = {"direct_thread": [], "limelight": []}
    for rep in range(reps):  # ABBA order, so a drift in the machine's speed hits both
        if rep % 2 == 0:
            rates["direct_thread"].append(await theirs())
            rates["limelight"].append(await ours())
        else:
            rates["limelight"].append(await ours())
            rates["direct_thread"].append(await theirs())
    return {**rates, "counts": {c: sorted(v) for c, v in counts.items()}}


def _run_kind(args: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--kind", *args], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"the {args[3]} process of {args[0]} exited with {done.returncode}:\n"
            + done.stderr[-4000:]
        )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def bench_generation(
    name: str, path: Path, tokens: int, runs: int, reps: int
) -> list[dict[str, Any]]:
    """Each kind in ``runs`` fresh processes, the kinds alternating, so a burst of load on
    the machine hits all of them and the main-thread direct call shares no process (and no
    torch thread pools) with anything else."""
    alone: dict[str, list[float]] = {"direct": [], "thread": []}
    paired: dict[str, list[dict[str, Any]]] = {"asyncio": [], "trio": []}
    counts: set[int] = set()
    for _ in range(runs):
        for kind in KINDS:
            result = _run_kind([name, str(path), str(tokens), kind, str(reps)])
            if kind in alone:
                alone[kind].extend(result["direct"])
                counts.update(result["counts"])
            else:
                paired[kind.removeprefix("paired_")].append(result)
                for found in result["counts"].values():
                    counts.update(found)
    main_thread = statistics.median(alone["direct"])
    own_thread = statistics.median(alone["thread"])
    rows = []
    for loop, processes in paired.items():
        ratios = [
            statistics.median(p["limelight"]) / statistics.median(p["direct_thread"])
            for p in processes
        ]
        ours = statistics.median(r for p in processes for r in p["limelight"])
        rows.append(
            {
                "loop": loop,
                "direct_tokens_per_s": main_thread,
                "own_thread_tokens_per_s": own_thread,
                "thread_vs_main_ratio": own_thread / main_thread,
                "direct_thread_tokens_per_s": statistics.median(
                    r for p in processes for r in p["direct_thread"]
                ),
                "limelight_tokens_per_s": ours,
                "paired_ratio": statistics.median(ratios),
                "paired_ratios": ratios,
                "vs_main_ratio": ours / main_thread,
                "tokens": sorted(counts),
                "direct_runs": alone["direct"],
                "own_thread_runs": alone["thread"],
                "paired_runs": processes,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (CI)")
    parser.add_argument("--import-runs", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None, help="generation runs per figure")
    parser.add_argument(
        "--only",
        choices=("mlx", "transformers"),
        default=None,
        help="measure only this backend's generation (and skip the import times)",
    )
    parser.add_argument(
        "--reps", type=int, default=4, help="timed generations per column in each process"
    )
    parser.add_argument("--kind", nargs=5, help=argparse.SUPPRESS)  # one process's work
    args = parser.parse_args()
    if args.kind:
        name, path, tokens, kind, reps = args.kind
        print(json.dumps(measure_kind(name, Path(path), int(tokens), kind, int(reps))))
        sys.stdout.flush()
        # The figures are out; skip the interpreter's teardown. After a generation on a thread
        # that is not the main one, mlx 0.32 now and then aborts in its static destructors at
        # exit ("terminate called without an active exception", about 1 run in 12 here).
        os._exit(0)
    import_runs = args.import_runs or (3 if args.quick else 15)
    runs = args.runs or (1 if args.quick else 5)
    plan = [("tiny", 32)] if args.quick else [("tiny", 256), ("small", 64)]

    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "versions": {
            p: metadata.version(p) for p in ("litellm", "mlx", "mlx-lm", "transformers", "torch")
        },
        "quick": args.quick,
    }
    if args.only is None:
        report["imports"] = bench_imports(import_runs)
        print(f"import time, median of {import_runs} fresh processes:")
        lime = report["imports"]["limelight"]["median_ms"]
        lite = report["imports"]["litellm"]["median_ms"]
        print(f"  import limelight  {lime:8.1f} ms   (goal < 150 ms)")
        print(f"  import litellm    {lite:8.1f} ms   ({lite / lime:.1f}x limelight)")
    else:
        report["only"] = args.only

    generation: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="limelight-bench-") as tmp:
        for size, tokens in plan:
            builders = {"mlx": build_mlx, "transformers": build_hf}
            paths = {
                name: build(Path(tmp) / f"{name}-{size}", size)
                for name, build in builders.items()
                if args.only in (None, name)
            }
            for name, path in paths.items():
                for row in bench_generation(name, path, tokens, runs, args.reps):
                    row.update(backend=name, model=size, max_tokens=tokens)
                    generation.append(row)
    report["generation"] = generation
    print(
        f"\nlocal generation, greedy, tokens/s; {runs} processes of each kind, {args.reps} timed"
        " runs per column in each (goal >= 0.95x direct):"
    )
    print("  in thread / limelight: alternating on one thread; paired = median of their ratios")
    print("  direct: on the main thread, in processes of its own; vs. main = limelight / direct")
    print("  own thread: direct, loaded and run in one plain thread, in processes of its own")
    header = f"  {'backend':<13}{'model':<7}{'loop':<9}{'direct':>8}{'own thread':>12}"
    print(header + f"{'in thread':>11}{'limelight':>11}{'paired':>8}{'vs. main':>10}")
    for row in generation:
        print(
            f"  {row['backend']:<13}{row['model']:<7}{row['loop']:<9}"
            f"{row['direct_tokens_per_s']:>8.0f}{row['own_thread_tokens_per_s']:>12.0f}"
            f"{row['direct_thread_tokens_per_s']:>11.0f}"
            f"{row['limelight_tokens_per_s']:>11.0f}{row['paired_ratio']:>7.2f}x"
            f"{row['vs_main_ratio']:>9.2f}x"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"backends-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
