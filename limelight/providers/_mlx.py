"""The backend for a local mlx-lm model (Apple silicon, or Linux CPU with ``mlx[cpu]``).

It calls ``mlx_lm.load`` once per process, uses the tokenizer's chat template, and runs
``stream_generate`` in a worker thread, stopped between tokens when the reader goes away."""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

from ..errors import ConfigError, MissingExtra
from ._local import Emit, Finished, LocalBackend, Settings

__all__ = ["MLX"]


def _chat_text(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """The prompt's token ids: the chat template when the tokenizer has one, else one
    ``role: content`` line per message."""
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):  # transformers 5 may hand a dict
            ids = ids["input_ids"]
        return list(ids)
    text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
    return list(tokenizer.encode(text))


class MLX(LocalBackend):
    """A :class:`~limelight.providers.Provider` running an mlx-lm model in this process.

    The model is loaded (``mlx_lm.load``) on first use, once per process and path, on a
    thread of the model's own; every MLX instance naming it shares it, and generations on it
    run on that thread, one at a time (mlx ties arrays to the thread that evaluated them).
    Generation (``mlx_lm.stream_generate`` with ``make_sampler``) checks a stop flag between
    tokens, so the event loop never blocks and a cancelled call stops generating.
    ``response_format`` JSON schemas are asked for by instruction in the prompt (the answer
    is not constrained). Tool calls are not parsed: serve the model with
    ``mlx_lm.server`` and use ``OpenAICompatible`` for them.

    :param model: the model's directory, or a hub repo already in the local cache.
    :param max_tokens: tokens generated when a request names no ``max_tokens``.
    :param temperature: ``0`` (the default) samples greedily.
    :param top_p: nucleus sampling; ``None`` keeps every token.
    :param top_k: sample among the ``top_k`` likeliest tokens; ``None`` for all.
    :param min_p: drop tokens less likely than ``min_p`` times the likeliest.
    :param seed: the random seed for sampling when the request names none.
    :raises MissingExtra: mlx-lm is not installed.
    """

    name = "mlx"

    def __init__(
        self,
        model: str,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float | None = None,
        top_k: int | None = None,
        min_p: float | None = None,
        seed: int | None = None,
    ) -> None:
        if importlib.util.find_spec("mlx_lm") is None:
            raise MissingExtra("the MLX backend", missing="mlx_lm", extra="mlx")
        super().__init__(
            model,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            seed=seed,
        )
        if min_p is not None and not 0 <= min_p <= 1:
            raise ConfigError(f"min_p must be within [0, 1], got {min_p}")
        self.min_p = min_p

    def _load(self) -> Any:
        import mlx_lm

        try:
            model, tokenizer = mlx_lm.load(self.model)[:2]
        except (FileNotFoundError, ValueError, OSError) as exc:
            raise ConfigError(f"mlx-lm could not load {self.model!r}: {exc}") from exc
        return model, tokenizer

    def _generate(
        self,
        loaded: Any,
        messages: list[dict[str, str]],
        settings: Settings,
        emit: Emit,
        stop: threading.Event,
    ) -> None:
        import mlx.core as mx
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_sampler

        model, tokenizer = loaded
        prompt = _chat_text(tokenizer, messages)
        sampler = make_sampler(
            temp=settings.temperature,
            top_p=settings.top_p or 0.0,
            top_k=settings.top_k or 0,
            min_p=self.min_p or 0.0,
        )
        if settings.seed is not None:
            mx.random.seed(settings.seed)
        finish_reason = "stop"
        count = 0
        for response in stream_generate(
            model, tokenizer, prompt=prompt, max_tokens=settings.max_tokens, sampler=sampler
        ):
            count = response.generation_tokens
            if response.text:
                emit(response.text)
            if response.finish_reason is not None:
                finish_reason = response.finish_reason
            if stop.is_set():
                return
        emit(
            Finished(
                finish_reason=finish_reason, prompt_tokens=len(prompt), completion_tokens=count
            )
        )

    def _embed(self, loaded: Any, texts: list[str]) -> list[list[float]]:
        import mlx.core as mx

        model, tokenizer = loaded
        inner = getattr(model, "model", None)
        if inner is None:
            raise ConfigError(f"{self.model!r} exposes no hidden states (model.model) to embed")
        vectors: list[list[float]] = []
        for text in texts:
            ids = mx.array([tokenizer.encode(text)])
            hidden = inner(ids)[0].mean(axis=0)
            hidden = hidden / mx.maximum(mx.linalg.norm(hidden), 1e-12)
            vectors.append([float(x) for x in hidden.tolist()])
        return vectors
