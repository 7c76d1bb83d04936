"""Analytics for Vertex AI: Gemini through the Google GenAI SDK, and Agent Builder conversations.

``track_genai(client)`` makes a ``google.genai.Client`` record each
``models.generate_content`` / ``generate_content_stream`` call, sync and ``client.aio``, as an
``llm_request`` and, under it, an ``llm_response`` (tokens from ``usage_metadata``, cached
tokens included, latency, time to first chunk) or an ``error``. Calls behave exactly as
before: same results, same exceptions.

``track_conversational_search(client)`` does the same for a Discovery Engine
``ConversationalSearchService`` client (Vertex AI Agent Builder): each
``converse_conversation`` / ``answer_query`` becomes a ``user_input``, an ``agent_response``
and a ``tool_call`` / ``tool_response`` pair per action of the answer's steps (see
:mod:`limelight.integrations._discoveryengine`).
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from ..errors import ConfigError
from ..providers._threads import iterate_in_thread, on_asyncio
from ..schemas._events import Event
from ._discoveryengine import track_conversational_search as track_conversational_search

if TYPE_CHECKING:
    from google.genai import Client
    from google.genai.types import GenerateContentResponse

    from ..analytics import AnalyticsClient

__all__ = ["track_conversational_search", "track_genai"]

C = TypeVar("C", bound="Client")

_ORIGINALS = "_limelight_originals"


class _Tracker:
    """What one tracked client records with: its links and the analytics client."""

    def __init__(
        self,
        provider: str,
        client: AnalyticsClient | None,
        links: dict[str, Any],
    ) -> None:
        self.provider = provider
        self._client = client
        self._links = links

    def emit(self, event: Event) -> None:
        client = self._client
        if client is None:
            from .. import analytics

            client = analytics.current()
        if client is not None:
            client.log_event(event)

    def request(self, model: str, contents: Any, config: Any, *, stream: bool) -> _Call:
        request = Event.create_llm_request(
            model,
            provider=self.provider,
            messages_count=_count(contents),
            tools_count=_count(_option(config, "tools")),
            temperature=_float(_option(config, "temperature")),
            max_tokens=_int(_option(config, "max_output_tokens")),
            stream=stream,
            **self._links,
        )
        self.emit(request)
        return _Call(self, model, request.event_id)


class _Call:
    """One call in progress: records its outcome under its request."""

    def __init__(self, tracker: _Tracker, model: str, request_id: uuid.UUID) -> None:
        self.tracker = tracker
        self.model = model
        self.request_id = request_id
        self.started = time.monotonic()
        self.ttft: float | None = None
        self.text: list[str] = []
        self.last: GenerateContentResponse | None = None
        self.tool_calls = 0

    def _under(self) -> dict[str, Any]:
        return {**self.tracker._links, "parent_event_id": self.request_id}

    def chunk(self, response: GenerateContentResponse) -> None:
        if self.ttft is None:
            self.ttft = time.monotonic() - self.started
        self.text.append(_text(response))
        self.tool_calls += len(response.function_calls or ())
        self.last = response

    def done(self, response: GenerateContentResponse | None, *, finish: str | None = None) -> None:
        """Record the answer: ``response`` for a whole one, else the chunks seen."""
        if response is not None:
            self.chunk(response)
            self.ttft = None  # not streamed
        last = self.last
        usage = last.usage_metadata if last is not None else None
        inputs = (usage.prompt_token_count or 0) if usage else 0
        outputs = (
            ((usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0))
            if usage
            else 0
        )
        cached = (usage.cached_content_token_count or 0) if usage else 0
        model = (last.model_version if last is not None else None) or self.model
        self.tracker.emit(
            Event.create_llm_response(
                model,
                provider=self.tracker.provider,
                input_tokens=inputs,
                output_tokens=outputs,
                cached_tokens=cached,
                latency=time.monotonic() - self.started,
                ttft=self.ttft,
                finish_reason=finish or _finish_reason(last),
                content="".join(self.text),
                tool_calls_count=self.tool_calls,
                **self._under(),
            )
        )

    def failed(self, error: BaseException) -> None:
        self.tracker.emit(
            Event.create_error(
                error,
                context={"model": self.model, "provider": self.tracker.provider},
                **self._under(),
            )
        )


def track_genai(
    genai_client: C,
    *,
    client: AnalyticsClient | None = None,
    run_id: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    parent_event_id: uuid.UUID | None = None,
) -> C:
    """Record the model calls of a Google GenAI client (Vertex AI or Gemini API) as analytics
    events, and return the same client. Tracking it again replaces the options.

    The SDK's ``client.aio`` runs on asyncio only (its own HTTP stack); once tracked, its
    ``models`` methods also work under trio, where they run the sync methods in worker
    threads.

    :param genai_client: a ``google.genai.Client``.
    :param client: the analytics client (default: :func:`limelight.analytics.current` at the
        time of each call; nothing is recorded while analytics is not initialized).
    :raises ConfigError: ``genai_client`` is not a Google GenAI client.
    """
    models = getattr(genai_client, "models", None)
    aio = getattr(genai_client, "aio", None)
    aio_models = getattr(aio, "models", None)
    if not all(
        callable(getattr(m, name, None))
        for m in (models, aio_models)
        for name in ("generate_content", "generate_content_stream")
    ):
        raise ConfigError(
            f"track_genai() takes a google.genai.Client, not {type(genai_client).__name__}: "
            "create one with genai.Client(vertexai=True, project=..., location=...)"
        )
    api = getattr(genai_client, "_api_client", None)
    provider = "vertex_ai" if getattr(api, "vertexai", False) else "gemini"
    tracker = _Tracker(
        provider,
        client,
        {
            "run_id": run_id,
            "user_id": user_id,
            "session_id": session_id,
            "parent_event_id": parent_event_id,
        },
    )
    sync = _originals(models)
    aio_originals = _originals(aio_models)
    _install(
        models,
        generate_content=_sync_call(tracker, sync["generate_content"]),
        generate_content_stream=_sync_stream(tracker, sync["generate_content_stream"]),
    )
    _install(
        aio_models,
        generate_content=_async_call(
            tracker, aio_originals["generate_content"], sync["generate_content"]
        ),
        generate_content_stream=_async_stream(
            tracker, aio_originals["generate_content_stream"], sync["generate_content_stream"]
        ),
    )
    return genai_client


def _originals(models: Any) -> dict[str, Callable[..., Any]]:
    """The SDK's own methods of ``models`` (kept on first tracking, so that tracking again
    wraps them, not our wrappers)."""
    originals: dict[str, Callable[..., Any]] | None = models.__dict__.get(_ORIGINALS)
    if originals is None:
        originals = {
            "generate_content": models.generate_content,
            "generate_content_stream": models.generate_content_stream,
        }
        setattr(models, _ORIGINALS, originals)
    return originals


def _install(models: Any, **wrappers: Callable[..., Any]) -> None:
    # Instance attributes shadow the SDK's methods on this client only.
    for name, wrapper in wrappers.items():
        setattr(models, name, wrapper)


def _sync_call(tracker: _Tracker, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def generate_content(*, model: str, contents: Any, config: Any = None) -> Any:
        call = tracker.request(model, contents, config, stream=False)
        try:
            response = original(model=model, contents=contents, config=config)
        except Exception as exc:
            call.failed(exc)
            raise
        call.done(response)
        return response

    return generate_content


def _sync_stream(tracker: _Tracker, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def generate_content_stream(*, model: str, contents: Any, config: Any = None) -> Any:
        call = tracker.request(model, contents, config, stream=True)
        try:
            chunks = original(model=model, contents=contents, config=config)
        except Exception as exc:
            call.failed(exc)
            raise
        return _iterate(call, chunks)

    return generate_content_stream


def _iterate(call: _Call, chunks: Iterator[GenerateContentResponse]) -> Iterator[Any]:
    try:
        for chunk in chunks:
            call.chunk(chunk)
            yield chunk
    except GeneratorExit:  # the caller stopped reading: record what it got
        call.done(None, finish="incomplete")
        raise
    except Exception as exc:
        call.failed(exc)
        raise
    call.done(None)


def _async_call(
    tracker: _Tracker, original: Callable[..., Awaitable[Any]], sync: Callable[..., Any]
) -> Callable[..., Any]:
    @functools.wraps(original)
    async def generate_content(*, model: str, contents: Any, config: Any = None) -> Any:
        call = tracker.request(model, contents, config, stream=False)
        try:
            if on_asyncio():
                response = await original(model=model, contents=contents, config=config)
            else:  # the SDK's async HTTP is asyncio's: its sync call, in a worker thread
                response = await anyio.to_thread.run_sync(
                    functools.partial(sync, model=model, contents=contents, config=config)
                )
        except Exception as exc:  # cancellation is no error: it passes unrecorded
            call.failed(exc)
            raise
        call.done(response)
        return response

    return generate_content


def _async_stream(
    tracker: _Tracker, original: Callable[..., Awaitable[Any]], sync: Callable[..., Any]
) -> Callable[..., Any]:
    @functools.wraps(original)
    async def generate_content_stream(*, model: str, contents: Any, config: Any = None) -> Any:
        call = tracker.request(model, contents, config, stream=True)
        if not on_asyncio():
            # The SDK's async HTTP is asyncio's: read its sync stream in a worker thread.
            # (emit raises once the reader has gone, which ends the producer.)
            def produce(emit: Callable[[Any], None], stop: threading.Event) -> None:
                for chunk in sync(model=model, contents=contents, config=config):
                    emit(chunk)

            return _aiterate(call, iterate_in_thread(produce, name="limelight-genai-stream"))
        try:
            chunks = await original(model=model, contents=contents, config=config)
        except Exception as exc:
            call.failed(exc)
            raise
        return _aiterate(call, chunks)

    return generate_content_stream


async def _aiterate(
    call: _Call, chunks: AsyncIterator[GenerateContentResponse]
) -> AsyncIterator[Any]:
    try:
        async for chunk in chunks:
            call.chunk(chunk)
            yield chunk
    except GeneratorExit:
        call.done(None, finish="incomplete")
        raise
    except Exception as exc:
        call.failed(exc)
        raise
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    call.done(None)


# -- reading the SDK's objects ------------------------------------------------------------


def _option(config: Any, name: str) -> Any:
    if config is None:
        return None
    if isinstance(config, Mapping):
        return config.get(name)
    return getattr(config, name, None)


def _count(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, list | tuple):
        return len(value)
    return 1


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(response: GenerateContentResponse) -> str:
    """The text parts of the first candidate (``response.text`` warns on other parts)."""
    if not response.candidates:
        return ""
    content = response.candidates[0].content
    parts = content.parts if content is not None else None
    return "".join(p.text for p in parts or () if isinstance(p.text, str) and not p.thought)


def _finish_reason(response: GenerateContentResponse | None) -> str | None:
    if response is None or not response.candidates:
        return None
    reason = response.candidates[0].finish_reason
    if reason is None:
        return None
    return str(getattr(reason, "value", reason))
