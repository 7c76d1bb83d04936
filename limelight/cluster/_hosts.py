"""Runtime hosts on Ray: N processes, each a limelight Runtime on its own loop, and remote refs.

A host is a Ray actor (one process) running a :class:`~limelight.runtime.Runtime`: a threaded
Ray actor (:class:`Host`) holding a :class:`~limelight.runtime.BackgroundRuntime` (a Runtime
on an asyncio or trio loop of its own thread). Ray's call threads hand a tell or an ask to
that loop with the loop's own thread-safe call-soon and wait on a lock
(:meth:`~limelight.runtime.BlockingRuntime.ask`, one hop, no task); the rest goes through the
runtime's blocking portal. (A Ray async actor, whose loop runs the Runtime, cost 1.25-1.54x a
bare Ray call per ask, most of it Ray's own dispatch to async actors; see bench/RESULTS.md.)
:class:`Cluster` starts the hosts and spawns actors on them; :class:`RemoteRef` is the
caller's handle, with ``tell``, ``ask(timeout=)`` and ``stream`` as on a local
:class:`~limelight.runtime.ActorRef`. A tell or an ask crosses as one msgspec MessagePack frame
(the actor's path, what is left of the caller's deadline, the message and its type's name), its
reply as another: the host's ask runs under that deadline, and the caller stops waiting at it
either way.

Supervision across hosts: the cluster watches each host with a call that never returns; when
the process dies (``kill -9``), Ray fails that call and every call in flight there at once, so
asks in flight fail with :class:`~limelight.errors.HostDied` promptly. The cluster then starts
a new host in its place (at most ``max_restarts`` within ``within`` seconds, as a local
supervisor's restart intensity; past it the host stays down) and spawns again its actors whose
:class:`~limelight.runtime.Restart` policy asks for it (``PERMANENT`` and ``TRANSIENT``: a
dead host is an abnormal end; ``TEMPORARY`` ones are gone). Remote refs follow their actor to
the new host; calls made meanwhile wait for it, within their deadline.

Batches: :func:`limelight.batch.run_batch` with ``cluster=`` shards its items over the hosts
(:meth:`Cluster._run_batch`): ``fn`` travels once per host through Ray's object store, each
item is a call on a host, and an item whose host died under it is sent again to a live one.

Analytics: ``Cluster.start(analytics_dir=...)`` makes host ``i`` record its own events in
``<dir>/host-<i>.db`` (its spool in ``<dir>/spool-host-<i>``), kept across its restarts.

Coarse-grained by design: a remote ask costs a Ray actor call (two process hops, a frame each
way) beside a local ask's few microseconds; send work worth milliseconds per call (a slice of
agents, not one turn).

One module: remote refs, batches and the host's restarts all work on the host slots (a
host's handle, its death, its restart) and the wire (errors crossing back, waiting on Ray
on both backends); a death seen by a call and one seen by the watcher must agree. And
``limelight.batch`` may reach a batch's cluster side only as a method of the Cluster it is
given (it sits below this package).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import math
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.lowlevel
import anyio.to_thread
import msgspec
import ray
import structlog

from .._batch import run_shipped
from ..errors import AskTimeout, ConfigError, HostDied
from ..runtime import Actor, BackgroundRuntime, Restart

__all__ = [
    "DEFAULT_CALLS_PER_HOST",
    "DEFAULT_MAX_RESTARTS",
    "DEFAULT_RESTART_WINDOW",
    "Cluster",
    "RemoteRef",
]

DEFAULT_MAX_RESTARTS: Final = 3
#: Calls a host takes at once, by default (see Cluster's ``calls_per_host``).
DEFAULT_CALLS_PER_HOST: Final = 1000
DEFAULT_RESTART_WINDOW: Final = 60.0
#: Threads the caller's side may block on Ray at once (calls in flight, host watchers).
_THREADS: Final = 256
_ENCODER: Final = msgspec.msgpack.Encoder()
#: Seconds the hosts get to stop their Runtimes (and deliver their analytics) when the
#: cluster closes.
_SHUTDOWN_TIMEOUT: Final = 10.0
#: Seconds a host's analytics may take to deliver what is left at its shutdown (the rest
#: stays in its spool, sent by its next start).
_ANALYTICS_SHUTDOWN_TIMEOUT: Final = 5.0
#: Batch functions a host keeps unpickled, newest last.
_BATCH_FNS: Final = 8


# -- the wire: messages as MessagePack, their type named --------------------------------


def encode(value: Any) -> tuple[str, bytes]:
    """A message or reply as ``(type, MessagePack)``: the type is ``module:qualname`` for a
    Struct (or any class msgspec can decode into), ``""`` for plain data."""
    return _kind_of(value), _ENCODER.encode(value)


_kinds: dict[type, str] = {}


def _kind_of(value: Any) -> str:
    kind = type(value)
    name = _kinds.get(kind)
    if name is None:
        plain = kind.__module__ == "builtins"
        name = _kinds[kind] = "" if plain else f"{kind.__module__}:{kind.__qualname__}"
    return name


_decoders: dict[str, msgspec.msgpack.Decoder[Any]] = {}


def decode(kind: str, data: bytes | msgspec.Raw) -> Any:
    """The value :func:`encode` made."""
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = msgspec.msgpack.Decoder(_resolve(kind)) if kind else msgspec.msgpack.Decoder()
        _decoders[kind] = decoder
    return decoder.decode(data)


# A tell or an ask is one bytes argument of a Ray call, its reply one bytes value: Ray
# pickles each argument and result on its own (measured: four arguments and a tuple back
# cost ~0.2 ms a call more than one bytes each way).
_REQUEST: Final = msgspec.msgpack.Decoder(tuple[str, float | None, str, msgspec.Raw])
_REPLY: Final = msgspec.msgpack.Decoder(tuple[str, msgspec.Raw])


def _request(path: str, timeout: float | None, message: Any) -> bytes:
    """A request's frame: the actor's path, what is left of the deadline, the message."""
    return _ENCODER.encode((path, timeout, _kind_of(message), message))


def _open_request(frame: bytes) -> tuple[str, float | None, Any]:
    path, timeout, kind, message = _REQUEST.decode(frame)
    return path, timeout, decode(kind, message)


def _reply(value: Any) -> bytes:
    return _ENCODER.encode((_kind_of(value), value))


def _open_reply(frame: bytes) -> Any:
    kind, value = _REPLY.decode(frame)
    return decode(kind, value)


def _resolve(kind: str) -> Any:
    module, _, qualname = kind.partition(":")
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


class _Failure(Exception):
    """An error raised on a host, as it crosses back: its class by name, its message, its
    plain attributes (limelight's errors take keyword-only arguments, which pickle cannot
    rebuild)."""

    def __init__(self, kind: str, message: str, attrs: dict[str, Any]) -> None:
        super().__init__(kind, message, attrs)
        self.kind = kind
        self.message = message
        self.attrs = attrs

    @classmethod
    def of(cls, exc: BaseException) -> _Failure:
        kind = type(exc)
        attrs = {
            name: value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
            for name, value in vars(exc).items()
        }
        return cls(f"{kind.__module__}:{kind.__qualname__}", str(exc), attrs)

    def rebuild(self) -> BaseException:
        try:
            kind = _resolve(self.kind)
        except (ImportError, AttributeError):
            kind = None
        if not (isinstance(kind, type) and issubclass(kind, Exception)):
            return RuntimeError(f"{self.kind}: {self.message}")
        exc = kind.__new__(kind)
        Exception.__init__(exc, self.message)
        exc.__dict__.update(self.attrs)
        return exc


def _host_call(method: Callable[..., Any]) -> Callable[..., Any]:
    """Errors of a host method cross back as :class:`_Failure`."""

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            raise _Failure.of(exc) from None

    return call


# -- the hosts: Ray actors running a Runtime ---------------------------------------------


class _End(msgspec.Struct, frozen=True):
    """The end of a stream."""


class Host:
    """A host: a Runtime on a loop of its own thread (asyncio or trio), in a threaded Ray
    actor taking calls on Ray's call threads. A tell or an ask hops to the loop with the
    loop's own thread-safe call-soon and waits on a lock (:meth:`BlockingRuntime.ask`), the
    rest goes through the runtime's blocking portal. Created by :class:`Cluster` as a Ray
    actor."""

    def __init__(self, index: int, backend: str, analytics_dir: str | None = None) -> None:
        self.index = index
        self._analytics = False
        if analytics_dir is not None:
            self._start_analytics(Path(analytics_dir))
        #: Batch functions unpickled here, by their ObjectRef's id, newest last.
        self._batch_fns: dict[bytes, Callable[[Any], Any]] = {}
        self.runtime = BackgroundRuntime(f"limelight-host-{index}", backend=backend)
        self._forever = threading.Event()

    def _start_analytics(self, folder: Path) -> None:
        from ..analytics import AnalyticsConfig, initialize

        config = msgspec.structs.replace(
            AnalyticsConfig.from_env(),
            db_path=str(folder / f"host-{self.index}.db"),
            spool_dir=str(folder / f"spool-host-{self.index}"),
        )
        # The process-wide client: the host's actors record through it, as in any process.
        initialize(config=config, handle_signals=False)
        self._analytics = True

    def _stop_analytics(self) -> None:
        if self._analytics:
            from ..analytics import shutdown

            shutdown(_ANALYTICS_SHUTDOWN_TIMEOUT)

    def pid(self) -> int:
        return os.getpid()

    def start(self) -> int:
        """The process id (the Runtime started with the actor)."""
        return os.getpid()

    @_host_call
    def spawn(self, factory: Callable[[], Actor], name: str, options: dict[str, Any]) -> str:
        ref = self.runtime.blocking.spawn(factory, name=name, **options)
        return ref.path

    @_host_call
    def tell(self, frame: bytes) -> None:
        path, _, message = _open_request(frame)
        # One hop to the loop per request: the lookup and the send together.
        self.runtime.blocking.tell(path, message)

    @_host_call
    def ask(self, frame: bytes) -> bytes:
        path, timeout, message = _open_request(frame)
        return _reply(self.runtime.blocking.ask(path, message, timeout=timeout))

    def stream(self, path: str, kind: str, data: bytes, timeout: float | None) -> Any:
        blocking = self.runtime.blocking
        try:
            replies = blocking.stream(blocking.lookup(path), decode(kind, data), timeout=timeout)
            for item in replies:
                yield encode(item)
        except Exception as exc:
            raise _Failure.of(exc) from None

    @_host_call
    def stop_actor(self, path: str) -> None:
        blocking = self.runtime.blocking
        blocking.stop(blocking.lookup(path))

    @_host_call
    def run_item(self, fn: list[Any], item: Any) -> bytes:
        """One item of a batch: ``fn`` (boxed, so that Ray hands over its ObjectRef rather
        than its value) run on the host's loop; the outcome as :func:`run_shipped` encodes
        it."""
        ref = fn[0]
        key: bytes = ref.binary()
        batch_fn = self._batch_fns.get(key)
        if batch_fn is None:  # the batch's first item here: unpickle it once
            batch_fn = self._batch_fns[key] = ray.cloudpickle.loads(ray.get(ref))
            while len(self._batch_fns) > _BATCH_FNS:
                del self._batch_fns[next(iter(self._batch_fns))]
        return self.runtime.call(run_shipped, batch_fn, item)

    def watch(self) -> None:
        """Never returns while the host lives: its failure is how the cluster learns of a
        death."""
        self._forever.wait()

    def shutdown(self) -> None:
        self._forever.set()
        self.runtime.stop()
        self._stop_analytics()


# -- the caller's side -------------------------------------------------------------------


@dataclass
class _Spawned:
    """What the cluster needs to spawn an actor again on a new host."""

    factory: Callable[[], Actor]
    name: str
    options: dict[str, Any]
    restart: Restart
    path: str = ""


@dataclass
class _HostSlot:
    """One host's place in the cluster: its current Ray actor, and what runs there."""

    index: int
    handle: Any = None
    ready: anyio.Event = field(default_factory=anyio.Event)
    generation: int = 0
    dead: bool = False
    gave_up: bool = False
    restarts: deque[float] = field(default_factory=deque)
    actors: dict[str, _Spawned] = field(default_factory=dict)


