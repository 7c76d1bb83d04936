"""The Runtime: root supervisor, actor registry and entry point.

It embeds in any anyio, asyncio or trio program."""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Final

import anyio
import anyio.lowlevel
from anyio import CancelScope
from anyio.abc import TaskGroup
from anyio.from_thread import BlockingPortal

from ._actor import Actor
from ._cell import DEFAULT_MAILBOX_SIZE, Cell
from ._clock import (
    loop_call_soon_threadsafe,
    loop_checkpoint,
    loop_clock,
    loop_deadline,
    loop_finished,
)
from ._deadlines import Deadlines
from ._errors import ActorNotFound, ConfigError, RuntimeNotRunning
from ._gc import DEFAULT_GC_POLICY, Collector, GcPolicy
from ._stats import ActorSnapshot, ActorState, RuntimeStatistics
from ._supervision import Overflow, Restart, Supervision
from ._tasks import ActorTasks, open_actor_tasks

if TYPE_CHECKING:
    from ._portal import BlockingRuntime
    from ._ref import ActorRef

DEFAULT_SHUTDOWN_TIMEOUT: Final = 10.0

#: The innermost running Runtime of the current task (inherited by the tasks it starts,
#: actors included).
_current: ContextVar[Runtime | None] = ContextVar("limelight_runtime", default=None)


def current_runtime() -> Runtime | None:
    """The runtime whose ``async with`` block the calling code runs in (innermost first),
    or ``None``. Actors and the tasks they start see the runtime they live in."""
    runtime = _current.get()
    return runtime if runtime is not None and runtime._running else None


