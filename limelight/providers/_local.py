"""What the in-process model backends (MLX, transformers) share.

They share a process-wide model cache, a thread of its own for each loaded model, the prompt
built from a request (JSON-schema output by instruction), generation streamed from that thread
to async code, stop strings, and the result."""

from __future__ import annotations

import concurrent.futures
import json
import queue
import threading
import time
from collections.abc import AsyncGenerator, Callable, Hashable
from typing import Any, TypeVar

import anyio.lowlevel
import msgspec
import structlog

from ..errors import BadRequest, ConfigError
from ..schemas import (
    CompletionRequest,
    CompletionResult,
    EmbeddingRequest,
    EmbeddingResult,
    ModelInfo,
    ModelList,
    StreamEvent,
    StreamEventType,
    Usage,
)
from ._threads import iterate_in_thread

__all__ = [
    "Finished",
    "LocalBackend",
    "ModelThread",
    "Settings",
    "load_once",
    "model_thread",
    "prompt_messages",
]

_log = structlog.get_logger("limelight.providers.local")
_T = TypeVar("_T")

_cache_guard = threading.Lock()
_cache: dict[Hashable, Any] = {}
_cache_locks: dict[Hashable, threading.Lock] = {}
_threads: dict[Hashable, ModelThread] = {}


def load_once(key: Hashable, loader: Callable[[], Any]) -> Any:
    """``loader()``'s value, computed once per process for ``key`` (blocking; threads asking
    for the same key while it loads wait for that one load)."""
    with _cache_guard:
        if key in _cache:
            return _cache[key]
        lock = _cache_locks.setdefault(key, threading.Lock())
    with lock:
        with _cache_guard:
            if key in _cache:
                return _cache[key]
        value = loader()
        with _cache_guard:
            _cache[key] = value
        return value


class ModelThread:
    """The one thread a loaded model runs on, for the life of the process (as the model
    stays cached): its load, each generation and each embedding, one job at a time, in the
    order they come.

    One thread per model, rather than a new one per call, keeps what the model library ties
    to a thread (mlx's per-thread streams, where the weights were evaluated; torch's
    per-thread state) the same from load to every call, and makes "one generation at a
    time per model" a property of the queue instead of a lock.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except BaseException:  # jobs hand their errors on; this one escaped: report it
                _log.exception("model thread job failed", thread=self._thread.name)

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job`` to run on this thread after those queued before it."""
        self._jobs.put(job)

    def call(self, fn: Callable[[], Any]) -> Any:
        """``fn()``'s value, computed on this thread (blocking; direct when called from it)."""
        if threading.current_thread() is self._thread:
            return fn()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def job() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:  # re-raised by future.result() in the caller
                future.set_exception(exc)

        self.submit(job)
        return future.result()


def model_thread(key: Hashable, name: str) -> ModelThread:
    """The thread of the model cached under ``key``, started on first use."""
    with _cache_guard:
        thread = _threads.get(key)
        if thread is None:
            thread = _threads[key] = ModelThread(name)
        return thread


def json_instruction(response_format: dict[str, Any]) -> str | None:
    """The instruction that asks a local model for the JSON a ``response_format`` wants."""
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema", spec) if isinstance(spec, dict) else spec
        return (
            "Answer with one JSON value only, no prose and no code fences, valid against this "
            f"JSON schema:\n{json.dumps(schema, sort_keys=True)}"
        )
    if kind == "json_object":
        return "Answer with one JSON object only, no prose and no code fences."
    if kind in (None, "text"):
        return None
    raise BadRequest(
        f"response_format type {kind!r} is not supported by local backends: use "
        "'json_schema', 'json_object' or 'text'",
        status_code=400,
    )


def prompt_messages(request: CompletionRequest) -> list[dict[str, str]]:
    """The request as chat-template messages (a ``prompt`` becomes a user message), with the
    JSON instruction of ``response_format`` added to the last user message.

    :raises BadRequest: tools were offered (local backends do not parse tool calls), or the
        request holds no message.
    """
    if request.tools:
        raise BadRequest(
            "local backends do not parse tool calls from the model's text: drop tools=, or "
            "serve the model with an OpenAI-compatible server that does (mlx_lm.server, vLLM)",
            status_code=400,
        )
    messages = [{"role": m.role, "content": m.content or ""} for m in request.messages]
    if request.prompt is not None:
        messages.append({"role": "user", "content": request.prompt})
    if not messages:
        raise BadRequest("the request has neither messages nor a prompt", status_code=400)
    instruction = json_instruction(request.response_format) if request.response_format else None
    if instruction is not None:
        for message in reversed(messages):
            if message["role"] == "user":
                message["content"] = f"{message['content']}\n\n{instruction}"
                break
        else:
            messages.append({"role": "user", "content": instruction})
    return messages


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """One generation's settings: the backend's defaults overridden by the request's.

    :ivar incremental: whether the text is wanted token by token (a stream, or stop strings
        to look for); when not, a backend may decode the whole answer once at the end, and
        emit it as one piece.
    """

    max_tokens: int
    temperature: float
    top_p: float | None
    top_k: int | None
    seed: int | None
    incremental: bool = True


