"""Using the runtime from plain threads: a blocking facade over anyio's BlockingPortal."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._runtime import Runtime

if TYPE_CHECKING:
    from ._actor import Actor
    from ._ref import ActorRef
    from ._stats import ActorSnapshot


class BlockingRuntime:
    """The runtime's operations as blocking calls, safe from any thread except the event
    loop's own (calling from there raises RuntimeError instead of deadlocking).

    Get one from :attr:`Runtime.blocking` inside an async program, or from
    :func:`start_blocking_runtime` in a program with no event loop at all.
    """

    __slots__ = ("_portal", "runtime")

    def __init__(self, runtime: Runtime, portal: BlockingPortal) -> None:
        self.runtime = runtime
        self._portal = portal

    def spawn(self, actor: Actor | Callable[[], Actor], **options: Any) -> ActorRef:
        """Blocking :meth:`Runtime.spawn`."""
        return self._portal.call(functools.partial(self.runtime.spawn, actor, **options))

    def tell(self, ref: ActorRef, message: Any) -> None:
        """Blocking :meth:`ActorRef.tell` (waits while the mailbox is full)."""
        self._portal.call(ref.tell, message)

    def ask(self, ref: ActorRef, message: Any, *, timeout: float | None = None) -> Any:
        """Blocking :meth:`ActorRef.ask`."""
        return self._portal.call(functools.partial(ref.ask, message, timeout=timeout))

    def stream(self, ref: ActorRef, message: Any, *, timeout: float | None = None) -> Iterator[Any]:
        """Blocking :meth:`ActorRef.stream`: a plain iterator of the replies."""
        replies = self._portal.call(functools.partial(_open_stream, ref, message, timeout))
        try:
            while True:
                try:
                    yield self._portal.call(replies.__anext__)
                except StopAsyncIteration:
                    return
        finally:
            self._portal.call(replies.aclose)

    def stop(self, ref: ActorRef) -> None:
        """Blocking :meth:`ActorRef.stop`."""
        self._portal.call(ref.stop)

    def lookup(self, path: str) -> ActorRef:
        return self._portal.call(self.runtime.lookup, path)

    def tree(self) -> ActorSnapshot:
        return self._portal.call(self.runtime.tree)

    def call(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run ``func(*args)`` (sync or async) on the runtime's event loop and return its
        result: the escape hatch for anything else."""
        return self._portal.call(func, *args)


async def _open_stream(ref: ActorRef, message: Any, timeout: float | None) -> Any:
    return ref.stream(message, timeout=timeout)


@contextmanager
def start_blocking_runtime(
    *,
    backend: str = "asyncio",
    backend_options: dict[str, Any] | None = None,
    **runtime_options: Any,
) -> Iterator[BlockingRuntime]:
    """Run a :class:`Runtime` on an event loop in a background thread, for programs that have
    no event loop of their own::

        with start_blocking_runtime() as rt:
            ref = rt.spawn(Counter(), name="counter")
            rt.tell(ref, Add(amount=1))
            print(rt.ask(ref, Get(), timeout=1.0))

    :param backend: ``"asyncio"`` or ``"trio"``.
    :param runtime_options: passed to :class:`Runtime`.
    """
    with start_blocking_portal(backend, backend_options) as portal:
        runtime = Runtime(**runtime_options)
        with portal.wrap_async_context_manager(runtime):
            yield BlockingRuntime(runtime, portal)