class Runtime:
    """The root supervisor. Actors live as long as the ``async with`` block::

        async with Runtime() as rt:
            ref = await rt.spawn(Counter(), name="counter")
            await ref.tell(Add(amount=2))
            print(await ref.ask(Get(), timeout=1.0))

    Leaving the block stops every actor, children before parents, in reverse start order,
    within ``shutdown_timeout`` seconds; then anything still running is cancelled, so no task
    outlives the block. If a top-level supervisor gives up (restart intensity exceeded), the
    block is cancelled and :class:`~limelight.errors.RestartIntensityExceeded` is raised
    from it.

    :param supervision: how the runtime supervises top-level actors, and the default for
        actors spawned without one.
    :param mailbox_size: default mailbox capacity (``math.inf`` for unbounded).
    :param shutdown_timeout: seconds allowed for ``on_stop`` hooks at shutdown.
    :param gc_policy: how the runtime tunes CPython's collector for a large actor
        population (see :class:`GcPolicy`). By default the young generation's threshold
        follows the population, and only while it is CPython's default; freezing is an
        option (``GcPolicy(freeze=True)``); ``None`` leaves the collector alone.
    """

    def __init__(
        self,
        *,
        supervision: Supervision | None = None,
        mailbox_size: float = DEFAULT_MAILBOX_SIZE,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        gc_policy: GcPolicy | None = DEFAULT_GC_POLICY,
    ) -> None:
        if not (mailbox_size == math.inf or (isinstance(mailbox_size, int) and mailbox_size >= 1)):
            raise ConfigError(f"mailbox_size must be an int >= 1 or math.inf, got {mailbox_size!r}")
        if shutdown_timeout <= 0:
            raise ConfigError(f"shutdown_timeout must be > 0, got {shutdown_timeout!r}")
        self.default_supervision = supervision or Supervision()
        self.mailbox_size = mailbox_size
        self.shutdown_timeout = shutdown_timeout
        self._root: Cell | None = None
        self._tg: TaskGroup | None = None
        #: Where the actors' tasks run (made on entry: it depends on the event loop).
        self._actor_tasks: ActorTasks | None = None
        self._portal: BlockingPortal | None = None
        #: Times the timed asks to this runtime's actors (a task in the task group).
        self._deadlines = Deadlines()
        #: The clock, checkpoint and effective deadline of the loop it runs on (anyio's, without
        #: the lookups; see _clock).
        self._now: Callable[[], float] = anyio.current_time
        self._checkpoint: Callable[[], Awaitable[Any]] = anyio.lowlevel.checkpoint
        self._finished: Awaitable[None]  # set on entry, for its loop (before any cell is made)
        self._effective_deadline: Callable[[], float] = anyio.current_effective_deadline
        #: The loop's own thread-safe call-soon and its thread (set on entry): how other
        #: threads hand it a tell or an ask (_threadsafe).
        self._call_soon_threadsafe: Callable[..., Any] | None = None
        self._loop_thread: int | None = None
        self._collector = Collector(gc_policy) if gc_policy is not None else None
        self._registry: dict[str, Cell] = {}
        self._counter = itertools.count(1)
        self._failure: BaseException | None = None
        self._running = False
        self._token: Token[Runtime | None] | None = None
        self._retired = RuntimeStatistics(
            actors=0,
            processed=0,
            restarts=0,
            dead_letters=0,
            dropped=0,
            rejected=0,
            expired=0,
            late_replies=0,
            undelivered=0,
        )

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Runtime:
        if self._tg is not None:
            raise RuntimeNotRunning("a Runtime can be entered only once; create a new one")
        self._now = loop_clock()
        self._checkpoint = loop_checkpoint()
        self._finished = loop_finished()  # what a send that did not wait returns
        self._effective_deadline = loop_deadline()
        self._call_soon_threadsafe = loop_call_soon_threadsafe()
        self._loop_thread = threading.get_ident()
        self._root = Cell(
            self,
            None,
            "/",
            None,
            mailbox_size=1,
            overflow=Overflow.FAIL,
            restart=Restart.PERMANENT,
            supervision=self.default_supervision,
        )
        self._root.state = ActorState.RUNNING
        # Set before any task starts, so every actor task inherits it.
        self._token = _current.set(self)
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        if self._collector is not None:
            self._collector.start()
        try:
            await tg.start(self._deadlines.run, name="limelight deadlines")
            # Entered before the portal, and so left after it.
            self._actor_tasks = await open_actor_tasks()
            portal = BlockingPortal()
            await portal.__aenter__()
        except BaseException as exc:
            tg.cancel_scope.cancel()
            if self._actor_tasks is not None:
                await self._actor_tasks.aclose()
            self._reset_current()
            if self._collector is not None:
                self._collector.stop()
            await tg.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self._portal = portal
        self._running = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        assert self._root is not None
        assert self._portal is not None
        self._running = False
        self._reset_current()
        root = self._root
        root.state = ActorState.STOPPING  # no restarts from here on
        # Orderly shutdown even if we are being cancelled, but bounded.
        with CancelScope(shield=True) as scope:
            scope.deadline = anyio.current_time() + self.shutdown_timeout
            await root.stop_children()
            await self._portal.stop(cancel_remaining=True)
        await self._portal.__aexit__(None, None, None)
        # Whatever did not stop in time (a hung on_stop) is cancelled now, and the deadline
        # scheduler with it (it timed the asks of the on_stop hooks too); an ask it still
        # timed goes on under a cancel scope of its own, until its actor is finalized below.
        self._tg.cancel_scope.cancel()
        assert self._actor_tasks is not None
        try:
            try:
                await self._actor_tasks.aclose()  # shielded: no task outlives the block
            finally:
                suppress = await self._tg.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # The task group wraps the block's own exception; hand it on as it was raised.
            # (Actor tasks never raise: their crashes are reports to supervisors.)
            if exc is not None and group.exceptions == (exc,):
                suppress = False
            else:
                raise
        finally:
            # Cancelled rather than stopped in time, but stopped for good all the same.
            for cell in list(self._registry.values()):
                cell.finalize()
            root.finalize()
            if self._collector is not None:
                self._collector.stop()
        if self._failure is not None:
            raise self._failure
        return suppress

    def _reset_current(self) -> None:
        token, self._token = self._token, None
        if token is None:
            return
        # Exited from another context than the one that entered (an exit stack handed
        # between tasks): that context's value is not ours to restore.
        with contextlib.suppress(ValueError):
            _current.reset(token)

    @property
    def running(self) -> bool:
        """True inside the ``async with`` block, until its shutdown begins."""
        return self._running

    def fail(self, error: BaseException) -> None:
        """A top-level supervisor gave up: cancel the block and raise ``error`` from it."""
        if self._failure is None:
            self._failure = error
        assert self._tg is not None
        assert self._actor_tasks is not None
        self._tg.cancel_scope.cancel()
        self._actor_tasks.cancel()

    def ensure_running(self) -> None:
        if not self._running:
            raise RuntimeNotRunning(
                "the runtime is not running: use it inside `async with Runtime() as rt:`"
            )

    @property
    def task_group(self) -> TaskGroup:
        """The runtime's task group (its deadline scheduler, its portal, and tasks others
        start for it). Actors run in tasks of their own (``_tasks``)."""
        if self._tg is None:
            raise RuntimeNotRunning("the runtime has not been entered")
        return self._tg

    # -- actors --------------------------------------------------------------------------

    async def spawn(
        self,
        actor: Actor | Callable[[], Actor],
        *,
        name: str | None = None,
        mailbox_size: float | None = None,
        overflow: Overflow | None = None,
        restart: Restart | None = None,
        supervision: Supervision | None = None,
    ) -> ActorRef:
        """Start a top-level actor and return its reference once ``on_start`` has run.

        :param actor: an Actor instance (reused, with ``on_start`` run again, on restart) or
            a zero-argument callable making a fresh one (called at every restart).
        :param name: unique among its siblings; generated when omitted.
        :param mailbox_size: capacity of its mailbox; the runtime's default when omitted.
        :param overflow: what a full mailbox does (default BLOCK: senders wait).
        :param restart: PERMANENT (default), TRANSIENT or TEMPORARY.
        :param supervision: how this actor supervises its own children.
        :raises ActorStartFailed: ``on_start`` raised.
        """
        self.ensure_running()
        assert self._root is not None
        return await self._root.spawn_child(
            actor,
            name=name,
            mailbox_size=mailbox_size,
            overflow=overflow,
            restart=restart,
            supervision=supervision,
        )

    def lookup(self, path: str) -> ActorRef:
        """The live actor at ``path`` (``/a/b``).

        :raises ActorNotFound: no live actor has that path.
        """
        cell = self._registry.get(path)
        if cell is None:
            raise ActorNotFound(
                f"no live actor at {path!r}; live top-level actors: "
                f"{sorted(c.path for c in self._top_level())}",
                path=path,
            )
        return cell.ref

    def get(self, path: str) -> ActorRef | None:
        """The live actor at ``path``, or None."""
        cell = self._registry.get(path)
        return None if cell is None else cell.ref

    def _top_level(self) -> list[Cell]:
        return [] if self._root is None else list(self._root.children.values())

    def tree(self) -> ActorSnapshot:
        """A snapshot of the live tree: state, restarts, mailbox depth, dead letters."""
        if self._root is None:
            return ActorSnapshot(name="/", path="/", actor_type="runtime", stats=None)
        return self._root.snapshot()

    def print_tree(self, file: IO[str] | None = None) -> None:
        print(self.tree().render(), file=file)

    def statistics(self) -> RuntimeStatistics:
        """Totals over every actor this runtime has run, stopped ones included."""
        r = self._retired
        live = [c.statistics() for c in self._registry.values()]
        return RuntimeStatistics(
            actors=len(live),
            processed=r.processed + sum(s.processed for s in live),
            restarts=r.restarts + sum(s.restarts for s in live),
            dead_letters=r.dead_letters + sum(s.dead_letters for s in live),
            dropped=r.dropped + sum(s.dropped for s in live),
            rejected=r.rejected + sum(s.rejected for s in live),
            expired=r.expired + sum(s.expired for s in live),
            late_replies=r.late_replies + sum(s.late_replies for s in live),
            undelivered=r.undelivered + sum(s.undelivered for s in live),
        )

    @property
    def blocking(self) -> BlockingRuntime:
        """This runtime for plain threads (not the event loop's): spawn, tell, ask, stop."""
        from ._portal import BlockingRuntime

        if self._portal is None or not self._running:
            raise RuntimeNotRunning("the runtime is not running")
        return BlockingRuntime(self, self._portal)

    # -- bookkeeping for cells -----------------------------------------------------------

    def auto_name(self, type_name: str) -> str:
        return f"{type_name.lower()}-{next(self._counter)}"

    def register(self, cell: Cell) -> None:
        self._registry[cell.path] = cell
        if self._collector is not None and self._tg is not None:
            self._collector.spawned(self._tg)

    def unregister(self, cell: Cell) -> None:
        if self._registry.get(cell.path) is cell:
            del self._registry[cell.path]
            if self._collector is not None:
                self._collector.stopped(self._tg if self._running else None)
        s = cell.statistics()
        r = self._retired
        self._retired = RuntimeStatistics(
            actors=0,
            processed=r.processed + s.processed,
            restarts=r.restarts + s.restarts,
            dead_letters=r.dead_letters + s.dead_letters,
            dropped=r.dropped + s.dropped,
            rejected=r.rejected + s.rejected,
            expired=r.expired + s.expired,
            late_replies=r.late_replies + s.late_replies,
            undelivered=r.undelivered + s.undelivered,
        )

    def __repr__(self) -> str:
        return f"<Runtime running={self._running} actors={len(self._registry)}>"
