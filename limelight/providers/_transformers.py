"""The backend for a local transformers model (``AutoModelForCausalLM``).

It runs on CPU, CUDA or MPS. The model is loaded once per process, prompted through the
tokenizer's chat template, and generates in a worker thread that streams its text to async
code and stops when the reader goes away."""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

from ..errors import ConfigError, MissingExtra
from ._local import Emit, Finished, LocalBackend, Settings
from ._threads import Stopped

__all__ = ["Transformers"]

_DEVICES = ("cpu", "cuda", "mps")


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """The token ids that end an answer (the generation config's and the tokenizer's)."""
    ids: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    return frozenset(ids)


def _streamer(
    tokenizer: Any,
    emit: Emit,
    stop: threading.Event | None = None,
    eos: frozenset[int] = frozenset(),
) -> Any:
    """A transformers streamer that emits the text of each generated token as soon as it
    decodes to whole characters, and ends generation (raising :class:`Stopped`) at the first
    token after ``stop`` is set. The end-of-sequence tokens ``eos`` are not text.

    Each token is decoded together with the one or two before it (the offsets of vLLM's
    incremental detokenizer), so the work per token stays constant and tokenizers that drop a
    word's leading space when it is decoded alone still read right; TextStreamer re-decodes
    everything since the last newline and waits for whole words.
    """
    from transformers.generation.streamers import BaseStreamer

    def decode(ids: list[int]) -> str:
        text: str = tokenizer.decode(ids, skip_special_tokens=False)
        return text

    class _Streamer(BaseStreamer):
        def __init__(self) -> None:
            self.prompt_seen = False
            self.tokens: list[int] = []
            self.prefix_offset = 0
            self.read_offset = 0

        def put(self, value: Any) -> None:
            if stop is not None and stop.is_set():
                raise Stopped
            if not self.prompt_seen:  # generate() first puts the prompt
                self.prompt_seen = True
                return
            self.tokens.extend(t for t in value.reshape(-1).tolist() if t not in eos)
            prefix = decode(self.tokens[self.prefix_offset : self.read_offset])
            text = decode(self.tokens[self.prefix_offset :])
            # A character split across tokens decodes to U+FFFD: wait for the rest of it.
            if len(text) > len(prefix) and not text.endswith("\ufffd"):
                self.prefix_offset = self.read_offset
                self.read_offset = len(self.tokens)
                emit(text[len(prefix) :])

        def end(self) -> None:
            if self.read_offset < len(self.tokens):
                prefix = decode(self.tokens[self.prefix_offset : self.read_offset])
                text = decode(self.tokens[self.prefix_offset :])
                self.read_offset = len(self.tokens)
                if len(text) > len(prefix):
                    emit(text[len(prefix) :])

    return _Streamer()


def _stop_check(stop: threading.Event) -> Any:
    """A streamer that decodes nothing: it only ends generation (raising :class:`Stopped`) at
    the first token after ``stop`` is set. The cheapest per-token hook ``generate`` offers (a
    StoppingCriteria costs a tensor per token and one more to combine it)."""
    from transformers.generation.streamers import BaseStreamer

    class _StopCheck(BaseStreamer):
        def put(self, value: Any) -> None:
            if stop.is_set():
                raise Stopped

        def end(self) -> None:
            pass

    return _StopCheck()


