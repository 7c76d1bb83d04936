"""The backend for any model LiteLLM reaches.

That includes ``"gpt-4o-mini"``, ``"anthropic/claude-..."``, ``"ollama/llama3"``... LiteLLM is
imported on first use, never by ``import limelight``.

LiteLLM's async calls are asyncio-only, so on trio its sync calls run in worker threads.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import time
import warnings
from collections.abc import AsyncGenerator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import msgspec

from ..errors import (
    BadRequest,
    BadResponse,
    ConfigError,
    MissingExtra,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    api_error_for_status,
)
from ..schemas import (
    CompletionRequest,
    CompletionResult,
    EmbeddingRequest,
    EmbeddingResult,
    Message,
    ModelInfo,
    ModelList,
    StreamEvent,
    StreamEventType,
    ToolCall,
    ToolSpec,
    Usage,
)
from ._threads import iterate_in_thread, on_asyncio

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["LiteLLM", "import_litellm", "litellm_error"]


_litellm: ModuleType | None = None
_NO_MCP = importlib.util.find_spec("mcp") is None


def import_litellm() -> ModuleType:
    """``litellm``, imported with the local cost map (no network fetch at import).

    :raises MissingExtra: litellm is not installed.
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    global _litellm
    if _litellm is not None:
        return _litellm
    try:
        with warnings.catch_warnings():
            # pydantic warns while it builds LiteLLM's response types (on their first use):
            # nothing a caller can act on, and fatal where warnings are errors. Build them
            # here, once, with that warning silenced.
            warnings.filterwarnings(
                "ignore", message=r".*is using the `ReadOnly` qualifier", category=UserWarning
            )
            import litellm

            litellm.ModelResponse(choices=[{"message": {"role": "assistant", "content": ""}}])
            litellm.ModelResponseStream(choices=[{"delta": {"role": "assistant", "content": ""}}])
    except ImportError as exc:
        raise MissingExtra("the LiteLLM backend", missing=exc.name, extra="litellm") from exc
    _litellm = litellm
    return litellm


#: What LiteLLM's exceptions become.
LimelightErrorT = ProviderError | ConfigError


def _redact(text: str, secret: str | None) -> str:
    """``text`` without ``secret`` (the configured key) nor any other secret in it."""
    from .._secrets import redact_text

    return redact_text(text, secret)


def _redact_body(body: object, secret: str | None) -> object:
    """An error body without ``secret``, whatever its shape (APIError redacts the rest)."""
    from .._secrets import redact

    return redact(body, secret)


def _error_headers(exc: BaseException) -> dict[str, str]:
    """Headers a LiteLLM error carries: the upstream response's and LiteLLM's own."""
    found: dict[str, str] = {}
    response = getattr(exc, "response", None)
    for source in (
        getattr(response, "headers", None),
        getattr(exc, "litellm_response_headers", None),
        getattr(exc, "headers", None),
    ):
        if isinstance(source, Mapping):
            for key, value in source.items():
                lowered = str(key).lower()
                if lowered.startswith(("retry-after", "x-ratelimit-")):
                    found[lowered] = str(value)
    return found


