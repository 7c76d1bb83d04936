"""The SDK's decorators, over limelight's tracking records.

The decorators run the decorated function (sync or async) inside limelight's records
(:class:`~limelight._tracking.LLMCallRecord`, ``ToolCallRecord``, the agent-step record):
the same start / response / error events, latency and parent links as
``limelight.analytics.track_*``, recorded into the SDK client's current run. As in the SDK
they record only while that client has a run (``client.start_run()`` or a tracker); unlike
it, without an initialized client the function simply runs (the SDK raised).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, Protocol, TypeVar, cast

import structlog

from ... import _tracking
from ..._tracking import LLMCallRecord, ToolCallRecord, jsonable, wrap_in_record
from ...schemas import _events as native
from . import _client
from ._client import InsideLLMClient
from ._events import Event
from ._payloads import EventType, generate_uuid

__all__ = [
    "track_agent_step",
    "track_function_execution",
    "track_llm_call",
    "track_tool_use",
]

P = ParamSpec("P")
R = TypeVar("R")
Decorator = Callable[[Callable[P, R]], Callable[P, R]]

_log = structlog.get_logger("limelight.compat.insidellm")


class _Open(Protocol):
    def enter(self) -> None: ...
    def exit(self) -> None: ...
    def fail(self, exc: BaseException) -> None: ...
    def succeed(self, result: Any) -> None: ...


Begin = Callable[[InsideLLMClient, tuple[Any, ...], dict[str, Any]], _Open]


def _resolve(client: InsideLLMClient | None, what: str) -> InsideLLMClient | None:
    """The client to record with, when it has a run; else None (the call is not recorded)."""
    chosen = client if client is not None else _client._default_client
    if chosen is None:
        return None
    if not chosen.get_current_run_id():
        _log.warning(f"No active run context, {what} not tracked")
        return None
    return chosen


def _wrap(func: Callable[..., Any], client: InsideLLMClient | None, what: str, begin: Begin) -> Any:
    """``func`` (sync or async) run inside the record ``begin`` opens, when a client with a
    run is at hand (limelight's own decorator wrapper, with the SDK's client lookup)."""
    return wrap_in_record(func, begin, lambda: _resolve(client, what))


def _start(
    client: InsideLLMClient,
    event_type: EventType,
    payload: dict[str, Any],
    metadata: Mapping[str, Any] | None,
) -> native.Event:
    """The record's opening event: an SDK event in the client's run, under the current
    parent, converted to limelight's."""
    parent = _tracking._parent.get()
    event = Event(
        run_id=client.get_current_run_id(),
        user_id=client.get_current_user_id(),
        event_type=event_type,
        parent_event_id=None if parent is None else str(parent),
        metadata=dict(metadata) if metadata else None,
        payload=payload,
    )
    with client._lock:
        run_metadata = client._run_metadata
    if run_metadata:
        event.metadata = {**run_metadata, **(event.metadata or {})}
    return event.to_native(strict=False)


class _LLMRecord(LLMCallRecord):
    def __init__(self, start: native.Event, client: InsideLLMClient, options: _LLMOptions):
        super().__init__(client.analytics, start, options.model_name, options.provider)
        self.extract = options.extract_response

    def succeed(self, result: Any) -> None:
        if self.extract is not None:
            content: Any = self.extract(result)
        else:
            content = _tracking._usage_of(result)[3] or result
        self.record(result, content=content if isinstance(content, str) else str(content))
        super().succeed(result)


class _ToolRecord(ToolCallRecord):
    def __init__(
        self,
        start: native.Event,
        client: InsideLLMClient,
        name: str,
        extract: Callable[[Any], Any] | None,
    ):
        super().__init__(client.analytics, start, name)
        self.extract = extract

    def succeed(self, result: Any) -> None:
        super().succeed(self.extract(result) if self.extract is not None else result)


class _FunctionRecord:
    """One ``function_execution`` event when the call ends (the SDK's)."""

    def __init__(
        self, client: InsideLLMClient, name: str, arguments: Any, metadata: Mapping[str, Any]
    ):
        self.client = client
        self.name = name
        self.arguments = arguments
        self.metadata = metadata
        self.parent = _tracking._parent.get()
        self.started = time.perf_counter()

    def enter(self) -> None:
        pass

    def exit(self) -> None:
        self.duration = time.perf_counter() - self.started

    def _emit(self, result: Any, error: str | None) -> None:
        self.client.log_native(
            native.Event.create_function_execution(
                self.name,
                arguments=self.arguments,
                result=jsonable(result),
                error=error,
                duration=self.duration,
                run_id=self.client.get_current_run_id(),
                user_id=self.client.get_current_user_id(),
                parent_event_id=self.parent,
                metadata=self.metadata,
            )
        )

    def fail(self, exc: BaseException) -> None:
        self.exit()
        self._emit(None, f"{type(exc).__name__}: {exc}")

    def succeed(self, result: Any) -> None:
        self._emit(result, None)


