"""limelight: an actor-based concurrent runtime for LLM agents, on anyio (asyncio and trio)."""

from ._version import __version__ as __version__
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
    "Context",
    "LimelightError",
    "Overflow",
    "Restart",
    "RetryPolicy",
    "Runtime",
    "Strategy",
    "Supervision",
    "__version__",
    "start_blocking_runtime",
]
