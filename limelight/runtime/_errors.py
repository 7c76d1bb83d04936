"""Errors raised by the actor kernel.

The full project hierarchy, including the LLM-level errors built on these, is drawn in
:mod:`limelight.errors`.
"""

from __future__ import annotations

from typing import ClassVar


class LimelightError(Exception):
    """Root of every error limelight raises.

    :cvar retryable: whether a :class:`~limelight.runtime.RetryPolicy` retries this error by
        default.
    """

    retryable: ClassVar[bool] = False


class ConfigError(LimelightError, ValueError):
    """A configuration value or argument is invalid; the message says which and why."""


class RuntimeNotRunning(LimelightError, RuntimeError):
    """The runtime is not running (not entered yet, or already shut down)."""


class ActorError(LimelightError):
    """Base of errors about one actor.

    :ivar path: the actor's path, such as ``/agents/research``.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class ActorNotFound(ActorError, LookupError):
    """No live actor has this path."""


class ActorStopped(ActorError):
    """The actor has stopped for good; its mailbox no longer accepts messages."""


class ActorCrashed(ActorError):
    """The actor raised while handling a request; the original error is ``__cause__``.

    :ivar cause: the exception the actor raised.
    """

    def __init__(self, message: str, *, path: str, cause: BaseException) -> None:
        super().__init__(message, path=path)
        self.cause = cause


class ActorStartFailed(ActorCrashed):
    """The actor's ``on_start`` raised, so it never ran."""


class RestartIntensityExceeded(ActorCrashed):
    """A supervisor saw more restarts than allowed within its window and gave up.

    It stopped its children and escalated to its own parent; ``cause`` is the last crash.
    """


class MailboxFull(ActorError):
    """The mailbox was full and the overflow policy (or a ``*_nowait`` call) refused to wait."""


class AskTimeout(ActorError, TimeoutError):
    """An ask got no reply before its deadline."""


class DeadlineExceeded(LimelightError, TimeoutError):
    """The work could not finish inside the caller's deadline (for example, a retry whose
    backoff would have slept past it); the last underlying error is ``__cause__``."""
