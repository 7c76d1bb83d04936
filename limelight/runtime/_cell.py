"""The actor cell: one actor's mailbox, message loop, lifecycle and supervision of its children.

Every actor runs in a task of the runtime's (``_tasks``), one per incarnation, which it cancels
through a cancel scope of its own; the supervision tree is kept here, by the cells, which stop
children before their parent, in reverse start order. (A task group per actor would cost ~9 KB
each on asyncio, which 100,000 idle actors cannot afford.)

A non-resident actor (``Actor.resident = False``) runs each incarnation in a series of tasks
instead: its task ends when its loop would wait for mail, leaving the incarnation *dormant*
(``_scope`` None, ``_running`` still True), and the next message starts a task that goes on
with it (:meth:`Cell.resume`) in a fresh cancel scope. So that everything that ends an
incarnation reaches a dormant one too, :meth:`Cell.interrupt` wakes it already cancelled, and
its new task goes straight to the orderly end (:meth:`Cell._end`, the same as every
incarnation's), once. A task of an incarnation never runs beside another: a new one is started
only by the mailbox's waker, which fires once, after the previous task has ended.

One module: the :class:`Cell` is one object. Its lifecycle, supervision and stop order are here; its
message loop, which shares its state, is its base class (``_loop``), and the envelopes the
loop reads and answers are in ``_envelopes``.
"""

from __future__ import annotations

import contextvars
import math
import re
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import anyio
from anyio import (
    BrokenResourceError,
    CancelScope,
    ClosedResourceError,
    EndOfStream,
    WouldBlock,
)
from anyio.lowlevel import checkpoint

from ._actor import Actor, Context
from ._envelopes import Envelope
from ._errors import (
    ActorStartFailed,
    ActorStopped,
    ConfigError,
    MailboxFull,
    RestartIntensityExceeded,
)
from ._loop import DORMANT, MessageLoop, describe
from ._mailbox import YIELD_MASK as _YIELD_MASK
from ._mailbox import Mailbox
from ._stats import ActorSnapshot, ActorState, ActorStatistics
from ._supervision import (
    Overflow,
    Restart,
    RestartIntensity,
    Supervision,
    restart_targets,
    should_restart,
)

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from ._ref import ActorRef
    from ._runtime import Runtime
    from ._tasks import TaskScope

DEFAULT_MAILBOX_SIZE: Final = 1024

_INF = math.inf
_NAME = re.compile(r"[A-Za-z0-9_.:@+-][A-Za-z0-9_.:@+=-]*")


