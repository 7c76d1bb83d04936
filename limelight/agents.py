"""Agents: the ReAct agent actor, its config and result, agent trees via ``as_tool``."""

from .actors._agent import DEFAULT_MAX_TURNS as DEFAULT_MAX_TURNS
from .actors._agent import Agent as Agent
from .actors._agent import AgentConfig as AgentConfig
from .actors._agent import AgentResult as AgentResult
from .actors._agent import AgentStatus as AgentStatus
from .actors._agent import AgentStream as AgentStream
from .actors._agent import AgentTool as AgentTool
from .actors._agent import ResetAgent as ResetAgent
from .actors._agent import RunAgent as RunAgent

__all__ = [
    "DEFAULT_MAX_TURNS",
    "Agent",
    "AgentConfig",
    "AgentResult",
    "AgentStatus",
    "AgentStream",
    "AgentTool",
    "ResetAgent",
    "RunAgent",
]
