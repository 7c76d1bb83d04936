"""LangChain callbacks that record limelight analytics events.

Pass a :class:`LimelightCallbackHandler` in ``config={"callbacks": [...]}`` (or to a model's
``callbacks=``): model calls, tool calls and chain steps become ``llm_request`` /
``llm_response`` / ``tool_call`` / ``tool_response`` / ``agent_planning`` / ``agent_response`` /
``error`` events, linked into a tree that follows LangChain's own runs.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import BaseCallbackHandler

from .._tracking import _short_repr, jsonable
from ..schemas._events import Event

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage
    from langchain_core.outputs import ChatGenerationChunk, GenerationChunk, LLMResult

    from ..analytics import AnalyticsClient

__all__ = ["LimelightCallbackHandler"]


class _Run:
    """One LangChain run in progress: the event that opened it, and when."""

    __slots__ = ("event_id", "first_token", "name", "provider", "run_id", "started")

    def __init__(self, run_id: str, name: str) -> None:
        self.event_id: uuid.UUID | None = None
        self.run_id = run_id
        self.name = name
        self.provider = ""
        self.started = time.monotonic()
        self.first_token: float | None = None


class LimelightCallbackHandler(BaseCallbackHandler):
    """Records a LangChain run as limelight analytics events.

    Each event's ``parent_event_id`` is the event that opened the LangChain run it happened
    in (a model call inside a chain step hangs under that step's ``agent_planning`` event; a
    response hangs under its request). Events are logged to ``client``, or to
    :func:`limelight.analytics.current` at the time of the event (nothing is recorded while
    analytics is not initialized). The handler is cheap and never raises: logging an event
    never blocks, so it runs inline, in LangChain's own thread or task.

    :param client: the analytics client (default: the process-wide one).
    :param run_id: the limelight run of every event; default: the id of the outermost
        LangChain run, so one ``invoke`` is one run.
    :param user_id: recorded on every event.
    :param session_id: recorded on every event.
    :param parent_event_id: the parent of the outermost events (e.g. an agent step of
        your own).
    """

    # log_event never blocks: no need for LangChain to push us to an executor (which would
    # also reorder our events).
    run_inline = True
    raise_error = False

    def __init__(
        self,
        *,
        client: AnalyticsClient | None = None,
        run_id: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        parent_event_id: uuid.UUID | None = None,
    ) -> None:
        self._client = client
        self._run_id = run_id
        self._user_id = user_id
        self._session_id = session_id
        self._parent_event_id = parent_event_id
        self._runs: dict[uuid.UUID, _Run] = {}
        self._lock = threading.Lock()

    # -- bookkeeping --------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        client = self._client
        if client is None:
            from .. import analytics

            client = analytics.current()
        if client is not None:
            client.log_event(event)

    def _open(
        self, lc_run: uuid.UUID, lc_parent: uuid.UUID | None, name: str
    ) -> tuple[_Run, uuid.UUID | None]:
        """Start tracking a LangChain run; returns it and the parent event id of its event."""
        with self._lock:
            parent = self._runs.get(lc_parent) if lc_parent is not None else None
        run_id = self._run_id or (parent.run_id if parent is not None else str(lc_run))
        return _Run(run_id, name), parent.event_id if parent is not None else self._parent_event_id

    def _register(self, lc_run: uuid.UUID, run: _Run, event: Event) -> None:
        run.event_id = event.event_id
        with self._lock:
            self._runs[lc_run] = run

    def _close(self, lc_run: uuid.UUID) -> _Run | None:
        with self._lock:
            return self._runs.pop(lc_run, None)

    def _links(self, run_id: str, parent: uuid.UUID | None) -> dict[str, Any]:
        return {
            "run_id": run_id,
            "user_id": self._user_id,
            "session_id": self._session_id,
            "parent_event_id": parent,
        }

    def _start(
        self,
        lc_run: uuid.UUID,
        lc_parent: uuid.UUID | None,
        name: str,
        build: Callable[[dict[str, Any]], Event],
        provider: str = "",
    ) -> None:
        run, parent = self._open(lc_run, lc_parent, name)
        run.provider = provider
        event = build(self._links(run.run_id, parent))
        self._register(lc_run, run, event)
        self._emit(event)

    # -- model calls --------------------------------------------------------------------

    def _llm_start(
        self,
        serialized: Mapping[str, Any] | None,
        count: int,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None,
        metadata: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
    ) -> None:
        meta = metadata or {}
        params: Mapping[str, Any] = kwargs.get("invocation_params") or {}
        model = _model_name(serialized, meta, params)
        provider = str(meta.get("ls_provider") or "")
        temperature = _number(meta.get("ls_temperature", params.get("temperature")))
        max_tokens = meta.get("ls_max_tokens", params.get("max_tokens"))
        tools = params.get("tools")

        def build(links: dict[str, Any]) -> Event:
            return Event.create_llm_request(
                model,
                provider=provider,
                messages_count=count,
                tools_count=len(tools) if isinstance(tools, list) else 0,
                temperature=temperature,
                max_tokens=max_tokens if isinstance(max_tokens, int) else None,
                stream=bool(params.get("stream", False)),
                **links,
            )

        self._start(run_id, parent_run_id, model, build, provider)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        count = sum(len(batch) for batch in messages)
        self._llm_start(serialized, count, run_id, parent_run_id, metadata, kwargs)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._llm_start(serialized, len(prompts), run_id, parent_run_id, metadata, kwargs)

    def on_llm_new_token(
        self,
        token: str | list[str | dict[str, Any]],
        *,
        chunk: GenerationChunk | ChatGenerationChunk | None = None,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        with self._lock:
            run = self._runs.get(run_id)
        if run is not None and run.first_token is None:
            run.first_token = time.monotonic()

    def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        run = self._close(run_id)
        if run is None:
            return
        usage = _usage(response)
        content, finish_reason, tool_calls = _answer(response)
        output = response.llm_output or {}
        model = str(output.get("model_name") or output.get("model") or run.name)
        self._emit(
            Event.create_llm_response(
                model,
                provider=run.provider,
                input_tokens=usage[0],
                output_tokens=usage[1],
                cached_tokens=usage[2],
                latency=time.monotonic() - run.started,
                ttft=None if run.first_token is None else run.first_token - run.started,
                finish_reason=finish_reason,
                content=content,
                tool_calls_count=tool_calls,
                **self._links(run.run_id, run.event_id),
            )
        )

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._error(run_id, error, "llm")

    # -- chains -------------------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: dict[str, Any] | Any,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = _run_name(serialized, kwargs, "chain")

        def build(links: dict[str, Any]) -> Event:
            return Event.create_agent_planning(name, content=_text(inputs), **links)

        self._start(run_id, parent_run_id, name, build)

    def on_chain_end(
        self,
        outputs: dict[str, Any] | Any,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        run = self._close(run_id)
        if run is None:
            return
        self._emit(
            Event.create_agent_response(
                run.name,
                _text(outputs),
                duration=time.monotonic() - run.started,
                finish_reason="completed",
                **self._links(run.run_id, run.event_id),
            )
        )

    def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._error(run_id, error, "chain")

    # -- tools --------------------------------------------------------------------------

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = _run_name(serialized, kwargs, "tool")
        arguments = jsonable(dict(inputs) if inputs else {"input": input_str})
        call_id = kwargs.get("tool_call_id")

        def build(links: dict[str, Any]) -> Event:
            return Event.create_tool_call(
                name,
                arguments,
                tool_call_id=call_id if isinstance(call_id, str) else None,
                tool_type="langchain",
                **links,
            )

        self._start(run_id, parent_run_id, name, build)

    def on_tool_end(
        self,
        output: Any,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        run = self._close(run_id)
        if run is None:
            return
        call_id = getattr(output, "tool_call_id", None)
        result = getattr(output, "content", output)
        self._emit(
            Event.create_tool_response(
                run.name,
                _text(result) if isinstance(result, str) else jsonable(result),
                duration=time.monotonic() - run.started,
                tool_call_id=call_id if isinstance(call_id, str) else None,
                **self._links(run.run_id, run.event_id),
            )
        )

    def on_tool_error(
        self,
        error: BaseException,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        run = self._close(run_id)
        if run is None:
            return
        self._emit(
            Event.create_tool_response(
                run.name,
                f"{type(error).__name__}: {error}",
                is_error=True,
                duration=time.monotonic() - run.started,
                **self._links(run.run_id, run.event_id),
            )
        )

    # -- errors -------------------------------------------------------------------------

    def _error(self, lc_run: uuid.UUID, error: BaseException, where: str) -> None:
        run = self._close(lc_run)
        if run is None:
            return
        self._emit(
            Event.create_error(
                error,
                context={"langchain": where, "name": run.name},
                **self._links(run.run_id, run.event_id),
            )
        )


# -- helpers ----------------------------------------------------------------------------


def _model_name(
    serialized: Mapping[str, Any] | None, meta: Mapping[str, Any], params: Mapping[str, Any]
) -> str:
    for value in (
        meta.get("ls_model_name"),
        params.get("model"),
        params.get("model_name"),
        params.get("_type"),
    ):
        if isinstance(value, str) and value:
            return value
    return _run_name(serialized, {}, "llm")


def _run_name(serialized: Mapping[str, Any] | None, kwargs: Mapping[str, Any], default: str) -> str:
    name = kwargs.get("name")
    if isinstance(name, str) and name:
        return name
    if serialized:
        name = serialized.get("name")
        if isinstance(name, str) and name:
            return name
        ident = serialized.get("id")
        if isinstance(ident, list) and ident:
            return str(ident[-1])
    return default


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: Any) -> str:
    """A short readable form of a chain's inputs or outputs (long text cut)."""
    if isinstance(value, str):
        # str() as well: LangChain's texts are str subclasses (TextAccessor) no encoder takes.
        return str(jsonable(str(value)))
    content = getattr(value, "content", None)
    if isinstance(content, str):
        return _text(content)
    to_string = getattr(value, "to_string", None)  # a prompt's value
    if callable(to_string):
        return _text(str(to_string()))
    if isinstance(value, Mapping) and len(value) == 1:
        return _text(next(iter(value.values())))
    return _short_repr(value)


