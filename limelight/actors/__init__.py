"""LLM actors: provider workers (and, to come, agents, tool executors, the rate limiter, the
analytics shipper). Each is an Actor of :mod:`limelight.runtime`."""

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

__all__ = [
    "DEFAULT_ATTEMPT_TIMEOUT",
    "DEFAULT_POOL_SIZE",
    "DEFAULT_PROVIDER_RETRY",
    "Attempt",
    "AttemptHook",
    "Complete",
    "ModelGroup",
    "ProviderPool",
    "ProviderWorker",
    "Stream",
    "is_retryable_provider_error",
]
