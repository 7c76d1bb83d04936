"""The actor kernel: actors, refs, mailboxes, supervision, retries. Knows nothing about LLMs."""

from ._actor import Actor as Actor
from ._actor import Context as Context
from ._cell import DEFAULT_MAILBOX_SIZE as DEFAULT_MAILBOX_SIZE
from ._errors import ActorCrashed as ActorCrashed
from ._errors import ActorError as ActorError
from ._errors import ActorNotFound as ActorNotFound
from ._errors import ActorStartFailed as ActorStartFailed
from ._errors import ActorStopped as ActorStopped
from ._errors import AskTimeout as AskTimeout
from ._errors import ConfigError as ConfigError
from ._errors import DeadlineExceeded as DeadlineExceeded
from ._errors import LimelightError as LimelightError
from ._errors import MailboxFull as MailboxFull
from ._errors import RestartIntensityExceeded as RestartIntensityExceeded
from ._errors import RuntimeNotRunning as RuntimeNotRunning
from ._fanout import fan_out as fan_out
from ._gc import GcPolicy as GcPolicy
from ._mailbox import CHECKPOINT_INTERVAL as CHECKPOINT_INTERVAL
from ._portal import BackgroundRuntime as BackgroundRuntime
from ._portal import BlockingRuntime as BlockingRuntime
from ._portal import start_blocking_runtime as start_blocking_runtime
from ._ref import ActorRef as ActorRef
from ._ref import ReplyStream as ReplyStream
from ._retry import RetryPolicy as RetryPolicy
from ._runtime import Runtime as Runtime
from ._runtime import current_runtime as current_runtime
from ._slots import Slots as Slots
from ._stats import ActorSnapshot as ActorSnapshot
from ._stats import ActorState as ActorState
from ._stats import ActorStatistics as ActorStatistics
from ._stats import RuntimeStatistics as RuntimeStatistics
from ._supervision import Overflow as Overflow
from ._supervision import Restart as Restart
from ._supervision import RestartIntensity as RestartIntensity
from ._supervision import Strategy as Strategy
from ._supervision import Supervision as Supervision

__all__ = [
    "CHECKPOINT_INTERVAL",
    "DEFAULT_MAILBOX_SIZE",
    "Actor",
    "ActorCrashed",
    "ActorError",
    "ActorNotFound",
    "ActorRef",
    "ActorSnapshot",
    "ActorStartFailed",
    "ActorState",
    "ActorStatistics",
    "ActorStopped",
    "AskTimeout",
    "BackgroundRuntime",
    "BlockingRuntime",
    "ConfigError",
    "Context",
    "DeadlineExceeded",
    "GcPolicy",
    "LimelightError",
    "MailboxFull",
    "Overflow",
    "ReplyStream",
    "Restart",
    "RestartIntensity",
    "RestartIntensityExceeded",
    "RetryPolicy",
    "Runtime",
    "RuntimeNotRunning",
    "RuntimeStatistics",
    "Slots",
    "Strategy",
    "Supervision",
    "current_runtime",
    "fan_out",
    "start_blocking_runtime",
]
