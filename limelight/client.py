"""A plain synchronous client for OpenAI-compatible servers (vLLM, llama.cpp, mlx_lm.server,
OpenAI, the limelight simulator): chat and text completions and the model list, with retries,
for code that has no event loop.

It drives :class:`~limelight.providers.OpenAICompatible` on a :class:`~limelight.Runtime`
running in a background thread, through the runtime's blocking portal; so, unlike a
``requests.Session``, one client is safe to share between any number of threads::

    from limelight.client import LLM, LLMConfig

    with LLM(LLMConfig(base_url="http://127.0.0.1:8080", model="qwen")) as llm:
        reply = llm.chat_completion([{"role": "user", "content": "Hi"}])
        print(reply.choices[0].message.content)
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

import msgspec

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
from .runtime import BackgroundRuntime, RetryPolicy
from .schemas import Message
from .schemas._openai import (
    ChatChoice,
    ChatCompletion,
    ChatMessage,
    CompletionUsage,
    Model,
    ModelsPage,
    TextChoice,
    TextCompletion,
    chat_completion_decoder,
    encoder,
    text_completion_decoder,
)

if TYPE_CHECKING:
    from .providers import OpenAICompatible

__all__ = [
    "DEFAULT_BASE_URL",
    "RETRY_STATUSES",
    "ChatChoice",
    "ChatCompletion",
    "ChatMessage",
    "CompletionUsage",
    "LLM",
    "LLMConfig",
    "Model",
    "ModelsPage",
    "TextChoice",
    "TextCompletion",
]

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
    :ivar timeout: seconds allowed for each phase of one attempt (connect, each read).
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
# The background runtime


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
# The client


class LLM:
    """A synchronous client for one OpenAI-compatible server, safe to share between threads.

    Calls run on a background event loop (one per client) and block the calling thread
    until their answer comes; any number of threads may call at once, over one connection
    pool. Failed attempts with a status in :data:`RETRY_STATUSES`, a connection error or a
    timeout are retried ``config.max_retries`` times, ``retry_delay`` seconds apart, doubling,
    or longer when the server's ``Retry-After`` asks for longer. Token usage goes to the
    process-wide tracker of :mod:`limelight.usage` (role ``"default"``). Each request and
    response is logged at debug level through structlog (``limelight.client``, once the
    program has configured structlog), each failed attempt as a warning; never the key.

    Close it (``close()``, or use it as a context manager) to release its connections and
    thread; one that is never closed does not keep the program from exiting.

    :param config: the settings; ``None`` builds one from ``options``.
    :param options: :class:`LLMConfig` fields, overriding those of ``config``.
    """

    def __init__(self, config: LLMConfig | None = None, /, **options: Any) -> None:
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
        self._runtime = BackgroundRuntime("limelight-client")
        self._finalizer = weakref.finalize(self, self._runtime.stop, self._provider.aclose)

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
        self._runtime.call(self._provider.aclose)
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
        """POST a chat or text completion; log it, count its usage, keep it as the last."""
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
        content = encoder.encode(body)
        result = self._run(op, lambda: self._post(path, content, decoder))
        self._finish(op, result, kwargs.get("model"))
        return result

    async def _post(self, path: str, body: bytes, decoder: msgspec.json.Decoder[T]) -> T:
        content = await self._provider.post(path, body)
        try:
            return decoder.decode(content)
        except msgspec.DecodeError as exc:
            raise BadResponse(
                f"POST {self._provider.base_url}/{path} answered with a body that is not a "
                f"completion ({exc}): {content[:200]!r}"
            ) from exc

    def _run(self, op: str, send: Callable[[], Awaitable[T]]) -> T:
        """Call ``send`` on the loop, retried per policy; errors become :class:`LLMError`."""
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
            result: T = self._runtime.call(self._policy.run, attempt)
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

    def _finish(self, op: str, result: ChatCompletion | TextCompletion, model: object) -> None:
        with self._lock:
            self._last = result
        usage = result.usage.to_usage() if result.usage is not None else None
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
        if usage is not None:
            from .usage import record_usage

            name = result.model or (model if isinstance(model, str) else "") or self.config.model
            record_usage(usage, model=name)