class Transformers(LocalBackend):
    """A :class:`~limelight.providers.Provider` running a transformers causal LM in this process.

    The model and tokenizer are loaded (``AutoModelForCausalLM.from_pretrained``) on first
    use, once per process (per path, device and dtype), on a thread of the model's own;
    instances naming the same model share it, and generations on it run there, one at a
    time, so the event loop never blocks. A stream (or a request with stop strings) gets
    each token's text as it comes, through a streamer, while ``complete`` decodes the answer
    once at the end. Either way generation ends at the first token after the reader goes
    away (or the call is cancelled).
    ``response_format`` JSON schemas are asked for by instruction in the prompt. Tool calls
    are not parsed.

    :param model: the model's directory (``save_pretrained`` output), or a hub name already
        in the local cache.
    :param device: ``"cpu"``, ``"cuda"`` (or ``"cuda:1"``...) or ``"mps"``.
    :param torch_dtype: ``"float32"``, ``"bfloat16"``, ``"float16"``, a ``torch.dtype``, or
        ``"auto"`` (the checkpoint's); default float32.
    :param max_new_tokens: tokens generated when a request names no ``max_tokens``.
    :param temperature: ``0`` (the default) decodes greedily.
    :param top_p: nucleus sampling; ``None`` keeps every token.
    :param top_k: sample among the ``top_k`` likeliest tokens; ``None`` for all.
    :param seed: the random seed for sampling when the request names none.
    :raises MissingExtra: transformers or torch is not installed.
    """

    name = "transformers"

    def __init__(
        self,
        model: str,
        *,
        device: str = "cpu",
        torch_dtype: Any = "float32",
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float | None = None,
        top_k: int | None = None,
        seed: int | None = None,
    ) -> None:
        for package in ("transformers", "torch"):
            if importlib.util.find_spec(package) is None:
                raise MissingExtra(
                    "the transformers backend", missing=package, extra="transformers"
                )
        if not isinstance(device, str) or device.split(":")[0] not in _DEVICES:
            raise ConfigError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
        super().__init__(
            model,
            max_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            seed=seed,
        )
        self.device = device
        self.torch_dtype = torch_dtype

    def __repr__(self) -> str:
        return f"Transformers(model={self.model!r}, device={self.device!r})"

    def _cache_key(self) -> tuple[str, str, str, str]:
        # By the dtype itself, so "bfloat16" and torch.bfloat16 share one load.
        return ("transformers", self.model, self.device, str(self._dtype()))

    def _dtype(self) -> Any:
        import torch

        dtype = self.torch_dtype
        if dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype):
            return dtype
        value = getattr(torch, str(dtype), None)
        if not isinstance(value, torch.dtype):
            raise ConfigError(
                f"torch_dtype {dtype!r} is not a torch dtype: use 'float32', 'bfloat16', "
                "'float16' or 'auto'"
            )
        return value

    def _load(self) -> Any:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        dtype = self._dtype()
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model)
            model: Any = AutoModelForCausalLM.from_pretrained(self.model, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"transformers could not load {self.model!r}: {exc}") from exc
        try:
            model.to(self.device)
        except (RuntimeError, AssertionError) as exc:  # no CUDA / MPS build or device
            raise ConfigError(f"cannot move {self.model!r} to {self.device!r}: {exc}") from exc
        model.eval()
        return model, tokenizer

    def _inputs(self, tokenizer: Any, messages: list[dict[str, str]]) -> Any:
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
        return tokenizer(text, return_tensors="pt")

    def _generate(
        self,
        loaded: Any,
        messages: list[dict[str, str]],
        settings: Settings,
        emit: Emit,
        stop: threading.Event,
    ) -> None:
        import torch

        model, tokenizer = loaded
        inputs = self._inputs(tokenizer, messages).to(self.device)
        prompt_tokens = int(inputs["input_ids"].shape[-1])
        options: dict[str, Any] = {"max_new_tokens": settings.max_tokens}
        if settings.temperature > 0:
            options.update(do_sample=True, temperature=settings.temperature)
            if settings.top_p is not None:
                options["top_p"] = settings.top_p
            if settings.top_k is not None:
                options["top_k"] = settings.top_k
        else:
            options["do_sample"] = False
        pad = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        )
        # Text token by token only when someone reads it so (a stream, stop strings); a whole
        # answer is decoded once at the end, and the per-token hook only checks the stop flag.
        eos = _eos_ids(model, tokenizer)
        streamer = (
            _streamer(tokenizer, emit, stop, eos) if settings.incremental else _stop_check(stop)
        )
        with torch.inference_mode():
            if settings.seed is not None:
                torch.manual_seed(settings.seed)
            output = model.generate(**inputs, **options, streamer=streamer, pad_token_id=pad)
        generated = output[0, prompt_tokens:].tolist()
        if not settings.incremental:
            # Generation ends at the first end-of-sequence token: the last one, if any.
            text = generated[:-1] if generated and generated[-1] in eos else generated
            if text:
                emit(tokenizer.decode(text, skip_special_tokens=False))
        emit(
            Finished(
                finish_reason="length" if len(generated) >= settings.max_tokens else "stop",
                prompt_tokens=prompt_tokens,
                completion_tokens=len(generated),
            )
        )

    def _embed(self, loaded: Any, texts: list[str]) -> list[list[float]]:
        import torch

        model, tokenizer = loaded
        vectors: list[list[float]] = []
        with torch.inference_mode():
            for text in texts:
                inputs = tokenizer(text, return_tensors="pt").to(self.device)
                hidden = model(**inputs, output_hidden_states=True).hidden_states[-1][0]
                pooled = torch.nn.functional.normalize(hidden.float().mean(dim=0), dim=0)
                vectors.append(pooled.tolist())
        return vectors
