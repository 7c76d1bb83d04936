"""The runtime's collector policy: a young threshold that follows the actor population.

Freezing long-lived actor state after spawn bursts is an option of the same policy.

Why: a runtime with tens of thousands of actors keeps hundreds of thousands of objects alive
(cells, mailboxes, tasks), and every object an agent's turn keeps across a model call (its
coroutines, asks, scopes) outlives CPython's young collections, which run every 700 net new
objects (2,000 since Python 3.13). Those objects reach the old generation, and CPython then
runs full collections often, each walking every live object: in ``bench/agents.py`` (10,000
agents) that was more than half of the runtime's CPU, in pauses of 0.2-0.5 s each.
:class:`GcPolicy` acts at the points a runtime knows about:

- **The young threshold follows the population** (on by default): ``young_per_actor`` net new
  objects per live actor, between CPython's default and ``max_young`` (with several runtimes,
  the sum of what each asks for, up to the least of their ``max_young``). A turn's objects then
  mostly die young, and full collections become rare. It is safe for the application around the
  runtime: nothing escapes the collector (cyclic garbage waits for at most ``young_per_actor``
  more objects per live actor, 5-10% of what the actors of ``bench/agents.py`` hold
  themselves), it changes nothing below 350 actors (1,000 since 3.13), and it applies only
  while CPython's default threshold is in place: an application (or library) that set its own
  keeps it, and one that sets its own while a runtime runs takes over from it (until it sets
  CPython's default back). When the last runtime with a policy ends, the default comes back.
- **Freezing** (``GcPolicy(freeze=True)``, an option): after a **spawn burst**
  (``freeze_after`` actors spawned since the last freeze, then ``settle`` seconds without a
  spawn) it runs one full collection and freezes what is alive, as long-lived servers do by
  hand (``gc.freeze()`` after start-up): frozen objects are never walked again by the collector
  (reference counting still frees them). When as many actors have stopped as were alive at the
  last freeze, it unfreezes, collects and freezes again, so that the state of stopped actors
  does not stay frozen. It is not the default: what the application holds is frozen too, and
  its cyclic garbage waits for the next unfreeze. When the last runtime that freezes ends, the
  frozen objects are handed back (``gc.unfreeze()``). If objects are already frozen when the
  first one starts (the application uses ``gc.freeze()`` itself), it leaves freezing alone,
  with a warning.

``Runtime(gc_policy=None)`` leaves the collector alone.
"""

from __future__ import annotations

import gc
import logging
import sys
from typing import TYPE_CHECKING, ClassVar, Final

import anyio
import msgspec

from ._errors import ConfigError

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

__all__ = ["DEFAULT_GC_POLICY", "GcPolicy"]

logger = logging.getLogger("limelight.runtime")

#: CPython's default threshold for the young generation (700 until 3.12, 2,000 since 3.13).
CPYTHON_YOUNG: Final = 700 if sys.version_info < (3, 13) else 2_000


class GcPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How a runtime tunes CPython's cyclic collector (see the module's documentation).

    :param young_per_actor: the young generation's threshold per live actor.
    :param max_young: the most the young generation's threshold is raised to.
    :param freeze: freeze what spawn bursts leave alive (off by default).
    :param freeze_after: actors spawned since the last freeze that make a burst worth freezing.
    :param settle: seconds without a spawn that end a burst.
    """

    young_per_actor: int = 2
    max_young: int = 50_000
    freeze: bool = False
    freeze_after: int = 1_000
    settle: float = 0.05

    def __post_init__(self) -> None:
        if self.freeze_after < 1:
            raise ConfigError(f"GcPolicy.freeze_after must be >= 1, got {self.freeze_after!r}")
        if not self.settle >= 0:
            raise ConfigError(f"GcPolicy.settle must be >= 0 seconds, got {self.settle!r}")
        if self.young_per_actor < 0 or self.max_young < CPYTHON_YOUNG:
            raise ConfigError(
                f"GcPolicy needs young_per_actor >= 0 and max_young >= {CPYTHON_YOUNG}, got "
                f"{self.young_per_actor!r} and {self.max_young!r}"
            )


#: What ``Runtime()`` uses: the young threshold follows the population, nothing is frozen.
DEFAULT_GC_POLICY: Final = GcPolicy()


class _Process:
    """What the policies of all runtimes in this process share and changed, to restore it."""

    #: The ``max_young`` of each runtime with a policy running now (one entry per runtime),
    #: and the least of them.
    caps: ClassVar[list[int]] = []
    cap = 0
    #: The runtimes of ``caps`` that freeze.
    freezers = 0
    #: The young threshold the running policies ask for together (each ``young_per_actor``
    #: times its runtime's live actors).
    wanted = 0
    #: The young threshold a policy set last; None while it is not the policies' to set.
    young: int | None = None
    may_freeze = True
    frozen = False

    @classmethod
    def rescale(cls) -> None:
        """The young threshold for the population now, if it is the policies' to set: while
        it is CPython's default or the one a policy set last. Any other value is the
        application's own, and stays (until it is CPython's default again)."""
        young = cls.young
        scaled = min(cls.cap, max(CPYTHON_YOUNG, cls.wanted))
        if scaled == young:
            return
        threshold0, middle, old = gc.get_threshold()
        if threshold0 != young and threshold0 != CPYTHON_YOUNG:
            if young is not None:
                cls.young = None
                logger.info(
                    "GcPolicy: the young threshold was set to %d by someone else; the runtime "
                    "leaves it alone while it is not CPython's default (%d)",
                    threshold0,
                    CPYTHON_YOUNG,
                )
            return
        if scaled != threshold0:
            gc.set_threshold(scaled, middle, old)
        cls.young = scaled


class Collector:
    """One runtime's side of its :class:`GcPolicy`: counts spawns and stops, rescales the
    young threshold, and freezes."""

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
        if not _Process.caps:
            _Process.wanted = 0
        _Process.caps.append(self._policy.max_young)
        _Process.cap = min(_Process.caps)
        _Process.rescale()  # takes the threshold if it is CPython's default
        if not self._policy.freeze:
            return
        if _Process.freezers == 0:
            _Process.may_freeze = gc.get_freeze_count() == 0
            _Process.frozen = False
        _Process.freezers += 1
        if not _Process.may_freeze:
            logger.warning(
                "GcPolicy: %d objects are frozen already (the application calls gc.freeze() "
                "itself); the runtime will not freeze or unfreeze",
                gc.get_freeze_count(),
            )

    def stop(self) -> None:
        # Actors that never told us they stopped (the runtime was torn down) are gone too.
        _Process.wanted -= self._policy.young_per_actor * self._alive
        self._alive = 0
        _Process.caps.remove(self._policy.max_young)
        if _Process.caps:
            _Process.cap = min(_Process.caps)
            _Process.rescale()  # for the runtimes that go on
        else:
            threshold0, middle, old = gc.get_threshold()
            if _Process.young is not None and threshold0 == _Process.young:
                gc.set_threshold(CPYTHON_YOUNG, middle, old)
            _Process.young = None
        if self._policy.freeze:
            _Process.freezers -= 1
            if _Process.freezers == 0 and _Process.frozen:
                gc.unfreeze()
                _Process.frozen = False

    def spawned(self, tg: TaskGroup) -> None:
        self._alive += 1
        _Process.wanted += self._policy.young_per_actor
        _Process.rescale()
        if self._policy.freeze:
            self._spawned += 1
            if self._spawned >= self._policy.freeze_after:
                self._schedule(tg)

    def stopped(self, tg: TaskGroup | None) -> None:
        self._alive -= 1
        _Process.wanted -= self._policy.young_per_actor
        _Process.rescale()
        if self._policy.freeze:
            self._stopped += 1
            if (
                tg is not None
                and self._stopped >= self._policy.freeze_after
                and self._mostly_gone()
            ):
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
        if _Process.may_freeze:
            if self._mostly_gone():
                gc.unfreeze()  # let the collector see the stopped actors' state again
            gc.collect()
            gc.freeze()
            _Process.frozen = True
            self.freezes += 1
        self._spawned = 0
        self._stopped = 0
