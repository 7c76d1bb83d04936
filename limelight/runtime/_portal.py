"""Using the runtime from plain threads: a blocking facade over anyio's BlockingPortal.

Tell and ask skip the portal: one hop to the loop and a lock to wait on (``_threadsafe``).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._errors import RuntimeNotRunning
from ._runtime import Runtime
from ._threadsafe import ask_from_thread, tell_from_thread

T = TypeVar("T")

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

    def tell(self, ref: ActorRef | str, message: Any) -> None:
        """Blocking :meth:`ActorRef.tell` (waits while the mailbox is full), to a ref or an
        actor's path. One hop to the loop and a lock to wait on, no task (see _threadsafe)."""
        tell_from_thread(self.runtime, self._portal, ref, message)

    def ask(self, ref: ActorRef | str, message: Any, *, timeout: float | None = None) -> Any:
        """Blocking :meth:`ActorRef.ask`, to a ref or an actor's path. One hop to the loop
        and a lock to wait on, no task (see _threadsafe)."""
        return ask_from_thread(self.runtime, self._portal, ref, message, timeout)

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


class BackgroundRuntime:
    """A :class:`~limelight.Runtime` on an event loop in a daemon thread, used through its
    blocking portal. Unlike :func:`~limelight.start_blocking_runtime`, a program that never
    stops it still exits (the thread is a daemon); :meth:`stop` ends it cleanly.

    :param name: the thread's name.
    :param backend: ``"asyncio"`` or ``"trio"``.
    """

    def __init__(self, name: str, *, backend: str = "asyncio") -> None:
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._blocking: BlockingRuntime | None = None
        self._stop: anyio.Event | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, args=(backend,), name=name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _run(self, backend: str) -> None:
        try:
            anyio.run(self._main, backend=backend)
        except BaseException as exc:  # re-raised in the starting thread, never lost
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._stop = anyio.Event()
        async with Runtime() as runtime:
            self._blocking = runtime.blocking
            self._ready.set()
            await self._stop.wait()

    @property
    def blocking(self) -> BlockingRuntime:
        """The runtime's blocking facade.

        :raises RuntimeNotRunning: after :meth:`stop`.
        """
        blocking = self._blocking
        if blocking is None:
            raise RuntimeNotRunning("this background runtime was stopped; create a new one")
        return blocking

    def call(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await func(*args)`` on the runtime's loop and return its result."""
        result: T = self.blocking.call(func, *args)
        return result

    def stop(self, before: Callable[[], Awaitable[object]] | None = None) -> None:
        """Stop the runtime and its thread; ``before`` is awaited on the loop first (to close
        connection pools). A second call does nothing."""
        with self._lock:
            blocking, self._blocking = self._blocking, None
        if blocking is None or self._stop is None:
            return
        if threading.current_thread() is self._thread:
            # Called from the loop itself (a finalizer run there): it cannot wait for itself.
            self._stop.set()
            return
        try:
            if before is not None:
                blocking.call(before)
        finally:
            blocking.call(self._stop.set)
            self._thread.join()
