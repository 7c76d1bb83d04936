"""Analytics for Vertex AI Agent Builder conversations (the Discovery Engine API).

``track_conversational_search(client)`` makes a ``google.cloud.discoveryengine``
``ConversationalSearchServiceClient`` (or its async twin) record each
``converse_conversation`` and ``answer_query`` call: a ``user_input`` (the query), then, under
it, an ``agent_response`` (the reply's summary, or the answer's text) with the duration, and
under that a ``tool_call`` / ``tool_response`` pair per action of the answer's steps (a
search and its results; ``converse_conversation``'s own search results when there are no
steps); or an ``error`` under the input when the call fails. Calls behave exactly as before.

The SDK's classes are duck-typed: nothing here imports ``google.cloud``.
"""

from __future__ import annotations

import functools
import inspect
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from .._tracking import jsonable
from ..errors import ConfigError
from ..providers._threads import on_asyncio
from ..schemas._events import Event

if TYPE_CHECKING:
    from ..analytics import AnalyticsClient

__all__ = [
    "ConversationRecorder",
    "Exchange",
    "asyncio_only_error",
    "track_conversational_search",
    "wrap_method",
]

C = TypeVar("C")

#: The methods recorded, and what each returns (a conversation's reply, or an answer).
METHODS = {"converse_conversation": "converse", "answer_query": "answer"}
AGENT = "vertex_ai_agent_builder"
_ORIGINALS = "_limelight_originals"


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _state(step: Any) -> str:
    state = _get(step, "state")
    return str(getattr(state, "name", state or ""))


