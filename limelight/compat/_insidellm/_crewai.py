"""The SDK's CrewAI handler, over limelight's LiteLLM logger.

CrewAI calls its models through LiteLLM, so the handler is a LiteLLM callback: registered in
``litellm.callbacks``, each call is recorded by :class:`LimelightLiteLLMLogger` (an
``llm_request`` and, under it, an ``llm_response`` with tokens, cost and latency, or an
``error``), once per call, sync or async. This class adds the SDK's constructor (``client``,
``user_id``, ``run_id``, ``metadata``, the ``track_*`` switches, ``debug``), the call's
CrewAI metadata on its events, and the earlier handler's manual methods (``on_crew_start``,
``on_task_end``, ``log_custom_event``, ...), which log SDK events through the client.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import msgspec

from ..._tracking import jsonable
from ...integrations.litellm import LimelightLiteLLMLogger
from ...schemas import _events as native
from . import _client
from ._client import InsideLLMClient
from ._events import Event
from ._payloads import EventType, generate_uuid

__all__ = ["CrewAIInsideLLMCallbackHandler"]

#: What LiteLLM adds to a call's metadata itself (the rest is the caller's: CrewAI's).
_LITELLM_KEYS = frozenset({"hidden_params"})


class CrewAIInsideLLMCallbackHandler(LimelightLiteLLMLogger):
    """Records CrewAI's (LiteLLM's) model calls, and what the manual methods report, into an
    SDK client. Register it with ``litellm.callbacks.append(handler)``.

    :param client: the :class:`InsideLLMClient` (default :func:`get_client`).
    :param user_id: on every event (default ``"crewai_system"``, as the SDK).
    :param run_id: the run of every event (default: a new id per handler).
    :param metadata: merged into every event's metadata.
    :param track_llm_calls: record model calls; ``track_errors`` their failures and
        :meth:`on_error`; ``track_tool_calls``, ``track_agent_actions`` and
        ``track_task_execution`` gate the manual methods.
    :param debug: accepted and kept (limelight logs through structlog).
    """

    def __init__(
        self,
        client: InsideLLMClient | None = None,
        user_id: str | None = None,
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        track_llm_calls: bool = True,
        track_tool_calls: bool = True,
        track_agent_actions: bool = True,
        track_task_execution: bool = True,
        track_errors: bool = True,
        debug: bool = False,
    ) -> None:
        self.client = client if client is not None else _client.get_client()
        self.metadata = dict(metadata or {})
        self.track_llm_calls = track_llm_calls
        self.track_tool_calls = track_tool_calls
        self.track_agent_actions = track_agent_actions
        self.track_task_execution = track_task_execution
        self.track_errors = track_errors
        self.debug = debug
        self._started: dict[str, tuple[str, float]] = {}
        self._manual_requests: list[str] = []
        super().__init__(
            client=self.client.analytics,
            run_id=run_id or generate_uuid(),
            user_id=user_id or "crewai_system",
        )

    # The SDK's names for the links (its tests set them).
    @property
    def run_id(self) -> str:
        return str(self._links["run_id"])

    @run_id.setter
    def run_id(self, value: str) -> None:
        self._links["run_id"] = value

    @property
    def user_id(self) -> str:
        return str(self._links["user_id"])

    @user_id.setter
    def user_id(self, value: str) -> None:
        self._links["user_id"] = value

    current_run_id = run_id
    current_user_id = user_id

    # -- LiteLLM's calls (limelight's logger records them) --------------------------------

    def _events(
        self, kwargs: Mapping[str, Any], response: Any, start: Any, end: Any, *, failed: bool
    ) -> list[native.Event]:
        if not self.track_llm_calls or (failed and not self.track_errors):
            return []
        events = super()._events(kwargs, response, start, end, failed=failed)
        params = kwargs.get("litellm_params") or {}
        crew = params.get("metadata") if isinstance(params, Mapping) else None
        with self.client._lock:
            extra = {**self.client._run_metadata, **self.metadata}
        if isinstance(crew, Mapping) and crew:
            extra["crewai_metadata"] = {
                k: v
                for k, v in crew.items()
                if k not in _LITELLM_KEYS and not str(k).startswith("limelight_")
            }
        if not extra:
            return events
        extra = jsonable(extra)
        return [msgspec.structs.replace(e, metadata={**extra, **e.metadata}) for e in events]

    def log_pre_api_call(self, model: str, messages: Any, kwargs: Any) -> str | None:
        """LiteLLM's pre-call hook (its own calls are recorded when they end); called by
        hand (no ``litellm_call_id`` in ``kwargs``), it logs an ``llm.request``."""
        if _from_litellm(kwargs) or not self.track_llm_calls:
            return None
        last = messages[-1] if isinstance(messages, list) and messages else ""
        prompt = last.get("content", "") if isinstance(last, Mapping) else str(last)
        payload = {
            "model_name": model,
            "provider": "crewai_llm",
            "prompt": str(prompt),
            "parameters": dict(kwargs or {}),
            "messages": messages,
        }
        event_id = self._log(EventType.LLM_REQUEST, payload)
        self._manual_requests.append(event_id)
        return event_id

    def log_post_api_call(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        """LiteLLM's post-call hook (ignored for its own calls); called by hand, it logs
        the ``llm.response`` of the last manual request."""
        if _from_litellm(kwargs) or not self.track_llm_calls:
            return
        choices = getattr(response_obj, "choices", None) or []
        message = getattr(choices[0], "message", None) if choices else None
        usage = getattr(response_obj, "usage", None)
        payload = {
            "model_name": (kwargs or {}).get("model", "unknown"),
            "provider": "crewai_llm",
            "response_text": str(getattr(message, "content", "") or ""),
            "finish_reason": getattr(choices[0], "finish_reason", None) if choices else None,
            "response_time_ms": _ms(start_time, end_time),
            "usage": {
                "prompt_tokens": getattr(usage, "prompt_tokens", 0),
                "completion_tokens": getattr(usage, "completion_tokens", 0),
            }
            if usage is not None
            else None,
        }
        parent = self._manual_requests.pop() if self._manual_requests else None
        self._log(EventType.LLM_RESPONSE, payload, parent)

    # -- the earlier handler's manual methods ----------------------------------------------

    def _log(
        self, event_type: EventType, payload: dict[str, Any], parent: str | None = None
    ) -> str:
        event = Event(
            run_id=self.run_id,
            user_id=self.user_id,
            event_type=event_type,
            parent_event_id=parent,
            metadata=dict(self.metadata),
            payload=payload,
        )
        self.client.log_event(event)
        return event.event_id

    def on_crew_start(self, crew_data: Mapping[str, Any]) -> None:
        payload = {
            "reasoning_type": "crew_start",
            "reasoning_steps": [f"crew {crew_data.get('name') or ''} started".replace("  ", " ")],
            "crew_info": dict(crew_data),
        }
        self._log(EventType.AGENT_REASONING, payload)

    def on_crew_end(self, crew_data: Mapping[str, Any], result: Any) -> None:
        payload = {
            "response_text": str(result),
            "response_type": "crew_end",
            "crew_info": dict(crew_data),
        }
        self._log(EventType.AGENT_RESPONSE, payload)

    def on_agent_start(self, agent_name: str, agent_data: Mapping[str, Any]) -> None:
        if not self.track_agent_actions:
            return
        payload = {
            "reasoning_type": "agent_start",
            "reasoning_steps": [f"agent {agent_name} started"],
            "agent_name": agent_name,
            "agent_role": agent_data.get("role", "unknown"),
            "agent_goal": agent_data.get("goal", ""),
            "agent_backstory": agent_data.get("backstory", ""),
        }
        self._started[f"agent:{agent_name}"] = (
            self._log(EventType.AGENT_REASONING, payload),
            time.time(),
        )

    def on_agent_end(self, agent_name: str, result: Any) -> None:
        if not self.track_agent_actions:
            return
        parent, started = self._started.pop(f"agent:{agent_name}", (None, time.time()))
        payload = {
            "response_text": str(result),
            "response_type": "agent_end",
            "agent_name": agent_name,
            "execution_time_ms": _ms(started, time.time()),
        }
        self._log(EventType.AGENT_RESPONSE, payload, parent)

    def on_task_start(self, task_name: str, task_data: Mapping[str, Any]) -> None:
        if not self.track_task_execution:
            return
        payload = {
            "tool_name": f"task_{task_name}",
            "tool_type": "crewai_task",
            "parameters": {
                "description": task_data.get("description", ""),
                "expected_output": task_data.get("expected_output", ""),
                "agent": task_data.get("agent", "unknown"),
            },
        }
        self._started[f"task:{task_name}"] = (self._log(EventType.TOOL_CALL, payload), time.time())

    def on_task_end(self, task_name: str, result: Any) -> None:
        if not self.track_task_execution:
            return
        parent, started = self._started.pop(f"task:{task_name}", (None, time.time()))
        payload = {
            "tool_name": f"task_{task_name}",
            "tool_type": "crewai_task",
            "response_data": str(result),
            "execution_time_ms": _ms(started, time.time()),
            "success": True,
        }
        self._log(EventType.TOOL_RESPONSE, payload, parent)

    def on_tool_start(
        self, tool_name: str, tool_input: str, context: Mapping[str, Any] | None = None
    ) -> str | None:
        """Log a ``tool.call``; returns its call id for :meth:`on_tool_end`."""
        if not self.track_tool_calls:
            return None
        call_id = generate_uuid()
        payload = {
            "tool_name": tool_name,
            "tool_type": "crewai_tool",
            "parameters": {"input": tool_input},
            "call_id": call_id,
            "context": dict(context or {}),
        }
        self._started[call_id] = (self._log(EventType.TOOL_CALL, payload), time.time())
        return call_id

    def on_tool_end(self, call_id: str | None, result: Any) -> None:
        if not self.track_tool_calls or call_id is None:
            return
        parent, started = self._started.pop(call_id, (None, time.time()))
        payload = {
            "tool_name": "unknown",
            "tool_type": "crewai_tool",
            "call_id": call_id,
            "response_data": str(result),
            "execution_time_ms": _ms(started, time.time()),
            "success": True,
        }
        self._log(EventType.TOOL_RESPONSE, payload, parent)

    def on_error(self, error: BaseException, context: Mapping[str, Any] | None = None) -> None:
        if not self.track_errors:
            return
        payload = {
            "error_type": "crewai_error",
            "error_message": str(error),
            "error_code": type(error).__name__,
            "context": dict(context or {}),
        }
        self._log(EventType.ERROR, payload)

    def log_custom_event(
        self, event_type: str, payload: Mapping[str, Any], parent_event_id: str | None = None
    ) -> None:
        self._log(
            EventType.CUSTOM_EVENT, {"custom_event_type": event_type, **payload}, parent_event_id
        )

    def flush_events(self) -> bool:
        return self.client.flush()


def _from_litellm(kwargs: Any) -> bool:
    return isinstance(kwargs, Mapping) and "litellm_call_id" in kwargs


def _ms(start: Any, end: Any) -> int | None:
    seconds = (
        getattr(end - start, "total_seconds", None)
        if start is not None and end is not None
        else None
    )
    try:
        value = seconds() if seconds is not None else float(end - start)
    except TypeError:
        return None
    return int(value * 1000)
