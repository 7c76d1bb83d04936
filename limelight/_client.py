"""The sync client's implementation (see :mod:`limelight.client`).

:class:`LLMConfig`, and :class:`LLM` calling an OpenAI-compatible server through a provider
pool on a background runtime.

One module: the config, the backend the pool drives (``_ClientBackend``), the host runtime
(``_Host``) and :class:`LLM` are one call path; a call's body, attempts, errors and shutdown
pass through all of them, so they change together.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

import msgspec

from ._usage import current_usage_run
from .actors._provider_worker import DEFAULT_POOL_SIZE, USAGE_RUN_KEY, ProviderPool, limiter_hook
from .errors import (
    APIError,
    BadResponse,
    ConfigError,
    LLMAPIError,
    LLMConnectionError,
    LLMError,
    LLMResponseError,
    LLMTimeout,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    RuntimeNotRunning,
)
from .runtime import BackgroundRuntime, BlockingRuntime, RetryPolicy
from .schemas import (
    CompletionRequest,
    CompletionResult,
    EmbeddingRequest,
    EmbeddingResult,
    Message,
    ModelList,
    StreamEvent,
)
from .schemas._openai import (
    ChatChoice,
    ChatCompletion,
    Model,
    ModelsPage,
    TextChoice,
    TextCompletion,
    chat_completion_decoder,
    encoder,
    text_completion_decoder,
)

if TYPE_CHECKING:
    from .actors import RateLimitHook
    from .providers import OpenAICompatible
    from .runtime import ActorRef


T = TypeVar("T")
C = TypeVar("C", ChatCompletion, TextCompletion)

DEFAULT_BASE_URL: Final = "http://127.0.0.1:8000"
#: HTTP statuses retried with backoff (connection errors and timeouts are retried too).
RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
#: The longest wait between retries; a server asking for longer (``Retry-After``) ends the
#: retries at once with its error, since waiting that long is the caller's decision.
MAX_RETRY_DELAY: Final = 60.0
# An API root already ends in a version segment (/v1, /v1beta, /v4); else /v1 is added.
_VERSIONED: Final = re.compile(r"/v\d+[a-z0-9]*$")


class LLMConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How an :class:`LLM` client talks to its server.

    :ivar base_url: the server; ``/v1`` is added unless the path already ends in a version
        (``http://127.0.0.1:8000`` and ``http://127.0.0.1:8000/v1`` are the same).
    :ivar api_key: sent as a bearer token; never shown in ``repr``, logs or error messages.
    :ivar model: the model requests name; empty lets the server pick its default.
    :ivar temperature: sampling temperature of each call unless the call gives one.
    :ivar max_tokens: the answer's length limit unless the call gives one (``None``: the
        server's).
    :ivar timeout: the transport's timeout: seconds for each phase of one attempt (connect,
        each read). See :mod:`limelight._timeouts`.
    :ivar max_retries: retries after the first attempt, for statuses in
        :data:`RETRY_STATUSES`, connection errors and timeouts.
    :ivar retry_delay: seconds before the first retry, doubled before each next one; a
        server's ``Retry-After`` lengthens it, never shortens it (``Retry-After: 0`` still
        waits ``retry_delay``).
    """

    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = None
    model: str = ""
    temperature: float | None = 0.7
    max_tokens: int | None = None
    timeout: float = 30.0
    max_retries: int = 3
    retry_delay: float = 1.0

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {self.timeout!r}")
        if self.max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {self.max_retries!r}")
        if self.retry_delay < 0:
            raise ConfigError(f"retry_delay must be >= 0 seconds, got {self.retry_delay!r}")
        if self.temperature is not None and self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature!r}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1 (or None), got {self.max_tokens!r}")

    def __repr__(self) -> str:
        key = None if self.api_key is None else "***"
        return (
            f"LLMConfig(base_url={self.base_url!r}, api_key={key!r}, model={self.model!r}, "
            f"temperature={self.temperature!r}, max_tokens={self.max_tokens!r}, "
            f"timeout={self.timeout!r}, max_retries={self.max_retries!r}, "
            f"retry_delay={self.retry_delay!r})"
        )

    def __rich_repr__(self) -> Any:  # rich would otherwise list every field, the key too
        yield repr(self)

    @property
    def api_root(self) -> str:
        """``base_url`` ending in its API version (``.../v1``)."""
        root = self.base_url.rstrip("/")
        return root if _VERSIONED.search(root) else root + "/v1"


# --------------------------------------------------------------------------------------
# Errors and retries


