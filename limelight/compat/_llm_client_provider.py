"""``OpenAIProvider``: the agent client's provider, over limelight's pipeline.

Each call is a :class:`~limelight.schemas.CompletionRequest` sent through a
:class:`~limelight.actors.ProviderPool` of workers driving an
:class:`~limelight.providers.OpenAICompatible` backend, with the rate limiter's attempt
hook, retries, analytics and usage accounting every model call gets. Results come back in
the earlier shapes; failures of the server come back as results with ``status`` and
``error`` (as before), bad arguments raise :class:`~limelight.errors.ConfigError` (a
``ValueError``, as before).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Final

import anyio
import httpx
import msgspec

from .._buckets import DeploymentLimits
from .._usage import current_usage_run
from ..actors._provider_worker import (
    DEFAULT_POOL_SIZE,
    USAGE_RUN_KEY,
    ProviderPool,
)
from ..actors._ratelimit import RateLimitHook
from ..cache import cache_key
from ..errors import (
    ActorCrashed,
    AskTimeout,
    ConfigError,
    DeadlineExceeded,
    ProviderError,
    RuntimeNotRunning,
)
from ..providers import OpenAICompatible
from ..runtime import ActorRef, RetryPolicy
from ..schemas import CompletionRequest, EmbeddingRequest, StreamEventType
from ..schemas import CompletionResult as NativeResult
from ..schemas import EmbeddingResult as NativeEmbeddingResult
from ._llm_client_cache import Caches, CacheSettings
from ._llm_client_host import BridgedStream, Host, close_when_collected
from ._llm_client_models import ModelProfile, rate_limits_of, resolve_profile
from ._llm_client_requests import (
    FIELDS,
    JSON_FORMATS,
    api_key_for,
    error_status,
    normalized_json,
    reasoning_effort_for,
    response_format_for,
    retry_policy,
    tool_choice_for,
    tool_specs,
    translate_event,
)
from ._llm_client_types import (
    CompletionResult,
    EmbeddingResult,
    MessageInput,
    StreamEvent,
    native_messages,
    result_from_native,
    usage_from_native,
)
from ._llm_client_types import StreamEventType as Kind

__all__ = ["DEFAULT_BASE_URL", "OpenAIProvider"]

#: Where calls go when neither ``base_url=`` nor ``OPENAI_BASE_URL`` says otherwise.
DEFAULT_BASE_URL: Final = "https://api.openai.com/v1"


class _State:
    """What a provider opened on the host's loop (kept apart from the provider, so that a
    provider dropped unclosed can still be cleaned up)."""

    def __init__(self, backend: OpenAICompatible, caches: Caches) -> None:
        self.backend = backend
        self.caches = caches
        self.pools: dict[tuple[int, float], ProviderPool] = {}
        self.starting: anyio.Lock | None = None
        self.closed = False

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        pools, self.pools = list(self.pools.values()), {}
        try:
            for pool in pools:
                await pool.stop()
            await self.caches.close()
        finally:
            await self.backend.aclose()


class OpenAIProvider:
    """The agent client's provider for OpenAI's API, or any server speaking it.

    ::

        provider = OpenAIProvider(model="gpt-5-nano")
        result = await provider.complete("Hello, world!")
        print(result.content)
        await provider.close()

    :param model: a profile class (``GPT5Nano``) or its key (``"gpt-5-nano"``); the request
        names the profile's ``model_name``.
    :param cache_backend: ``"fs"`` (with ``cache_dir``), ``"memory"``, ``"pg_redis"``,
        ``"qdrant"`` or ``None``; see :mod:`limelight.compat._llm_client_cache`.
    :param cache_collection: the default collection of ``cache_response=True`` calls.
    :param api_key: default ``OPENAI_API_KEY`` (required for api.openai.com).
    :param base_url: the API root; default ``OPENAI_BASE_URL``, else OpenAI's.
    :param organization: sent as ``OpenAI-Organization``; default ``OPENAI_ORG_ID``.
    :param use_responses_api: not supported (limelight speaks chat completions).
    :param limiter: a limelight :class:`~limelight.actors.RateLimiter` (or a
        :class:`~limelight.actors.RateLimitHook` on one) whose quotas the calls share; by
        default the facade's own limiter holds them to the profile's ``rate_limits``.
    :raises ConfigError: an unknown model, cache backend or a missing API key.
    """

    def __init__(
        self,
        model: type[ModelProfile] | str,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        cache_backend: str | None = None,
        cache_collection: str | None = None,
        pg_dsn: str | None = None,
        redis_url: str | None = None,
        qdrant_url: str | None = None,
        qdrant_api_key: str | None = None,
        redis_ttl_seconds: int = 60 * 60 * 24,
        compress_pg: bool = True,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        use_responses_api: bool = False,
        limiter: ActorRef | RateLimitHook | None = None,
    ) -> None:
        if use_responses_api:
            raise ConfigError(
                "use_responses_api=True is not supported: limelight sends chat completions; "
                "leave it out"
            )
        self._model = resolve_profile(model)
        url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        org = organization or os.environ.get("OPENAI_ORG_ID")
        backend = OpenAICompatible(
            url,
            api_key_for(api_key, url),
            model=self._model.model_name,
            headers={"OpenAI-Organization": org} if org else None,
        )
        settings = CacheSettings(
            backend=cache_backend,
            cache_dir=None if cache_dir is None else os.fspath(cache_dir),
            collection=cache_collection,
            pg_dsn=pg_dsn,
            redis_url=redis_url,
            qdrant_url=qdrant_url,
            qdrant_api_key=qdrant_api_key,
            redis_ttl_seconds=redis_ttl_seconds,
            compress_pg=compress_pg,
        )
        self.cache_dir = cache_dir
        self.default_cache_collection = cache_collection
        self.cache = Caches(settings, embedder=backend)
        self.base_url = backend.base_url
        self._host = Host(limiter)
        self._state = _State(backend, self.cache)
        # One deployment (one quota) per model and server, shared by the providers of both.
        server = httpx.URL(url).netloc.decode("ascii")
        self._deployment = f"llm-client:{self._model.model_name}@{server}"
        self._finalizer = close_when_collected(self, self._host.runtime, self._state.close)

    def __repr__(self) -> str:
        return f"OpenAIProvider(model={self._model.key!r}, base_url={self.base_url!r})"

    # -- profile ----------------------------------------------------------------------------

    @property
    def model(self) -> type[ModelProfile]:
        """The model's profile class."""
        return self._model

    @property
    def model_name(self) -> str:
        return self._model.model_name

    def count_tokens(self, context: Any) -> int:
        return self._model.count_tokens(context)

    def parse_usage(self, usage: dict[str, Any]) -> dict[str, Any]:
        return self._model.parse_usage(usage)

    # -- the pipeline ---------------------------------------------------------------------

    @property
    def host(self) -> Host:
        """Where this provider's pools run."""
        return self._host

    def _check_open(self) -> None:
        if self._state.closed:
            raise RuntimeNotRunning("this provider was closed; create a new OpenAIProvider")

    async def pool(self, policy: RetryPolicy | None = None) -> ProviderPool:
        """The pool this provider's calls with ``policy`` go through (started on first use).
        Runs on the host's loop."""
        state = self._state
        policy = policy or retry_policy(3, 1.0)
        key = (policy.attempts, policy.initial_delay)
        pool = state.pools.get(key)
        if pool is not None and pool.supervisor.alive:
            return pool
        if state.starting is None:
            state.starting = anyio.Lock()
        async with state.starting:
            pool = state.pools.get(key)
            if pool is not None and pool.supervisor.alive:
                return pool
            if state.closed:
                raise RuntimeNotRunning("this provider was closed; create a new OpenAIProvider")
            rpm, tpm = rate_limits_of(self._model)
            hook = await self._host.hook(self._deployment, DeploymentLimits(rpm=rpm, tpm=tpm))
            runtime = self._host.runtime
            pool = await ProviderPool.start(
                runtime,
                state.backend,
                name=runtime.auto_name("llm-client"),
                deployment=self._deployment,
                model=self.model_name,
                size=DEFAULT_POOL_SIZE,
                retry=policy,
                hooks=[hook],
                close_provider=False,  # the provider closes it (its pools share it)
            )
            state.pools[key] = pool
            return pool

    def request(
        self,
        messages: MessageInput,
        *,
        tools: Any = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        response_format: Any = None,
        reasoning_effort: str | None = None,
        reasoning: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> CompletionRequest:
        """The limelight request of a call (in the caller's thread: bad arguments raise
        here, before anything is sent).

        :raises ConfigError: bad messages, tools, response format or reasoning effort.
        """
        natives = native_messages(messages)
        fmt = response_format_for(response_format, str([m.content for m in natives]))
        effort = reasoning_effort_for(self._model, reasoning_effort, reasoning)
        body = dict(extra or {})
        if body.pop("stream", False):
            raise ConfigError("complete() does not stream: use provider.stream(...)")
        fields: dict[str, Any] = {name: body.pop(name) for name in FIELDS if name in body}
        if "timeout" in body:
            fields["attempt_timeout"] = body.pop("timeout")
        if effort is not None:
            body["reasoning_effort"] = effort
        run = current_usage_run.get()
        try:
            return CompletionRequest(
                model=self.model_name,
                messages=natives,
                temperature=temperature,
                max_tokens=max_tokens,
                tools=tool_specs(tools),
                tool_choice=tool_choice_for(tool_choice) if tools else None,
                response_format=fmt,
                metadata={} if run is None else {USAGE_RUN_KEY: run},
                extra=body,
                **fields,
            )
        except (TypeError, msgspec.ValidationError) as exc:
            raise ConfigError(f"a call of {self._model.key!r}: {exc}") from exc

    async def send(self, request: CompletionRequest, policy: RetryPolicy) -> NativeResult:
        """One call through the pool, on the host's loop; failures raised."""
        pool = await self.pool(policy)
        try:
            return await pool.complete(request)
        except ActorCrashed as exc:
            # The backend raised something else than a ProviderError (a bug): that error,
            # as a direct call would have raised it.
            if isinstance(exc.cause, Exception):
                raise exc.cause from None
            raise

    # -- the earlier API ----------------------------------------------------------------------

    async def complete(
        self,
        messages: MessageInput,
        *,
        tools: Any = None,
        tool_choice: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        response_format: Any = None,
        reasoning_effort: str | None = None,
        reasoning: dict[str, Any] | None = None,
        cache_response: bool = False,
        cache_collection: str | None = None,
        rewrite_cache: bool = False,
        regen_cache: bool = False,
        attempts: int = 3,
        backoff: float = 1.0,
        **kwargs: Any,
    ) -> CompletionResult:
        """One completion: a prompt string, a message dict or a list of messages.

        Server failures (after ``attempts`` tries) come back as a result with ``status`` and
        ``error``. ``cache_response=True`` answers a request seen before from the cache
        (``cache_collection`` chooses which); other keyword arguments (``top_p``, ``seed``,
        ``timeout`` per attempt, or any body field) go with the request.

        :raises ConfigError: bad arguments (a ``ValueError``).
        """
        self._check_open()
        request = self.request(
            messages,
            tools=tools,
            tool_choice=tool_choice,
            temperature=temperature,
            max_tokens=max_tokens,
            response_format=response_format,
            reasoning_effort=reasoning_effort,
            reasoning=reasoning,
            extra=kwargs,
        )
        policy = retry_policy(attempts, backoff)
        if cache_response:
            self.cache.get_cache(cache_collection)  # fails now on a bad backend or name
        json_mode = bool(request.response_format) and (
            (request.response_format or {}).get("type") in JSON_FORMATS
        )
        result = await self._host.call(
            self._complete_there,
            request,
            policy,
            (cache_response, cache_collection, rewrite_cache, regen_cache),
        )
        if json_mode and result.ok:
            result.content = normalized_json(result.content)
        return result

    async def _complete_there(
        self,
        request: CompletionRequest,
        policy: RetryPolicy,
        caching: tuple[bool, str | None, bool, bool],
    ) -> CompletionResult:
        cache_response, collection, rewrite, regen = caching
        key = cache_key(request) if cache_response else ""
        if cache_response:
            hit = await self.cache.lookup(
                key, collection, rewrite=rewrite, regen=regen, request=request
            )
            if hit is not None:
                return result_from_native(hit, self.model_name)
        try:
            native = await self.send(request, policy)
        except (ProviderError, DeadlineExceeded, AskTimeout) as exc:
            status, error = error_status(exc)
            return CompletionResult(status=status, error=error, model=self.model_name)
        if cache_response:
            await self.cache.store(
                key, collection, native, rewrite=rewrite, regen=regen, request=request
            )
        return result_from_native(native, self.model_name)

    def stream(
        self,
        messages: MessageInput,
        *,
        tools: Any = None,
        tool_choice: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        reasoning_effort: str | None = None,
        reasoning: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> BridgedStream[StreamEvent]:
        """Stream a completion: META (the model), TOKEN per piece of text, TOOL_CALL_START /
        TOOL_CALL_DELTA / TOOL_CALL_END per tool call, USAGE, then DONE with the
        :class:`CompletionResult`; a failure ends it with an ERROR event (``status``,
        ``error``). Read it to the end, or ``aclose()`` it.

        :raises ConfigError: bad arguments.
        """
        self._check_open()
        request = self.request(
            messages,
            tools=tools,
            tool_choice=tool_choice,
            temperature=temperature,
            max_tokens=max_tokens,
            reasoning_effort=reasoning_effort,
            reasoning=reasoning,
            extra=kwargs,
        )
        request = msgspec.structs.replace(request, stream=True)
        policy = retry_policy(3, 1.0)
        return self._host.stream(lambda: self._stream_there(request, policy))

    async def _stream_there(
        self, request: CompletionRequest, policy: RetryPolicy
    ) -> AsyncIterator[StreamEvent]:
        yield StreamEvent(type=Kind.META, data={"model": self.model_name})
        try:
            pool = await self.pool(policy)
            events = pool.stream(request)
            try:
                index = 0
                async for event in events:
                    for out in translate_event(event, index, self.model_name):
                        yield out
                    if event.type is StreamEventType.TOOL_CALL:
                        index += 1
            finally:
                await events.aclose()  # type: ignore[attr-defined]
        except (ProviderError, DeadlineExceeded, AskTimeout) as exc:
            status, error = error_status(exc)
            yield StreamEvent(type=Kind.ERROR, data={"status": status, "error": error})

    async def embed(
        self,
        inputs: str | Sequence[str],
        *,
        encoding_format: str = "base64",
        dimensions: int | None = None,
        attempts: int = 3,
        backoff: float = 1.0,
        **kwargs: Any,
    ) -> EmbeddingResult:
        """Embed a text or a list of texts (one vector each, in order). Vectors come back
        as floats whatever ``encoding_format`` (base64 answers are decoded).

        :raises ConfigError: the model is not an embedding model, or unknown arguments.
        """
        self._check_open()
        if self._model.category != "embeddings":
            raise ConfigError(
                f"model {self.model_name!r} does not make embeddings: use an embedding model "
                "such as 'text-embedding-3-small'"
            )
        if encoding_format not in ("float", "base64"):
            raise ConfigError(
                f"encoding_format must be 'float' or 'base64', got {encoding_format!r}"
            )
        if kwargs:
            raise ConfigError(
                f"embed() takes no {', '.join(sorted(kwargs))}: limelight sends input, model "
                "and dimensions"
            )
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ConfigError("embed() needs a string or a non-empty list of strings")
        request = EmbeddingRequest(input=texts, model=self.model_name, dimensions=dimensions)
        return await self._host.call(self._embed_there, request, retry_policy(attempts, backoff))

    async def send_embedding(
        self, request: EmbeddingRequest, policy: RetryPolicy
    ) -> NativeEmbeddingResult:
        """One embedding request, retried per ``policy``, on the host's loop; failures
        raised. (Provider pools carry completions only: embeddings go to the backend
        directly, not through the rate limiter.)"""
        return await policy.run(self._state.backend.embed, request)

    async def _embed_there(self, request: EmbeddingRequest, policy: RetryPolicy) -> EmbeddingResult:
        try:
            native = await self.send_embedding(request, policy)
        except (ProviderError, DeadlineExceeded) as exc:
            status, error = error_status(exc)
            return EmbeddingResult(embeddings=[], status=status, error=error)
        return EmbeddingResult(
            embeddings=native.embeddings,
            usage=usage_from_native(native.usage, self.model_name),
            model=native.model or self.model_name,
        )

    # -- lifecycle ----------------------------------------------------------------------------

    async def warm_cache(self) -> None:
        """Open the default collection's cache now (limelight's caches need no warming)."""
        if self.cache.enabled:
            self.cache.get_cache(None)

    async def close(self) -> None:
        """Stop this provider's pools and close its connections and caches. A second call
        does nothing."""
        self._finalizer.detach()
        if self._state.closed:
            return
        try:
            await self._host.call(self._state.close)
        except RuntimeNotRunning:
            # The host's runtime is gone (the process is exiting): the pools went with it.
            self._state.closed = True

    async def __aenter__(self) -> OpenAIProvider:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
