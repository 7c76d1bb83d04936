"""Provider workers: the path every LLM call takes.

A deployment (one backend + model + key) runs as a supervised pool actor whose children are
``size`` :class:`ProviderWorker` actors sharing the backend (so they share its connection
pool). The caller-side :class:`ProviderPool` hands each request to an idle worker directly,
one hop, with backpressure when all are busy. A worker retries per its :class:`RetryPolicy`
inside the request's deadline, with a cancel scope per attempt, and calls its hooks around
every attempt (the rate limiter and analytics attach there), and counts the usage of every
answer in the process-wide usage tracker. :class:`ModelGroup` fails over between deployments
of the same model.

This is the one path every model call takes: agents, the role router, the sync client, batches
and the benchmark harness all call through a :class:`ProviderPool`.

One module: one path. The worker, the pool actor that supervises the workers, the caller-side
:class:`ProviderPool` and the :class:`ModelGroup` over pools share the request/attempt protocol.
The hooks' types are in :mod:`limelight._instrument`.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Final

import anyio
import msgspec

from .. import _instrument
from .._instrument import Attempt, AttemptHook
from .._timeouts import deadline_after, time_left
from .._usage import TRACKER
from ..errors import (
    AskTimeout,
    BadRequest,
    ConfigError,
    DeadlineExceeded,
    LimelightError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RuntimeNotRunning,
)
from ..providers._base import Provider
from ..runtime import (
    Actor,
    ActorRef,
    Context,
    RetryPolicy,
    Runtime,
    Slots,
    Strategy,
    Supervision,
)
from ..runtime._retry import pushback
from ..schemas import CompletionRequest, CompletionResult, StreamEvent, StreamEventType

if TYPE_CHECKING:
    from ._ratelimit import RateLimitHook

__all__ = [
    "DEFAULT_ATTEMPT_TIMEOUT",
    "DEFAULT_POOL_SIZE",
    "DEFAULT_PROVIDER_RETRY",
    "Attempt",
    "AttemptHook",
    "Complete",
    "ListWorkers",
    "ModelGroup",
    "ProviderPool",
    "ProviderWorker",
    "Stream",
    "USAGE_RUN_KEY",
    "is_retryable_provider_error",
    "limiter_hook",
]

DEFAULT_POOL_SIZE: Final = 64
DEFAULT_ATTEMPT_TIMEOUT: Final = 120.0
#: How long a deployment is skipped by a ModelGroup after a 429 that named no delay.
DEFAULT_COOLDOWN: Final = 5.0
#: The shortest such skip after a 429 that named one: ``Retry-After: 0`` still cools down.
MIN_COOLDOWN: Final = 1.0
#: The request ``metadata`` key naming the :func:`~limelight.usage.usage_run` a call counts
#: under (the role is the ``role`` key).
USAGE_RUN_KEY: Final = "usage_run"


def is_retryable_provider_error(exc: BaseException) -> bool:
    """Retry 429, 408, 409, 5xx, timeouts, connection errors and bad responses (the
    ``retryable`` flag of the project's errors); never 400/401/403/404/422."""
    if isinstance(exc, LimelightError):
        return type(exc).retryable
    return isinstance(exc, (TimeoutError, ConnectionError))


DEFAULT_PROVIDER_RETRY: Final = RetryPolicy(
    attempts=4, initial_delay=0.25, max_delay=20.0, retry_on=is_retryable_provider_error
)


class Complete(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    """Ask a worker for a :class:`CompletionResult`."""

    request: CompletionRequest


class Stream(msgspec.Struct, frozen=True, kw_only=True):
    """Ask a worker for a stream of :class:`StreamEvent`."""

    request: CompletionRequest


class ListWorkers(msgspec.Struct, frozen=True, kw_only=True):
    """Ask a pool's supervisor for the references of its live workers, in start order."""


class ProviderWorker(Actor):
    """Drives one backend call at a time: hooks, per-attempt timeout, retries.

    Provider errors are replies, not crashes: the worker answers with the exception and the
    caller's :class:`ProviderPool` raises it, so a failing provider never restarts workers
    into an escalation. Anything else a worker raises is a bug and crashes it as usual.
    """

    def __init__(
        self,
        provider: Provider,
        *,
        deployment: str,
        retry: RetryPolicy = DEFAULT_PROVIDER_RETRY,
        attempt_timeout: float = DEFAULT_ATTEMPT_TIMEOUT,
        hooks: Sequence[AttemptHook] = (),
    ) -> None:
        self.provider = provider
        self.deployment = deployment
        self.retry = retry
        self.attempt_timeout = attempt_timeout
        self.hooks = tuple(hooks)

    async def handle(self, message: Any, ctx: Context) -> Any:
        match message:
            case Complete(request=request):
                # The policy's loop, written out: one coroutine fewer per call.
                attempt = 1
                try:
                    while True:
                        try:
                            return await self._complete_once(request, attempt)
                        except Exception as exc:
                            await self.retry.wait_to_retry(attempt, exc)
                        attempt += 1
                except LimelightError as exc:
                    # Expected failures (provider errors, deadlines, a hook's ConfigError) are
                    # the caller's to handle: a reply, not a crash of the worker.
                    return exc
            case Stream(request=request):
                return self._stream(request)
        raise TypeError(f"ProviderWorker got an unexpected message {message!r}")

    def _timeout_for(self, request: CompletionRequest) -> float:
        return self.attempt_timeout if request.attempt_timeout is None else request.attempt_timeout

    async def _complete_once(self, request: CompletionRequest, number: int) -> Any:
        hooks = self._active_hooks()
        if not hooks:
            # The common path, without the bookkeeping hooks need.
            timeout = self._timeout_for(request)
            with anyio.move_on_after(timeout):
                answer = await self.provider.complete(request)
                _count_usage(request, answer)
                return answer
            raise ProviderTimeout(
                f"{self.deployment}: no answer within the attempt timeout of {timeout} s"
            )
        attempt = Attempt(
            deployment=self.deployment,
            request=request,
            number=number,
            started=time.perf_counter(),
        )
        await self._before(attempt, hooks)
        result: CompletionResult | None = None
        error: BaseException | None = None
        timeout = self._timeout_for(request)
        try:
            with anyio.move_on_after(timeout) as scope:
                result = await self.provider.complete(request)
            if scope.cancelled_caught:
                error = ProviderTimeout(
                    f"{self.deployment}: no answer within the attempt timeout of {timeout} s"
                )
        except Exception as exc:
            error = exc
        finally:
            if hooks:
                await self._after(attempt, hooks, result, error)
        if error is not None:
            raise error
        assert result is not None
        _count_usage(request, result)
        return result

    def _active_hooks(self) -> tuple[AttemptHook, ...]:
        """The worker's hooks, then those of the registered instrumentation (analytics
        registers its hook there on ``initialize()``), looked up per attempt so that calls
        record events from the moment it runs."""
        active = _instrument.active
        if active is None:
            return self.hooks
        return (*self.hooks, *active.attempt_hooks)

    async def _before(self, attempt: Attempt, hooks: tuple[AttemptHook, ...]) -> None:
        """Every hook's ``before``, in order. If one raises (or the call is cancelled), the
        hooks already passed get their ``after`` with that error: a rate-limit reservation
        made by an earlier hook is given back, never leaked."""
        entered: list[AttemptHook] = []
        try:
            for hook in hooks:
                await hook.before(attempt)
                entered.append(hook)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                for hook in entered:
                    await hook.after(attempt, None, exc if isinstance(exc, Exception) else None)
            raise

    async def _after(
        self,
        attempt: Attempt,
        hooks: tuple[AttemptHook, ...],
        result: CompletionResult | None,
        error: BaseException | None,
    ) -> None:
        # Shielded: a limiter's refund must happen even when the caller was cancelled.
        with anyio.CancelScope(shield=True):
            for hook in hooks:
                await hook.after(attempt, result, error)

    async def _stream(self, request: CompletionRequest) -> AsyncIterator[Any]:
        """Stream with retries as long as nothing has been yielded yet: once tokens reached
        the caller, a failure ends the stream with the error (a retry would repeat them).
        Whether and when to retry is the policy's decision, as for a completion."""
        number = 0
        while True:
            number += 1
            attempt = Attempt(
                deployment=self.deployment,
                request=request,
                number=number,
                started=time.perf_counter(),
            )
            hooks = self._active_hooks()
            try:
                await self._before(attempt, hooks)
            except LimelightError as exc:
                # A hook's refusal (the limiter's deadline, say) is the caller's to handle, as
                # for a completion: a reply, not a crash of the worker.
                yield exc
                return
            yielded = False
            result: CompletionResult | None = None
            error: Exception | None = None
            events = self.provider.stream(request)
            timed = _with_first_token_timeout(events, self._timeout_for(request), self.deployment)
            try:
                async for event in timed:
                    if event.type is StreamEventType.DONE and event.result is not None:
                        result = event.result
                        _count_usage(request, result)
                    yielded = True
                    yield event
            except Exception as exc:
                error = exc
            finally:
                # Both generators are closed here, not when collected: a caller that leaves
                # early would otherwise leave them to the garbage collector (trio warns).
                await timed.aclose()
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    await aclose()
                if hooks:
                    await self._after(attempt, hooks, result, error)
            if error is None:
                return
            if not yielded:
                try:
                    # The policy's delay (a server's delay lengthens the backoff, never
                    # shortens it), never sleeping past the deadline; or its refusal.
                    await self.retry.wait_to_retry(number, error)
                    continue
                except Exception as exc:
                    error = exc
            if isinstance(error, LimelightError):
                yield error
                return
            raise error


def _count_usage(request: CompletionRequest, result: CompletionResult) -> None:
    """Count an answer in the process-wide usage tracker, under the ``role`` and the usage
    run (:data:`USAGE_RUN_KEY`) its request's metadata names."""
    usage = result.usage
    if usage is None or not TRACKER.enabled:
        return
    metadata = request.metadata
    TRACKER.record(
        usage,
        model=result.model or request.model,
        role=metadata.get("role"),
        run_id=metadata.get(USAGE_RUN_KEY),
        cost=result.cost,
        cached_tokens=usage.cached_tokens,
    )


async def _with_first_token_timeout(
    events: AsyncIterator[StreamEvent], timeout: float, deployment: str
) -> AsyncGenerator[StreamEvent, None]:
    """The attempt timeout bounds the wait for each event, not the whole stream (a long
    answer may legitimately stream for minutes). No yield happens inside the cancel scope."""
    iterator = aiter(events)
    while True:
        with anyio.move_on_after(timeout) as scope:
            try:
                event = await anext(iterator)
            except StopAsyncIteration:
                return
        if scope.cancelled_caught:
            raise ProviderTimeout(f"{deployment}: no stream event within {timeout} s")
        yield event


class _PoolActor(Actor):
    """The deployment's supervisor: starts the workers, closes the backend when stopped
    (unless its owner keeps it)."""

    def __init__(
        self,
        provider: Provider,
        size: int,
        worker_options: dict[str, Any],
        *,
        close_provider: bool = True,
    ) -> None:
        self.provider = provider
        self.size = size
        self.worker_options = worker_options
        self.close_provider = close_provider

    async def on_start(self, ctx: Context) -> None:
        for i in range(1, self.size + 1):
            await ctx.spawn(
                ProviderWorker(self.provider, **self.worker_options),
                name=f"worker-{i}",
                mailbox_size=4,
            )

    async def handle(self, message: Any, ctx: Context) -> Any:
        match message:
            case ListWorkers():
                return ctx.children
        raise TypeError(f"provider pool got an unexpected message {message!r}")

    async def on_stop(self, ctx: Context) -> None:
        if self.close_provider:
            await self.provider.aclose()


class ProviderPool:
    """The caller's handle to one deployment's pool of workers.

    Start one with :meth:`start`; it lives until the runtime stops or :meth:`stop` is called.
    Each call leases an idle worker (waiting while all ``size`` are busy: that is the
    deployment's concurrency limit), asks it, and gives it back. A call's deadline (its
    ``timeout`` and any enclosing one) covers every wait on its behalf: for a free worker,
    for the rate limiter, retries and their backoff.
    """

    def __init__(
        self,
        name: str,
        supervisor: ActorRef,
        workers: Sequence[ActorRef],
        model: str,
    ) -> None:
        self.name = name
        self.model = model
        self.supervisor = supervisor
        self.cooldown_until = 0.0
        self._workers = tuple(workers)
        # Idle workers, and a semaphore counting them: a caller waits while all are busy.
        self._idle = deque(workers)
        self._free = Slots(len(workers))

    @classmethod
    async def start(
        cls,
        host: Runtime | Context,
        provider: Provider,
        *,
        name: str,
        deployment: str | None = None,
        model: str = "",
        size: int = DEFAULT_POOL_SIZE,
        retry: RetryPolicy = DEFAULT_PROVIDER_RETRY,
        attempt_timeout: float = DEFAULT_ATTEMPT_TIMEOUT,
        hooks: Sequence[AttemptHook] = (),
        supervision: Supervision | None = None,
        close_provider: bool = True,
    ) -> ProviderPool:
        """Spawn the deployment's supervisor and ``size`` workers: under the runtime, at
        ``/<name>``, or as a child of the actor whose context ``host`` is (an agent's pool).

        :param deployment: the deployment's name, as hooks see it (the rate limiter's quotas
            are per deployment); default ``name`` under a runtime, the pool's path under an
            actor.
        :param model: the model this deployment serves, filled into requests that name none.
        :param attempt_timeout: seconds allowed for one attempt (for a stream: between two
            events); a request's own ``attempt_timeout`` overrides it. See
            :mod:`limelight._timeouts`.
        :param close_provider: close ``provider`` when the pool stops (``False`` when its
            owner closes it).
        """
        if size < 1:
            raise ConfigError(f"pool size must be >= 1, got {size}")
        if attempt_timeout <= 0:
            raise ConfigError(f"attempt_timeout must be > 0, got {attempt_timeout}")
        if deployment is None:
            deployment = name if isinstance(host, Runtime) else f"{host.path}/{name}"
        options = {
            "deployment": deployment,
            "retry": retry,
            "attempt_timeout": attempt_timeout,
            "hooks": tuple(hooks),
        }
        supervisor = await host.spawn(
            _PoolActor(provider, size, options, close_provider=close_provider),
            name=name,
            supervision=supervision
            or Supervision(strategy=Strategy.ONE_FOR_ONE, max_restarts=size * 3, within=10.0),
        )
        workers = await supervisor.ask(ListWorkers())
        return cls(deployment, supervisor, workers, model)

    @property
    def size(self) -> int:
        return len(self._workers)

    @property
    def workers(self) -> tuple[ActorRef, ...]:
        """The workers' references, in start order."""
        return self._workers

    def idle(self) -> int:
        """Workers free right now."""
        return len(self._idle)

    def cooling_down(self) -> bool:
        return anyio.current_time() < self.cooldown_until

    def _prepare(self, request: CompletionRequest) -> CompletionRequest:
        if self.model and not request.model:
            return msgspec.structs.replace(request, model=self.model)
        return request

    async def complete(
        self, request: CompletionRequest, *, timeout: float | None = None
    ) -> CompletionResult:
        """One completion, retried per the deployment's policy within ``timeout`` (and any
        enclosing deadline), the wait for a free worker included.

        ``timeout`` is the call's deadline, in seconds (see :mod:`limelight._timeouts`).

        :raises ProviderError: the call failed (the subclass says how) after the retries.
        :raises DeadlineExceeded: no time was left for the next retry (or, as
            :class:`~limelight.actors.RateLimitTimeout`, for rate-limit capacity).
        :raises AskTimeout: ``timeout`` passed (waiting for a free worker, or for the answer).
        """
        request = self._prepare(request)
        deadline = deadline_after(timeout)
        worker = await self._lease(deadline, timeout)
        left = time_left(deadline)
        try:
            reply = await worker.ask(Complete(request=request), timeout=left)
        except AskTimeout as exc:
            self._note_wait(exc, timeout, left)
            raise
        finally:
            self._release(worker)
        if isinstance(reply, BaseException):
            self._note_failure(reply)
            raise reply
        assert isinstance(reply, CompletionResult)
        return reply

    async def stream(
        self, request: CompletionRequest, *, timeout: float | None = None
    ) -> AsyncIterator[StreamEvent]:
        """A streamed completion: TOKEN, TOOL_CALL, USAGE events, then DONE with the result.

        Retried while nothing has been streamed yet; a failure after the first event ends the
        stream with the error raised. ``timeout`` covers the whole stream, the wait for a free
        worker included (:class:`AskTimeout` when it passes).
        """
        request = self._prepare(request)
        deadline = deadline_after(timeout)
        worker = await self._lease(deadline, timeout)
        left = time_left(deadline)
        try:
            async with worker.stream(Stream(request=request), timeout=left) as replies:
                async for item in replies:
                    if isinstance(item, BaseException):
                        self._note_failure(item)
                        raise item
                    yield item
        except AskTimeout as exc:
            self._note_wait(exc, timeout, left)
            raise
        finally:
            self._release(worker)

    async def _lease(self, deadline: float, timeout: float | None) -> ActorRef:
        """An idle worker, waiting in line while all are busy, until ``deadline`` (the call's
        own, from ``timeout``; an enclosing deadline cancels the wait itself). A waiter that
        leaves, handed a worker or not, leaks no lease (:class:`Slots` passes it on)."""
        free = self._free
        if deadline == math.inf:
            await free.acquire()
            return self._idle.popleft()
        started = anyio.current_time()
        with anyio.move_on_at(deadline):
            await free.acquire()
            return self._idle.popleft()
        raise AskTimeout(
            f"waited {anyio.current_time() - started:.1f} s for a free worker of pool "
            f"{self.name} ({self.size - len(self._idle)} busy, {free.waiting} queued) and "
            f"the timeout of {timeout} s passed; the call was not sent. Allow a longer "
            "timeout, send less at once or give the pool more workers",
            path=self.supervisor.path,
        )

    def _note_wait(self, error: AskTimeout, timeout: float | None, left: float | None) -> None:
        """Say on a worker's timeout how much of the caller's went to waiting for it."""
        if timeout is not None and left is not None and left < timeout:
            error.add_note(
                f"{timeout - left:.3f} s of the call's timeout of {timeout} s went to waiting "
                f"for a free worker of pool {self.name}"
            )

    def _release(self, worker: ActorRef) -> None:
        if worker.alive:
            self._idle.append(worker)
            self._free.release()

    def _note_failure(self, error: BaseException) -> None:
        if isinstance(error, RateLimited):
            if error.retry_after is None:
                delay = DEFAULT_COOLDOWN
            else:
                delay = pushback(error.retry_after, MIN_COOLDOWN)
            self.cooldown_until = max(self.cooldown_until, anyio.current_time() + delay)

    async def stop(self) -> None:
        """Stop the workers and close the backend."""
        await self.supervisor.stop()


def limiter_hook(limiter: ActorRef | RateLimitHook) -> tuple[AttemptHook, Runtime]:
    """The attempt hook through which a pool uses ``limiter`` (a
    :class:`~limelight.actors.RateLimiter`'s reference, or a
    :class:`~limelight.actors.RateLimitHook` on one), and the runtime the limiter runs in.
    A pool using the limiter must run in that runtime too: an actor's mailbox belongs to its
    runtime's event loop. For the facades that take ``limiter=`` (the role router, the sync
    client, the benchmark harness).

    :raises ConfigError: ``limiter`` is neither.
    :raises RuntimeNotRunning: the limiter's runtime has stopped.
    """
    from ._ratelimit import RateLimitHook

    if isinstance(limiter, RateLimitHook):
        hook, ref = limiter, limiter.limiter
    elif isinstance(limiter, ActorRef):
        hook, ref = RateLimitHook(limiter), limiter
    else:
        raise ConfigError(
            "limiter= takes a RateLimiter's reference (await RateLimiter.start(runtime)) or a "
            f"RateLimitHook on one, got {type(limiter).__name__}"
        )
    runtime = ref.runtime
    if not runtime.running or not ref.alive:
        raise RuntimeNotRunning(
            f"the rate limiter {ref.path} has stopped (or its runtime has): start a new one"
        )
    return hook, runtime


class ModelGroup:
    """Deployments of the same model, tried in order: one cooling down after a 429 is
    skipped, and a call that failed on one deployment (after its own retries) with a
    retryable error moves on to the next. A request error (400, 401, ...) is raised at once.
    """

    def __init__(self, pools: Sequence[ProviderPool]) -> None:
        if not pools:
            raise ConfigError("a ModelGroup needs at least one ProviderPool")
        self.pools = tuple(pools)

    def _order(self) -> list[ProviderPool]:
        ready = [p for p in self.pools if not p.cooling_down()]
        cooling = sorted(
            (p for p in self.pools if p.cooling_down()), key=lambda p: p.cooldown_until
        )
        return ready + cooling

    async def complete(
        self, request: CompletionRequest, *, timeout: float | None = None
    ) -> CompletionResult:
        """One completion from the first deployment that answers, all within ``timeout``
        (and any enclosing deadline).

        ``timeout`` is the call's deadline, in seconds (see :mod:`limelight._timeouts`).

        :raises ProviderError: every deployment failed; the last error, with the others
            noted on it.
        :raises DeadlineExceeded: ``timeout`` passed, or no time was left for a retry.
        """
        deadline = deadline_after(timeout)
        failures: list[str] = []
        last: LimelightError | None = None
        for pool in self._order():
            try:
                return await pool.complete(request, timeout=time_left(deadline))
            except (BadRequest, ConfigError):
                raise
            except AskTimeout as exc:
                # The deadline passed: no time is left for another deployment.
                within = "its deadline" if timeout is None else f"the timeout of {timeout} s"
                error = DeadlineExceeded(
                    f"model group ({', '.join(p.name for p in self.pools)}): no answer within "
                    f"{within}; at the deadline: {exc}"
                )
                for note in failures:
                    error.add_note(f"failed over from {note}")
                raise error from exc
            except (ProviderError, DeadlineExceeded) as exc:
                failures.append(f"{pool.name}: {type(exc).__name__}: {exc}")
                last = exc
                if anyio.current_time() >= deadline:
                    break
        assert last is not None
        for note in failures[:-1]:
            last.add_note(f"failed over from {note}")
        raise last