async def _get(ref: Any) -> Any:
    """Await a Ray ObjectRef on any anyio backend; a failure is raised as the task's own
    error (Ray's wrapper removed)."""
    try:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return await anyio.to_thread.run_sync(
                ray.get, ref, abandon_on_cancel=True, limiter=_limiter()
            )
        return await asyncio.wrap_future(ref.future())
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, _Failure):
            raise cause.rebuild() from None
        raise


_thread_limiters: dict[object, anyio.CapacityLimiter] = {}


def _limiter() -> anyio.CapacityLimiter:
    """The limiter of the threads that wait on Ray, one per event loop (run)."""
    token = anyio.lowlevel.current_token().native_token
    limiter = _thread_limiters.get(token)
    if limiter is None:
        _thread_limiters.clear()  # an earlier loop's is of no use any more
        limiter = _thread_limiters[token] = anyio.CapacityLimiter(_THREADS)
    return limiter


class RemoteRef:
    """A handle to an actor on a host of a :class:`Cluster`: ``tell``, ``ask`` and
    ``stream`` as on a local :class:`~limelight.runtime.ActorRef`.

    :raises HostDied: from a call in flight when its host dies, or when the host is down
        for good.
    """

    __slots__ = ("_cluster", "_name", "host")

    def __init__(self, cluster: Cluster, host: int, name: str) -> None:
        self._cluster = cluster
        self.host = host
        self._name = name

    def __repr__(self) -> str:
        return f"RemoteRef(host={self.host}, path={self.path!r})"

    @property
    def path(self) -> str:
        spawned = self._cluster._slots[self.host].actors.get(self._name)
        return spawned.path if spawned is not None else f"/{self._name}"

    async def tell(self, message: Any) -> None:
        """Send without waiting for an answer (waits for the host to take it)."""
        await self._call("tell", _request(self.path, None, message))

    async def ask(self, message: Any, *, timeout: float | None = None) -> Any:
        """Send a request and wait for the reply, within ``timeout`` and the caller's own
        deadline; what is left of it travels with the request.

        :raises AskTimeout: no reply before the deadline.
        :raises HostDied: the host died with the request in flight.
        """
        deadline = anyio.current_effective_deadline()
        if timeout is not None:
            deadline = min(deadline, anyio.current_time() + timeout)
        if math.isinf(deadline):
            return _open_reply(await self._call("ask", _request(self.path, None, message)))
        with anyio.move_on_at(deadline):
            frame = _request(self.path, deadline - anyio.current_time(), message)
            return _open_reply(await self._call("ask", frame))
        raise AskTimeout(
            f"ask to {self.path} on host {self.host} timed out"
            + (f" after {timeout} s" if timeout is not None else " at the caller's deadline"),
            path=self.path,
        )

    async def stream(self, message: Any, *, timeout: float | None = None) -> AsyncIterator[Any]:
        """The replies of a streamed request, as they come (Ray's streaming generator).

        :raises HostDied: the host died mid-stream.
        """
        ray_ref = await self._cluster._host(self.host, self.path)
        kind, data = encode(message)
        generator = ray_ref.stream.options(num_returns="streaming").remote(
            self.path, kind, data, timeout
        )
        while True:
            try:
                item = await anyio.to_thread.run_sync(
                    _next, generator, abandon_on_cancel=True, limiter=_limiter()
                )
                if item is None:
                    return
                reply_kind, reply = await _get(item)
            except ray.exceptions.RayActorError as exc:
                raise self._cluster._died(self.host, self.path, exc, ray_ref) from None
            yield decode(reply_kind, reply)

    async def stop(self) -> None:
        """Stop the actor for good (it is not spawned again on a new host)."""
        slot = self._cluster._slots[self.host]
        spawned = slot.actors.pop(self._name, None)
        if spawned is not None:
            with contextlib.suppress(HostDied):
                await self._call("stop_actor", spawned.path)

    async def _call(self, method: str, *args: Any) -> Any:
        cluster = self._cluster
        handle = await cluster._host(self.host, self.path)
        try:
            return await _get(getattr(handle, method).remote(*args))
        except ray.exceptions.RayActorError as exc:
            raise cluster._died(self.host, self.path, exc, handle) from None