def _should_retry(exc: BaseException) -> bool:
    if isinstance(exc, APIError):
        return exc.status_code in RETRY_STATUSES
    return isinstance(exc, (ProviderConnectionError, ProviderTimeout))


def _client_error(exc: ProviderError, attempts: int) -> LLMError:
    """The sync client's error for a provider error, saying how many attempts were made."""
    tried = f" (after {attempts} attempts)" if attempts > 1 else ""
    message = f"{exc}{tried}"
    options: dict[str, Any] = {"retry_after": exc.retry_after, "headers": exc.headers}
    if isinstance(exc, APIError):
        return LLMAPIError(message, status_code=exc.status_code, body=exc.body, **options)
    if isinstance(exc, ProviderTimeout):
        return LLMTimeout(message, **options)
    if isinstance(exc, ProviderConnectionError):
        return LLMConnectionError(message, **options)
    if isinstance(exc, BadResponse):
        return LLMResponseError(message, **options)
    return LLMError(message)


def _safe_url(url: str) -> str:
    """``url`` without user:password, fit for a log line."""
    return re.sub(r"//[^/@]*@", "//***@", url)


def _check_messages(messages: object) -> list[Any]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise ConfigError(
            "messages must be a list of chat messages such as "
            f"[{{'role': 'user', 'content': 'Hi'}}], got {type(messages).__name__}"
        )
    if not messages:
        raise ConfigError("messages is empty: give at least one chat message")
    for i, message in enumerate(messages):
        if isinstance(message, Message):
            continue
        if not isinstance(message, Mapping) or "role" not in message:
            raise ConfigError(
                f"messages[{i}] must be a Message or a dict with a 'role' (and 'content'), "
                f"got {message!r:.80}"
            )
    return list(messages)


def _body(config: LLMConfig, fields: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The request body: the config's defaults under the call's fields and extra ``kwargs``."""
    body: dict[str, Any] = {}
    if config.model:
        body["model"] = config.model
    body.update(fields)
    for name, default in (("temperature", config.temperature), ("max_tokens", config.max_tokens)):
        if body.get(name) is None:
            body.pop(name, None)
            if default is not None:
                body[name] = default
    body.update(kwargs)  # anything else OpenAI's API takes: n, stop, seed, tools, logprobs...
    if kwargs.get("stream"):
        raise ConfigError("the sync client does not stream; use limelight.providers for streams")
    return body


# --------------------------------------------------------------------------------------
# The pipeline: the client's backend as a pool's workers drive it


def _text_of(content: object) -> str | None:
    """The text of an OpenAI message ``content`` (a string, or a list of parts)."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text") or "") for part in content if isinstance(part, Mapping))
    return str(content)


def _hook_message(message: Any) -> Message:
    """``message`` as the pipeline's hooks read it (the rate limiter's token estimate, the
    analytics events); the body sent is the caller's own."""
    if isinstance(message, Message):
        return message
    name = message.get("name")
    return Message(
        role=message["role"],
        content=_text_of(message.get("content")),
        name=name if isinstance(name, str) else None,
    )


class _Exchange:
    """One call in flight: what to post, the attempts made, the completion that came back."""

    __slots__ = ("attempts", "body", "decoder", "op", "path", "value")

    def __init__(self, op: str, path: str, body: bytes, decoder: msgspec.json.Decoder[Any]):
        self.op = op
        self.path = path
        self.body = body
        self.decoder = decoder
        self.attempts = 0
        self.value: ChatCompletion | TextCompletion | None = None


