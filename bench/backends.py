"""Backends: what ``import limelight`` costs beside ``import litellm``, and the tokens per second
of local models through limelight's MLX and transformers backends beside calling mlx-lm and
transformers directly.

Import times are measured in fresh subprocesses (``time.perf_counter()`` around the import
statement only, so interpreter start-up is left out); the median of the runs is reported.

For generation the bench builds a llama-type model on the spot (random weights, a tokenizer
trained on a few sentences; nothing is downloaded), saves it once for mlx-lm and once for
transformers, and generates the same number of tokens greedily from the same prompt: directly
(``mlx_lm.stream_generate``; ``model.generate``) on the main thread and in a plain thread,
and through ``MLX.complete`` / ``Transformers.complete`` on asyncio and on trio. Each of
these four columns runs in fresh processes of its own (a warm-up, then ``--reps`` timed
generations each), the columns alternating for ``--runs`` rounds, so that no column shares a
process, or torch's thread pools, with another, and a burst of load on the machine hits all of
them. limelight is compared with the faster direct column; each figure is the median of all
its timed generations.

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
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
    ).stdout
    return float(out.strip().splitlines()[-1])


def bench_imports(runs: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {"limelight": [], "litellm": []}
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
    prompt = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True)
    sampler = make_sampler(temp=0.0)

    def run() -> int:
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
    inputs = tokenizer.apply_chat_template(
        PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )

    def run() -> int:
        with torch.inference_mode():
            output = model.generate(
                **inputs,
                max_new_tokens=tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        return int(output.shape[-1] - inputs["input_ids"].shape[-1])

    return run


#: The columns of a generation row; each is measured in processes of its own.
COLUMNS = ("direct", "direct_thread", "limelight_asyncio", "limelight_trio")


def measure_column(name: str, path: Path, tokens: int, column: str, reps: int) -> dict[str, Any]:
    """Run in a fresh process: one column's warm-up, then ``reps`` timed generations."""
    if column.startswith("limelight_"):
        loop = column.removeprefix("limelight_")
        return anyio.run(_measure_ours, name, path, tokens, reps, backend=loop)

    def measure() -> dict[str, Any]:
        direct = direct_mlx(path, tokens) if name == "mlx" else direct_hf(path, tokens)
        direct()  # warm-up
        rates: list[float] = []
        counts: set[int] = set()
        for _ in range(reps):
            started = time.perf_counter()
            count = direct()
            rates.append(count / (time.perf_counter() - started))
            counts.add(count)
        return {"rates": rates, "counts": sorted(counts)}

    if column == "direct":
        return measure()
    # Loaded and run in the same plain thread (mlx's arrays belong to the thread's stream).
    out: list[dict[str, Any]] = []
    thread = threading.Thread(target=lambda: out.append(measure()))
    thread.start()
    thread.join()
    if not out:
        raise RuntimeError(f"the {column} column of {name} failed in its thread")
    return out[0]


async def _measure_ours(name: str, path: Path, tokens: int, reps: int) -> dict[str, Any]:
    from limelight.providers import MLX, Transformers
    from limelight.schemas import CompletionRequest, Message

    provider = (
        MLX(str(path), max_tokens=tokens)
        if name == "mlx"
        else Transformers(str(path), max_new_tokens=tokens)
    )
    request = CompletionRequest(messages=[Message.user(PROMPT[0]["content"])])

    async def ours() -> int:
        result = await provider.complete(request)
        assert result.usage is not None
        return result.usage.completion_tokens

    await ours()  # warm-up (and the load)
    rates: list[float] = []
    counts: set[int] = set()
    for _ in range(reps):
        started = time.perf_counter()
        count = await ours()
        rates.append(count / (time.perf_counter() - started))
        counts.add(count)
    return {"rates": rates, "counts": sorted(counts)}


def bench_generation(
    name: str, path: Path, tokens: int, runs: int, reps: int
) -> list[dict[str, Any]]:
    """Every column in ``runs`` fresh processes each, the columns alternating, so a burst of
    load on the machine hits all of them and no column shares a process (and torch's thread
    pools) with another."""
    samples: dict[str, list[float]] = {c: [] for c in COLUMNS}
    counts: dict[str, set[int]] = {c: set() for c in COLUMNS}
    for _ in range(runs):
        for column in COLUMNS:
            args = [name, str(path), str(tokens), column, str(reps)]
            done = subprocess.run(
                [sys.executable, __file__, "--column", *args], capture_output=True, text=True
            )
            if done.returncode != 0:
                raise RuntimeError(
                    f"the {column} column of {name} exited with {done.returncode}:\n"
                    + done.stderr[-4000:]
                )
            out = done.stdout
            result = json.loads(out.strip().splitlines()[-1])
            samples[column].extend(result["rates"])
            counts[column].update(result["counts"])
    medians = {c: statistics.median(r) for c, r in samples.items()}
    best_direct = max(medians["direct"], medians["direct_thread"])
    rows = []
    for loop in ("asyncio", "trio"):
        ours = medians[f"limelight_{loop}"]
        rows.append(
            {
                "loop": loop,
                "direct_tokens_per_s": medians["direct"],
                "direct_thread_tokens_per_s": medians["direct_thread"],
                "limelight_tokens_per_s": ours,
                "ratio": ours / best_direct,
                "tokens": {c: sorted(v) for c, v in counts.items()},
                "runs": samples,
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
    parser.add_argument("--reps", type=int, default=3, help="timed generations per process")
    parser.add_argument("--column", nargs=5, help=argparse.SUPPRESS)  # one column, in a child
    args = parser.parse_args()
    if args.column:
        name, path, tokens, column, reps = args.column
        print(json.dumps(measure_column(name, Path(path), int(tokens), column, int(reps))))
        sys.stdout.flush()
        # The figures are out; skip the interpreter's teardown. After a generation on a thread
        # that is not the main one, mlx 0.32 now and then aborts in its static destructors at
        # exit ("terminate called without an active exception", about 1 run in 12 here).
        os._exit(0)
    import_runs = args.import_runs or (3 if args.quick else 15)
    runs = args.runs or (1 if args.quick else 5)
    plan = [("tiny", 32)] if args.quick else [("tiny", 256), ("small", 128)]

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
        f"\nlocal generation, greedy, median of {runs} processes x {args.reps} runs per column"
        " (goal >= 0.95x direct):"
    )
    print("  (vs. = limelight / the faster of direct on the main thread and direct in a thread)")
    header = f"  {'backend':<13}{'model':<7}{'loop':<9}{'direct':>9}{'in thread':>11}"
    print(header + f"{'limelight':>11}{'vs.':>8}   tokens/s")
    for row in generation:
        print(
            f"  {row['backend']:<13}{row['model']:<7}{row['loop']:<9}"
            f"{row['direct_tokens_per_s']:>9.0f}{row['direct_thread_tokens_per_s']:>11.0f}"
            f"{row['limelight_tokens_per_s']:>11.0f}{row['ratio']:>7.2f}x"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"backends-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
