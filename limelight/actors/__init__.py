"""LLM actors: provider workers, rate limiter, agents, tool executors and the analytics shipper.

Each is an Actor of :mod:`limelight.runtime`, one per module, wrapping a pure core
(``limelight._buckets``, ``_conversation``, ``_tools``, ``_spool``...).

Some of those cores' names are re-exported here too (:class:`DeploymentLimits`,
:class:`Priority`, :class:`AttemptHook`, :class:`AnalyticsHook`). The shipper and the analytics
hook load on first use (``import limelight`` does not need them)."""

from typing import TYPE_CHECKING

from .._buckets import DeploymentLimits as DeploymentLimits
from .._buckets import Priority as Priority
from .._lazy import lazy_attributes as _lazy_attributes
from ._agent import Agent as Agent
from ._agent import AgentConfig as AgentConfig
from ._agent import AgentResult as AgentResult
from ._agent import ResetAgent as ResetAgent
from ._agent import RunAgent as RunAgent
from ._provider_worker import DEFAULT_ATTEMPT_TIMEOUT as DEFAULT_ATTEMPT_TIMEOUT
from ._provider_worker import DEFAULT_POOL_SIZE as DEFAULT_POOL_SIZE
from ._provider_worker import DEFAULT_PROVIDER_RETRY as DEFAULT_PROVIDER_RETRY
from ._provider_worker import Attempt as Attempt
from ._provider_worker import AttemptHook as AttemptHook
from ._provider_worker import Complete as Complete
from ._provider_worker import ModelGroup as ModelGroup
from ._provider_worker import ProviderPool as ProviderPool
from ._provider_worker import ProviderWorker as ProviderWorker
from ._provider_worker import Stream as Stream
from ._provider_worker import is_retryable_provider_error as is_retryable_provider_error
from ._ratelimit import Acquire as Acquire
from ._ratelimit import Configure as Configure
from ._ratelimit import DeploymentStatistics as DeploymentStatistics
from ._ratelimit import GetStatistics as GetStatistics
from ._ratelimit import Leave as Leave
from ._ratelimit import RateLimiter as RateLimiter
from ._ratelimit import RateLimiterStatistics as RateLimiterStatistics
from ._ratelimit import RateLimitHook as RateLimitHook
from ._ratelimit import RateLimitTimeout as RateLimitTimeout
from ._ratelimit import Settle as Settle
from ._ratelimit import Ticket as Ticket
from ._ratelimit import count_prompt_tokens as count_prompt_tokens
from ._ratelimit import env_key as env_key
from ._ratelimit import limits_from_env as limits_from_env
from ._tool_executor import RunTools as RunTools
from ._tool_executor import ToolExecutor as ToolExecutor

if TYPE_CHECKING:
    from .._analytics_hook import AnalyticsHook as AnalyticsHook
    from ._shipper import AnalyticsShipper as AnalyticsShipper
    from ._shipper import ShipperStatistics as ShipperStatistics

__getattr__, __dir__ = _lazy_attributes(
    __name__,
    {
        ".._analytics_hook": ["AnalyticsHook"],
        "._shipper": ["AnalyticsShipper", "ShipperStatistics"],
    },
)


__all__ = [
    "DEFAULT_ATTEMPT_TIMEOUT",
    "DEFAULT_POOL_SIZE",
    "DEFAULT_PROVIDER_RETRY",
    "Acquire",
    "Agent",
    "AgentConfig",
    "AnalyticsHook",
    "AnalyticsShipper",
    "AgentResult",
    "Attempt",
    "AttemptHook",
    "Complete",
    "Configure",
    "DeploymentLimits",
    "DeploymentStatistics",
    "GetStatistics",
    "Leave",
    "ModelGroup",
    "Priority",
    "ProviderPool",
    "ProviderWorker",
    "RateLimitHook",
    "RateLimitTimeout",
    "RateLimiter",
    "RateLimiterStatistics",
    "ResetAgent",
    "RunAgent",
    "RunTools",
    "Settle",
    "ShipperStatistics",
    "Stream",
    "Ticket",
    "ToolExecutor",
    "count_prompt_tokens",
    "env_key",
    "is_retryable_provider_error",
    "limits_from_env",
]
