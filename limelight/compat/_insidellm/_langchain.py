"""The SDK's LangChain callback, over limelight's :class:`LimelightCallbackHandler`.

Model calls, chains, tools and errors are recorded by limelight's handler (its events and
parent links); this class adds the SDK's constructor, its ``track_*`` switches, its
``metadata`` on every event, and the agent action / finish events.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from ..._tracking import jsonable
from ...integrations.langchain import LimelightCallbackHandler
from ...schemas import _events as native
from ._payloads import generate_uuid

if TYPE_CHECKING:
    from langchain_core.agents import AgentAction, AgentFinish
    from langchain_core.messages import BaseMessage

    from ._client import InsideLLMClient

__all__ = ["InsideLLMCallback"]


class InsideLLMCallback(LimelightCallbackHandler):
    """Records a LangChain run into an SDK client (limelight's handler underneath).

    :param client: the :class:`InsideLLMClient`.
    :param user_id: on every event.
    :param run_id: the run of every event (default: a new id per callback, as the SDK).
    :param metadata: merged into every event's metadata.
    :param track_llm_calls: record plain LLM calls; ``track_chat_calls`` chat models,
        ``track_chain_calls`` chains, ``track_tool_calls`` tools, ``track_agent_actions``
        agent actions and finishes, ``track_errors`` errors. ``track_document_ops`` and
        ``track_retrieval`` are accepted and record nothing (neither did the SDK's, whose
        retriever events had no event type).
    """

    def __init__(
        self,
        client: InsideLLMClient,
        user_id: str | None = None,
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        track_llm_calls: bool = True,
        track_chat_calls: bool = True,
        track_chain_calls: bool = True,
        track_tool_calls: bool = True,
        track_agent_actions: bool = True,
        track_document_ops: bool = True,
        track_errors: bool = True,
        track_retrieval: bool = True,
    ) -> None:
        self.insidellm_client = client
        self.user_id = user_id
        self.run_id = run_id or generate_uuid()
        self.metadata = dict(metadata or {})
        self.track_llm_calls = track_llm_calls
        self.track_chat_calls = track_chat_calls
        self.track_chain_calls = track_chain_calls
        self.track_tool_calls = track_tool_calls
        self.track_agent_actions = track_agent_actions
        self.track_document_ops = track_document_ops
        self.track_errors = track_errors
        self.track_retrieval = track_retrieval
        super().__init__(client=client.analytics, run_id=self.run_id, user_id=user_id)

    def _emit(self, event: native.Event) -> None:
        if self.metadata:
            metadata = {**jsonable(self.metadata), **event.metadata}
            event = msgspec.structs.replace(event, metadata=metadata)
        self.insidellm_client.log_native(event)

    # -- the switches ---------------------------------------------------------------------

    def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], **kwargs: Any) -> None:
        if self.track_llm_calls:
            super().on_llm_start(serialized, prompts, **kwargs)

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        if self.track_chat_calls:
            super().on_chat_model_start(serialized, messages, **kwargs)

    def on_chain_start(
        self, serialized: dict[str, Any] | None, inputs: dict[str, Any] | Any, **kwargs: Any
    ) -> None:
        if self.track_chain_calls:
            super().on_chain_start(serialized, inputs, **kwargs)

    def on_tool_start(self, serialized: dict[str, Any], input_str: str, **kwargs: Any) -> None:
        if self.track_tool_calls:
            super().on_tool_start(serialized, input_str, **kwargs)

    def _error(self, lc_run: uuid.UUID, error: BaseException, where: str) -> None:
        if self.track_errors:
            super()._error(lc_run, error, where)
        else:
            self._close(lc_run)

    def on_tool_error(self, error: BaseException, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        if self.track_errors:
            super().on_tool_error(error, run_id=run_id, **kwargs)
        else:
            self._close(run_id)

    # -- agents (limelight's handler has no such events) ----------------------------------

    def _agent_links(self, parent_run_id: uuid.UUID | None) -> dict[str, Any]:
        with self._lock:
            parent = self._runs.get(parent_run_id) if parent_run_id is not None else None
        run_id = parent.run_id if parent is not None else self.run_id
        return self._links(run_id, parent.event_id if parent is not None else None)

    def on_agent_action(
        self,
        action: AgentAction,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if not self.track_agent_actions:
            return
        step = {"action": action.tool, "input": action.tool_input, "log": action.log}
        self._emit(
            native.Event.create_agent_planning(
                "agent",
                steps=[str(jsonable(step))],
                content=action.log,
                **self._agent_links(parent_run_id),
            )
        )

    def on_agent_finish(
        self,
        finish: AgentFinish,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if not self.track_agent_actions:
            return
        self._emit(
            native.Event.create_agent_response(
                "agent",
                str(jsonable(finish.return_values)),
                finish_reason="agent_finish",
                **self._agent_links(parent_run_id),
            )
        )
