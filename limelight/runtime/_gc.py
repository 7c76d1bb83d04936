"""The runtime's collector policy: long-lived actor state frozen after spawn bursts.

Why: a runtime with tens of thousands of actors keeps hundreds of thousands of objects alive
(cells, mailboxes, tasks), and every object an agent's turn keeps across a model call (its
coroutines, asks, scopes) outlives the young generations. CPython then runs full collections
often, each walking every live object: in ``bench/agents.py`` that is most of the runtime's
CPU. :class:`GcPolicy` does what long-lived servers do by hand (``gc.freeze()`` after
start-up), at the points a runtime knows about:

- After a **spawn burst** (``freeze_after`` actors spawned since the last freeze, then
  ``settle`` seconds without a spawn) it runs one full collection and freezes what is alive:
  frozen objects are never walked again by the collector (reference counting still frees
  them). When as many actors have stopped as were alive at the last freeze, it unfreezes,
  collects and freezes again, so that the state of stopped actors does not stay frozen.
- The young generation's threshold follows the population (``young_per_actor`` allocations
  per live actor, between CPython's default and ``max_young``), so that young collections do
  not run many times per turn.

It changes process-wide settings, so it is an option (``Runtime(gc_policy=GcPolicy())``),
not the default: the runtime cannot know whether the application around it freezes objects
itself. While one runtime with a policy runs, others share it. When the last one ends, the
thresholds are restored and the frozen objects handed back to the collector (``gc.unfreeze()``). If
objects are already frozen when the first one starts (the application uses ``gc.freeze()``
itself), it leaves freezing alone and only scales the threshold, with a warning.
"""

from __future__ import annotations

import gc
import logging
from typing import TYPE_CHECKING, Final

import anyio
import msgspec

from ._errors import ConfigError

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

__all__ = ["GcPolicy"]

logger = logging.getLogger("limelight.runtime")

#: CPython's default threshold for the young generation.
_DEFAULT_YOUNG: Final = 700


class GcPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How a runtime tunes CPython's cyclic collector (see the module's documentation).

    :param freeze_after: actors spawned since the last freeze that make a burst worth freezing.
    :param settle: seconds without a spawn that end a burst.
    :param young_per_actor: the young generation's threshold per live actor.
    :param max_young: the most the young generation's threshold is raised to.
    """

    freeze_after: int = 1_000
    settle: float = 0.05
    young_per_actor: int = 2
    max_young: int = 50_000

    def __post_init__(self) -> None:
        if self.freeze_after < 1:
            raise ConfigError(f"GcPolicy.freeze_after must be >= 1, got {self.freeze_after!r}")
        if not self.settle >= 0:
            raise ConfigError(f"GcPolicy.settle must be >= 0 seconds, got {self.settle!r}")
        if self.young_per_actor < 0 or self.max_young < _DEFAULT_YOUNG:
            raise ConfigError(
                f"GcPolicy needs young_per_actor >= 0 and max_young >= {_DEFAULT_YOUNG}, got "
                f"{self.young_per_actor!r} and {self.max_young!r}"
            )


class _Process:
    """What the policies of all runtimes in this process changed, to restore it at the end."""

    users = 0
    thresholds: tuple[int, int, int] = (_DEFAULT_YOUNG, 10, 10)
    may_freeze = True
    frozen = False


class Collector:
    """One runtime's side of its :class:`GcPolicy`: counts spawns and stops, and freezes."""

    __slots__ = ("_alive", "_freezing", "_policy", "_spawned", "_stopped", "freezes")

    def __init__(self, policy: GcPolicy) -> None:
        self._policy = policy
        self._alive = 0  # actors alive now
        self._spawned = 0  # spawned since the last freeze
        self._stopped = 0  # stopped since the last freeze
        self._freezing = False  # a task waits for the burst to settle
        #: How many times this runtime froze the heap (for tests and statistics).
        self.freezes = 0

    def start(self) -> None:
        if _Process.users == 0:
            _Process.thresholds = gc.get_threshold()
            _Process.may_freeze = gc.get_freeze_count() == 0
            _Process.frozen = False
            if not _Process.may_freeze:
                logger.warning(
                    "GcPolicy: %d objects are frozen already (the application calls "
                    "gc.freeze() itself); the runtime will not freeze or unfreeze, it only "
                    "scales the young generation's threshold",
                    gc.get_freeze_count(),
                )
        _Process.users += 1

    def stop(self) -> None:
        _Process.users -= 1
        if _Process.users == 0:
            gc.set_threshold(*_Process.thresholds)
            if _Process.frozen:
                gc.unfreeze()
                _Process.frozen = False

    def spawned(self, tg: TaskGroup) -> None:
        self._alive += 1
        self._spawned += 1
        if self._spawned >= self._policy.freeze_after:
            self._schedule(tg)

    def stopped(self, tg: TaskGroup | None) -> None:
        self._alive -= 1
        self._stopped += 1
        if tg is not None and self._stopped >= self._policy.freeze_after and self._mostly_gone():
            self._schedule(tg)

    def _mostly_gone(self) -> bool:
        """Half of the actors alive at the last freeze (or more) have stopped since."""
        return _Process.frozen and self._stopped * 2 >= self._alive + self._stopped

    def _schedule(self, tg: TaskGroup) -> None:
        if not self._freezing:
            self._freezing = True
            tg.start_soon(self._settle_then_freeze, name="limelight gc policy")

    async def _settle_then_freeze(self) -> None:
        try:
            while True:
                seen = self._spawned
                await anyio.sleep(self._policy.settle)
                if self._spawned == seen:
                    break
            self._freeze()
        finally:
            self._freezing = False

    def _freeze(self) -> None:
        policy = self._policy
        scaled = max(_Process.thresholds[0], policy.young_per_actor * self._alive)
        _, middle, old = gc.get_threshold()
        gc.set_threshold(min(policy.max_young, scaled), middle, old)
        if _Process.may_freeze:
            if self._mostly_gone():
                gc.unfreeze()  # let the collector see the stopped actors' state again
            gc.collect()
            gc.freeze()
            _Process.frozen = True
            self.freezes += 1
        self._spawned = 0
        self._stopped = 0
