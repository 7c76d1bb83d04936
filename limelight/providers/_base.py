"""The one protocol every backend implements.

Backends are plain async classes, not actors: a ProviderWorker actor drives them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from ..schemas import (
    CompletionRequest,
    CompletionResult,
    EmbeddingRequest,
    EmbeddingResult,
    ModelList,
    StreamEvent,
)


@runtime_checkable
class Provider(Protocol):
    """An LLM backend.

    ``stream`` yields TOKEN events as text arrives, one TOOL_CALL event per complete tool call,
    a USAGE event when the backend reports usage, and ends with exactly one DONE event whose
    ``result`` is the assembled :class:`CompletionResult`. Failures are raised as
    :class:`~limelight.errors.ProviderError` subclasses, never yielded as events. Streams are
    async generators that never yield inside a cancel scope or task group; closing one early
    (``aclose``) releases its connection.

    Two optional attributes let a :class:`~limelight.actors.ProviderWorker` leave its attempt
    timeout to a backend that bounds its own waits more cheaply than a cancel scope would:
    ``bounds_attempts`` (true: ``complete`` takes ``total_timeout=``, the seconds the whole
    attempt may take) and ``bounds_event_waits`` (true: ``stream`` takes ``event_timeout=``,
    the seconds each wait for more of the stream may take). Either failing raises
    :class:`~limelight.errors.ProviderTimeout`. They are not part of the protocol: a backend
    without them is timed by the worker.

    :ivar name: a short label of the backend kind (``"openai-compatible"``, ``"simulated"``...).
    """

    name: str

    async def complete(self, request: CompletionRequest) -> CompletionResult: ...

    def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]: ...

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult: ...

    async def list_models(self) -> ModelList: ...

    async def aclose(self) -> None: ...
