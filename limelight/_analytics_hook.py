"""Analytics for provider workers: every attempt of an LLM call recorded as events.

An :class:`AttemptHook` that records every attempt of every LLM call as ``llm_request`` /
``llm_response`` (or ``error``) events on the process-wide analytics client, when there is one.
It never waits and never raises.

``analytics.initialize()`` registers one in :mod:`limelight._instrument`, which every provider
worker consults; the worker and this hook share only :mod:`limelight._instrument`'s types."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._instrument import Attempt
from ._models import cost_of
from ._tracing import analytics_client, parse_event_id
from .schemas import CompletionResult
from .schemas._events import Event

if TYPE_CHECKING:
    from ._instrument import Recorder

__all__ = ["AnalyticsHook"]

_STATE_KEY = "analytics.request"


class AnalyticsHook:
    """Records each attempt of a deployment's calls as events.

    ``role``, ``run_id``, ``user_id``, ``session_id`` and ``parent_event_id`` are read from
    the request's ``metadata`` (so an agent that puts them there gets its calls linked into
    its tree). Tokens, cost, latency and TTFT come from the result.

    :param provider: the provider name to record (default: the result's ``provider``, else
        the deployment's name).
    :param client: a fixed client (an :class:`~limelight.analytics.AnalyticsClient`);
        default: the one registered by :func:`limelight.analytics.initialize`, looked up at
        each call, so a hook installed before ``initialize()`` starts recording once it is
        called.
    """

    def __init__(self, *, provider: str | None = None, client: Recorder | None = None) -> None:
        self.provider = provider
        self._fixed = client
        self._client: Callable[[], Recorder | None] = (
            (lambda: client) if client is not None else analytics_client
        )

    async def before(self, attempt: Attempt) -> None:
        client = self._client()
        if client is None:
            return
        request = attempt.request
        meta = request.metadata
        event = Event.create_llm_request(
            request.model or "",
            provider=self.provider or attempt.deployment,
            messages_count=len(request.messages),
            tools_count=len(request.tools),
            role=meta.get("role"),
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            stream=request.stream,
            run_id=meta.get("run_id"),
            user_id=meta.get("user_id"),
            session_id=meta.get("session_id"),
            parent_event_id=parse_event_id(meta.get("parent_event_id")),
            metadata={"deployment": attempt.deployment, "attempt": attempt.number},
        )
        attempt.state[_STATE_KEY] = event.event_id
        client.log_event(event)

    async def after(
        self, attempt: Attempt, result: CompletionResult | None, error: BaseException | None
    ) -> None:
        client = self._client()
        if client is None:
            return
        request = attempt.request
        meta = request.metadata
        parent = attempt.state.get(_STATE_KEY)
        links: dict[str, Any] = {
            "run_id": meta.get("run_id"),
            "user_id": meta.get("user_id"),
            "session_id": meta.get("session_id"),
            "parent_event_id": parent if isinstance(parent, uuid.UUID) else None,
            "metadata": {"deployment": attempt.deployment, "attempt": attempt.number},
        }
        elapsed = time.perf_counter() - attempt.started if attempt.started else None
        if error is not None or result is None:
            failure: BaseException | str = error if error is not None else "no result"
            client.log_event(
                Event.create_error(
                    failure,
                    context={
                        "model": request.model,
                        "deployment": attempt.deployment,
                        "attempt": attempt.number,
                        "latency": elapsed,
                    },
                    include_traceback=False,
                    **links,
                )
            )
            return
        usage = result.usage
        cost = result.cost
        if cost is None and usage is not None:
            # The backend did not price it: the maintained price data may know the model.
            cost = cost_of(usage, result.model or request.model, cached_tokens=usage.cached_tokens)
        client.log_event(
            Event.create_llm_response(
                result.model or request.model or "",
                provider=self.provider or result.provider or attempt.deployment,
                input_tokens=usage.prompt_tokens if usage else 0,
                output_tokens=usage.completion_tokens if usage else 0,
                cost=cost,
                latency=result.latency if result.latency is not None else elapsed,
                ttft=result.ttft,
                finish_reason=result.finish_reason,
                role=meta.get("role") or result.metadata.get("role"),
                tool_calls_count=len(result.tool_calls),
                **links,
            )
        )