def _client_first(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Accept ``decorator(client, name=...)`` too (a later form of the SDK's decorators)."""
    if args and isinstance(args[0], InsideLLMClient):
        kwargs["client"] = args[0]
        return args[1:]
    return args


class _LLMOptions:
    def __init__(
        self,
        model_name: str,
        provider: str,
        client: InsideLLMClient | None = None,
        extract_prompt: Callable[..., Any] | None = None,
        extract_response: Callable[[Any], Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.model_name = model_name
        self.provider = provider
        self.client = client
        self.extract_prompt = extract_prompt
        self.extract_response = extract_response
        self.metadata = metadata


def track_llm_call(*args: Any, **kwargs: Any) -> Decorator[P, R]:
    """``@track_llm_call(model_name, provider, client=None, extract_prompt=None,
    extract_response=None, metadata=None)`` (or ``(client, model_name=..., provider=...)``):
    record each call as an ``llm_request`` (prompt and parameters in its metadata), then an
    ``llm_response`` with the latency and the text (``extract_response(result)``, else the
    answer's text or ``str(result)``), or an ``error``; the exception propagates unchanged."""
    options = _LLMOptions(*_client_first(args, kwargs), **kwargs)

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        def begin(client: InsideLLMClient, a: tuple[Any, ...], kw: dict[str, Any]) -> _Open:
            if options.extract_prompt is not None:
                prompt = options.extract_prompt(*a, **kw)
            else:
                prompt = kw.get("prompt") or kw.get("messages") or (a[0] if a else "")
            payload = {
                "model_name": options.model_name,
                "provider": options.provider,
                "prompt": prompt if isinstance(prompt, str) else str(prompt),
                "parameters": jsonable({k: v for k, v in kw.items() if k != "prompt"}),
            }
            start = _start(client, EventType.LLM_REQUEST, payload, options.metadata)
            return _LLMRecord(start, client, options)

        return cast("Callable[P, R]", _wrap(func, options.client, "LLM call", begin))

    return decorate


def track_tool_use(*args: Any, **kwargs: Any) -> Decorator[P, R]:
    """``@track_tool_use(tool_name, tool_type="function", client=None,
    extract_parameters=None, extract_response=None, metadata=None)``: record each call as a
    ``tool_call`` (``extract_parameters(*args, **kwargs)``, else the bound arguments) and a
    ``tool_response`` (``extract_response(result)``, else the result), or, when it raises, an
    ``error`` and a failed ``tool_response``."""
    args = _client_first(args, kwargs)

    def options(
        tool_name: str,
        tool_type: str = "function",
        client: InsideLLMClient | None = None,
        extract_parameters: Callable[..., Any] | None = None,
        extract_response: Callable[[Any], Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Decorator[P, R]:
        def decorate(func: Callable[P, R]) -> Callable[P, R]:
            def begin(client: InsideLLMClient, a: tuple[Any, ...], kw: dict[str, Any]) -> _Open:
                if extract_parameters is not None:
                    parameters = extract_parameters(*a, **kw)
                else:
                    parameters = _tracking._arguments(func, a, kw)
                call_id = generate_uuid()
                payload = {
                    "tool_name": tool_name,
                    "tool_type": tool_type,
                    "parameters": parameters
                    if isinstance(parameters, dict)
                    else {"input": parameters},
                    "call_id": call_id,
                }
                start = _start(client, EventType.TOOL_CALL, payload, metadata)
                return _ToolRecord(start, client, tool_name, extract_response)

            return cast("Callable[P, R]", _wrap(func, client, "tool use", begin))

        return decorate

    return options(*args, **kwargs)


def track_agent_step(*args: Any, **kwargs: Any) -> Decorator[P, R]:
    """``@track_agent_step(step_name, client=None, metadata=None)``: record each call as an
    agent step, limelight's way: an ``agent_reasoning`` event when it begins (the parent of
    what it calls), then a ``function_execution`` with arguments, result or error and
    duration (the SDK logged one ``agent.reasoning`` after it, or an ``error``)."""
    args = _client_first(args, kwargs)

    def options(
        step_name: str,
        client: InsideLLMClient | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Decorator[P, R]:
        def decorate(func: Callable[P, R]) -> Callable[P, R]:
            def begin(client: InsideLLMClient, a: tuple[Any, ...], kw: dict[str, Any]) -> _Open:
                payload = {
                    "reasoning_type": step_name,
                    "reasoning_steps": [f"step {step_name} started"],
                }
                start = _start(client, EventType.AGENT_REASONING, payload, metadata)
                arguments = _tracking._arguments(func, a, kw)
                return cast(
                    _Open, _tracking._StepRecord(client.analytics, start, step_name, arguments)
                )

            return cast("Callable[P, R]", _wrap(func, client, "agent step", begin))

        return decorate

    return options(*args, **kwargs)


def track_function_execution(*args: Any, **kwargs: Any) -> Decorator[P, R]:
    """``@track_function_execution(function_name=None, client=None, metadata=None)``: one
    ``function_execution`` event per call, with its arguments, result or error, and
    duration."""
    args = _client_first(args, kwargs)

    def options(
        function_name: str | None = None,
        client: InsideLLMClient | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Decorator[P, R]:
        def decorate(func: Callable[P, R]) -> Callable[P, R]:
            name = function_name or func.__name__

            def begin(client: InsideLLMClient, a: tuple[Any, ...], kw: dict[str, Any]) -> _Open:
                arguments = _tracking._arguments(func, a, kw)
                return _FunctionRecord(client, name, arguments, dict(metadata or {}))

            return cast("Callable[P, R]", _wrap(func, client, "function execution", begin))

        return decorate

    return options(*args, **kwargs)
