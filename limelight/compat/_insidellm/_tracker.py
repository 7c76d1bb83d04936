"""The SDK's ``InsideLLMTracker``: a run, its events, and blocks around LLM and tool calls.

The blocks yield a ``log_response`` callable; everything is logged through the SDK client (so
converted to limelight's typed events). Its blocks and its run are also limelight's current
parent and run, so limelight's own decorators and agents called inside link into it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from contextvars import Token
from types import TracebackType
from typing import Any

from ... import _tracking
from . import _client
from ._client import InsideLLMClient
from ._events import Event
from ._payloads import EventType, generate_uuid

__all__ = ["InsideLLMTracker"]


class _Block:
    """A ``with`` / ``async with`` block around one LLM or tool call: the start event is
    logged on entry (and is the parent of what happens inside), the error on failure."""

    def __init__(
        self,
        start: Callable[[], str],
        respond: Callable[[str, float], Callable[..., str]],
        failed: Callable[[str, float, BaseException], None],
    ) -> None:
        self._start, self._respond, self._failed = start, respond, failed
        self._token: Token[uuid.UUID | None] | None = None

    def __enter__(self) -> Callable[..., str]:
        self.event_id = self._start()
        self.started = time.time()
        self._token = _tracking._parent.set(uuid.UUID(self.event_id))
        return self._respond(self.event_id, self.started)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _tracking._parent.reset(self._token)
            self._token = None
        if isinstance(exc, Exception):
            self._failed(self.event_id, self.started, exc)

    async def __aenter__(self) -> Callable[..., str]:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def _ms(started: float) -> int:
    return int((time.time() - started) * 1000)


class InsideLLMTracker:
    """The SDK's context manager for one workflow: a run started on entry and ended on exit
    (``auto_start_session``), with an ``error`` event (``error_type="context_error"``) when
    the block raises. Works as ``with`` and ``async with``; limelight's own decorators and
    agents called inside join its run.

    :param client: default :func:`get_client` (raises when not initialized, as the SDK).
    """

    def __init__(
        self,
        client: InsideLLMClient | None = None,
        run_id: str | None = None,
        user_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        auto_start_session: bool = True,
    ) -> None:
        self.client = client if client is not None else _client.get_client()
        self.run_id = run_id or generate_uuid()
        self.user_id = user_id
        self.metadata = dict(metadata or {})
        self.auto_start_session = auto_start_session
        self._session_started = False
        self._token: Token[tuple[str | None, str | None]] | None = None

    def __enter__(self) -> InsideLLMTracker:
        if self.auto_start_session:
            self.start_session()
        self._token = _tracking._run.set((self.run_id, self.user_id))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _tracking._run.reset(self._token)
            self._token = None
        if exc_type is not None and isinstance(exc, Exception):
            self.log_error("context_error", str(exc), exc_type.__name__)
        if self.auto_start_session:
            self.end_session()

    async def __aenter__(self) -> InsideLLMTracker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def start_session(self) -> str:
        if not self._session_started:
            self.client.start_run(run_id=self.run_id, user_id=self.user_id, metadata=self.metadata)
            self._session_started = True
        return self.run_id

    def end_session(self) -> None:
        if self._session_started:
            self.client.end_run(self.run_id)
            self._session_started = False

    def flush(self) -> bool:
        return self.client.flush()

    # -- events ---------------------------------------------------------------------------

    def _log(
        self, event_type: EventType, payload: dict[str, Any], parent: str | None = None
    ) -> str:
        current = _tracking._parent.get()
        event = Event(
            run_id=self.run_id,
            user_id=self.user_id,
            event_type=event_type,
            parent_event_id=parent or (None if current is None else str(current)),
            metadata=self.metadata,
            payload=payload,
        )
        self.client.log_event(event)
        return event.event_id

    def log_user_input(self, input_text: str, input_type: str = "text", **kwargs: Any) -> str:
        """Log what the user sent (``channel=``, ``session_context=``, ``parent_event_id=``);
        returns the event's id."""
        parent = kwargs.pop("parent_event_id", None)
        return self._log(
            EventType.USER_INPUT,
            {"input_text": input_text, "input_type": input_type, **kwargs},
            parent,
        )

    def log_agent_response(
        self,
        response_text: str,
        response_type: str = "text",
        parent_event_id: str | None = None,
        **kwargs: Any,
    ) -> str:
        payload = {"response_text": response_text, "response_type": response_type, **kwargs}
        return self._log(EventType.AGENT_RESPONSE, payload, parent_event_id)

    def log_llm_request(
        self,
        model_name: str,
        provider: str,
        prompt: str,
        parent_event_id: str | None = None,
        **kwargs: Any,
    ) -> str:
        payload = {"model_name": model_name, "provider": provider, "prompt": prompt, **kwargs}
        return self._log(EventType.LLM_REQUEST, payload, parent_event_id)

    def log_llm_response(
        self,
        model_name: str,
        provider: str,
        response_text: str,
        parent_event_id: str | None = None,
        **kwargs: Any,
    ) -> str:
        payload = {
            "model_name": model_name,
            "provider": provider,
            "response_text": response_text,
            **kwargs,
        }
        return self._log(EventType.LLM_RESPONSE, payload, parent_event_id)

    def log_tool_call(
        self,
        tool_name: str,
        parameters: dict[str, Any],
        tool_type: str = "function",
        parent_event_id: str | None = None,
    ) -> str:
        payload = {"tool_name": tool_name, "tool_type": tool_type, "parameters": parameters}
        return self._log(EventType.TOOL_CALL, payload, parent_event_id)

    def log_tool_response(
        self,
        tool_name: str,
        response_data: Any,
        tool_type: str = "function",
        parent_event_id: str | None = None,
        execution_time_ms: int | None = None,
        success: bool = True,
        error_message: str | None = None,
    ) -> str:
        payload = {
            "tool_name": tool_name,
            "tool_type": tool_type,
            "response_data": response_data,
            "execution_time_ms": execution_time_ms,
            "success": success,
            "error_message": error_message,
        }
        return self._log(EventType.TOOL_RESPONSE, payload, parent_event_id)

    def log_error(
        self,
        error_type: str,
        error_message: str,
        error_code: str | None = None,
        parent_event_id: str | None = None,
        **kwargs: Any,
    ) -> str:
        payload = {
            "error_type": error_type,
            "error_message": error_message,
            "error_code": error_code,
            **kwargs,
        }
        return self._log(EventType.ERROR, payload, parent_event_id)

    def log_performance_metric(
        self, metric_name: str, metric_value: float, metric_unit: str | None = None, **kwargs: Any
    ) -> str:
        parent = kwargs.pop("parent_event_id", None)
        payload = {
            "metric_name": metric_name,
            "metric_value": metric_value,
            "metric_unit": metric_unit,
            **kwargs,
        }
        return self._log(EventType.PERFORMANCE_METRIC, payload, parent)

    # -- blocks ---------------------------------------------------------------------------

    def track_llm_call(self, model_name: str, provider: str, prompt: str) -> _Block:
        """A block around one LLM call: ``llm.request`` on entry; it yields
        ``log_response(response_text, **payload)``, which logs the ``llm.response`` (with
        ``response_time_ms``) under the request; an ``error`` (``llm_call_error``) when the
        block raises."""

        def respond(request_id: str, started: float) -> Callable[..., str]:
            def log_response(response_text: str, **kwargs: Any) -> str:
                return self.log_llm_response(
                    model_name=model_name,
                    provider=provider,
                    response_text=response_text,
                    parent_event_id=request_id,
                    response_time_ms=_ms(started),
                    **kwargs,
                )

            return log_response

        def failed(request_id: str, started: float, exc: BaseException) -> None:
            self.log_error("llm_call_error", str(exc), type(exc).__name__, request_id)

        return _Block(lambda: self.log_llm_request(model_name, provider, prompt), respond, failed)

    def track_tool_call(
        self, tool_name: str, parameters: dict[str, Any], tool_type: str = "function"
    ) -> _Block:
        """A block around one tool call: ``tool.call`` on entry; it yields
        ``log_response(response_data, success=True, error_message=None)``; a failed
        ``tool.response`` when the block raises."""

        def respond(call_id: str, started: float) -> Callable[..., str]:
            def log_response(
                response_data: Any, success: bool = True, error_message: str | None = None
            ) -> str:
                return self.log_tool_response(
                    tool_name,
                    response_data,
                    tool_type,
                    call_id,
                    _ms(started),
                    success,
                    error_message,
                )

            return log_response

        def failed(call_id: str, started: float, exc: BaseException) -> None:
            self.log_tool_response(
                tool_name, None, tool_type, call_id, _ms(started), False, str(exc)
            )

        return _Block(lambda: self.log_tool_call(tool_name, parameters, tool_type), respond, failed)