class _ClientBackend:
    """The :class:`~limelight.providers.Provider` a client's pool drives: each attempt posts
    the call's own body (so every field of OpenAI's API reaches the server, several choices
    included), keeps the OpenAI-shaped completion for the caller, and answers the worker with
    a :class:`CompletionResult` for the hooks and the usage tracker. Failed attempts are
    logged here, as they happen; the retrying is the pool worker's."""

    name = "openai-compatible"

    def __init__(self, provider: OpenAICompatible, policy: RetryPolicy, log: Any) -> None:
        self.provider = provider
        self.model = provider.model
        self._policy = policy
        self._log = log
        #: Calls in flight, by the id of their request (the pool passes it on unchanged).
        self.calls: dict[int, _Exchange] = {}

    async def complete(self, request: CompletionRequest) -> CompletionResult:
        call = self.calls[id(request)]
        call.attempts += 1
        started = time.perf_counter()
        try:
            content = await self.provider.post(call.path, call.body)
            try:
                value = call.decoder.decode(content)
            except msgspec.DecodeError as exc:
                raise BadResponse(
                    f"POST {self.provider.base_url}/{call.path} answered with a body that is "
                    f"not a completion ({exc}): {content[:200]!r}"
                ) from exc
        except ProviderError as exc:
            retry = _should_retry(exc) and call.attempts < self._policy.attempts
            self._log.warning(
                "llm.attempt_failed",
                op=call.op,
                attempt=call.attempts,
                error=type(exc).__name__,
                status_code=getattr(exc, "status_code", None),
                message=str(exc),
                retry_in=self._policy.delay_for(call.attempts, exc) if retry else None,
            )
            raise
        call.value = value
        first = value.choices[0] if value.choices else None
        text: str | None = None
        if isinstance(first, ChatChoice):
            text = _text_of(first.message.content)
        elif isinstance(first, TextChoice):
            text = first.text
        return CompletionResult(
            content=text,
            finish_reason=first.finish_reason if first is not None else None,
            model=value.model or request.model,
            usage=value.usage.to_usage() if value.usage is not None else None,
            latency=time.perf_counter() - started,
            id=value.id or None,
            provider=self.name,
            metadata=request.metadata,
        )

    def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        raise ConfigError("the sync client does not stream; use limelight.providers for streams")

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        return await self.provider.embed(request)

    async def list_models(self) -> ModelList:
        return await self.provider.list_models()

    async def aclose(self) -> None:
        await self.provider.aclose()