class Cell(MessageLoop):
    """Everything the runtime keeps for one actor. Users only ever see its ActorRef."""

    __slots__ = (
        "__weakref__",
        "_child_restarts",
        "_context",
        "_done",
        "_escalation",
        "_exit_expected",
        "_lock",
        "_log",
        "_ready",
        "_routines",
        "_running",
        "_scope",
        "_start_failure",
        "actor",
        "children",
        "ctx",
        "dropped",
        "factory",
        "incarnation",
        "intensity",
        "is_root",
        "mailbox",
        "mailbox_capacity",
        "name",
        "overflow",
        "parent",
        "path",
        "ref",
        "rejected",
        "restart",
        "restarts",
        "runtime",
        "state",
        "stop_after_current",
        "supervision",
        "undelivered",
    )

    def __init__(
        self,
        runtime: Runtime,
        parent: Cell | None,
        name: str,
        factory: Actor | Callable[[], Actor] | None,
        *,
        mailbox_size: float,
        overflow: Overflow,
        restart: Restart,
        supervision: Supervision,
    ) -> None:
        from ._ref import ActorRef

        self.runtime = runtime
        self.parent = parent
        self.name = name
        self.is_root = parent is None
        if parent is None:
            self.path = "/"
        elif parent.is_root:
            self.path = "/" + name
        else:
            self.path = parent.path + "/" + name
        #: What spawn was given: the Actor instance (reused at every restart), or a callable
        #: making a fresh one (kept as given: a closure returning the instance costs ~200 B).
        self.factory = factory
        self.actor: Actor | None = None
        self.mailbox_capacity = mailbox_size
        self.mailbox = Mailbox(mailbox_size)
        self.overflow = overflow
        self.restart = restart
        self.supervision = supervision
        self.intensity: RestartIntensity | None = None  # made on the first restart
        self.children: dict[str, Cell] = {}
        self.ctx = Context(self)
        self.ref = ActorRef(self)
        self.state = ActorState.STARTING
        self.restarts = 0
        self.processed = 0
        self.dropped = 0
        self.rejected = 0
        self.expired = 0
        self.late_replies = 0
        self.undelivered = 0
        self.last_error: BaseException | None = None
        self.stop_after_current = False
        #: The request with a deadline being handled under the loop's cancel scope, if any.
        self.serving: Envelope | None = None
        # Made only when needed: an idle actor must stay small (see bench/kernel.py).
        self._scope: TaskScope | None = None
        #: The context a dormant incarnation goes on in (set by ``_tasks``).
        self._context: contextvars.Context | None = None
        self._ready: anyio.Event | None = None
        self._start_failure: BaseException | None = None
        self.incarnation = 0
        self._running = False
        self._done: anyio.Event | None = None
        self._exit_expected = False
        self._escalation: BaseException | None = None
        self._lock: anyio.Lock | None = None
        self._routines: set[CancelScope] | None = None
        self._child_restarts: dict[str, deque[float]] | None = None
        self._log: FilteringBoundLogger | None = None

    # -- small helpers -------------------------------------------------------------------

    @property
    def log(self) -> FilteringBoundLogger:
        if self._log is None:
            import structlog

            self._log = structlog.get_logger("limelight").bind(actor=self.path)
        return self._log

    def stopped_error(self) -> ActorStopped:
        return ActorStopped(f"actor {self.path} has stopped", path=self.path)

    def statistics(self) -> ActorStatistics:
        return ActorStatistics(
            path=self.path,
            state=self.state,
            restarts=self.restarts,
            mailbox_size=len(self.mailbox),
            mailbox_capacity=self.mailbox_capacity,
            processed=self.processed,
            dropped=self.dropped,
            rejected=self.rejected,
            expired=self.expired,
            late_replies=self.late_replies,
            undelivered=self.undelivered,
            last_error=None if self.last_error is None else describe(self.last_error),
        )

    def snapshot(self) -> ActorSnapshot:
        children = tuple(c.snapshot() for c in list(self.children.values()))
        if self.is_root:
            return ActorSnapshot(
                name="/", path="/", actor_type="runtime", stats=None, children=children
            )
        actor_type = type(self.actor).__name__ if self.actor is not None else "?"
        return ActorSnapshot(
            name=self.name,
            path=self.path,
            actor_type=actor_type,
            stats=self.statistics(),
            children=children,
        )

    # -- the mailbox ---------------------------------------------------------------------

    async def put(self, item: Any) -> None:
        """Enqueue with the overflow policy; the fast path does not wait."""
        try:
            self.mailbox.put_nowait(item)
        except WouldBlock:
            await self.put_slow(item)
            return
        except (ClosedResourceError, BrokenResourceError):
            raise self.stopped_error() from None
        if not len(self.mailbox) & _YIELD_MASK:
            await checkpoint()  # a hot sender yields (see ActorRef.tell)

    def waits_for_room(self) -> bool:
        """A put now would wait: the mailbox is full and the overflow policy is BLOCK."""
        mailbox = self.mailbox
        return (
            len(mailbox) >= mailbox.capacity
            and self.overflow is Overflow.BLOCK
            and not mailbox.closed
        )

    async def put_slow(self, item: Any) -> None:
        if self.overflow is Overflow.BLOCK:
            try:
                await self.mailbox.put(item)
            except (ClosedResourceError, BrokenResourceError):
                raise self.stopped_error() from None
        else:
            self.overflow_nowait(item)

    def put_nowait(self, item: Any) -> None:
        try:
            self.mailbox.put_nowait(item)
        except WouldBlock:
            if self.overflow is Overflow.BLOCK:
                self.rejected += 1
                raise self._full_error() from None
            self.overflow_nowait(item)
        except (ClosedResourceError, BrokenResourceError):
            raise self.stopped_error() from None

    def overflow_nowait(self, item: Any) -> None:
        """Apply a non-blocking overflow policy to ``item``, which did not fit."""
        policy = self.overflow
        if policy is Overflow.FAIL or policy is Overflow.BLOCK:
            self.rejected += 1
            raise self._full_error()
        if policy is Overflow.DROP_NEWEST:
            self._drop(item)
            return
        # DROP_OLDEST: make room by discarding the head of the queue.
        while True:
            try:
                self.mailbox.put_nowait(item)
                return
            except WouldBlock:
                try:
                    oldest = self.mailbox.get_nowait()
                except WouldBlock:
                    continue
                self._drop(oldest)
            except (ClosedResourceError, BrokenResourceError):
                raise self.stopped_error() from None

    def _drop(self, item: Any) -> None:
        self.dropped += 1
        if isinstance(item, Envelope):
            item.fail(self._full_error())

    def _full_error(self) -> MailboxFull:
        return MailboxFull(
            f"mailbox of {self.path} is full ({int(self.mailbox_capacity)} messages, "
            f"overflow={self.overflow.value}); slow down, raise mailbox_size, or pick "
            "another overflow policy",
            path=self.path,
        )

    # -- spawning ------------------------------------------------------------------------

    async def spawn_child(
        self,
        actor: Actor | Callable[[], Actor],
        *,
        name: str | None,
        mailbox_size: float | None,
        overflow: Overflow | None,
        restart: Restart | None,
        supervision: Supervision | None,
    ) -> ActorRef:
        runtime = self.runtime
        runtime.ensure_running()
        if self.state is ActorState.STOPPED or self.state is ActorState.STOPPING:
            raise self.stopped_error()
        if isinstance(actor, Actor):
            type_name = type(actor).__name__
        elif callable(actor):
            type_name = getattr(actor, "__name__", "actor")
        else:
            raise ConfigError(
                f"spawn() takes an Actor instance or a callable returning one, got {actor!r}"
            )
        if name is None:
            name = runtime.auto_name(type_name)
        elif not _NAME.fullmatch(name):
            raise ConfigError(
                f"invalid actor name {name!r}: use letters, digits and _.:@+-=, no '/'"
            )
        if name in self.children:
            raise ConfigError(f"{self.path} already has a child named {name!r}")
        size = runtime.mailbox_size if mailbox_size is None else mailbox_size
        if not (size == _INF or (isinstance(size, int) and size >= 1)):
            raise ConfigError(f"mailbox_size must be an int >= 1 or math.inf, got {size!r}")
        cell = Cell(
            runtime,
            self,
            name,
            actor,
            mailbox_size=size,
            overflow=overflow or Overflow.BLOCK,
            restart=restart or Restart.PERMANENT,
            supervision=supervision or runtime.default_supervision,
        )
        self.children[name] = cell
        runtime.register(cell)
        failure = await cell.begin(True)
        if failure is not None:
            cell.finalize()
            raise failure
        return cell.ref

    # -- one incarnation -----------------------------------------------------------------

    async def begin(self, initial: bool) -> BaseException | None:
        """Start an incarnation; wait until on_start has run and return its failure, if any.

        Its cancel scope is made (and the incarnation marked running) before its task runs at
        all, so a halt can never miss it, even while on_start is still running."""
        ready = self._ready = anyio.Event()
        self._running = True
        self._exit_expected = False
        tasks = self.runtime._actor_tasks
        assert tasks is not None  # spawning checked that the runtime runs
        self._scope = tasks.scope()
        tasks.start(self, initial)
        await ready.wait()
        return self._start_failure

    def _signal_ready(self, failure: BaseException | None) -> None:
        self._start_failure = failure
        if self._ready is not None:
            self._ready.set()
            self._ready = None  # transient: an idle actor keeps no Event

    async def run(self, initial: bool) -> None:
        """One incarnation, in a task of its own: on_start, the message loop, then an orderly
        end (:meth:`_end`). Never raises: a crash is a report.

        It runs inside the incarnation's cancel scope, made by :meth:`begin`, which is how
        it is stopped (:meth:`interrupt`). A non-resident actor's task ends instead where the
        loop would wait for mail, leaving the incarnation dormant (:meth:`resume`)."""
        scope = self._scope
        assert scope is not None
        with scope:
            self.incarnation += 1
            incarnation = self.incarnation
            self._escalation = None
            self.stop_after_current = False
            reason: Any = None
            actor: Actor | None = None
            started = False
            try:
                self.state = ActorState.STARTING
                try:
                    factory = self.factory
                    assert factory is not None
                    actor = self.actor = factory if isinstance(factory, Actor) else factory()
                    await actor.on_start(self.ctx)
                except Exception as exc:
                    reason = ActorStartFailed(
                        f"actor {self.path} failed to start: {describe(exc)}",
                        path=self.path,
                        cause=exc,
                    )
                    reason.__cause__ = exc
                    self.last_error = exc
                else:
                    started = True
                    self.state = ActorState.RUNNING
                    self._signal_ready(None)
                    reason = await self._loop(actor)
            finally:
                if reason is not DORMANT:
                    await self._end(reason, actor, initial, started, incarnation)
        if reason is DORMANT:
            self._doze()

    async def resume(self) -> None:
        """A dormant incarnation's next task: the message loop again (not on_start), in the
        fresh cancel scope its waker made (``_tasks``), until it is dormant again or ends. If
        it was interrupted while dormant, the scope is cancelled already: straight to the
        end. Never raises."""
        scope = self._scope
        assert scope is not None
        actor = self.actor
        assert actor is not None
        reason: Any = None
        with scope:
            try:
                if not scope.cancel_called:
                    reason = await self._loop(actor)
            finally:
                if reason is not DORMANT:
                    await self._end(reason, actor, False, True, self.incarnation)
        if reason is DORMANT:
            self._doze()

    def _doze(self) -> None:
        """The task ends here, out of its scope; the incarnation waits for mail without it."""
        tasks = self.runtime._actor_tasks
        assert tasks is not None
        tasks.park(self)

    async def _end(
        self,
        reason: BaseException | None,
        actor: Actor | None,
        initial: bool,
        started: bool,
        incarnation: int,
    ) -> None:
        """An incarnation's orderly end (children first, in reverse start order, then
        on_stop) and its report to the supervisor, unless the end was requested (a stop, or a
        restart of siblings). Every end passes here, cancellation included; shielded (but
        bounded) so that the children stop and on_stop runs even while the runtime is being
        torn down."""
        if self.state is not ActorState.STOPPED:  # finalized already: stays so
            self.state = ActorState.STOPPING
        with CancelScope(shield=True) as shield:
            shield.deadline = anyio.current_time() + self.runtime.shutdown_timeout
            await self.stop_children()
            if started and actor is not None:
                try:
                    await actor.on_stop(self.ctx)
                except Exception as exc:
                    self.log.exception("on_stop raised", error=describe(exc))
                    self.last_error = exc
                    reason = reason or exc
        if shield.cancelled_caught:
            # A child or on_stop overran shutdown_timeout and was cancelled; the
            # bookkeeping below must run all the same, or a stop() would wait forever.
            self.log.warning(
                "stopping took longer than shutdown_timeout; cancelled",
                shutdown_timeout=self.runtime.shutdown_timeout,
            )
            for child in list(self.children.values()):
                child.finalize()
        escalation = self.escalation()
        if escalation is not None:
            reason = escalation
        if self.state is not ActorState.STOPPED:
            self.state = ActorState.RESTARTING
        self._running = False
        self._context = None
        if self._done is not None:
            self._done.set()
            self._done = None
        if not started:
            # begin() waits for this: spawn() raises a failed first start; a failed
            # restart is reported below like any crash.
            self._signal_ready(reason or self.stopped_error())
        report = (started or not initial) and not self._exit_expected
        if report and self.parent is not None:
            if reason is not None:
                self.log.warning("actor crashed", error=describe(reason), restarts=self.restarts)
            # Shielded, but not bounded by shutdown_timeout: a restart's backoff may be
            # longer. A supervisor that stops cancels this routine's own scope directly.
            with CancelScope(shield=True):
                await self.parent.child_exited(self, reason, incarnation)

    # -- stopping ------------------------------------------------------------------------

    async def halt(self) -> None:
        """End the current incarnation (if any) and wait until it has fully ended. The
        supervisor is not told: whoever halts decides what comes next."""
        self._exit_expected = True
        self.interrupt()
        if self._running:
            if self._done is None:
                self._done = anyio.Event()
            await self._done.wait()

    def interrupt(self) -> None:
        """Cancel the current incarnation, if one runs: its task is cancelled at its next
        await outside a shielded scope (its own end is shielded). A dormant one (no scope) is
        woken in a scope cancelled already, so that its new task runs its end."""
        if self._running:
            scope = self._scope
            if scope is None:
                tasks = self.runtime._actor_tasks
                assert tasks is not None
                scope = self._scope = tasks.scope()
                scope.cancel()
                # Taken from the mailbox as a sender takes it: it fires once.
                mailbox = self.mailbox
                waker, mailbox._receiver = mailbox._receiver, None
                assert waker is not None
                waker.set()
            else:
                scope.cancel()

    async def stop(self) -> None:
        """Stop for good: halt, then close the mailbox and fail whatever was still queued."""
        if self.state is ActorState.STOPPED:
            return
        self._cancel_routines()
        try:
            await self.halt()
        finally:
            # Also when the wait is cancelled: an actor stopping itself from its own handler
            # (halt cancels that very task), or a stopper that gives up waiting.
            self.finalize()

    async def stop_children(self, *, cancel_routines: bool = True) -> None:
        """Stop every child for good, in reverse start order (first cancelling pending restart
        routines, unless called from one of them)."""
        if cancel_routines:
            self._cancel_routines()
        for child in reversed(list(self.children.values())):
            await child.stop()

    def _cancel_routines(self) -> None:
        if self._routines:
            for scope in self._routines:
                scope.cancel()

    def finalize(self) -> None:
        """Close the mailbox, fail queued requests with ActorStopped, count queued tells as
        undelivered, and forget this cell."""
        if self.state is ActorState.STOPPED:
            return
        self.state = ActorState.STOPPED
        self.mailbox.close()
        while True:
            try:
                item = self.mailbox.get_nowait()
            except (WouldBlock, EndOfStream):
                break
            if isinstance(item, Envelope):
                item.fail(self.stopped_error())
            else:
                self.undelivered += 1
        if self.parent is not None and self.parent.children.get(self.name) is self:
            del self.parent.children[self.name]
        self.runtime.unregister(self)

    # -- supervision (self is the supervisor) --------------------------------------------

    async def child_exited(
        self, child: Cell, reason: BaseException | None, incarnation: int
    ) -> None:
        """A child's incarnation ended on its own (crash or normal exit): apply the policy.

        Runs in the child's task, serialised per supervisor by a lock; a stop of this
        supervisor cancels it.
        """
        if child.state is ActorState.STOPPED:
            return
        if self.state in (ActorState.STOPPING, ActorState.STOPPED) or not self.runtime.running:
            child.finalize()  # nothing restarts while its supervisor (or the runtime) stops
            return
        if not should_restart(child.restart, crashed=reason is not None):
            child.finalize()
            return
        if self._lock is None:
            self._lock = anyio.Lock()
            self._routines = set()
        assert self._routines is not None
        with CancelScope() as routine:
            self._routines.add(routine)
            try:
                async with self._lock:
                    # A report that waited for the lock may have been overtaken (a sibling's
                    # restart halted and restarted this child meanwhile): then it is stale.
                    if child.incarnation == incarnation and not child._exit_expected:
                        await self._restart(child, reason)
            finally:
                self._routines.discard(routine)
        if routine.cancelled_caught:
            child.finalize()

    async def _restart(self, child: Cell, reason: BaseException | None) -> None:
        if child.state is ActorState.STOPPED or self.state is ActorState.STOPPED:
            return
        if self.state is ActorState.STOPPING or not self.runtime.running:
            child.finalize()
            return
        now = anyio.current_time()
        if self.intensity is None:
            sup = self.supervision
            self.intensity = RestartIntensity(sup.max_restarts, sup.within)
        if not self.intensity.record(now):
            sup = self.supervision
            cause = reason if reason is not None else child.last_error
            error = RestartIntensityExceeded(
                f"supervisor {self.path} gave up: more than {sup.max_restarts} restarts "
                f"within {sup.within} s (last: {child.path}"
                + (f" crashed with {describe(cause)})" if cause else " exited)"),
                path=self.path,
                cause=cause or RuntimeError("restart intensity exceeded"),
            )
            error.__cause__ = cause
            # This runs inside a restart routine: cancelling routines would cancel itself.
            await self.stop_children(cancel_routines=False)
            self.escalate(error)
            return
        targets = restart_targets(self.supervision.strategy, list(self.children.values()), child)
        # Siblings that are to restart too are stopped first, in reverse start order.
        for sibling in reversed(targets):
            if sibling is child:
                continue
            if sibling.restart is Restart.TEMPORARY:
                await sibling.stop()
            else:
                await sibling.halt()
        delay = self.supervision.backoff(self._child_restarts_in_window(child, now))
        if delay > 0:
            await anyio.sleep(delay)
        for cell in targets:
            if cell.state is ActorState.STOPPED:
                continue
            cell.restarts += 1
            # A failed start is reported by its own task once we release the lock.
            await cell.begin(False)

    def _child_restarts_in_window(self, child: Cell, now: float) -> int:
        """Record a restart of ``child`` and count its own restarts inside the window."""
        if self._child_restarts is None:
            self._child_restarts = {}
        times = self._child_restarts.setdefault(child.name, deque())
        times.append(now)
        while times and times[0] <= now - self.supervision.within:
            times.popleft()
        return len(times)

    def escalation(self) -> BaseException | None:
        """The error this supervisor gave up with, if it did."""
        return self._escalation

    def escalate(self, error: BaseException) -> None:
        """Give up: crash this actor with ``error`` (the runtime fails if this is the root)."""
        self.log.error("supervisor gave up", error=describe(error))
        if self.is_root:
            self.runtime.fail(error)
            return
        self._escalation = error
        self.last_error = error
        self.interrupt()
