"""Decorators and the :class:`Tracker` context manager that record analytics events.

They record LLM calls, tool uses and agent steps (inputs, outputs, latency, errors) as analytics
events, linked into a tree by ``parent_event_id``. Without an initialized client they cost a
function call and record nothing; the user's exceptions always propagate unchanged. The client
is the recorder that ``analytics.initialize()`` registers in :mod:`limelight._instrument` (this
module never imports :mod:`limelight.analytics`, which re-exports it).
"""

from __future__ import annotations

import functools
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, Self, TypeVar, cast

from . import _instrument
from .schemas._events import Event

if TYPE_CHECKING:
    from ._instrument import Recorder

__all__ = [
    "LLMCallRecord",
    "ToolCallRecord",
    "Tracker",
    "track_agent_step",
    "track_llm_call",
    "wrap_in_record",
]

P = ParamSpec("P")
R = TypeVar("R")

#: The event the current code runs inside (an LLM request, a tool call, an agent step).
_parent: ContextVar[uuid.UUID | None] = ContextVar("limelight_parent_event", default=None)
#: The run (and its user) of the innermost Tracker.
_run: ContextVar[tuple[str | None, str | None]] = ContextVar("limelight_run", default=(None, None))

_MAX_TEXT = 4000
_MAX_ITEMS = 50
_MAX_DEPTH = 4


def _client() -> Recorder | None:
    """The analytics client that ``analytics.initialize()`` registered, or None."""
    active = _instrument.active
    return None if active is None else active.recorder


def jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` reduced to what JSON carries (long text cut, other objects as their repr),
    so an event built from arbitrary arguments always encodes."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        value = str(value)  # a str subclass becomes a plain str, which JSON carries
        return value if len(value) <= _MAX_TEXT else value[:_MAX_TEXT] + "…"
    if depth >= _MAX_DEPTH:
        return _short_repr(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, depth + 1) for k, v in list(value.items())[:_MAX_ITEMS]}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v, depth + 1) for v in list(value)[:_MAX_ITEMS]]
    to_builtins = getattr(value, "model_dump", None)  # pydantic models
    if callable(to_builtins):
        try:
            return jsonable(to_builtins(), depth + 1)
        except Exception:
            return _short_repr(value)
    try:
        import msgspec

        return jsonable(msgspec.to_builtins(value), depth + 1)
    except (TypeError, ValueError):
        return _short_repr(value)


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "…"


def _arguments(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        bound = inspect.signature(func).bind_partial(*args, **kwargs)
        items = dict(bound.arguments)
    except (TypeError, ValueError):
        items = {"args": list(args), **kwargs}
    items.pop("self", None)
    items.pop("cls", None)
    return jsonable(items)


def _links() -> dict[str, Any]:
    run_id, user_id = _run.get()
    return {"run_id": run_id, "user_id": user_id, "parent_event_id": _parent.get()}


def _usage_of(result: Any) -> tuple[int, int, float | None, str | None, str | None]:
    """(input tokens, output tokens, cost, content, finish reason) of an LLM answer in any
    common shape: limelight's CompletionResult, OpenAI's response objects or dicts, text."""
    if isinstance(result, str):
        return 0, 0, None, result, None

    def get(obj: Any, name: str) -> Any:
        if isinstance(obj, Mapping):
            return obj.get(name)
        return getattr(obj, name, None)

    usage = get(result, "usage")
    tokens_in = get(usage, "prompt_tokens") or get(usage, "input_tokens") or 0
    tokens_out = get(usage, "completion_tokens") or get(usage, "output_tokens") or 0
    cost = get(result, "cost")
    content = get(result, "content")
    finish = get(result, "finish_reason")
    choices = get(result, "choices")
    if content is None and isinstance(choices, list) and choices:
        message = get(choices[0], "message")
        content = get(message, "content")
        finish = finish or get(choices[0], "finish_reason")
    return (
        int(tokens_in) if isinstance(tokens_in, int) else 0,
        int(tokens_out) if isinstance(tokens_out, int) else 0,
        float(cost) if isinstance(cost, (int, float)) else None,
        content if isinstance(content, str) else None,
        finish if isinstance(finish, str) else None,
    )


def wrap_in_record(
    func: Callable[P, Any],
    begin: Callable[[Any, tuple[Any, ...], dict[str, Any]], Any],
    resolve: Callable[[], Any] | None = None,
) -> Callable[P, Any]:
    """``func`` (sync or async) run inside the record that ``begin(client, args, kwargs)``
    opens (an object with ``enter()``, ``succeed(result)``, ``fail(exc)`` and ``exit()``).

    ``resolve()`` gives the client to record with at each call (by default the process-wide
    recorder); when it gives None, ``func`` just runs, unrecorded."""
    _client_of = _client if resolve is None else resolve
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            client = _client_of()
            if client is None:
                return await cast("Callable[P, Awaitable[Any]]", func)(*args, **kwargs)
            record = begin(client, args, kwargs)
            record.enter()
            try:
                result = await cast("Callable[P, Awaitable[Any]]", func)(*args, **kwargs)
            except Exception as exc:
                record.fail(exc)
                raise
            finally:
                record.exit()
            record.succeed(result)
            return result

        return async_wrapper

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        client = _client_of()
        if client is None:
            return func(*args, **kwargs)
        record = begin(client, args, kwargs)
        record.enter()
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            record.fail(exc)
            raise
        finally:
            record.exit()
        record.succeed(result)
        return result

    return wrapper


class _Record:
    """An open record: its start event is the parent of whatever happens inside it."""

    def __init__(self, client: Recorder | None, start: Event) -> None:
        self.client = client
        self.start = start
        self.event_id = start.event_id
        self.run_id = start.run_id
        self.user_id = start.user_id
        self.session_id = start.session_id
        self.parent_event_id = start.parent_event_id
        self.started = time.perf_counter()
        self.ended: float | None = None
        self._token: Token[uuid.UUID | None] | None = None
        self._result: Any = None

    def links(self) -> dict[str, Any]:
        """The links of the events that end this record: its run, and itself as parent."""
        return {
            "run_id": self.run_id,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "parent_event_id": self.event_id,
        }

    def enter(self) -> None:
        if self.client is not None:
            self.client.log_event(self.start)
        self._token = _parent.set(self.event_id)

    def exit(self) -> None:
        self.ended = time.perf_counter()
        if self._token is not None:
            _parent.reset(self._token)
            self._token = None

    @property
    def duration(self) -> float:
        return (self.ended or time.perf_counter()) - self.started

    def emit(self, event: Event) -> None:
        if self.client is not None:
            self.client.log_event(event)

    def fail(self, exc: BaseException) -> None:
        self.emit(
            Event.create_error(
                exc,
                context={"duration": self.duration},
                **self.links(),
            )
        )

    def succeed(self, result: Any) -> None:
        raise NotImplementedError

    # As a ``with`` / ``async with`` block (Tracker's sub-contexts): what was recorded
    # inside is the result.

    def __enter__(self) -> Self:
        self.enter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        self.exit()
        if exc is None:
            self.succeed(self._result)
        elif isinstance(exc, Exception):
            self.fail(exc)

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class LLMCallRecord(_Record):
    """An LLM call being recorded: call :meth:`record` with the answer (or its numbers)
    before the block ends; the ``llm_response`` event is emitted when it ends."""

    def __init__(self, client: Recorder | None, start: Event, model: str, provider: str):
        super().__init__(client, start)
        self.model = model
        self.provider = provider
        self._numbers: dict[str, Any] = {}

    def record(
        self,
        response: Any = None,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost: float | None = None,
        content: str | None = None,
        finish_reason: str | None = None,
    ) -> None:
        self._result = response
        given = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost": cost,
            "content": content,
            "finish_reason": finish_reason,
        }
        self._numbers = {k: v for k, v in given.items() if v is not None}

    def succeed(self, result: Any) -> None:
        tokens_in, tokens_out, cost, content, finish = _usage_of(result)
        numbers: dict[str, Any] = {
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "cost": cost,
            "content": content,
            "finish_reason": finish,
        }
        numbers.update(self._numbers)
        self.emit(
            Event.create_llm_response(
                self.model,
                provider=self.provider,
                latency=self.duration,
                **self.links(),
                **numbers,
            )
        )


class ToolCallRecord(_Record):
    """A tool call being recorded: call :meth:`record` with its result; the
    ``tool_response`` event is emitted when the block ends."""

    def __init__(self, client: Recorder | None, start: Event, name: str):
        super().__init__(client, start)
        self.name = name

    def record(self, result: Any) -> None:
        self._result = result

    def fail(self, exc: BaseException) -> None:
        super().fail(exc)
        self.emit(
            Event.create_tool_response(
                self.name,
                f"{type(exc).__name__}: {exc}",
                is_error=True,
                duration=self.duration,
                **self.links(),
            )
        )

    def succeed(self, result: Any) -> None:
        self.emit(
            Event.create_tool_response(
                self.name,
                jsonable(result),
                duration=self.duration,
                **self.links(),
            )
        )


class _StepRecord(_Record):
    def __init__(self, client: Recorder, start: Event, step: str, arguments: Any):
        super().__init__(client, start)
        self.step = step
        self.arguments = arguments

    def _done(self, result: Any = None, error: str | None = None) -> None:
        self.emit(
            Event.create_function_execution(
                self.step,
                arguments=self.arguments,
                result=result,
                error=error,
                duration=self.duration,
                **self.links(),
                metadata={"agent_step": self.step},
            )
        )

    def fail(self, exc: BaseException) -> None:
        super().fail(exc)
        self._done(error=f"{type(exc).__name__}: {exc}")

    def succeed(self, result: Any) -> None:
        self._done(result=jsonable(result))


def _llm_request(model: str, provider: str, messages: Any, links: dict[str, Any]) -> Event:
    count = len(messages) if isinstance(messages, (list, tuple)) else 0
    return Event.create_llm_request(model, provider=provider, messages_count=count, **links)


def track_llm_call(model: str, provider: str = "") -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Record each call of the decorated function (sync or async) as an LLM call: an
    ``llm_request`` event, then ``llm_response`` with latency, tokens, cost and content read
    from the return value (limelight's CompletionResult, OpenAI-shaped objects or dicts, or
    text), or an ``error`` event (the exception is re-raised unchanged)."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        def begin(client: Recorder, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            start = _llm_request(model, provider, kwargs.get("messages"), _links())
            return LLMCallRecord(client, start, model, provider)

        return cast("Callable[P, R]", wrap_in_record(func, begin))

    return decorate


def track_tool_use(
    name: str, tool_type: str = "function"
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Record each call of the decorated tool (sync or async): ``tool_call`` with its
    arguments (secrets redacted), then ``tool_response`` with the result and duration (or
    ``is_error`` and an ``error`` event; the exception is re-raised unchanged)."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        def begin(client: Recorder, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            start = Event.create_tool_call(
                name, _arguments(func, args, kwargs), tool_type=tool_type, **_links()
            )
            return ToolCallRecord(client, start, name)

        return cast("Callable[P, R]", wrap_in_record(func, begin))

    return decorate


def track_agent_step(step: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Record each call of the decorated function (sync or async) as an agent step: an
    ``agent_reasoning`` event when it begins (the parent of whatever it calls), then a
    ``function_execution`` event with arguments, result, error and duration."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        def begin(client: Recorder, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            arguments = _arguments(func, args, kwargs)
            start = Event.create_agent_reasoning(
                step, f"step {step} started", metadata={"agent_step": step}, **_links()
            )
            return _StepRecord(client, start, step, arguments)

        return cast("Callable[P, R]", wrap_in_record(func, begin))

    return decorate


class Tracker:
    """One run of your app, recorded: ``session_start`` on entry, ``session_end`` (with
    ``status="error"`` and an ``error`` event if the block raised) on exit. Works as ``with``
    and ``async with``; decorated functions called inside join its run::

        with Tracker(user_id="u-1") as t:
            question = t.log_user_input("What is 2 + 2?")
            with t.track_llm_call("gpt-4o", "openai") as call:
                call.record(input_tokens=12, output_tokens=3, content="4")
            t.log_agent_response("4", parent_event_id=question)

    :param client: an :class:`~limelight.analytics.AnalyticsClient`; default: the
        process-wide client (nothing is recorded when there is none).
    """

    def __init__(
        self,
        user_id: str | None = None,
        *,
        run_id: str | None = None,
        session_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        client: Recorder | None = None,
    ) -> None:
        self.user_id = user_id
        self.run_id = run_id or uuid.uuid4().hex
        self.session_id = session_id
        self.metadata = dict(metadata) if metadata else {}
        self._client = client
        self._token: Token[tuple[str | None, str | None]] | None = None

    @property
    def client(self) -> Recorder | None:
        return self._client if self._client is not None else _client()

    def _links(self, parent_event_id: uuid.UUID | None) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "parent_event_id": parent_event_id if parent_event_id is not None else _parent.get(),
        }

    def log_event(self, event: Event) -> uuid.UUID:
        client = self.client
        if client is not None:
            client.log_event(event)
        return event.event_id

    def __enter__(self) -> Tracker:
        self._client = self.client
        if self._client is not None:
            self._client.start_run(
                self.user_id, self.metadata, run_id=self.run_id, session_id=self.session_id
            )
        self._token = _run.set((self.run_id, self.user_id))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _run.reset(self._token)
            self._token = None
        client = self._client
        if client is None:
            return
        if isinstance(exc, Exception):
            client.log_event(Event.create_error(exc, **self._links(None)))
        client.end_run(
            self.run_id,
            status="ok" if exc is None else "error",
            user_id=self.user_id,
            session_id=self.session_id,
        )

    async def __aenter__(self) -> Tracker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def log_user_input(
        self, text: str, *, input_type: str = "text", metadata: Mapping[str, Any] | None = None
    ) -> uuid.UUID:
        """Record what the user sent; returns the event's id (a parent for what follows)."""
        return self.log_event(
            Event.create_user_input(
                text, input_type=input_type, metadata=metadata, **self._links(None)
            )
        )

    def log_agent_response(
        self,
        content: str,
        *,
        agent_name: str = "agent",
        parent_event_id: uuid.UUID | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> uuid.UUID:
        """Record the agent's answer, linked to ``parent_event_id`` (the user input, say)."""
        return self.log_event(
            Event.create_agent_response(
                agent_name, content, metadata=metadata, **self._links(parent_event_id)
            )
        )

    def track_llm_call(
        self,
        model: str,
        provider: str = "",
        *,
        messages: Any = None,
        parent_event_id: uuid.UUID | None = None,
    ) -> LLMCallRecord:
        """A ``with`` / ``async with`` block recording one LLM call (``llm_request`` on
        entry; ``llm_response`` with the latency and what you :meth:`~LLMCallRecord.record`,
        or an ``error``, on exit)."""
        start = _llm_request(model, provider, messages, self._links(parent_event_id))
        return LLMCallRecord(self.client, start, model, provider)

    def track_tool_call(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        tool_type: str = "function",
        parent_event_id: uuid.UUID | None = None,
    ) -> ToolCallRecord:
        """A ``with`` / ``async with`` block recording one tool call (``tool_call`` on
        entry, ``tool_response`` on exit)."""
        start = Event.create_tool_call(
            name,
            jsonable(dict(arguments)) if arguments else None,
            tool_type=tool_type,
            **self._links(parent_event_id),
        )
        return ToolCallRecord(self.client, start, name)