class _Host:
    """Where a client's pool runs (its own background runtime, or a rate limiter's runtime)
    and how its threads reach it. Holds no reference to the client: it is what the client's
    finalizer closes."""

    def __init__(
        self, backend: _ClientBackend, own: BackgroundRuntime | None, blocking: BlockingRuntime
    ) -> None:
        self.backend = backend
        self.own = own
        self.blocking = blocking
        self.pool: ProviderPool | None = None
        self.lock = threading.Lock()

    async def _shutdown(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            await pool.stop()  # closes the backend
        else:
            await self.backend.aclose()

    def close(self) -> None:
        if self.own is not None:
            self.own.stop(self._shutdown)
            return
        # A limiter's runtime: stop the pool there, unless that runtime is gone already (its
        # actors, this pool included, stopped with it) or this is its own loop's thread.
        with contextlib.suppress(RuntimeNotRunning, RuntimeError):
            self.blocking.call(self._shutdown)


# --------------------------------------------------------------------------------------
# The client


class LLM:
    """A synchronous client for one OpenAI-compatible server, safe to share between threads.

    Calls go through a :class:`~limelight.actors.ProviderPool` (the pipeline every model
    call takes) on a background event loop (one per client), and block the calling thread
    until their answer comes; any number of threads may call at once, over one connection
    pool. Failed attempts with a status in :data:`RETRY_STATUSES`, a connection error or a
    timeout are retried by the pool's workers ``config.max_retries`` times, ``retry_delay``
    seconds apart, doubling, or longer when the server's ``Retry-After`` asks for longer.
    Token usage goes to the process-wide tracker of :mod:`limelight.usage` (role
    ``"default"``), and each attempt to analytics once it is initialized. Each request and
    response is logged at debug level through structlog (``limelight.client``, once the
    program has configured structlog), each failed attempt as a warning; never the key.

    Close it (``close()``, or use it as a context manager) to release its connections and
    thread; one that is never closed does not keep the program from exiting.

    :param config: the settings; ``None`` builds one from ``options``.
    :param limiter: a :class:`~limelight.actors.RateLimiter` shared with other callers (its
        reference, or a :class:`~limelight.actors.RateLimitHook` on one): every attempt is
        admitted by it first. The client's pool then runs in the limiter's runtime instead
        of a thread of its own, so that runtime must be running while the client is used
        (from threads other than its event loop's).
    :param options: :class:`LLMConfig` fields, overriding those of ``config``.
    """

    def __init__(
        self,
        config: LLMConfig | None = None,
        /,
        *,
        limiter: ActorRef | RateLimitHook | None = None,
        **options: Any,
    ) -> None:
        if config is None:
            config = LLMConfig(**options)
        elif options:
            config = msgspec.structs.replace(config, **options)
        if not isinstance(config, LLMConfig):
            raise ConfigError(f"LLM takes an LLMConfig, got {type(config).__name__}")
        import structlog

        from .providers import OpenAICompatible

        self.config = config
        self._provider: OpenAICompatible = OpenAICompatible(
            config.api_root, config.api_key, config.model, timeout=config.timeout
        )
        self._policy = RetryPolicy(
            attempts=config.max_retries + 1,
            initial_delay=config.retry_delay,
            multiplier=2.0,
            max_delay=max(MAX_RETRY_DELAY, config.retry_delay),
            jitter=0.0,
            retry_on=_should_retry,
        )
        self._configured = structlog.is_configured
        self._log = structlog.get_logger("limelight.client").bind(
            base_url=_safe_url(config.api_root), model=config.model or None
        )
        self._lock = threading.Lock()
        self._requests = 0
        self._last: ChatCompletion | TextCompletion | ModelsPage | None = None
        self._backend = _ClientBackend(self._provider, self._policy, self._log)
        if limiter is None:
            own = BackgroundRuntime("limelight-client")
            self._hooks: tuple[Any, ...] = ()
            self._host = _Host(self._backend, own, own.blocking)
        else:
            hook, runtime = limiter_hook(limiter)
            self._hooks = (hook,)
            self._host = _Host(self._backend, None, runtime.blocking)
        self._finalizer = weakref.finalize(self, self._host.close)

    def __repr__(self) -> str:
        return f"LLM({self.config!r})"

    def _debug(self, event: str, **details: Any) -> None:
        # Request and response details only go to a structlog the program configured: out
        # of the box structlog prints every level to standard output, which a library must
        # not fill on each call. Failed attempts and errors are always logged.
        if self._configured():
            self._log.debug(event, **details)

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the API -----------------------------------------------------------------------

    def chat_completion(
        self,
        messages: Sequence[Mapping[str, Any] | Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> ChatCompletion:
        """``POST /chat/completions``: the answer to ``messages``.

        :param messages: OpenAI's chat messages (dicts with ``role`` and ``content``), or
            :class:`~limelight.schemas.Message`.
        :param temperature: overrides ``config.temperature``.
        :param max_tokens: overrides ``config.max_tokens``.
        :param kwargs: any other body field of OpenAI's API (``n``, ``stop``, ``seed``,
            ``tools``, ``response_format``, ``model``...), sent as given.
        :returns: the completion as OpenAI shapes it: ``reply.choices[0].message.content``.
        :raises LLMAPIError: the server answered an error (after retries when retryable).
        :raises LLMConnectionError: the server could not be reached (after retries).
        """
        checked = _check_messages(messages)
        fields = {"messages": checked, "temperature": temperature, "max_tokens": max_tokens}
        return self._complete(
            "chat_completion", fields, kwargs, chat_completion_decoder, messages=len(checked)
        )

    def completion(
        self,
        prompt: str,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> TextCompletion:
        """``POST /completions`` (a text completion): the continuation of ``prompt``.

        :param kwargs: any other body field of OpenAI's API, sent as given.
        :returns: the completion as OpenAI shapes it: ``reply.choices[0].text``.
        :raises LLMAPIError: the server answered an error (after retries when retryable).
        :raises LLMConnectionError: the server could not be reached (after retries).
        """
        if not isinstance(prompt, str):
            raise ConfigError(f"prompt must be a str, got {type(prompt).__name__}")
        fields = {"prompt": prompt, "temperature": temperature, "max_tokens": max_tokens}
        return self._complete(
            "completion", fields, kwargs, text_completion_decoder, prompt_chars=len(prompt)
        )

    def list_models(self) -> ModelsPage:
        """``GET /models``: the models the server offers, as ``page.data[i].id``."""
        self._debug("llm.request", op="list_models")
        models = self._run("list_models", self._provider.list_models)
        page = ModelsPage(
            data=[
                Model(id=m.id, created=m.created or 0, owned_by=m.owned_by or "")
                for m in models.models
            ]
        )
        with self._lock:
            self._last = page
        self._debug("llm.response", op="list_models", models=len(page.data))
        return page

    def get_last_response(self) -> ChatCompletion | TextCompletion | ModelsPage | None:
        """The latest successful response, from whichever thread made it (``None`` before
        any)."""
        return self._last

    def get_request_count(self) -> int:
        """How many calls succeeded or failed so far (a call's retries count once)."""
        return self._requests

    def reset_session(self) -> None:
        """Drop the pooled connections (the next call opens new ones) and forget the last
        response; the request count is kept."""
        self._host.blocking.call(self._provider.aclose)
        with self._lock:
            self._last = None
        self._debug("llm.session_reset")

    def close(self) -> None:
        """Close the connections and stop the background loop; calls after this raise
        :class:`~limelight.errors.RuntimeNotRunning`. A second call does nothing."""
        self._finalizer()

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    # -- internals ---------------------------------------------------------------------

    def _complete(
        self,
        op: str,
        fields: dict[str, Any],
        kwargs: dict[str, Any],
        decoder: msgspec.json.Decoder[C],
        **details: Any,
    ) -> C:
        """POST a chat or text completion through the pool; log it, keep it as the last."""
        body = _body(self.config, fields, kwargs)
        self._debug(
            "llm.request",
            op=op,
            temperature=body.get("temperature"),
            max_tokens=body.get("max_tokens"),
            params=sorted(kwargs),
            **details,
        )
        path = "chat/completions" if op == "chat_completion" else "completions"
        call = _Exchange(op, path, encoder.encode(body), decoder)
        model = body.get("model")
        messages = fields.get("messages")
        run = current_usage_run.get()
        request = CompletionRequest(
            model=model if isinstance(model, str) else self.config.model,
            messages=[_hook_message(m) for m in messages] if messages else [],
            prompt=fields.get("prompt"),
            temperature=body.get("temperature"),
            max_tokens=body.get("max_tokens"),
            metadata={} if run is None else {USAGE_RUN_KEY: run},
        )
        self._call(op, call, request)
        assert call.value is not None
        value: C = call.value  # type: ignore[assignment]
        self._finish(op, value)
        return value

    def _pool(self) -> ProviderPool:
        """The client's pool, started on first use in the host runtime."""
        host = self._host
        pool = host.pool
        if pool is not None:
            return pool
        with host.lock:
            if host.pool is None:
                host.pool = host.blocking.call(self._start_pool)
            return host.pool

    async def _start_pool(self) -> ProviderPool:
        runtime = self._host.blocking.runtime
        config = self.config
        return await ProviderPool.start(
            runtime,
            self._backend,
            name=runtime.auto_name("llm-client"),
            # Clients of one server and model share a deployment (and its quota).
            deployment=f"{config.model or 'default'}@{_safe_url(config.api_root)}",
            size=DEFAULT_POOL_SIZE,
            retry=self._policy,
            # The transport's timeouts (config.timeout, per phase) bound an attempt, as before.
            attempt_timeout=math.inf,
            hooks=self._hooks,
        )

    def _call(self, op: str, call: _Exchange, request: CompletionRequest) -> CompletionResult:
        """One completion through the pool; its error becomes :class:`LLMError`."""
        if self.closed:
            raise RuntimeNotRunning("this LLM client is closed; create a new one")
        with self._lock:
            self._requests += 1
        started = time.perf_counter()
        calls = self._backend.calls
        key = id(request)
        calls[key] = call
        try:
            result: CompletionResult = self._host.blocking.call(self._pool().complete, request)
        except ProviderError as exc:
            error = _client_error(exc, call.attempts)
            self._log.error(
                "llm.error",
                op=op,
                attempts=call.attempts,
                error=type(error).__name__,
                status_code=getattr(exc, "status_code", None),
                message=str(exc),
            )
            raise error from exc
        finally:
            del calls[key]
        self._debug(
            "llm.attempts", op=op, attempts=call.attempts, seconds=time.perf_counter() - started
        )
        return result

    def _run(self, op: str, send: Callable[[], Awaitable[T]]) -> T:
        """Call ``send`` (not a model call: the model list) on the loop, retried per policy;
        errors become :class:`LLMError`."""
        if self.closed:
            raise RuntimeNotRunning("this LLM client is closed; create a new one")
        with self._lock:
            self._requests += 1
        attempts = 0
        started = time.perf_counter()

        async def attempt() -> T:
            nonlocal attempts
            attempts += 1
            try:
                return await send()
            except ProviderError as exc:
                retry = _should_retry(exc) and attempts < self._policy.attempts
                self._log.warning(
                    "llm.attempt_failed",
                    op=op,
                    attempt=attempts,
                    error=type(exc).__name__,
                    status_code=getattr(exc, "status_code", None),
                    message=str(exc),
                    retry_in=self._policy.delay_for(attempts, exc) if retry else None,
                )
                raise

        try:
            result: T = self._host.blocking.call(self._policy.run, attempt)
        except ProviderError as exc:
            error = _client_error(exc, attempts)
            self._log.error(
                "llm.error",
                op=op,
                attempts=attempts,
                error=type(error).__name__,
                status_code=getattr(exc, "status_code", None),
                message=str(exc),
            )
            raise error from exc
        self._debug("llm.attempts", op=op, attempts=attempts, seconds=time.perf_counter() - started)
        return result

    def _finish(self, op: str, result: ChatCompletion | TextCompletion) -> None:
        with self._lock:
            self._last = result
        usage = result.usage
        first = result.choices[0] if result.choices else None
        self._debug(
            "llm.response",
            op=op,
            id=result.id or None,
            response_model=result.model or None,
            choices=len(result.choices),
            finish_reason=first.finish_reason if first is not None else None,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
        )