def _usage(response: LLMResult) -> tuple[int, int, int]:
    """(input, output, cached) tokens: the messages' ``usage_metadata``, else the provider's
    ``llm_output`` (``token_usage`` / ``usage``, OpenAI's names)."""
    found = False
    inputs = outputs = cached = 0
    for batch in response.generations:
        for generation in batch:
            usage = getattr(getattr(generation, "message", None), "usage_metadata", None)
            if usage:
                found = True
                inputs += int(usage.get("input_tokens", 0))
                outputs += int(usage.get("output_tokens", 0))
                details = usage.get("input_token_details") or {}
                cached += int(details.get("cache_read", 0) or 0)
    if found:
        return inputs, outputs, cached
    output = response.llm_output or {}
    raw = output.get("token_usage") or output.get("usage") or {}
    if not isinstance(raw, Mapping):
        return 0, 0, 0
    details = raw.get("prompt_tokens_details") or {}
    return (
        int(raw.get("prompt_tokens", raw.get("input_tokens", 0)) or 0),
        int(raw.get("completion_tokens", raw.get("output_tokens", 0)) or 0),
        int(details.get("cached_tokens", 0) or 0) if isinstance(details, Mapping) else 0,
    )


def _answer(response: LLMResult) -> tuple[str | None, str | None, int]:
    """The first generation's text, finish reason and the number of tool calls."""
    for batch in response.generations:
        for generation in batch:
            info = generation.generation_info or {}
            finish = info.get("finish_reason")
            message = getattr(generation, "message", None)
            tool_calls: Sequence[Any] = getattr(message, "tool_calls", None) or []
            return (
                _text(generation.text),
                finish if isinstance(finish, str) else None,
                len(tool_calls),
            )
    return None, None, 0
