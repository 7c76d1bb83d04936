"""A semantic response cache in Qdrant.

A request is answered by the stored answer of the nearest earlier request, when their texts
mean nearly the same and all else is equal."""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final, Literal, Protocol, TypeAlias, TypeVar, runtime_checkable
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import msgspec
import structlog
from qdrant_client import QdrantClient, models

from .._files import make_private_dirs
from ..errors import CacheError, ConfigError
from ..schemas import (
    CompletionRequest,
    CompletionResult,
    EmbeddingRequest,
    EmbeddingResult,
    Message,
)
from ._base import CacheStatistics, Counts, cache_key, encode_result, result_decoder
from ._server import LoopLimiter, ServerHealth, check_settings, describe, redact_url, setting

__all__ = ["Embedder", "EmbeddingProvider", "QdrantSemanticCache"]

_T = TypeVar("_T")
#: Embeddings kept for the store that follows a missed lookup of the same request.
_MEMO: Final = 256


@runtime_checkable
class EmbeddingProvider(Protocol):
    """Anything with a provider's ``embed``: a limelight provider (OpenAI-compatible,
    LiteLLM, local models, the simulator...)."""

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult: ...


#: A text's embedding: a provider, or a callable (sync, run in a worker thread, or async).
Embedder: TypeAlias = (
    EmbeddingProvider | Callable[[str], Sequence[float] | Awaitable[Sequence[float]]]
)