def litellm_error(exc: Exception, *, model: str, secret: str | None = None) -> LimelightErrorT:
    """The limelight error for an exception LiteLLM raised while calling ``model``.

    :param secret: a string (the API key) that must not appear in the message.
    """
    from ._http import retry_after_seconds

    litellm = import_litellm()
    detail = _redact(str(exc) or type(exc).__name__, secret)
    headers = _error_headers(exc)
    retry_after = retry_after_seconds(headers)
    if isinstance(exc, litellm.Timeout):
        return ProviderTimeout(f"LiteLLM call to {model} timed out: {detail}", headers=headers)
    if isinstance(exc, litellm.APIConnectionError):
        return ProviderConnectionError(
            f"LiteLLM could not reach {model}: {detail}", headers=headers
        )
    if isinstance(exc, litellm.APIResponseValidationError):
        return BadResponse(f"LiteLLM could not read {model}'s answer: {detail}")
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and status >= 400:
        cls = api_error_for_status(status)
        hint = ""
        if isinstance(exc, litellm.ContextWindowExceededError):
            hint = "; the prompt is longer than the model's context window: shorten it"
        elif cls is RateLimited:
            hint = f"; retry after {retry_after:g} s" if retry_after is not None else ""
        elif cls is BadRequest:
            hint = "; fix the request, retrying will not help"
        body = getattr(exc, "body", None)
        return cls(
            f"LiteLLM call to {model} failed with {status}: {detail}{hint}",
            status_code=status,
            body=_redact_body(body, secret),
            retry_after=retry_after,
            headers=headers,
        )
    if isinstance(exc, TimeoutError):
        return ProviderTimeout(f"LiteLLM call to {model} timed out: {detail}")
    if isinstance(exc, ValueError | TypeError) and not isinstance(exc, msgspec.ValidationError):
        return ConfigError(f"LiteLLM rejected the call to {model}: {detail}")
    return ProviderError(f"LiteLLM call to {model} failed: {type(exc).__name__}: {detail}")


def _wire_message(message: Message) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name is not None:
        wire["name"] = message.name
    if message.tool_calls:
        wire["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def _wire_tool(tool: ToolSpec) -> dict[str, Any]:
    function: dict[str, Any] = {
        "name": tool.name,
        "description": tool.description,
        "parameters": tool.parameters,
    }
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _usage(usage: Any) -> Usage | None:
    if usage is None:
        return None
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    total = int(getattr(usage, "total_tokens", 0) or 0) or prompt + completion
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)


def _tool_calls(message: Any) -> list[ToolCall]:
    calls = getattr(message, "tool_calls", None) or []
    return [
        ToolCall(
            id=call.id or f"call_{index}",
            name=call.function.name or "",
            arguments=call.function.arguments or "{}",
        )
        for index, call in enumerate(calls)
    ]


