"""Build a tiny llama-type MLX model on disk, with a BPE tokenizer trained on the spot.

No weights come from a hub: the model has random weights, so it generates nonsense quickly,
but it loads through the same code a real model takes (``mlx_lm.load``, ``mlx_lm.server``).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Sentences the tokenizer is trained on; also handy as prompts.
CORPUS = (
    "The quick brown fox jumps over the lazy dog.",
    "An actor handles one message at a time, in order.",
    "Hello there! How are you today?",
    "Structured concurrency makes cancellation predictable.",
    "Tokens stream from the model to the caller.",
    "What is the capital of France? Paris is the capital of France.",
)

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>")

#: A minimal chat template: one line per message, then the assistant's turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}</s>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

VOCAB_SIZE = 256


def build_tokenizer(path: Path) -> None:
    """Train a byte-level BPE tokenizer on :data:`CORPUS` and save it as a transformers-style
    tokenizer directory (``tokenizer.json`` + ``tokenizer_config.json``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    # A ByteLevel decoder makes mlx_lm pick its BPE streaming detokenizer.
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "</s>",
        "model_max_length": 512,
        "chat_template": CHAT_TEMPLATE,
    }
    (path / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def model_config(vocab_size: int, eos_token_id: int) -> dict[str, Any]:
    """The ``config.json`` of the tiny llama model."""
    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "intermediate_size": 37,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5,
        "vocab_size": vocab_size,
        "max_position_embeddings": 512,
        "tie_word_embeddings": True,
        "eos_token_id": eos_token_id,
        "bos_token_id": 1,
    }


def build_tiny_mlx_model(path: Path, *, seed: int = 0) -> Path:
    """Write a tiny llama model (random weights, safetensors) and its tokenizer into ``path``.

    :param path: the directory to create; give it to ``mlx_lm.load`` or
        ``python -m mlx_lm.server --model``.
    :param seed: the random seed of the weights, so two builds are identical.
    :return: ``path``.
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama
    from tokenizers import Tokenizer

    build_tokenizer(path)
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    eos_token_id = tokenizer.token_to_id("</s>")
    config = model_config(tokenizer.get_vocab_size(), eos_token_id)
    (path / "config.json").write_text(json.dumps(config, indent=2))

    mx.random.seed(seed)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    weights = dict(tree_flatten(model.parameters()))
    mx.eval(weights)
    mx.save_safetensors(str(path / "model.safetensors"), weights)
    return path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serve_mlx_model(model_dir: Path, *, startup_timeout: float = 120.0) -> Iterator[str]:
    """Run ``mlx_lm.server`` on ``model_dir`` in a subprocess; yield its base URL (``.../v1``).

    Waits until ``/health`` answers, fails with the server's log if it exits or never gets
    ready, and terminates it on exit.
    """
    port = free_port()
    log_path = model_dir.parent / f"mlx_server_{port}.log"
    # mlx_lm.server lists the Hugging Face cache in /v1/models and fails when it is missing:
    # point it at an empty one. Offline, so nothing is ever fetched from the hub.
    hub_cache = model_dir.parent / "hf-hub-cache"
    hub_cache.mkdir(exist_ok=True)
    env = {**os.environ, "HF_HUB_CACHE": str(hub_cache), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "mlx_lm", "server", "--model", str(model_dir)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--max-tokens", "16"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"mlx_lm.server exited with {process.returncode}:\n{log_path.read_text()}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlx_lm.server not ready after {startup_timeout} s:\n{log_path.read_text()}"
                )
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
