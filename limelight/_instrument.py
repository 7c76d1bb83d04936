"""The one plug-in point for instrumentation across layers.

Lower layers (provider workers, agents, tool executors, the tracking decorators) record what
they do through whatever is registered here, and never import the layer that records it.
:func:`limelight.analytics.initialize` registers its client and its attempt hook;
:func:`limelight.analytics.shutdown` unregisters them. While nothing is registered,
consulting it costs one attribute read: :data:`active` is ``None``.

The attempt hooks' protocol (:class:`Attempt`, :class:`AttemptHook`) is defined here too, so
that the hooks (the rate limiter's, the analytics one) and the provider workers that call them
depend on this module, not on each other.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .schemas import CompletionRequest, CompletionResult
    from .schemas._events import Event

__all__ = [
    "Attempt",
    "AttemptHook",
    "Instrumentation",
    "Recorder",
    "active",
    "recorder",
    "register",
    "unregister",
]


@dataclass(slots=True)
class Attempt:
    """One try of one call, as hooks see it.

    :ivar deployment: the deployment's name.
    :ivar number: 1 for the first try.
    :ivar state: a free slot for a hook to carry something from ``before`` to ``after``
        (a rate-limit reservation, say), keyed by the hook's choosing.
    """

    deployment: str
    request: CompletionRequest
    number: int
    started: float = 0.0
    state: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class AttemptHook(Protocol):
    """Called around every attempt of every call of a deployment.

    ``before`` may wait (a rate limiter does) and may raise to refuse the attempt; ``after``
    gets the result or the error of the attempt and must not raise.
    """

    async def before(self, attempt: Attempt) -> None: ...

    async def after(
        self, attempt: Attempt, result: CompletionResult | None, error: BaseException | None
    ) -> None: ...


class Recorder(Protocol):
    """Where instrumented code sends its events; the analytics client is one."""

    def log_event(self, event: Event, /) -> None:
        """Queue ``event``. Never blocks, never raises."""

    def start_run(
        self,
        user_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        session_id: str | None = None,
    ) -> str:
        """Begin a run; returns its id."""

    def end_run(
        self,
        run_id: str,
        *,
        status: str = "ok",
        user_id: str | None = None,
        session_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """End the run ``run_id``."""


class Instrumentation(NamedTuple):
    """What is registered.

    :ivar recorder: where agents, tool executors and the tracking decorators send events.
    :ivar attempt_hooks: hooks (:class:`~limelight.actors.AttemptHook`) that every provider
        worker calls around each attempt, after its own.
    """

    recorder: Recorder
    attempt_hooks: tuple[Any, ...] = ()


#: The registered instrumentation, ``None`` while there is none. Read it at each use, as
#: ``_instrument.active``: a registration made later is then seen at once.
active: Instrumentation | None = None

_lock = threading.Lock()


def register(instrumentation: Instrumentation) -> None:
    """Make ``instrumentation`` the one consulted, replacing any registered before."""
    global active
    with _lock:
        active = instrumentation


def unregister(recorder: Recorder | None = None) -> None:
    """Unregister the instrumentation; with ``recorder``, only when it is that recorder's, so a
    recorder that shuts down late never removes its successor's."""
    global active
    with _lock:
        if recorder is None or (active is not None and active.recorder is recorder):
            active = None


def recorder() -> Recorder | None:
    """The registered recorder, or ``None``."""
    current = active
    return None if current is None else current.recorder


def _after_fork_in_child() -> None:
    # A thread of the parent may have held the lock at the fork: the child has no such thread.
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