class LiteLLM:
    """A :class:`~limelight.providers.Provider` calling any model through LiteLLM.

    ``litellm.acompletion`` runs on asyncio; on trio, where LiteLLM's async code cannot run,
    the sync ``litellm.completion`` runs in a worker thread (a streamed call reads its chunks
    from a thread that stops between chunks when the reader goes away; a cancelled
    :meth:`complete` returns at once and leaves the thread to finish LiteLLM's blocking
    call, which cannot be interrupted). Usage and cost come from LiteLLM's response
    (its cost map, ``response_cost``).

    :param model: a LiteLLM model string; requests naming a model override it.
    :param api_key: passed to LiteLLM; never shown in messages or ``repr``.
    :param api_base: the server to call instead of the provider's default.
    :param embedding_model: the model :meth:`embed` uses when the request names none
        (default: ``model``).
    :param params: any other LiteLLM argument, sent with every call (``num_retries``,
        ``mock_response`` in tests, ``temperature``...); a request's ``extra`` overrides them.
    :raises MissingExtra: litellm is not installed.
    """

    name = "litellm"

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        api_base: str | None = None,
        embedding_model: str | None = None,
        **params: Any,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ConfigError(f"LiteLLM needs a model string such as 'gpt-4o-mini', got {model!r}")
        if importlib.util.find_spec("litellm") is None:
            raise MissingExtra("the LiteLLM backend", missing="litellm", extra="litellm")
        self.model = model
        self.embedding_model = embedding_model or model
        self._api_key = api_key
        self._params = dict(params)
        if api_key is not None:
            self._params["api_key"] = api_key
        if api_base is not None:
            self._params["api_base"] = api_base

    def __repr__(self) -> str:
        return f"LiteLLM(model={self.model!r})"

    def _kwargs(self, request: CompletionRequest, *, stream: bool) -> dict[str, Any]:
        kwargs = dict(self._params)
        kwargs["model"] = request.model or self.model
        messages = [_wire_message(m) for m in request.messages]
        if request.prompt is not None:
            messages.append({"role": "user", "content": request.prompt})
        if not messages:
            raise ConfigError("the request has neither messages nor a prompt: give one of them")
        kwargs["messages"] = messages
        for key in ("temperature", "top_p", "max_tokens", "stop", "seed", "tool_choice"):
            value = getattr(request, key)
            if value is not None:
                kwargs[key] = value
        if request.response_format is not None:
            kwargs["response_format"] = request.response_format
        if request.tools:
            kwargs["tools"] = [_wire_tool(tool) for tool in request.tools]
            if _NO_MCP:
                # LiteLLM (1.106) imports its MCP handler, which needs the optional `mcp`
                # package, for any call with tools; ours are plain functions, never MCP.
                kwargs.setdefault("_skip_mcp_handler", True)
        if request.attempt_timeout is not None:
            kwargs["timeout"] = request.attempt_timeout
        kwargs.update(request.extra)
        if stream:
            kwargs["stream"] = True
            kwargs.setdefault("stream_options", {"include_usage": True})
        else:
            kwargs.pop("stream", None)
        return kwargs

    def _error(self, exc: Exception, model: str) -> LimelightErrorT:
        return litellm_error(exc, model=model, secret=self._api_key)

    def _cost(self, litellm: ModuleType, response: Any) -> float | None:
        hidden = getattr(response, "_hidden_params", None) or {}
        cost = hidden.get("response_cost")
        if cost is None:
            try:
                cost = litellm.completion_cost(completion_response=response)
            except Exception:  # the model's price is not in LiteLLM's cost map
                return None
        return float(cost) if cost is not None else None

    def _result(
        self,
        litellm: ModuleType,
        response: Any,
        request: CompletionRequest,
        *,
        started: float,
        ttft: float | None = None,
    ) -> CompletionResult:
        model = request.model or self.model
        if not response.choices:
            raise BadResponse(f"LiteLLM's answer from {model} has no choices")
        choice = response.choices[0]
        message = choice.message
        content = message.content
        return CompletionResult(
            content=content if isinstance(content, str) else None,
            tool_calls=_tool_calls(message),
            finish_reason=choice.finish_reason,
            model=response.model or model,
            usage=_usage(getattr(response, "usage", None)),
            latency=time.perf_counter() - started,
            ttft=ttft,
            cost=self._cost(litellm, response),
            id=response.id,
            provider=self.name,
            metadata=dict(request.metadata),
        )

    # -- the Provider protocol ---------------------------------------------------------------

    async def complete(self, request: CompletionRequest) -> CompletionResult:
        """One chat completion (a ``prompt`` is sent as a user message).

        :raises ProviderError: the subclass matching LiteLLM's exception.
        """
        litellm = import_litellm()
        kwargs = self._kwargs(request, stream=False)
        started = time.perf_counter()
        try:
            if on_asyncio():
                response = await litellm.acompletion(**kwargs)
            else:
                response = await anyio.to_thread.run_sync(
                    functools.partial(litellm.completion, **kwargs), abandon_on_cancel=True
                )
        except Exception as exc:
            raise self._error(exc, kwargs["model"]) from exc
        return self._result(litellm, response, request, started=started)

    async def stream(self, request: CompletionRequest) -> AsyncGenerator[StreamEvent, None]:
        """The answer as TOKEN events, then one TOOL_CALL per call, USAGE and DONE (the result
        assembled by ``litellm.stream_chunk_builder``, with the cost).

        :raises ProviderError: the subclass matching LiteLLM's exception.
        """
        litellm = import_litellm()
        kwargs = self._kwargs(request, stream=True)
        model = kwargs["model"]
        started = time.perf_counter()
        chunks: list[Any] = []
        ttft: float | None = None
        source = self._chunks(litellm, kwargs) if on_asyncio() else self._thread_chunks(kwargs)
        try:
            while True:
                try:
                    chunk = await source.__anext__()
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    raise self._error(exc, model) from exc
                # LiteLLM's iterators may never suspend (buffered or mocked chunks): honour a
                # cancellation between chunks all the same.
                await anyio.lowlevel.checkpoint_if_cancelled()
                chunks.append(chunk)
                for choice in chunk.choices or ():
                    text = getattr(choice.delta, "content", None)
                    if choice.index == 0 and text:
                        if ttft is None:
                            ttft = time.perf_counter() - started
                        yield StreamEvent.token(text)
        finally:
            await source.aclose()
        if not chunks:
            raise BadResponse(f"LiteLLM's stream from {model} ended without a chunk")
        try:
            built = litellm.stream_chunk_builder(chunks, messages=kwargs["messages"])
        except Exception as exc:
            raise BadResponse(f"LiteLLM could not assemble the stream from {model}: {exc}") from exc
        result = self._result(litellm, built, request, started=started, ttft=ttft)
        for call in result.tool_calls:
            yield StreamEvent(type=StreamEventType.TOOL_CALL, tool_call=call)
        if result.usage is not None:
            yield StreamEvent(type=StreamEventType.USAGE, usage=result.usage)
        yield StreamEvent.done(result)

    @staticmethod
    async def _chunks(litellm: ModuleType, kwargs: dict[str, Any]) -> AsyncGenerator[Any, None]:
        response = await litellm.acompletion(**kwargs)
        try:
            async for chunk in response:
                yield chunk
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()

    @staticmethod
    def _thread_chunks(kwargs: dict[str, Any]) -> AsyncGenerator[Any, None]:
        def produce(emit: Any, stop: Any) -> None:
            litellm = import_litellm()
            response = litellm.completion(**kwargs)
            iterator: Iterator[Any] = iter(response)
            try:
                for chunk in iterator:
                    emit(chunk)
            finally:
                close = getattr(getattr(response, "completion_stream", None), "close", None)
                if callable(close):
                    close()

        return iterate_in_thread(produce, name=f"limelight-litellm-{kwargs['model']}")

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Embeddings through ``litellm.aembedding`` (``litellm.embedding`` in a thread on trio).

        :raises ProviderError: the subclass matching LiteLLM's exception.
        """
        litellm = import_litellm()
        model = request.model or self.embedding_model
        kwargs: dict[str, Any] = {**self._params, "model": model, "input": list(request.input)}
        for key in ("temperature", "max_tokens", "stream_options"):
            kwargs.pop(key, None)  # completion-only parameters
        if request.dimensions is not None:
            kwargs["dimensions"] = request.dimensions
        try:
            if on_asyncio():
                response = await litellm.aembedding(**kwargs)
            else:
                response = await anyio.to_thread.run_sync(
                    functools.partial(litellm.embedding, **kwargs), abandon_on_cancel=True
                )
        except Exception as exc:
            raise self._error(exc, model) from exc
        vectors: list[list[float]] = []
        for item in response.data:
            vector = item["embedding"] if isinstance(item, Mapping) else item.embedding
            vectors.append([float(x) for x in vector])
        return EmbeddingResult(
            embeddings=vectors, model=response.model or model, usage=_usage(response.usage)
        )

    async def list_models(self) -> ModelList:
        """The configured model (LiteLLM has no model listing that works for every provider)."""
        await anyio.lowlevel.checkpoint()
        models = [self.model]
        if self.embedding_model != self.model:
            models.append(self.embedding_model)
        return ModelList(models=[ModelInfo(id=m, owned_by=self.name) for m in models])

    async def aclose(self) -> None:
        """Nothing to release: LiteLLM keeps its own clients."""
        await anyio.lowlevel.checkpoint()