class Finished(msgspec.Struct, frozen=True, kw_only=True):
    """The last thing a generation thread emits."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


Emit = Callable[[str | Finished], None]


class _StopStrings:
    """Cuts the text at the first stop string, holding back what may be the start of one."""

    __slots__ = ("_held", "_hold", "_stops", "stopped")

    def __init__(self, stops: list[str]) -> None:
        self._stops = [s for s in stops if s]
        self._hold = max((len(s) for s in self._stops), default=1) - 1
        self._held = ""
        self.stopped = False

    @property
    def active(self) -> bool:
        """Whether there is any stop string to look for."""
        return bool(self._stops)

    def feed(self, text: str) -> str:
        if not self._stops:
            return text
        held = self._held + text
        cut = min((i for i in (held.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return held[:cut]
        keep = len(held) - self._hold
        if keep <= 0:
            self._held = held
            return ""
        self._held = held[keep:]
        return held[:keep]

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held


class LocalBackend:
    """The Provider methods of an in-process model; subclasses load and generate.

    :param model: the model's directory (or hub name, for a model already downloaded).
    :param max_tokens: tokens generated when a request names no ``max_tokens``.
    :param temperature: ``0`` samples greedily (the default), deterministic.
    :param top_p: nucleus sampling; ``None`` keeps every token.
    :param top_k: sample among the ``top_k`` likeliest tokens; ``None`` for all.
    :param seed: the random seed for sampling when the request names none.
    """

    name = "local"

    def __init__(
        self,
        model: str,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float | None = None,
        top_k: int | None = None,
        seed: int | None = None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ConfigError(f"{type(self).__name__} needs a model path, got {model!r}")
        if max_tokens < 1 or temperature < 0 or (top_p is not None and not 0 < top_p <= 1):
            raise ConfigError(
                "max_tokens must be >= 1, temperature >= 0 and top_p within (0, 1], got "
                f"{max_tokens}, {temperature} and {top_p}"
            )
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.seed = seed

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"

    # -- for subclasses ----------------------------------------------------------------------

    def _load(self) -> Any:
        """The loaded model (blocking, runs on the model's thread, cached per process)."""
        raise NotImplementedError

    def _cache_key(self) -> Hashable:
        return (type(self).__name__, self.model)

    def _generate(
        self,
        loaded: Any,
        messages: list[dict[str, str]],
        settings: Settings,
        emit: Emit,
        stop: threading.Event,
    ) -> None:
        """Generate (blocking, on the model's thread): ``emit`` each piece of text, then one
        :class:`Finished`. Return soon after ``stop`` is set."""
        raise NotImplementedError

    def _embed(self, loaded: Any, texts: list[str]) -> list[list[float]]:
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------

    def thread(self) -> ModelThread:
        """The model's own thread, shared by every instance naming the same model."""
        return model_thread(self._cache_key(), f"limelight-{self.name}-model")

    def loaded(self) -> Any:
        """The model, loaded once per process on its thread and shared by every instance
        naming it (blocking: from async code, call it in a worker thread)."""
        key = self._cache_key()
        return self.thread().call(lambda: load_once(key, self._load))

    def _settings(self, request: CompletionRequest, *, incremental: bool = True) -> Settings:
        max_tokens = request.max_tokens if request.max_tokens is not None else self.max_tokens
        if max_tokens < 1:
            raise BadRequest(f"max_tokens must be at least 1, got {max_tokens}", status_code=400)
        return Settings(
            max_tokens=max_tokens,
            temperature=request.temperature
            if request.temperature is not None
            else self.temperature,
            top_p=request.top_p if request.top_p is not None else self.top_p,
            top_k=self.top_k,
            seed=request.seed if request.seed is not None else self.seed,
            incremental=incremental,
        )

    async def complete(self, request: CompletionRequest) -> CompletionResult:
        """Generate the whole answer (in a worker thread).

        :raises BadRequest: tools offered, or an unsupported ``response_format``.
        """
        result: CompletionResult | None = None
        # Nobody reads the tokens as they come: let the thread run without waking the loop.
        stream = self._events(request, wake_each=False)
        try:
            async for event in stream:
                if event.type is StreamEventType.DONE:
                    result = event.result
        finally:
            await stream.aclose()
        assert result is not None  # stream() always ends with DONE or raises
        return result

    def stream(self, request: CompletionRequest) -> AsyncGenerator[StreamEvent, None]:
        """Generate in a worker thread, yielding TOKEN events as text comes, then USAGE and
        DONE. Closing the stream (or cancelling its reader) stops generation at the next token.

        :raises BadRequest: tools offered, or an unsupported ``response_format``.
        """
        return self._events(request, wake_each=True)

    async def _events(
        self, request: CompletionRequest, *, wake_each: bool
    ) -> AsyncGenerator[StreamEvent, None]:
        started = time.perf_counter()
        messages = prompt_messages(request)
        stops = _StopStrings(list(request.stop or ()))
        settings = self._settings(request, incremental=wake_each or stops.active)

        def produce(emit: Emit, stop: threading.Event) -> None:
            self._generate(self.loaded(), messages, settings, emit, stop)

        parts: list[str] = []
        ttft: float | None = None
        finished: Finished | None = None
        pieces = self._on_model_thread(produce, job="generate", wake_each=wake_each)
        try:
            async for piece in pieces:
                if isinstance(piece, Finished):
                    finished = piece
                    continue
                text = stops.feed(piece)
                if text:
                    if ttft is None:
                        ttft = time.perf_counter() - started
                    parts.append(text)
                    yield StreamEvent.token(text)
                if stops.stopped:
                    break
        finally:
            await pieces.aclose()
        if not stops.stopped:
            tail = stops.flush()
            if tail:
                parts.append(tail)
                yield StreamEvent.token(tail)
        if finished is None and not stops.stopped:
            raise RuntimeError(f"{self!r}: generation ended without its finish record")
        usage = (
            Usage.of(finished.prompt_tokens, finished.completion_tokens)
            if finished is not None
            else None
        )
        if usage is not None:
            yield StreamEvent(type=StreamEventType.USAGE, usage=usage)
        latency = time.perf_counter() - started
        yield StreamEvent.done(
            CompletionResult(
                content="".join(parts),
                finish_reason="stop"
                if stops.stopped or finished is None
                else finished.finish_reason,
                model=request.model or self.model,
                usage=usage,
                latency=latency,
                # Only a streamed call sees its first token as it comes.
                ttft=(ttft if ttft is not None else latency) if wake_each else None,
                provider=self.name,
                metadata=dict(request.metadata),
            )
        )

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Mean-pooled, unit-length last hidden states of the model (on its thread)."""
        texts = list(request.input)
        if not texts:
            raise BadRequest("embed needs at least one input text", status_code=400)

        def produce(emit: Callable[[list[list[float]]], None], stop: threading.Event) -> None:
            emit(self._embed(self.loaded(), texts))

        vectors: list[list[float]] = []
        batches = self._on_model_thread(produce, job="embed", wake_each=False)
        try:
            async for batch in batches:
                vectors = batch
        finally:
            await batches.aclose()
        if request.dimensions is not None:
            vectors = [v[: request.dimensions] for v in vectors]
        return EmbeddingResult(embeddings=vectors, model=request.model or self.model)

    def _on_model_thread(
        self,
        produce: Callable[[Callable[[_T], None], threading.Event], None],
        *,
        job: str,
        wake_each: bool,
    ) -> AsyncGenerator[_T, None]:
        """``produce``'s items, the job run on this model's own thread (see
        :func:`iterate_in_thread`)."""
        return iterate_in_thread(
            produce,
            name=f"limelight-{self.name}-{job}",
            wake_each=wake_each,
            start=self.thread().submit,
        )

    async def list_models(self) -> ModelList:
        """The one model this backend runs."""
        await anyio.lowlevel.checkpoint()
        return ModelList(models=[ModelInfo(id=self.model, owned_by=self.name)])

    async def aclose(self) -> None:
        """Nothing to release: the model stays cached for the process."""
        await anyio.lowlevel.checkpoint()
