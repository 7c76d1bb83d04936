"""limelight: an actor-based concurrent runtime for LLM agents, on anyio (asyncio and trio)."""

from ._version import __version__ as __version__
from .actors import Agent as Agent
from .actors import AgentConfig as AgentConfig
from .actors import AgentResult as AgentResult
from .actors._conversation import Conversation as Conversation
from .actors._tools import ToolRegistry as ToolRegistry
from .actors._tools import tool as tool
from .runtime import Actor as Actor
from .runtime import ActorRef as ActorRef
from .runtime import Context as Context
from .runtime import LimelightError as LimelightError
from .runtime import Overflow as Overflow
from .runtime import Restart as Restart
from .runtime import RetryPolicy as RetryPolicy
from .runtime import Runtime as Runtime
from .runtime import Strategy as Strategy
from .runtime import Supervision as Supervision
from .runtime import start_blocking_runtime as start_blocking_runtime

__all__ = [
    "Actor",
    "ActorRef",
    "Agent",
    "AgentConfig",
    "AgentResult",
    "Context",
    "Conversation",
    "LimelightError",
    "Overflow",
    "Restart",
    "RetryPolicy",
    "Runtime",
    "Strategy",
    "Supervision",
    "ToolRegistry",
    "__version__",
    "start_blocking_runtime",
    "tool",
]
