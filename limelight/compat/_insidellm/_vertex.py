"""The SDK's Vertex AI Agent Builder wrapper, over limelight's Discovery Engine recorder.

The recorder is :func:`limelight.integrations.vertex.track_conversational_search`'s."""

from __future__ import annotations

import functools
import inspect
from typing import Any

import anyio.to_thread

from ...integrations._discoveryengine import (
    ConversationRecorder,
    asyncio_only_error,
    wrap_method,
)
from ...providers._threads import on_asyncio
from ._client import InsideLLMClient

__all__ = ["InsideLLMVertexAgentBuilderConversationalSearchClient"]


class InsideLLMVertexAgentBuilderConversationalSearchClient:
    """Wraps a Discovery Engine ``ConversationalSearchService`` client and records each
    ``await converse_conversation(request=...)`` (and ``answer_query``) into an SDK client:
    the query (``user_input``), the reply (``agent_response``, under it) and a tool call and
    response per action of the answer's steps, or the search results (under the reply), or an
    ``error``. The exception of a failed call propagates unchanged.

    The methods are ``async``, as the SDK's. With the async client they run on asyncio (its
    gRPC is asyncio's; under trio they raise :class:`~limelight.errors.ConfigError`); with
    the sync ``ConversationalSearchServiceClient`` they run it in a worker thread, on asyncio
    and trio alike. Every other attribute is the wrapped client's.

    :param client: the Discovery Engine client.
    :param insidellm_client: the :class:`InsideLLMClient` to record into.
    :param debug: accepted and kept (limelight logs through structlog).
    """

    def __init__(
        self,
        client: Any,
        insidellm_client: InsideLLMClient,
        user_id: str | None,
        run_id: str | None,
        debug: bool = False,
    ) -> None:
        self._client = client
        self._insidellm_client = insidellm_client
        self._user_id = user_id
        self._run_id = run_id
        self._debug = debug
        self._recorder = ConversationRecorder(
            insidellm_client.log_event, {"run_id": run_id, "user_id": user_id}
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def _call(self, name: str, request: Any, args: Any, kwargs: Any) -> Any:
        original = getattr(self._client, name)
        recorded = wrap_method(self._recorder, name, original)
        if inspect.iscoroutinefunction(original):
            if not on_asyncio():
                raise asyncio_only_error(name)
            return await recorded(request, *args, **kwargs)
        return await anyio.to_thread.run_sync(functools.partial(recorded, request, *args, **kwargs))

    async def converse_conversation(self, request: Any = None, *args: Any, **kwargs: Any) -> Any:
        return await self._call("converse_conversation", request, args, kwargs)

    async def answer_query(self, request: Any = None, *args: Any, **kwargs: Any) -> Any:
        return await self._call("answer_query", request, args, kwargs)
