"""The agent client's first API: ``OpenAIClient(...).get_response(...)`` returning a dict.

It runs over ``OpenAIProvider`` (so over limelight's provider pool, rate limiter and caches).

The dict has the earlier keys: ``params`` (what was sent), ``output`` (the text, the parsed
JSON of a JSON answer, or the vectors of an embedding model), ``usage`` (tokens and USD),
``status``, ``error`` (``"OK"`` on success), ``identifier`` (the cache key) and ``body``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from ..actors._ratelimit import RateLimitHook
from ..errors import AskTimeout, ConfigError, DeadlineExceeded, ProviderError
from ..runtime import ActorRef, RetryPolicy
from ..schemas import CompletionRequest, EmbeddingRequest
from ..schemas import CompletionResult as NativeResult
from ..schemas import Usage as NativeUsage
from ._llm_client_models import ModelProfile, resolve_profile
from ._llm_client_provider import OpenAIProvider
from ._llm_client_requests import error_status, retry_policy

__all__ = ["OpenAIClient"]

#: The cache marks an embedding entry so (its vectors are stored as JSON text).
_EMBEDDINGS = "llm_client.embeddings"
_IMAGE_TYPES = frozenset({".jpg", ".jpeg", ".png", ".webp"})


def _identifier(content: Any, hash_as_identifier: bool) -> str:
    if not hash_as_identifier:
        return hashlib.sha256(uuid.uuid4().bytes).hexdigest()
    if isinstance(content, (list, dict)):
        content = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(str(content).encode("utf-8")).hexdigest()


class OpenAIClient:
    """The earlier ``OpenAIClient``: one model, optional caching, ``get_response`` dicts.

    ::

        client = OpenAIClient(GPT5Nano, cache_backend="fs", cache_dir="cache/")
        response = await client.get_response(messages=[...], cache_response=True)
        print(response["output"])

    Takes ``OpenAIProvider``'s arguments (``api_key``, ``base_url``, ``limiter`` too).

    :raises ConfigError: no or an unknown model, an unknown cache backend, or
        ``responses_api_toggle=True`` (not supported).
    """

    def __init__(
        self,
        model: type[ModelProfile] | str | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        responses_api_toggle: bool = False,
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
        limiter: ActorRef | RateLimitHook | None = None,
    ) -> None:
        if model is None:
            raise ConfigError(
                "OpenAIClient needs a model: a ModelProfile class (GPT5Nano) or its key"
            )
        if responses_api_toggle:
            raise ConfigError(
                "responses_api_toggle=True is not supported: limelight sends chat completions"
            )
        self.model = resolve_profile(model)
        self.provider = OpenAIProvider(
            self.model,
            cache_dir=cache_dir,
            cache_backend=cache_backend,
            cache_collection=cache_collection,
            pg_dsn=pg_dsn,
            redis_url=redis_url,
            qdrant_url=qdrant_url,
            qdrant_api_key=qdrant_api_key,
            redis_ttl_seconds=redis_ttl_seconds,
            compress_pg=compress_pg,
            api_key=api_key,
            base_url=base_url,
            limiter=limiter,
        )
        self.cache = self.provider.cache
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.default_cache_collection = cache_collection
        self.responses_api_toggle = False

    def __repr__(self) -> str:
        return f"OpenAIClient(model={self.model.key!r})"

    async def warm_cache(self) -> None:
        await self.provider.warm_cache()

    async def close(self) -> None:
        await self.provider.close()

    async def __aenter__(self) -> OpenAIClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @staticmethod
    def encode_file(file_path: str | os.PathLike[str]) -> dict[str, Any]:
        """An image or PDF file as a message content part (base64).

        :raises ConfigError: another kind of file.
        """
        path = Path(file_path)
        extension = path.suffix.lower()
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        if extension in _IMAGE_TYPES:
            url = f"data:image/{extension.lstrip('.')};base64,{encoded}"
            return {"type": "image_url", "image_url": {"url": url}}
        if extension == ".pdf":
            return {"type": "input_file", "filename": path.name, "file_data": encoded}
        raise ConfigError(f"unsupported file type {extension!r}: give an image or a PDF")

    def _usage(self, usage: NativeUsage | None, embeddings: bool) -> dict[str, Any]:
        if usage is None:
            return {}
        raw: dict[str, Any] = {
            "prompt_tokens": usage.prompt_tokens,
            "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        }
        if not embeddings:
            raw["completion_tokens"] = usage.completion_tokens
        return self.model.parse_usage(raw)

    async def get_response(
        self,
        identifier: str | None = None,
        attempts: int = 3,
        backoff: float = 1,
        body: dict[str, Any] | None = None,
        cache_response: bool = False,
        return_response: bool = False,
        rewrite_cache: bool = False,
        regen_cache: bool = False,
        log_errors: bool = True,
        timeout: float | None = None,
        hash_as_identifier: bool = True,
        cache_collection: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """One call, as a dict (see the module docs): ``messages=`` for a completion model,
        ``input=`` for an embedding model, and the API's other parameters
        (``response_format``, ``reasoning_effort``, ``temperature``...).

        ``timeout`` bounds each of the ``attempts`` (retried with a doubling ``backoff``);
        with ``cache_response`` a call seen before (same ``identifier``, by default a hash
        of the messages or input) is answered from the cache. Only successful answers are
        stored (``log_errors`` is accepted for compatibility).

        :raises ConfigError: no ``messages``/``input``, or bad parameters.
        """
        del log_errors  # limelight's caches keep answers, not failures
        if kwargs.get("stream"):
            raise ConfigError(
                "get_response(stream=True) is not supported: use OpenAIProvider.stream() and "
                "the stream adapters (SSEAdapter...)"
            )
        embeddings = self.model.category == "embeddings"
        content = kwargs.get("input") if embeddings else kwargs.get("messages")
        if not content:
            wanted = "input=" if embeddings else "messages="
            raise ConfigError(f"get_response needs {wanted} for model {self.model.key!r}")
        if identifier is None:
            identifier = _identifier(content, hash_as_identifier)
        if cache_response:
            self.cache.get_cache(cache_collection)  # fails now on a bad backend or name
        policy = retry_policy(attempts, backoff)
        caching = (cache_response, cache_collection, rewrite_cache, regen_cache)
        if embeddings:
            texts = [content] if isinstance(content, str) else list(content)
            native_request: CompletionRequest | EmbeddingRequest = EmbeddingRequest(
                input=texts, model=self.model.model_name, dimensions=kwargs.get("dimensions")
            )
            params: dict[str, Any] = {
                "model": self.model.model_name,
                "encoding_format": "base64",
                **kwargs,
            }
        else:
            options = dict(kwargs)
            messages = options.pop("messages")
            if isinstance(messages, str):
                messages = [{"role": "user", "content": messages}]
            fields = {
                name: options.pop(name)
                for name in (
                    "tools",
                    "tool_choice",
                    "temperature",
                    "max_tokens",
                    "response_format",
                    "reasoning_effort",
                    "reasoning",
                )
                if name in options
            }
            if timeout is not None:
                options["timeout"] = timeout
            native_request = self.provider.request(messages, extra=options, **fields)
            params = {
                "model": self.model.model_name,
                "messages": messages,
                "response_format": native_request.response_format or {"type": "text"},
                **{k: v for k, v in kwargs.items() if k not in ("messages", "response_format")},
            }
        result, response = await self.provider.host.call(
            self._call_there, native_request, policy, identifier, caching
        )
        result = {"params": params, **result, "identifier": identifier, "body": body}
        if body:
            body["completion"] = result.get("output")
        if return_response:
            result["response"] = response
        return result

    async def _call_there(
        self,
        request: CompletionRequest | EmbeddingRequest,
        policy: RetryPolicy,
        key: str,
        caching: tuple[bool, str | None, bool, bool],
    ) -> tuple[dict[str, Any], NativeResult | None]:
        cache_response, collection, rewrite, regen = caching
        if cache_response:
            hit = await self.cache.lookup(key, collection, rewrite=rewrite, regen=regen)
            if hit is not None:
                return self._as_dict(hit, request), hit
        try:
            if isinstance(request, EmbeddingRequest):
                embedded = await self.provider.send_embedding(request, policy)
                vectors = json.dumps(embedded.embeddings)
                native = NativeResult(
                    content=vectors,
                    model=embedded.model or self.model.model_name,
                    usage=embedded.usage,
                    metadata={_EMBEDDINGS: "1"},
                )
            else:
                native = await self.provider.send(request, policy)
        except (ProviderError, DeadlineExceeded, AskTimeout) as exc:
            status, error = error_status(exc)
            if status == 408:
                error = "Timeout"
            return {"output": None, "usage": {}, "status": status, "error": error}, None
        if cache_response:
            await self.cache.store(key, collection, native, rewrite=rewrite, regen=regen)
        return self._as_dict(native, request), native

    def _as_dict(
        self, result: NativeResult, request: CompletionRequest | EmbeddingRequest
    ) -> dict[str, Any]:
        embeddings = result.metadata.get(_EMBEDDINGS) == "1"
        output: Any = result.content
        if embeddings:
            vectors = json.loads(result.content or "[]")
            output = vectors[0] if len(vectors) == 1 else vectors
        elif (
            isinstance(request, CompletionRequest)
            and request.response_format
            and request.response_format.get("type") in ("json_object", "json_schema")
        ):
            try:
                output = json.loads(result.content or "")
            except ValueError:
                output = result.content
        return {
            "output": output,
            "usage": self._usage(result.usage, embeddings),
            "status": 200,
            "error": "OK",
        }