class QdrantSemanticCache:
    """A semantic cache in Qdrant.

    A request's text (its last user message by default) is embedded by ``embedder`` and
    compared with the stored requests' by cosine similarity; the nearest answers when its
    similarity is at least ``threshold`` and everything else of the request (the model,
    tools, sampling settings, response format, the other messages) is exactly the same
    (stored as a hash in the point's payload, and filtered on). A
    :class:`~limelight.cache.CachingProvider` uses it through :meth:`get_for` and
    :meth:`set_for`; a semantic hit's ``metadata["cache_similarity"]`` says how near it was.
    A request without text is not cached.

    A server that is down or failing, or an embedder that fails, never fails a call: the
    lookup answers as a miss and the store is skipped, with a logged warning and a counted
    error. qdrant-client runs in worker threads, on asyncio and on trio alike.

    :param url: the Qdrant server (``http://host:6333``); ``None`` reads ``QDRANT_URL``,
        unless ``location`` is given.
    :param api_key: the server's API key; ``None`` reads ``QDRANT_API_KEY`` (if set).
    :param embedder: what embeds a text: a provider (its ``embed``) or a callable.
    :param threshold: the least cosine similarity that counts as the same question, in
        (0, 1].
    :param collection: the collection (created on the first store, cosine distance).
    :param location: qdrant-client's local mode instead of a server: ``":memory:"`` or a
        folder.
    :param embedding_model: the model asked of a provider ``embedder``.
    :param text: what is compared by meaning: ``"last_user"`` (the last user message; the
        earlier messages must then match exactly) or ``"messages"`` (every message's text;
        the roles and tool calls must match exactly).
    :param ttl: seconds an entry lives (``None``: for ever).
    :param timeout: seconds an operation on the server may take.
    :param retry_interval: seconds a failed server is left alone.
    :raises ConfigError: no server or location, a URL that is not http(s), a bad setting.
    :raises MissingExtra: qdrant-client is not installed (``pip install 'limelight[qdrant]'``).
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        embedder: Embedder,
        threshold: float = 0.95,
        collection: str = "limelight_cache",
        location: str | Path | None = None,
        embedding_model: str = "",
        text: Literal["last_user", "messages"] = "last_user",
        ttl: float | None = None,
        timeout: float = 5.0,
        max_connections: int = 4,
        retry_interval: float = 2.0,
    ) -> None:
        owner = "QdrantSemanticCache"
        if not (isinstance(threshold, int | float) and 0 < threshold <= 1):
            raise ConfigError(f"{owner}: threshold must be in (0, 1], got {threshold!r}")
        if text not in ("last_user", "messages"):
            raise ConfigError(f"{owner}: text must be 'last_user' or 'messages', got {text!r}")
        if not isinstance(collection, str) or not collection:
            raise ConfigError(f"{owner}: collection must be a non-empty str, got {collection!r}")
        check_settings(owner, ttl=ttl, timeout=timeout, max_connections=max_connections)
        if retry_interval < 0:
            raise ConfigError(f"{owner}: retry_interval must be >= 0, got {retry_interval!r}")
        if isinstance(embedder, EmbeddingProvider):
            self._embed_one: Callable[[str], Awaitable[Sequence[float]]] = self._by_provider
        elif callable(embedder):
            self._embed_one = self._by_callable
        else:
            raise ConfigError(
                f"{owner}: embedder must be a provider (with embed()) or a callable "
                f"text -> vector, got {type(embedder).__name__}"
            )
        self.embedder = embedder
        self.embedding_model = embedding_model
        self.threshold = float(threshold)
        self.collection = collection
        self.text = text
        self.ttl = ttl
        self.timeout = timeout
        self.local = location is not None
        if location is not None:
            where = str(location)
            if where != ":memory:":
                make_private_dirs(Path(where))
            self.url = f"local:{where}"
            self._client = (
                QdrantClient(location=":memory:")
                if where == ":memory:"
                else QdrantClient(path=where)
            )
            # Local mode is not made for concurrent threads: one at a time.
            self._lock: threading.Lock | None = threading.Lock()
            self._limiter = LoopLimiter(1)
        else:
            raw = setting(
                url, "QDRANT_URL", owner=owner, param="url", example="http://localhost:6333"
            )
            parts = urlsplit(raw)
            self.url = redact_url(raw)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                where = "url" if url is not None else "QDRANT_URL"
                raise ConfigError(
                    f"{where}={self.url!r} is not a Qdrant server URL: use http(s)://host:6333"
                )
            key = api_key if api_key is not None else os.environ.get("QDRANT_API_KEY") or None
            self._client = QdrantClient(
                url=raw,
                api_key=key,
                timeout=max(1, round(timeout)),
                check_compatibility=False,
            )
            self._lock = None
            self._limiter = LoopLimiter(max_connections)
        self._counts = Counts()
        self._health = ServerHealth(owner, self.url, self._counts, retry_interval=retry_interval)
        self._ready = False
        self._vectors: OrderedDict[str, list[float]] = OrderedDict()

    # -- the cache protocols --------------------------------------------------------------

    async def get_for(self, request: CompletionRequest) -> CompletionResult | None:
        """The answer of the nearest stored request alike in all but its text's wording."""
        key = cache_key(request)
        split = self._split(request)
        if split is None:
            self._counts.misses += 1
            return None
        text, shape = split
        vector = await self._vector(key, text, "get", "miss")
        found = None
        if vector is not None:
            found = await self._op("get", "miss", self._search, vector, shape)
        if not found:
            self._counts.misses += 1
            return None
        payload, score = found
        result = self._decode(key, payload)
        if result is None:
            return None
        metadata = {**result.metadata, "cache_similarity": f"{score:.4f}"}
        return msgspec.structs.replace(result, metadata=metadata)

    async def set_for(self, request: CompletionRequest, result: CompletionResult) -> None:
        """Store ``result`` as the answer of ``request``."""
        key = cache_key(request)
        split = self._split(request)
        if split is None:
            return
        text, shape = split
        vector = await self._vector(key, text, "set", "store skipped")
        if vector is None:
            return
        payload: dict[str, Any] = {
            "key": key,
            "shape": shape,
            "result": encode_result(result).decode(),
        }
        if await self._op("set", "store skipped", self._upsert, key, vector, payload):
            self._counts.stores += 1

    async def get(self, key: str) -> CompletionResult | None:
        """The answer stored for the exact request whose key is ``key``."""
        payload = await self._op("get", "miss", self._retrieve, key)
        if not payload:
            self._counts.misses += 1
            return None
        return self._decode(key, payload)

    async def set(self, key: str, result: CompletionResult) -> None:
        """Not possible: a semantic entry needs the request's text (use :meth:`set_for`).

        :raises ConfigError: always.
        """
        raise ConfigError(
            "QdrantSemanticCache stores by the request's meaning: call set_for(request, result) "
            "(CachingProvider does), not set(key, result)"
        )

    async def clear(self) -> None:
        """Delete the collection and everything in it.

        :raises CacheError: the server failed.
        """
        try:
            with anyio.fail_after(self.timeout):
                await self._thread(self._drop)
        except Exception as exc:
            raise CacheError(
                f"QdrantSemanticCache at {self.url} could not clear: {describe(exc)}"
            ) from exc

    def statistics(self) -> CacheStatistics:
        """Lookups and stores of this instance (``entries`` is ``None``)."""
        return self._counts.snapshot(None)

    async def aclose(self) -> None:
        """Close the client (and release a local folder's lock)."""
        await anyio.to_thread.run_sync(self._client.close)

    # -- requests, texts and vectors ------------------------------------------------------

    def _split(self, request: CompletionRequest) -> tuple[str, str] | None:
        """The text compared by meaning, and the hash of everything else."""
        messages = request.messages
        if self.text == "messages":
            parts = [f"{m.role}: {m.content}" for m in messages if m.content]
            if request.prompt:
                parts.append(request.prompt)
            if not parts:
                return None
            shaped = msgspec.structs.replace(
                request, messages=[_without_text(m) for m in messages], prompt=None
            )
            return "\n".join(parts), cache_key(shaped)
        for i in range(len(messages) - 1, -1, -1):
            message = messages[i]
            if message.role == "user" and message.content:
                rest = [*messages[:i], _without_text(message), *messages[i + 1 :]]
                shaped = msgspec.structs.replace(request, messages=rest)
                return message.content, cache_key(shaped)
        if request.prompt:
            return request.prompt, cache_key(msgspec.structs.replace(request, prompt=None))
        return None

    async def _vector(
        self, key: str, text: str, operation: str, outcome: str
    ) -> list[float] | None:
        vector = self._vectors.get(key)
        if vector is not None:
            return vector
        try:
            vector = [float(x) for x in await self._embed_one(text)] or _empty()
        except Exception as exc:
            self._counts.errors += 1
            _warn_embedder(self.url, operation, outcome, exc)
            return None
        self._vectors[key] = vector
        if len(self._vectors) > _MEMO:
            self._vectors.popitem(last=False)
        return vector

    async def _by_provider(self, text: str) -> Sequence[float]:
        provider: Any = self.embedder
        answer = await provider.embed(EmbeddingRequest(input=[text], model=self.embedding_model))
        return list(answer.embeddings[0])

    async def _by_callable(self, text: str) -> Sequence[float]:
        embed: Any = self.embedder
        if inspect.iscoroutinefunction(embed) or inspect.iscoroutinefunction(embed.__call__):
            out = await embed(text)
        else:
            out = await anyio.to_thread.run_sync(embed, text)
            if inspect.isawaitable(out):
                out = await out
        return out  # type: ignore[no-any-return]

    def _decode(self, key: str, payload: dict[str, Any]) -> CompletionResult | None:
        try:
            result = result_decoder.decode(payload["result"])
        except (msgspec.DecodeError, ValueError, KeyError, TypeError) as exc:
            self._health.unreadable(key, exc)
            self._counts.misses += 1
            return None
        self._counts.hits += 1
        return result

    # -- Qdrant, in worker threads --------------------------------------------------------

    async def _op(
        self, operation: str, outcome: str, fn: Callable[..., _T], *args: Any
    ) -> _T | None:
        return await self._health.call(
            operation, outcome, self.timeout, functools.partial(self._thread, fn, *args)
        )

    async def _thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await anyio.to_thread.run_sync(
            self._locked, fn, *args, limiter=self._limiter.get(), abandon_on_cancel=True
        )

    def _locked(self, fn: Callable[..., _T], *args: Any) -> _T:
        with self._lock if self._lock is not None else contextlib.nullcontext():
            return fn(*args)

    def _exists(self) -> bool:
        if not self._ready:
            self._ready = self._client.collection_exists(self.collection)
        return self._ready

    def _search(self, vector: list[float], shape: str) -> tuple[dict[str, Any], float] | None:
        if not self._exists():
            return None
        query = models.Filter(
            must=[models.FieldCondition(key="shape", match=models.MatchValue(value=shape))],
            must_not=[_expired()],
        )
        points = self._client.query_points(
            self.collection,
            query=vector,
            query_filter=query,
            limit=1,
            score_threshold=self.threshold,
            with_payload=["result"],
        ).points
        if not points or points[0].payload is None:
            return None
        return points[0].payload, points[0].score

    def _retrieve(self, key: str) -> dict[str, Any] | None:
        if not self._exists():
            return None
        found = self._client.retrieve(self.collection, ids=[_point_id(key)], with_payload=True)
        if not found or found[0].payload is None:
            return None
        payload = found[0].payload
        expires = payload.get("expires")
        if expires is not None and expires <= time.time():
            return None
        return payload

    def _upsert(self, key: str, vector: list[float], payload: dict[str, Any]) -> bool:
        self._create(len(vector))
        now = time.time()
        payload["stored"] = now
        if self.ttl is not None:
            payload["expires"] = now + self.ttl
        point = models.PointStruct(id=_point_id(key), vector=vector, payload=payload)
        self._client.upsert(self.collection, points=[point], wait=True)
        return True

    def _create(self, size: int) -> None:
        if self._exists():
            return
        try:
            self._client.create_collection(
                self.collection,
                vectors_config=models.VectorParams(size=size, distance=models.Distance.COSINE),
            )
        except Exception:
            # Another process may have made it meanwhile; anything else fails below.
            if not self._client.collection_exists(self.collection):
                raise
        if not self.local:  # payload indexes only matter (and only exist) on a server
            self._client.create_payload_index(
                self.collection, "shape", models.PayloadSchemaType.KEYWORD
            )
            self._client.create_payload_index(
                self.collection, "expires", models.PayloadSchemaType.FLOAT
            )
        self._ready = True

    def _drop(self) -> None:
        self._client.delete_collection(self.collection)
        self._ready = False


def _empty() -> list[float]:
    raise ValueError("the embedder returned an empty vector")


def _without_text(message: Message) -> Message:
    return msgspec.structs.replace(message, content=None)


def _point_id(key: str) -> str:
    return str(uuid.UUID(key[:32]))


def _expired() -> models.FieldCondition:
    return models.FieldCondition(key="expires", range=models.Range(lte=time.time()))


def _warn_embedder(server: str, operation: str, outcome: str, exc: BaseException) -> None:
    structlog.get_logger("limelight.caches").warning(
        "cache embedder failed",
        cache="QdrantSemanticCache",
        server=server,
        operation=operation,
        outcome=outcome,
        error=describe(exc),
    )
