"""A LiteLLM callback that records every completion as limelight analytics events.

CrewAI and other frameworks built on LiteLLM are included.

``enable_litellm_analytics()`` registers a :class:`LimelightLiteLLMLogger` in
``litellm.callbacks``: each call then records an ``llm_request`` and, under it, an
``llm_response`` (model, tokens, cost, latency) or an ``error``. Importing this module imports
LiteLLM (with its local cost map: no network fetch).
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import structlog

from ..providers._litellm import import_litellm
from ..schemas._events import Event

import_litellm()  # sets LITELLM_LOCAL_MODEL_COST_MAP and builds its types quietly, once

from litellm.integrations.custom_logger import CustomLogger  # noqa: E402

if TYPE_CHECKING:
    from ..analytics import AnalyticsClient

__all__ = ["LimelightLiteLLMLogger", "disable_litellm_analytics", "enable_litellm_analytics"]

_log = structlog.get_logger("limelight.integrations.litellm")

#: Keys of a call's ``metadata={...}`` that set the links of its events, per call.
METADATA_KEYS = ("run_id", "user_id", "session_id", "parent_event_id")


class LimelightLiteLLMLogger(CustomLogger):
    """Records LiteLLM calls (sync and async, streamed or not) as analytics events.

    LiteLLM calls ``log_success_event`` / ``log_failure_event`` for sync calls (from its
    logging thread pool) and the ``async_`` forms for async calls (from its logging worker,
    on the caller's event loop), so each call is recorded once. A call's own
    ``metadata={"limelight_user_id": ..., "limelight_run_id": ..., "limelight_session_id":
    ..., "limelight_parent_event_id": ...}`` overrides the links given here.

    :param client: the analytics client (default: :func:`limelight.analytics.current` at
        the time of the call; nothing is recorded while analytics is not initialized).
    :ivar failed: callbacks that could not record their call (each one is logged).
    """

    def __init__(
        self,
        *,
        client: AnalyticsClient | None = None,
        run_id: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        parent_event_id: uuid.UUID | None = None,
    ) -> None:
        super().__init__()
        self._client = client
        self._links = {
            "run_id": run_id,
            "user_id": user_id,
            "session_id": session_id,
            "parent_event_id": parent_event_id,
        }
        self.failed = 0

    # -- LiteLLM's hooks ------------------------------------------------------------------

    def log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._record(kwargs, response_obj, start_time, end_time, failed=False)

    def log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._record(kwargs, response_obj, start_time, end_time, failed=True)

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        # log_event never blocks: no need to leave the loop.
        self._record(kwargs, response_obj, start_time, end_time, failed=False)

    async def async_log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self._record(kwargs, response_obj, start_time, end_time, failed=True)

    # -- recording ------------------------------------------------------------------------

    def _record(self, kwargs: Any, response: Any, start: Any, end: Any, *, failed: bool) -> None:
        client = self._client
        if client is None:
            from .. import analytics

            client = analytics.current()
        if client is None:
            return
        try:
            events = self._events(kwargs, response, start, end, failed=failed)
        except Exception as exc:  # a call LiteLLM reports in a shape we do not know
            # LiteLLM would only log it at debug level: count it and log it ourselves.
            self.failed += 1
            _log.error(
                "could not record a LiteLLM call",
                model=str(kwargs.get("model")) if isinstance(kwargs, Mapping) else None,
                error=f"{type(exc).__name__}: {exc}",
            )
            return
        for event in events:
            client.log_event(event)

    def _call_links(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        links = dict(self._links)
        params = kwargs.get("litellm_params") or {}
        metadata = params.get("metadata") or kwargs.get("metadata") or {}
        if isinstance(metadata, Mapping):
            for key in METADATA_KEYS:
                value = metadata.get(f"limelight_{key}")
                if value is None:
                    continue
                if key == "parent_event_id":
                    value = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
                else:
                    value = str(value)
                links[key] = value
        return links

    def _events(
        self, kwargs: Mapping[str, Any], response: Any, start: Any, end: Any, *, failed: bool
    ) -> list[Event]:
        links = self._call_links(kwargs)
        logged: Mapping[str, Any] = kwargs.get("standard_logging_object") or {}
        params: Mapping[str, Any] = kwargs.get("optional_params") or {}
        litellm_params: Mapping[str, Any] = kwargs.get("litellm_params") or {}
        model = str(logged.get("model") or kwargs.get("model") or "")
        provider = str(
            logged.get("custom_llm_provider")
            or litellm_params.get("custom_llm_provider")
            or kwargs.get("custom_llm_provider")
            or ""
        )
        messages = kwargs.get("messages")
        tools = params.get("tools")
        stream = bool(kwargs.get("stream") or params.get("stream"))
        temperature = params.get("temperature")
        max_tokens = params.get("max_tokens", params.get("max_completion_tokens"))
        request = Event.create_llm_request(
            model,
            provider=provider,
            messages_count=len(messages) if isinstance(messages, list) else 0,
            tools_count=len(tools) if isinstance(tools, list) else 0,
            temperature=float(temperature) if isinstance(temperature, int | float) else None,
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
            stream=stream,
            **links,
        )
        under = {**links, "parent_event_id": request.event_id}
        latency = _seconds(start, end)
        if failed:
            error = kwargs.get("exception")
            if not isinstance(error, BaseException):
                error = str(logged.get("error_str") or response or "LiteLLM call failed")
            return [
                request,
                Event.create_error(
                    error,
                    context={"model": model, "provider": provider, "latency": latency},
                    include_traceback=False,
                    **under,
                ),
            ]
        inputs, outputs, cached = _usage(response, logged)
        content, finish_reason, tool_calls = _answer(response)
        cost = kwargs.get("response_cost", logged.get("response_cost"))
        ttft = _seconds(start, kwargs.get("completion_start_time")) if stream else None
        return [
            request,
            Event.create_llm_response(
                model,
                provider=provider,
                input_tokens=inputs,
                output_tokens=outputs,
                cached_tokens=cached,
                cost=float(cost) if isinstance(cost, int | float) else None,
                latency=latency,
                ttft=ttft,
                finish_reason=finish_reason,
                content=content,
                tool_calls_count=tool_calls,
                **under,
            ),
        ]


def _seconds(start: Any, end: Any) -> float | None:
    if isinstance(start, datetime.datetime) and isinstance(end, datetime.datetime):
        return max(0.0, (end - start).total_seconds())
    if isinstance(start, int | float) and isinstance(end, int | float):
        return max(0.0, float(end - start))
    return None


def _usage(response: Any, logged: Mapping[str, Any]) -> tuple[int, int, int]:
    usage = getattr(response, "usage", None)
    if usage is not None:
        details = getattr(usage, "prompt_tokens_details", None)
        cached = getattr(details, "cached_tokens", None) if details is not None else None
        return (
            int(getattr(usage, "prompt_tokens", 0) or 0),
            int(getattr(usage, "completion_tokens", 0) or 0),
            int(cached or 0),
        )
    return (
        int(logged.get("prompt_tokens") or 0),
        int(logged.get("completion_tokens") or 0),
        0,
    )


def _answer(response: Any) -> tuple[str | None, str | None, int]:
    choices = getattr(response, "choices", None)
    if not choices:
        return None, None, 0
    choice = choices[0]
    message = getattr(choice, "message", None)
    content = getattr(message, "content", None)
    tool_calls = getattr(message, "tool_calls", None) or []
    finish = getattr(choice, "finish_reason", None)
    return (
        content if isinstance(content, str) else None,
        finish if isinstance(finish, str) else None,
        len(tool_calls),
    )


def enable_litellm_analytics(
    *,
    client: AnalyticsClient | None = None,
    run_id: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    parent_event_id: uuid.UUID | None = None,
) -> LimelightLiteLLMLogger:
    """Record every LiteLLM call from now on: registers a new
    :class:`LimelightLiteLLMLogger` in ``litellm.callbacks`` (replacing one registered
    before, so each call is recorded once) and returns it."""
    litellm = import_litellm()
    disable_litellm_analytics()
    logger = LimelightLiteLLMLogger(
        client=client,
        run_id=run_id,
        user_id=user_id,
        session_id=session_id,
        parent_event_id=parent_event_id,
    )
    litellm.callbacks.append(logger)
    return logger


def disable_litellm_analytics(logger: LimelightLiteLLMLogger | None = None) -> int:
    """Stop recording: removes ``logger`` (default: every :class:`LimelightLiteLLMLogger`)
    from LiteLLM's callback lists. Returns how many registrations were removed."""
    litellm = import_litellm()
    removed = 0
    # LiteLLM copies `callbacks` into its success/failure lists on a call's setup: clean all.
    for name in (
        "callbacks",
        "success_callback",
        "failure_callback",
        "_async_success_callback",
        "_async_failure_callback",
    ):
        callbacks: list[Any] = getattr(litellm, name)
        kept = [
            cb
            for cb in callbacks
            if not (cb is logger or (logger is None and isinstance(cb, LimelightLiteLLMLogger)))
        ]
        removed += len(callbacks) - len(kept)
        callbacks[:] = kept
    return removed