def _parse(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return jsonable(value)


def _result(found: Any) -> dict[str, Any]:
    """A search result, briefly: its ids, title, link and document's name."""
    out = {n: v for n in ("id", "uri", "title") if (v := _get(found, n))}
    document = _get(found, "document")
    if isinstance(document, str | Mapping):  # a resource name, or a stand-in's dict
        out["document"] = jsonable(document)
    elif document:
        out["document"] = {n: v for n in ("id", "name") if (v := _get(document, n))}
    return out


def _actions(step: Any) -> list[Any]:
    actions = list(_get(step, "actions") or ())
    single = _get(step, "action")  # the SDK's stand-ins had one action per step
    return actions or ([single] if single else [])


def _tools(answer: Any) -> Iterator[tuple[str, str, dict[str, Any], Any, Any, dict[str, Any]]]:
    """(tool name, tool type, arguments, result, step, step metadata) per step action."""
    for step in _get(answer, "steps") or ():
        description, thought = _get(step, "description") or "", _get(step, "thought") or ""
        meta = {"step_description": description, "step_thought": thought}
        actions = _actions(step)
        if not actions and description:
            yield "AgentStep", "agent_step", {"description": description}, None, step, meta
        for action in actions:
            search, tool = _get(action, "search_action"), _get(action, "tool_action")
            if search and _get(search, "query"):
                name, kind, args = (
                    "VertexAISearch",
                    "search_action",
                    {"query": _get(search, "query")},
                )
            elif tool:
                name, kind = str(_get(tool, "tool") or "UnnamedTool"), "tool_action"
                parsed = _parse(_get(tool, "tool_input") or "{}")
                args = parsed if isinstance(parsed, dict) else {"input": parsed}
            else:
                name, kind, args = "AgentStep", "unknown_action", {"description": description}
            observation = _get(action, "observation")
            found, output = _get(observation, "search_results"), _get(observation, "tool_output")
            result = [_result(r) for r in found] if found else _parse(output) if output else None
            yield name, kind, args, result, step, meta


class Exchange:
    """One call in progress: its query is recorded; record its outcome with :meth:`done` or
    :meth:`failed`."""

    def __init__(self, recorder: ConversationRecorder, kind: str, query: str) -> None:
        self.recorder = recorder
        self.kind = kind
        self.query = query
        self.started = time.monotonic()
        self.input = Event.create_user_input(query, **recorder.links)
        recorder.emit(self.input)

    def _under(self, parent: uuid.UUID) -> dict[str, Any]:
        return {**self.recorder.links, "parent_event_id": parent}

    def failed(self, error: BaseException) -> None:
        self.recorder.emit(
            Event.create_error(
                error, context={"method": self.kind}, **self._under(self.input.event_id)
            )
        )

    def done(self, response: Any) -> None:
        emit = self.recorder.emit
        answer = _get(response, "answer")
        if self.kind == "answer":
            text, finish = str(_get(answer, "answer_text") or ""), _state(answer) or None
        else:
            summary = _get(_get(response, "reply"), "summary")
            text, finish = str(_get(summary, "summary_text") or ""), None
        reply = Event.create_agent_response(
            AGENT,
            text,
            duration=time.monotonic() - self.started,
            finish_reason=finish,
            **self._under(self.input.event_id),
        )
        emit(reply)
        tools = list(_tools(answer)) if answer else []
        searched = _get(response, "search_results") if self.kind == "converse" else None
        if not tools and searched:
            results = [_result(r) for r in searched]
            tools = [("VertexAISearch", "search", {"query": self.query}, results, None, {})]
        for name, kind, args, result, step, meta in tools:
            call = Event.create_tool_call(
                name, args, tool_type=kind, metadata=meta, **self._under(reply.event_id)
            )
            emit(call)
            failed = step is not None and _state(step) == "FAILED"
            emit(
                Event.create_tool_response(
                    name,
                    (_get(step, "thought") or result) if failed else result,
                    is_error=failed,
                    **self._under(call.event_id),
                )
            )


class ConversationRecorder:
    """Records Agent Builder calls through ``emit``, with ``links`` on every event."""

    def __init__(self, emit: Callable[[Event], None], links: Mapping[str, Any]) -> None:
        self.emit = emit
        self.links = dict(links)

    def begin(self, kind: str, request: Any, kwargs: Mapping[str, Any]) -> Exchange:
        """Record the query of a call about to be made (``request`` as a message or a dict,
        or the flattened ``query=`` keyword; its ``input`` or ``text``)."""
        query = _get(request, "query") if request is not None else kwargs.get("query")
        # A conversation's TextInput holds ``input``, an answer's Query ``text``.
        text = (_get(query, "input") or _get(query, "text")) if query is not None else None
        return Exchange(self, kind, str(text) if text else "N/A")


def asyncio_only_error(method: str) -> ConfigError:
    return ConfigError(
        f"the Discovery Engine async client's {method}() runs on asyncio only (grpc.aio): "
        "under trio use the sync ConversationalSearchServiceClient (in a worker thread, "
        "anyio.to_thread.run_sync)"
    )


def wrap_method(recorder: ConversationRecorder, name: str, original: Callable[..., Any]) -> Any:
    """``original`` (a client's bound method, sync or async), recording each call."""
    kind = METHODS[name]
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def acall(request: Any = None, *args: Any, **kwargs: Any) -> Any:
            if not on_asyncio():
                raise asyncio_only_error(name)
            exchange = recorder.begin(kind, request, kwargs)
            try:
                response = await original(request, *args, **kwargs)
            except Exception as exc:  # cancellation is no error: it passes unrecorded
                exchange.failed(exc)
                raise
            exchange.done(response)
            return response

        return acall

    @functools.wraps(original)
    def call(request: Any = None, *args: Any, **kwargs: Any) -> Any:
        exchange = recorder.begin(kind, request, kwargs)
        try:
            response = original(request, *args, **kwargs)
        except Exception as exc:
            exchange.failed(exc)
            raise
        exchange.done(response)
        return response

    return call


def track_conversational_search(
    search_client: C,
    *,
    client: AnalyticsClient | None = None,
    run_id: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    parent_event_id: uuid.UUID | None = None,
) -> C:
    """Record the conversations of a Discovery Engine client (Vertex AI Agent Builder) as
    analytics events, and return the same client. Tracking it again replaces the options.

    :param search_client: a ``discoveryengine.ConversationalSearchServiceClient`` or
        ``ConversationalSearchServiceAsyncClient`` (the async one runs on asyncio only; under
        trio its calls raise :class:`~limelight.errors.ConfigError`).
    :param client: the analytics client (default: :func:`limelight.analytics.current` at the
        time of each event; nothing is recorded while analytics is not initialized).
    :raises ConfigError: ``search_client`` has no ``converse_conversation`` method.
    """
    if not callable(getattr(search_client, "converse_conversation", None)):
        raise ConfigError(
            f"track_conversational_search() takes a Discovery Engine "
            f"ConversationalSearchService client, not {type(search_client).__name__}: create "
            "one with discoveryengine.ConversationalSearchServiceClient()"
        )

    def emit(event: Event) -> None:
        chosen = client
        if chosen is None:
            from .. import analytics

            chosen = analytics.current()
        if chosen is not None:
            chosen.log_event(event)

    links = {
        "run_id": run_id,
        "user_id": user_id,
        "session_id": session_id,
        "parent_event_id": parent_event_id,
    }
    recorder = ConversationRecorder(emit, links)
    originals: dict[str, Callable[..., Any]] | None = vars(search_client).get(_ORIGINALS)
    if originals is None:
        originals = {n: getattr(search_client, n) for n in METHODS if hasattr(search_client, n)}
        setattr(search_client, _ORIGINALS, originals)
    for name, original in originals.items():
        setattr(search_client, name, wrap_method(recorder, name, original))
    return search_client
