"""Frozen statistics records: one actor's, and the live tree's."""

from __future__ import annotations

import enum
from collections.abc import Iterator

import msgspec


class ActorState(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    STOPPED = "stopped"


class ActorStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """One actor's counters.

    Dead letters are messages that never got a reply to anyone: ``dropped`` by the overflow
    policy, ``expired`` (their ask deadline passed before or during handling),
    ``late_replies`` (the asker had gone when the reply came) and ``undelivered`` (still
    queued when the actor stopped for good). ``rejected`` counts messages refused with
    MailboxFull: their sender got the error, so they are not dead letters.
    """

    path: str
    state: ActorState
    restarts: int
    mailbox_size: int
    mailbox_capacity: float
    processed: int
    dropped: int
    rejected: int
    expired: int
    late_replies: int
    undelivered: int
    last_error: str | None = None

    @property
    def dead_letters(self) -> int:
        return self.dropped + self.expired + self.late_replies + self.undelivered


class ActorSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A node of the live tree: an actor, its statistics and its children in start order."""

    name: str
    path: str
    actor_type: str
    stats: ActorStatistics | None
    children: tuple[ActorSnapshot, ...] = ()

    def walk(self) -> Iterator[ActorSnapshot]:
        """This node and all below it, depth first, in start order."""
        yield self
        for child in self.children:
            yield from child.walk()

    def render(self) -> str:
        """The tree as text, one actor a line::

        /  (runtime)
        └── supervisor  Supervisor  running  restarts=0  mailbox=0/64  dead=0
            ├── worker-1  Worker  running  restarts=2  mailbox=0/64  dead=0
        """
        lines = [f"{self.path}  ({self.actor_type})"]
        self._render_children(lines, "")
        return "\n".join(lines)

    def _render_children(self, lines: list[str], prefix: str) -> None:
        for i, child in enumerate(self.children):
            last = i == len(self.children) - 1
            lines.append(prefix + ("└── " if last else "├── ") + child._label())
            child._render_children(lines, prefix + ("    " if last else "│   "))

    def _label(self) -> str:
        s = self.stats
        if s is None:
            return f"{self.name}  {self.actor_type}"
        capacity = "∞" if s.mailbox_capacity == float("inf") else str(int(s.mailbox_capacity))
        label = (
            f"{self.name}  {self.actor_type}  {s.state.value}  restarts={s.restarts}  "
            f"mailbox={s.mailbox_size}/{capacity}  dead={s.dead_letters}"
        )
        if s.last_error:
            label += f"  last_error={s.last_error}"
        return label

    def __str__(self) -> str:
        return self.render()


class RuntimeStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Runtime-wide totals, including actors that have already stopped."""

    actors: int
    processed: int
    restarts: int
    dead_letters: int
    dropped: int
    rejected: int
    expired: int
    late_replies: int
    undelivered: int
