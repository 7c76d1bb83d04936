"""The Actor base class and the Context an actor sees."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from collections.abc import Callable

    from structlog.typing import FilteringBoundLogger

    from ._cell import Cell
    from ._ref import ActorRef
    from ._runtime import Runtime
    from ._supervision import Overflow, Restart, Supervision


class Actor:
    """Subclass this and override :meth:`handle` (and, if needed, the lifecycle hooks).

    Messages are handled one at a time, in the order they arrived. The value ``handle``
    returns is the reply to an :meth:`~ActorRef.ask`; for :meth:`~ActorRef.stream`, return an
    async iterable and each item is streamed to the caller. An exception raised by ``handle``
    crashes the actor: the caller of that request gets :class:`~limelight.errors.ActorCrashed`
    and the supervisor decides whether to restart it. Dispatch on message type with ``match``::

        class Counter(Actor):
            def __init__(self) -> None:
                self.n = 0

            async def handle(self, message: Any, ctx: Context) -> Any:
                match message:
                    case Add(amount=amount):
                        self.n += amount
                    case Get():
                        return self.n
    """

    #: Whether the actor keeps a task while it waits for mail (the default). A class that sets
    #: it to False is *non-resident*: once its mailbox is empty, its task ends, and the next
    #: message (a tell, an ask, a stream; a stop too) starts a new one that goes on with the
    #: same incarnation (``on_start`` does not run again; ``on_stop`` runs once, at its end).
    #: Seen from outside, nothing differs: the same order, state, statistics, supervision and
    #: shutdown. An idle actor then holds no task, coroutine frame, cancel scope or context of
    #: its own: ~1.06 KB instead of ~3.2 KB on asyncio (3.7 KB on trio), 14 fewer objects for
    #: the garbage collector to track. The price is a task start each time it is woken: an ask
    #: to it after it went idle took 14.4 µs instead of 9.8 µs on asyncio, 21.4 µs instead of
    #: 13.5 µs on trio (measured beside ``bench/kernel.py``). Made for actors that are idle
    #: nearly all the time, not for busy ones: on trio even back-to-back asks wake it about
    #: every other time (trio runs ready tasks in either order), 17.0 µs instead of 12.4 µs.
    #: It waits for mail in a task all the same until the deadline of the last request with
    #: one it handled has passed (see ``_loop``). Contextvars: on asyncio each new task runs
    #: in the very context the incarnation started in; on trio in a copy of the context its
    #: last task ended in (trio starts every task in a copy), which holds the same values.
    resident: ClassVar[bool] = True

    async def on_start(self, ctx: Context) -> None:
        """Runs before the first message of each incarnation (after every restart too)."""

    async def handle(self, message: Any, ctx: Context) -> Any:
        """Handle one message; the return value is the reply to an ask."""
        raise NotImplementedError(f"{type(self).__name__} does not implement handle()")

    async def on_stop(self, ctx: Context) -> None:
        """Runs after the message loop ended (stop, restart or crash), after the children have
        stopped. It runs shielded from cancellation, within the runtime's shutdown timeout."""


class Context:
    """What an actor knows about its place in the runtime. One per actor, reused for every
    message and across restarts."""

    __slots__ = ("_cell",)

    def __init__(self, cell: Cell) -> None:
        self._cell = cell

    @property
    def self(self) -> ActorRef:
        """This actor's own reference, to hand to others."""
        return self._cell.ref

    @property
    def name(self) -> str:
        return self._cell.name

    @property
    def path(self) -> str:
        return self._cell.path

    @property
    def parent(self) -> ActorRef | None:
        """The supervising actor, or None for a top-level actor (supervised by the runtime)."""
        parent = self._cell.parent
        return None if parent is None or parent.is_root else parent.ref

    @property
    def children(self) -> tuple[ActorRef, ...]:
        """Live children, in start order."""
        return tuple(c.ref for c in self._cell.children.values())

    @property
    def runtime(self) -> Runtime:
        return self._cell.runtime

    @property
    def restarts(self) -> int:
        """How many times this actor has been restarted."""
        return self._cell.restarts

    @property
    def log(self) -> FilteringBoundLogger:
        """A structlog logger bound with this actor's path."""
        return self._cell.log

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
        """Start a child of this actor; see :meth:`Runtime.spawn`."""
        return await self._cell.spawn_child(
            actor,
            name=name,
            mailbox_size=mailbox_size,
            overflow=overflow,
            restart=restart,
            supervision=supervision,
        )

    def stop(self) -> None:
        """End this incarnation normally once the current message is handled. A PERMANENT
        actor is then restarted by its supervisor (OTP semantics); use ``await ctx.self.stop()``
        from another task to stop it for good."""
        self._cell.stop_after_current = True