def _next(generator: Any) -> Any:
    try:
        return next(generator)
    except StopIteration:
        return None


class Cluster:
    """Runtime hosts on Ray (see the module docs). Use :meth:`start` as an async context
    manager::

        async with Cluster.start(hosts=4) as cluster:
            ref = await cluster.spawn(Counter, name="counter", host=0)
            print(await ref.ask(Get(), timeout=5.0))

    :param hosts: how many hosts (processes).
    :param address: a Ray cluster to join (``"auto"``, ``"ray://head:10001"``); ``None``
        starts a local Ray instance unless Ray is already initialised in this process.
    :param backend: each host's event loop: ``"asyncio"`` or ``"trio"``.
    :param num_cpus: CPUs each host reserves from Ray (1: one process, one core).
    :param max_restarts: a host is restarted at most this many times within ``within``
        seconds; past that it stays down and its refs raise :class:`HostDied`.
    :param ray_options: passed to ``ray.init`` when this cluster starts Ray.
    :param calls_per_host: how many calls a host takes at once (Ray's ``max_concurrency``):
        each call in flight there holds one of its call threads (an ask waiting for its
        reply, a stream, a batch item; the cluster's watcher holds one for good), and more
        wait in Ray's queue. A smaller pool makes each call a little cheaper (a bare Ray
        actor with 128 threads cost 1.02x its one-at-a-time form here, with 1,000 1.11x).
    :param analytics_dir: when given, each host records analytics events
        (:func:`limelight.analytics.initialize` in its process) to its own store,
        ``<analytics_dir>/host-<i>.db``, with its spool in ``<analytics_dir>/spool-host-<i>``;
        a restarted host takes up the same files (and sends what its spool kept). The folder
        is on the hosts' machines (shared storage on a multi-machine cluster).
    """

    def __init__(
        self,
        hosts: int = 2,
        *,
        address: str | None = None,
        backend: str = "asyncio",
        num_cpus: float = 1.0,
        max_restarts: int = DEFAULT_MAX_RESTARTS,
        within: float = DEFAULT_RESTART_WINDOW,
        ray_options: dict[str, Any] | None = None,
        calls_per_host: int = DEFAULT_CALLS_PER_HOST,
        analytics_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if hosts < 1:
            raise ConfigError(f"a cluster needs at least 1 host, got {hosts}")
        if backend not in ("asyncio", "trio"):
            raise ConfigError(f"backend must be 'asyncio' or 'trio', got {backend!r}")
        if max_restarts < 0 or within <= 0:
            raise ConfigError("max_restarts must be >= 0 and within > 0")
        if calls_per_host < 2:
            raise ConfigError(
                f"calls_per_host must be >= 2 (the cluster's watcher holds one call on each "
                f"host for good), got {calls_per_host}"
            )
        self.calls_per_host = calls_per_host
        self.address = address
        self.backend = backend
        self.num_cpus = num_cpus
        self.max_restarts = max_restarts
        self.within = within
        self.ray_options = dict(ray_options or {})
        # Absolute: a host's working directory is not the caller's.
        self.analytics_dir = (
            None if analytics_dir is None else os.path.abspath(os.fspath(analytics_dir))
        )
        self._running = False
        self._slots = [_HostSlot(i) for i in range(hosts)]
        self._remote: Any = None
        self._started_ray = False
        self._task_group: anyio.abc.TaskGroup | None = None
        self._next_host = 0
        self._names = 0
        self._log = structlog.get_logger("limelight.cluster")

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, hosts: int = 2, **options: Any) -> AsyncIterator[Cluster]:
        """Start the hosts (and Ray, when needed); stop them on exit."""
        cluster = cls(hosts, **options)
        async with anyio.create_task_group() as tg:
            cluster._task_group = tg
            try:
                await cluster._start()
                cluster._running = True
                yield cluster
            finally:
                cluster._running = False
                tg.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(cluster._shutdown)

    @property
    def hosts(self) -> int:
        return len(self._slots)

    async def _start(self) -> None:
        if not ray.is_initialized():
            options = {"include_dashboard": False, "log_to_driver": False, **self.ray_options}
            await anyio.to_thread.run_sync(lambda: ray.init(address=self.address, **options))
            self._started_ray = True
        decorate: Any = ray.remote  # typed for functions; a class is what it gets here
        # A threaded actor: each call in flight holds one of Ray's call threads (asks waiting
        # for their replies, streams, the watcher).
        self._remote = decorate(num_cpus=self.num_cpus, max_concurrency=self.calls_per_host)(Host)
        for slot in self._slots:
            await self._launch(slot)
            slot.ready.set()

    async def _launch(self, slot: _HostSlot) -> None:
        """Start a host process in ``slot`` and wait until its Runtime runs."""
        slot.generation += 1
        slot.handle = self._remote.remote(slot.index, self.backend, self.analytics_dir)
        await _get(slot.handle.start.remote())
        watched = slot.handle.watch.remote()
        assert self._task_group is not None
        self._task_group.start_soon(self._watch, slot, slot.generation, watched)

    async def _watch(self, slot: _HostSlot, generation: int, watched: Any) -> None:
        try:
            await _get(watched)
            return  # shut down on purpose
        except ray.exceptions.RayActorError:
            pass
        if slot.generation != generation:
            return
        self._mark_dead(slot)
        await self._restart(slot)

    def _mark_dead(self, slot: _HostSlot) -> None:
        if not slot.dead:
            slot.dead = True
            slot.ready = anyio.Event()

    def _died(self, index: int, path: str, exc: BaseException, handle: Any) -> HostDied:
        slot = self._slots[index]
        if slot.handle is handle:  # a late failure from a host already replaced says nothing
            self._mark_dead(slot)
        return HostDied(
            f"host {index} died with a request to {path} in flight ({type(exc).__name__}); "
            + (
                "it is down for good (restart intensity exceeded)"
                if slot.gave_up
                else "it is being restarted: retry if the request is idempotent"
            ),
            path=path,
            host=index,
        )

    async def _restart(self, slot: _HostSlot) -> None:
        now = time.monotonic()
        while slot.restarts and now - slot.restarts[0] > self.within:
            slot.restarts.popleft()
        if len(slot.restarts) >= self.max_restarts:
            slot.gave_up = True
            slot.ready.set()  # callers waiting learn that it is gone
            return
        slot.restarts.append(now)
        old = slot.actors
        slot.actors = {}
        try:
            await self._launch(slot)
            for name, spawned in old.items():
                if spawned.restart is Restart.TEMPORARY:
                    continue
                await self._spawn_on(slot, spawned)
                slot.actors[name] = spawned
        except Exception as exc:  # Ray could not start it, or it died at once: try again
            self._log.warning("restarting a host failed", host=slot.index, error=repr(exc))
            slot.actors = old
            await self._restart(slot)
            return
        slot.dead = False
        slot.ready.set()

    async def _host(self, index: int, path: str) -> Any:
        """The host's Ray handle once it is up (waiting within the caller's deadline)."""
        slot = self._slots[index]
        while slot.dead and not slot.gave_up:
            await slot.ready.wait()
        if slot.gave_up:
            raise HostDied(
                f"host {index} is down for good (restart intensity exceeded); {path} is gone",
                path=path,
                host=index,
            )
        return slot.handle

    async def spawn(
        self,
        factory: Callable[[], Actor],
        *,
        name: str | None = None,
        host: int | None = None,
        restart: Restart = Restart.PERMANENT,
        **options: Any,
    ) -> RemoteRef:
        """Spawn an actor on a host (round robin when ``host`` is not given) and return its
        :class:`RemoteRef`. ``factory`` makes a fresh actor (a class or a function, picklable
        by Ray); it is called again on a new host after its host died, unless ``restart`` is
        ``TEMPORARY``. ``options`` go to the host's :meth:`Runtime.spawn`.
        """
        if host is None:
            host = self._next_host
            self._next_host = (host + 1) % len(self._slots)
        if not 0 <= host < len(self._slots):
            raise ConfigError(f"host must be in 0..{len(self._slots) - 1}, got {host}")
        if name is None:
            self._names += 1
            name = f"remote-{self._names}"
        slot = self._slots[host]
        spawned = _Spawned(factory, name, {**options, "restart": restart}, restart)
        await self._host(host, f"/{name}")
        await self._spawn_on(slot, spawned)
        slot.actors[name] = spawned
        return RemoteRef(self, host, name)

    async def _spawn_on(self, slot: _HostSlot, spawned: _Spawned) -> None:
        try:
            spawned.path = await _get(
                slot.handle.spawn.remote(spawned.factory, spawned.name, spawned.options)
            )
        except ray.exceptions.RayActorError as exc:
            raise self._died(slot.index, f"/{spawned.name}", exc, slot.handle) from None

    async def pid(self, host: int) -> int:
        """The process id of a host (to watch it, or to kill it in a test)."""
        handle = await self._host(host, "/")
        pid: int = await _get(handle.pid.remote())
        return pid

    def restarts(self, host: int) -> int:
        """How many times a host was restarted within the current window."""
        return len(self._slots[host].restarts)

    async def _run_batch(
        self,
        fn: Callable[[Any], Awaitable[Any]],
        items: Sequence[Any],
        *,
        concurrency: int,
        finished: Callable[[int, bytes], Awaitable[None]],
    ) -> int:
        """The cluster's side of :func:`limelight.batch.run_batch` (its ``Shards``
        protocol): ``concurrency`` workers in all, worker ``w`` on host ``w % hosts``, take
        items from one queue and run each as a call on their host. An item whose host died
        under it goes back to the queue (the host's death is no failure of the item); its
        worker waits for the host's restart, or moves to a host still up when it is down for
        good. Returns how many items went back to the queue.

        :raises ConfigError: the cluster is not running, or ``fn`` or an item cannot be
            pickled.
        :raises HostDied: every host is down for good with items left.
        """
        if not self._running:
            raise ConfigError(
                "run_batch(cluster=...) needs a running cluster: call it inside "
                "`async with Cluster.start(...) as cluster:`"
            )
        if not items:
            return 0
        try:
            pickled = ray.cloudpickle.dumps(fn)  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise ConfigError(
                f"run_batch(cluster=...) sends fn to the hosts, but {fn!r} cannot be pickled "
                f"({type(exc).__name__}: {exc}); define it at module level, or close only "
                "over picklable values (not a lock, an open file, a local Runtime or ActorRef)"
            ) from exc
        # Once in the object store, owned here: it outlives any host, and a restarted host
        # fetches it again.
        fn_ref = await anyio.to_thread.run_sync(ray.put, pickled, limiter=_limiter())
        queue, taken = anyio.create_memory_object_stream[int](math.inf)
        for position in range(len(items)):
            queue.send_nowait(position)
        left = len(items)
        requeued = 0
        failure: Exception | None = None

        async def worker(number: int) -> None:
            nonlocal failure
            try:
                await work(number)
            except Exception as exc:  # raised below, not from the group (no ExceptionGroup)
                failure = failure or exc
                tg.cancel_scope.cancel()

        async def work(number: int) -> None:
            nonlocal left, requeued
            host = number % len(self._slots)
            while True:
                try:
                    handle = await self._host(host, "/batch")
                except HostDied:
                    up = [slot.index for slot in self._slots if not slot.gave_up]
                    if not up:
                        return
                    host = up[number % len(up)]
                    continue
                try:
                    position = await taken.receive()
                except anyio.EndOfStream:
                    return
                if self._slots[host].handle is not handle or self._slots[host].dead:
                    # The host died (or was replaced) while this worker waited for an item:
                    # leave the item to a worker whose host is up.
                    queue.send_nowait(position)
                    continue
                try:
                    call = handle.run_item.remote([fn_ref], items[position])
                except TypeError as exc:  # Ray could not pickle the item
                    raise ConfigError(
                        f"item {position} of the batch cannot be pickled to be sent to a "
                        f"host ({exc}); items of a batch on a cluster must be picklable"
                    ) from exc
                try:
                    outcome: bytes = await _get(call)
                except ray.exceptions.RayActorError as exc:
                    died = self._died(host, "/batch", exc, handle)
                    self._log.warning(
                        "a batch item's host died under it: running it again",
                        host=host,
                        item=position,
                        error=str(died),
                    )
                    requeued += 1
                    queue.send_nowait(position)
                    continue
                await finished(position, outcome)
                left -= 1
                if not left:
                    # All recorded, nothing in flight: stop the workers still waiting for an
                    # item, or for a host's restart.
                    tg.cancel_scope.cancel()

        with queue, taken:
            async with anyio.create_task_group() as tg:
                for number in range(min(concurrency, len(items))):
                    tg.start_soon(worker, number)
        if failure is not None:
            raise failure
        if left:
            raise HostDied(
                f"every host of the cluster is down for good (restart intensity exceeded) "
                f"with {left} of the batch's {len(items)} items not done; those done are in "
                "the checkpoint: run the batch again, with it, to resume",
                path="/batch",
                host=len(self._slots) - 1,
            )
        return requeued

    def _shutdown(self) -> None:
        handles = [slot.handle for slot in self._slots if slot.handle is not None]
        # Each host stops its Runtime (its actors' on_stop run), then its process ends.
        with contextlib.suppress(Exception):
            ray.wait(
                [h.shutdown.remote() for h in handles],
                num_returns=len(handles),
                timeout=_SHUTDOWN_TIMEOUT,
            )
        for handle in handles:
            with contextlib.suppress(Exception):
                ray.kill(handle, no_restart=True)
        if self._started_ray:
            ray.shutdown()
