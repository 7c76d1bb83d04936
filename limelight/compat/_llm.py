"""The earlier synchronous OpenAI-compatible client (the ``LLM`` module) over limelight's.

:class:`LLM` wraps :class:`limelight._client.LLM`, whose calls take the provider-pool
pipeline (retries with backoff, attempt hooks, usage); it keeps the earlier client's
defaults (model ``"gpt-4"``, temperature within [0, 2]), its request count and last
response (chat and text completions only), text completions of a list of prompts, and its
INFO log lines on the standard ``logging`` logger ``"LLM"`` (init, requests, responses,
errors, resets, closes; never the key).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from .. import _client
from ..errors import ConfigError
from ..errors import LLMAPIError as LLMAPIError
from ..errors import LLMConnectionError as LLMConnectionError
from ..errors import LLMError as LLMError
from ..errors import LLMResponseError as LLMResponseError
from ..errors import LLMTimeout as LLMTimeout
from ..schemas import Message as Message
from ..schemas._openai import (
    ChatBody,
    ChatChoice,
    ChatCompletion,
    CompletionUsage,
    ModelsPage,
    TextBody,
    TextChoice,
    TextCompletion,
    text_completion_decoder,
)
from ..schemas._openai import Model as Model

# The earlier module's names of limelight's OpenAI shapes.
ChatCompletionRequest = ChatBody
CompletionRequest = TextBody
ChatCompletionChoice = ChatChoice
CompletionChoice = TextChoice
ChatCompletionResponse = ChatCompletion
CompletionResponse = TextCompletion
ModelsResponse = ModelsPage
Usage = CompletionUsage

if TYPE_CHECKING:
    from ..actors import RateLimitHook
    from ..runtime import ActorRef

#: The earlier module's logger: its lines read ``[LLM] <what happened> {details}``.
logger: Final = logging.getLogger("LLM")

DEFAULT_MODEL: Final = "gpt-4"
DEFAULT_TIMEOUT: Final = 30


class LLMConfig(_client.LLMConfig, frozen=True, kw_only=True):
    """The earlier client's settings, with its defaults: :class:`limelight.client.LLMConfig`
    with ``model="gpt-4"`` and ``temperature`` within [0.0, 2.0] (``ConfigError``, a
    ``ValueError``, otherwise). Frozen: change a field with ``msgspec.structs.replace``.
    """

    model: str = DEFAULT_MODEL
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if self.temperature is not None and not 0.0 <= self.temperature <= 2.0:
            raise ConfigError(f"temperature must be within [0.0, 2.0], got {self.temperature!r}")
        super().__post_init__()


def _log(level: int, what: str, details: Mapping[str, Any] | None = None) -> None:
    if not logger.isEnabledFor(level):
        return
    text = f"[LLM] {what}"
    if details:
        text += " " + json.dumps(details, default=str, sort_keys=True)
    logger.log(level, text, extra={"details": dict(details or {})})


def _message(message: Any) -> Any:
    """``message`` as the limelight client takes it: objects with ``role`` and ``content``
    (the earlier client's pydantic messages, say) become dicts."""
    if isinstance(message, (Mapping, Message)):
        return message
    role = getattr(message, "role", None)
    if isinstance(role, str):
        out = {"role": role, "content": getattr(message, "content", None)}
        name = getattr(message, "name", None)
        if name is not None:
            out["name"] = name
        return out
    return message  # the limelight client says what is wrong with it


class LLM:
    """A synchronous client for an OpenAI-compatible server, as the earlier ``LLM`` was:
    ``chat_completion``, ``completion`` (a prompt or a list of prompts), ``list_models``,
    ``get_last_response``, ``get_request_count``, ``reset_session``, ``close``, and a context
    manager. Errors are :class:`~limelight.errors.LLMError`: ``LLMConnectionError`` (timeouts
    included), ``LLMAPIError`` (``.status_code``).

    Unlike the earlier client, one instance may be shared by any number of threads.

    :param config: the settings (:class:`LLMConfig`; a :class:`limelight.client.LLMConfig`
        works too); ``None`` takes the defaults.
    :param limiter: a shared :class:`~limelight.actors.RateLimiter` admitting every attempt
        (see :class:`limelight.client.LLM`).
    """

    def __init__(
        self,
        config: _client.LLMConfig | None = None,
        *,
        limiter: ActorRef | RateLimitHook | None = None,
    ) -> None:
        self.config = config if config is not None else LLMConfig()
        self._client = _client.LLM(self.config, limiter=limiter)
        self._lock = threading.Lock()
        self._last: ChatCompletion | TextCompletion | None = None
        self._request_count = 0
        _log(
            logging.INFO,
            "LLM wrapper initialized",
            {
                "base_url": _client._safe_url(self.config.base_url),
                "model": self.config.model,
                "timeout": self.config.timeout,
            },
        )

    def __repr__(self) -> str:
        return f"LLM({self.config!r})"

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _next(self) -> int:
        with self._lock:
            self._request_count += 1
            return self._request_count

    def _failed(self, exc: LLMError) -> None:
        url = _client._safe_url(self.config.api_root)
        if isinstance(exc, LLMTimeout):
            _log(logging.ERROR, "Request timeout", {"url": url, "timeout": self.config.timeout})
        elif isinstance(exc, LLMConnectionError):
            _log(logging.ERROR, "Connection error", {"url": url, "error": str(exc)})
        elif isinstance(exc, LLMAPIError):
            _log(
                logging.ERROR,
                "API error",
                {"url": url, "status": exc.status_code, "error": str(exc)},
            )
        else:
            _log(logging.ERROR, "Request failed", {"url": url, "error": str(exc)})

    def _received(
        self, what: str, request_id: int, response: ChatCompletion | TextCompletion
    ) -> None:
        with self._lock:
            self._last = response
        _log(
            logging.INFO,
            what,
            {
                "request_id": request_id,
                "response_id": response.id,
                "tokens_used": response.usage.total_tokens if response.usage else None,
            },
        )

    def _temperature(self, temperature: float | None) -> float | None:
        return temperature if temperature is not None else self.config.temperature

    def chat_completion(
        self,
        messages: Sequence[Any],
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> ChatCompletion:
        """``POST /v1/chat/completions``: ``reply.choices[0].message.content``.

        :param messages: chat messages: dicts, :class:`~limelight.schemas.Message`, or
            objects with ``role`` and ``content`` (the earlier client's).
        :param kwargs: any other body field of OpenAI's API (``stop``, ``top_p``...).
        :raises LLMConnectionError: the server could not be reached (after retries).
        :raises LLMAPIError: it answered an error status (after retries when retryable).
        """
        request_id = self._next()
        checked = messages
        if isinstance(messages, Sequence) and not isinstance(messages, (str, bytes)):
            checked = [_message(m) for m in messages]
        _log(
            logging.INFO,
            "Chat completion request",
            {
                "request_id": request_id,
                "model": kwargs.get("model", self.config.model),
                "messages_count": len(messages) if isinstance(messages, Sequence) else None,
                "temperature": self._temperature(temperature),
            },
        )
        try:
            response = self._client.chat_completion(
                checked, temperature=temperature, max_tokens=max_tokens, **kwargs
            )
        except LLMError as exc:
            self._failed(exc)
            raise
        self._received("Chat completion response received", request_id, response)
        return response

    def completion(
        self,
        prompt: str | Sequence[str],
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> TextCompletion:
        """``POST /v1/completions``: ``reply.choices[0].text`` (one choice per prompt when the
        server completes each of a list).

        :param prompt: a prompt, or a list of prompts sent in one request.
        :raises ConfigError: ``prompt`` is neither.
        """
        if not isinstance(prompt, str) and (
            not isinstance(prompt, (list, tuple))
            or not prompt
            or not all(isinstance(p, str) for p in prompt)
        ):
            raise ConfigError(
                f"prompt must be a str or a non-empty list of str, got {prompt!r:.80}"
            )
        request_id = self._next()
        _log(
            logging.INFO,
            "Completion request",
            {
                "request_id": request_id,
                "model": kwargs.get("model", self.config.model),
                "temperature": self._temperature(temperature),
            },
        )
        try:
            if isinstance(prompt, str):
                response = self._client.completion(
                    prompt, temperature=temperature, max_tokens=max_tokens, **kwargs
                )
            else:
                # One request carrying the list (OpenAI's API takes one); the pipeline's hooks
                # (the limiter's estimate, analytics) read the prompts joined.
                prompts = list(prompt)
                fields = {
                    "prompt": "\n".join(prompts),
                    "temperature": temperature,
                    "max_tokens": max_tokens,
                }
                response = self._client._complete(
                    "completion",
                    fields,
                    {**kwargs, "prompt": prompts},
                    text_completion_decoder,
                    prompt_chars=sum(map(len, prompts)),
                )
        except LLMError as exc:
            self._failed(exc)
            raise
        self._received("Completion response received", request_id, response)
        return response

    def list_models(self) -> ModelsPage:
        """``GET /v1/models``: the models the server offers, as ``page.data[i].id``."""
        _log(logging.DEBUG, "Listing models")
        try:
            page = self._client.list_models()
        except LLMError as exc:
            self._failed(exc)
            raise
        _log(logging.DEBUG, "Models retrieved", {"count": len(page.data)})
        return page

    def get_last_response(self) -> ChatCompletion | TextCompletion | None:
        """The latest chat or text completion (``None`` before any, or after a reset)."""
        return self._last

    def get_request_count(self) -> int:
        """How many chat and text completions were asked for (failed ones too)."""
        return self._request_count

    def reset_session(self) -> None:
        """Drop the pooled connections (the next call opens new ones) and forget the last
        response; the request count is kept."""
        self._client.reset_session()
        with self._lock:
            self._last = None
        _log(logging.INFO, "Session reset")

    def close(self) -> None:
        """Close the connections and stop the client's background loop; a second call does
        nothing more."""
        closed = self._client.closed
        self._client.close()
        if not closed:
            _log(logging.INFO, "LLM wrapper closed", {"total_requests": self._request_count})

    @property
    def closed(self) -> bool:
        return self._client.closed
