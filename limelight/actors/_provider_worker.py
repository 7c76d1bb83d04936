"""Provider workers: the path every LLM call takes.

A deployment (one backend + model + key) runs as a supervised pool actor whose children are
``size`` :class:`ProviderWorker` actors sharing the backend (so they share its connection
pool). The caller-side :class:`ProviderPool` leases an idle worker to each call, with
backpressure when all are busy, and the worker's call runs in the caller's task: no hop to
the worker and back (per event, for a stream), while the worker's stop still interrupts it
and a bug in it still crashes the worker. A worker retries per its :class:`RetryPolicy`
inside the call's deadline, bounds each attempt by its attempt timeout (with a cancel scope,
or through the backend when it bounds its own waits more cheaply), calls its hooks around
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

import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.to_thread
import msgspec

from .. import _instrument
from .._instrument import Attempt, AttemptHook
from .._models import load_price_lists
from .._timeouts import deadline_after, time_left
from .._usage import TRACKER
from ..errors import (
    ActorCrashed,
    ActorStopped,
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


class _CrashReport(msgspec.Struct, frozen=True, kw_only=True):
    """Told to a worker by the caller it was leased to: the call raised ``error``, a bug (not
    a provider error). The worker raises it, so that its supervisor sees the crash."""

    error: Exception


class ProviderWorker(Actor):
    """Drives one backend call at a time: hooks, per-attempt timeout, retries.

    A :class:`ProviderPool` leases a worker to one caller at a time, and the call runs in the
    caller's task (:meth:`call`, :meth:`events`): the deadline of whoever waits is then the
    call's own, without a hop to the worker's task and back (and, for a stream, per event).
    The worker stays the unit the pool supervises: its stop (or the pool's) interrupts the
    call it is leased for (:class:`~limelight.errors.ActorStopped`), and a bug in a call
    crashes it, as if it had run the call itself. (Where the backend bounds its own waits
    and the call has no deadline of its own, no cancel scope waits with it: an answer, or a
    stream's next event, then ends when the pool closes the backend, or arrives and ends
    the call.)
    Asked directly (``Complete``, ``Stream``), it runs the call in its own task.

    Provider errors are replies, not crashes: the caller gets the exception, so a failing
    provider never restarts workers into an escalation. Anything else raised in a call is a
    bug: the caller gets :class:`~limelight.errors.ActorCrashed` and the worker crashes.
    """

    #: Non-resident: its calls run in its callers' tasks, so it is idle nearly all its life,
    #: and a pool of thousands (one worker per call in flight) would otherwise hold a task
    #: each (see :attr:`~limelight.runtime.Actor.resident`).
    resident = False

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
        #: The worker's reference (set when it starts).
        self.ref: ActorRef | None = None
        self.path = ""
        # A backend whose streams bound each wait for data themselves (OpenAICompatible: the
        # transport's read timeout) is trusted with it: no cancel scope per stream event.
        self._bounds_event_waits = bool(getattr(provider, "bounds_event_waits", False))
        # The scope of what the leased call awaits now, cancelled if the worker stops.
        self._waiting: anyio.CancelScope | None = None
        self._stopped = False
        self._crash_reported = False

    async def on_start(self, ctx: Context) -> None:
        self.ref = ctx.self
        self.path = ctx.path
        self._stopped = False
        self._crash_reported = False

    async def on_stop(self, ctx: Context) -> None:
        if self._crash_reported:
            return  # restarting after a crash its caller reported: that call has ended
        self._stopped = True
        if self._waiting is not None:
            self._waiting.cancel()

    async def handle(self, message: Any, ctx: Context) -> Any:
        match message:
            case Complete(request=request):
                try:
                    return await self._complete(request, math.inf, None, leased=False)
                except LimelightError as exc:
                    # Expected failures (provider errors, deadlines, a hook's ConfigError) are
                    # the caller's to handle: a reply, not a crash of the worker.
                    return exc
            case Stream(request=request):
                return self._stream(request, math.inf, None, leased=False)
            case _CrashReport(error=error):
                self._crash_reported = True
                raise error
        raise TypeError(f"ProviderWorker got an unexpected message {message!r}")

    # -- a call, in the caller's task ------------------------------------------------------

    async def call(
        self, request: CompletionRequest, deadline: float = math.inf, timeout: float | None = None
    ) -> CompletionResult:
        """One completion, retried per the policy, run in the calling task for the caller
        the worker is leased to (:class:`ProviderPool` does the leasing).

        :param deadline: the call's own deadline (``anyio.current_time()`` clock); an
            enclosing one applies as well.
        :param timeout: the seconds ``deadline`` allowed, for the message of its expiry.
        :raises ProviderError: the call failed (the subclass says how) after the retries.
        :raises AskTimeout: ``deadline`` passed.
        :raises ActorStopped: the worker stopped before or during the call.
        :raises ActorCrashed: a bug (the worker crashes as well).
        """
        if deadline == math.inf:
            answering = self._begin(request)
            if answering is not None:
                try:
                    answer = await answering
                except Exception as exc:
                    return await self._after_first(request, exc)
                _count_usage(request, answer)
                return answer
        if self._stopped:
            raise self._stopped_error(None)
        if self.hooks or _instrument.active is not None:
            return await self._leased_complete(request, deadline, timeout, None)
        # The first attempt under a scope of its own: the call's deadline, and the attempt
        # timeout unless the backend bounds it.
        limit = self._timeout_for(request)
        failed: Exception
        until, answering = self._attempt(request, limit, deadline)
        scope = self._scope(until, True)
        try:
            with scope:
                answer = await answering
        except Exception as exc:
            failed = exc
        else:
            if not scope.cancelled_caught:
                _count_usage(request, answer)
                return answer
            failed = self._cut_short("Complete", deadline, timeout, _no_answer(limit))
        finally:
            self._waiting = None
        if isinstance(failed, (AskTimeout, ActorStopped)):
            raise failed
        return await self._leased_complete(request, deadline, timeout, failed)

    def _begin(self, request: CompletionRequest) -> Awaitable[CompletionResult] | None:
        """The common call's first attempt started (no deadline of its own, no hooks, a
        backend that bounds its attempts), or ``None`` where :meth:`call` must go its longer
        way. Nothing to time here, so no cancel scope (on asyncio it costs as much as a tenth
        of the call): the backend bounds the attempt, and a stop ends the call when the pool
        closes the backend (its connections with it). Await the answer, count it
        (:func:`_count_usage`), or hand a failure to :meth:`_after_first`; the pool does this
        itself, one coroutine fewer alive across the model's wait."""
        if self._stopped or self.hooks or _instrument.active is not None:
            return None
        provider: Any = self.provider
        if not getattr(provider, "bounds_attempts", False):
            return None
        answering: Awaitable[CompletionResult] = provider.complete(
            request, total_timeout=self._timeout_for(request)
        )
        return answering

    async def _after_first(self, request: CompletionRequest, failed: Exception) -> CompletionResult:
        """A call begun by :meth:`_begin` whose first attempt ``failed``: the retries."""
        if self._stopped:
            raise self._stopped_error("Complete") from failed
        return await self._leased_complete(request, math.inf, None, failed)

    async def _leased_complete(
        self,
        request: CompletionRequest,
        deadline: float,
        timeout: float | None,
        failed: Exception | None,
    ) -> CompletionResult:
        """:meth:`call` past its common path: with hooks, or retrying after the first
        attempt ``failed``."""
        try:
            if failed is not None:
                await self._wait_to_retry(1, failed, deadline, timeout, True, "Complete")
            return await self._complete(
                request, deadline, timeout, leased=True, first=1 if failed is None else 2
            )
        except LimelightError:
            raise
        except Exception as exc:
            raise self._crashed(exc, "Complete") from exc

    def events(
        self, request: CompletionRequest, deadline: float = math.inf, timeout: float | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        """A streamed completion run in the calling task (see :meth:`call`): TOKEN,
        TOOL_CALL, USAGE events, then DONE with the result; failures are raised. Close it
        (``aclose``) when leaving early."""
        return self._stream(request, deadline, timeout, leased=True)

    # -- the attempts ----------------------------------------------------------------------

    def _timeout_for(self, request: CompletionRequest) -> float:
        return self.attempt_timeout if request.attempt_timeout is None else request.attempt_timeout

    def _attempt(
        self, request: CompletionRequest, limit: float, deadline: float
    ) -> tuple[float, Coroutine[Any, Any, CompletionResult]]:
        """One try at the backend, not started yet, and the deadline of the scope to await
        it in: the call's, and the attempt timeout's unless the backend bounds the attempt
        itself more cheaply (``bounds_attempts``: it gets ``total_timeout``)."""
        if getattr(self.provider, "bounds_attempts", False):
            complete: Any = self.provider.complete
            return deadline, complete(request, total_timeout=limit)
        return min(anyio.current_time() + limit, deadline), self.provider.complete(request)

    def _scope(self, deadline: float, leased: bool) -> anyio.CancelScope:
        """A scope for one wait of a call; a leased call's is the one the worker's stop
        cancels."""
        scope = anyio.CancelScope(deadline=deadline)
        if leased:
            self._waiting = scope
            if self._stopped:  # stopped between two waits: this one ends at once
                scope.cancel()
        return scope

    def _cut_short(
        self, what: str, deadline: float, timeout: float | None, attempt_error: str
    ) -> Exception:
        """Why a wait of a call was cancelled by its own scope: the worker stopped, the
        call's deadline passed, or else the attempt timed out (``attempt_error`` says how)."""
        if self._stopped:
            return self._stopped_error(what)
        if anyio.current_time() >= deadline:
            return AskTimeout(
                f"call {what} on {self.path} timed out after {timeout} s", path=self.path
            )
        return ProviderTimeout(f"{self.deployment}: {attempt_error}")

    def _interrupt(self, what: str) -> None:
        """The worker stopped during a leased call: end it."""
        raise self._stopped_error(what)

    async def _next_event(
        self,
        iterator: AsyncIterator[StreamEvent],
        limit: float,
        deadline: float,
        timeout: float | None,
        leased: bool,
    ) -> StreamEvent | None:
        """The stream's next event (None at its end), waited for under a scope: at most
        ``limit`` seconds (the attempt timeout), and not past the call's deadline."""
        scope = self._scope(min(anyio.current_time() + limit, deadline), leased)
        event: StreamEvent | None = None
        try:
            with scope:
                try:
                    event = await anext(iterator)
                except StopAsyncIteration:
                    return None
        finally:
            if leased:
                self._waiting = None
        if scope.cancelled_caught:
            raise self._cut_short("Stream", deadline, timeout, f"no stream event within {limit} s")
        return event

    def _stopped_error(self, what: str | None) -> ActorStopped:
        if what is None:
            return ActorStopped(f"actor {self.path} has stopped", path=self.path)
        return ActorStopped(f"actor {self.path} was stopped while handling {what}", path=self.path)

    def _crashed(self, error: Exception, what: str) -> ActorCrashed:
        """Report a bug in a leased call to the worker (which crashes with it, under its
        supervisor) and return the error its caller gets."""
        if self.ref is not None:
            with contextlib.suppress(LimelightError):  # stopped, or its mailbox full
                self.ref.tell_nowait(_CrashReport(error=error))
        described = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        return ActorCrashed(
            f"actor {self.path} crashed handling {what}: {described}", path=self.path, cause=error
        )

    async def _complete(
        self,
        request: CompletionRequest,
        deadline: float,
        timeout: float | None,
        *,
        leased: bool,
        first: int = 1,
    ) -> CompletionResult:
        # The policy's loop, written out: one coroutine fewer per call.
        attempt = first
        while True:
            try:
                return await self._complete_once(request, attempt, deadline, timeout, leased)
            except (AskTimeout, ActorStopped):
                raise  # the call ended: nothing to retry
            except Exception as exc:
                await self._wait_to_retry(attempt, exc, deadline, timeout, leased, "Complete")
            attempt += 1

    async def _wait_to_retry(
        self,
        number: int,
        error: Exception,
        deadline: float,
        timeout: float | None,
        leased: bool,
        what: str,
    ) -> None:
        """The policy's delay (a server's delay lengthens the backoff, never shortens it),
        never sleeping past the deadline; or its refusal, raised."""
        scope = self._scope(deadline, leased)
        try:
            with scope:
                await self.retry.wait_to_retry(number, error)
        finally:
            if leased:
                self._waiting = None
        if scope.cancelled_caught:
            raise self._cut_short(what, deadline, timeout, "stopped")

    async def _complete_once(
        self,
        request: CompletionRequest,
        number: int,
        deadline: float,
        timeout: float | None,
        leased: bool,
    ) -> CompletionResult:
        hooks = self._active_hooks()
        limit = self._timeout_for(request)
        if not hooks:
            # The common path, without the bookkeeping hooks need.
            until, answering = self._attempt(request, limit, deadline)
            scope = self._scope(until, leased)
            try:
                with scope:
                    answer = await answering
            finally:
                if leased:
                    self._waiting = None
            if scope.cancelled_caught:
                raise self._cut_short(
                    "Complete",
                    deadline,
                    timeout,
                    f"no answer within the attempt timeout of {limit} s",
                )
            _count_usage(request, answer)
            return answer
        attempt = Attempt(
            deployment=self.deployment,
            request=request,
            number=number,
            started=time.perf_counter(),
        )
        # The hooks' waits (the rate limiter's) are bounded by the call's deadline, the
        # backend's answer by the attempt timeout as well.
        scope = self._scope(deadline, leased)
        entered = False
        result: CompletionResult | None = None
        error: BaseException | None = None
        try:
            with scope:
                await self._before(attempt, hooks)
                entered = True
                until, answering = self._attempt(request, limit, deadline)
                scope.deadline = until
                try:
                    result = await answering
                except Exception as exc:
                    error = exc
            if scope.cancelled_caught:
                cut = self._cut_short(
                    "Complete",
                    deadline,
                    timeout,
                    f"no answer within the attempt timeout of {limit} s",
                )
                if isinstance(cut, ProviderTimeout):
                    error = cut  # the attempt failed; the hooks hear how
                else:
                    raise cut  # the call ended: the hooks hear it as a cancellation
        finally:
            if leased:
                self._waiting = None
            if entered:
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

    async def _stream(
        self, request: CompletionRequest, deadline: float, timeout: float | None, *, leased: bool
    ) -> AsyncGenerator[Any, None]:
        """Stream with retries as long as nothing has been yielded yet: once tokens reached
        the caller, a failure ends the stream with the error (a retry would repeat them).
        Whether and when to retry is the policy's decision, as for a completion.

        Leased (in the caller's task), failures are raised; asked (the worker's own stream
        of replies), provider errors are yielded as the last item, and a bug crashes it.
        Nothing is yielded inside a cancel scope: a scope bounds each wait for an event
        (the first one only, when the backend bounds the others itself and the call has no
        deadline of its own).
        """
        if leased and self._stopped:
            raise self._stopped_error(None)
        number = 0
        while True:
            number += 1
            hooks = self._active_hooks()
            limit = self._timeout_for(request)
            attempt: Attempt | None = None
            if hooks:
                attempt = Attempt(
                    deployment=self.deployment,
                    request=request,
                    number=number,
                    started=time.perf_counter(),
                )
                scope = self._scope(deadline, leased)
                try:
                    with scope:
                        await self._before(attempt, hooks)
                except LimelightError as exc:
                    # A hook's refusal (the limiter's deadline, say) is the caller's to
                    # handle, as for a completion: a reply, not a crash of the worker.
                    if leased:
                        raise
                    yield exc
                    return
                finally:
                    if leased:
                        self._waiting = None
                if scope.cancelled_caught:
                    raise self._cut_short("Stream", deadline, timeout, "stopped")
            yielded = False
            result: CompletionResult | None = None
            error: Exception | None = None
            # Past the first event, the backend bounds each wait itself if it can, unless
            # the call's own deadline must cut a wait short.
            trusted = self._bounds_event_waits and deadline == math.inf
            if trusted:
                events = self.provider.stream(request, event_timeout=limit)  # type: ignore[call-arg]
            else:
                events = self.provider.stream(request)
            try:
                iterator = aiter(events)
                while True:
                    if yielded and trusted:
                        # The rest of the stream, straight from the backend.
                        async for event in iterator:
                            if event.type is _DONE and event.result is not None:
                                result = event.result
                                _count_usage(request, result)
                            yield event
                            if leased and self._stopped:
                                self._interrupt("Stream")
                        break
                    timed = await self._next_event(iterator, limit, deadline, timeout, leased)
                    if timed is None:
                        break
                    if timed.type is _DONE and timed.result is not None:
                        result = timed.result
                        _count_usage(request, result)
                    yielded = True
                    yield timed
                    if leased and self._stopped:
                        self._interrupt("Stream")
            except (AskTimeout, ActorStopped):
                # The call ended (its deadline, the worker's stop): the hooks hear it as a
                # cancellation, and there is nothing to retry.
                raise
            except Exception as exc:
                error = exc
            finally:
                # The backend's generator is closed here, not when collected: a caller that
                # leaves early would otherwise leave it to the garbage collector (trio warns).
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    await aclose()
                if attempt is not None:
                    await self._after(attempt, hooks, result, error)
            if error is None:
                return
            if leased and self._stopped:
                raise self._stopped_error("Stream") from error
            if not yielded:
                try:
                    await self._wait_to_retry(number, error, deadline, timeout, leased, "Stream")
                    continue
                except (AskTimeout, ActorStopped):
                    raise
                except Exception as exc:
                    error = exc
            if isinstance(error, LimelightError):
                if leased:
                    raise error
                yield error
                return
            if leased:
                raise self._crashed(error, "Stream") from error
            raise error


_DONE: Final = StreamEventType.DONE


def _no_answer(limit: float) -> str:
    return f"no answer within the attempt timeout of {limit} s"


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
        #: The workers of the current incarnation, in start order.
        self.workers: list[ProviderWorker] = []

    async def on_start(self, ctx: Context) -> None:
        self.workers = []
        for i in range(1, self.size + 1):
            worker = ProviderWorker(self.provider, **self.worker_options)
            await ctx.spawn(worker, name=f"worker-{i}", mailbox_size=4)
            self.workers.append(worker)

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
    deployment's concurrency limit), runs the worker's call in the caller's task (see
    :class:`ProviderWorker`), and gives it back. A call's deadline (its ``timeout`` and any
    enclosing one) covers every wait on its behalf: for a free worker, for the rate limiter,
    retries and their backoff.
    """

    def __init__(
        self,
        name: str,
        supervisor: ActorRef,
        workers: Sequence[ProviderWorker],
        model: str,
    ) -> None:
        self.name = name
        self.model = model
        self.supervisor = supervisor
        self.cooldown_until = 0.0
        self._workers = tuple(workers)
        self._refs = tuple(w.ref for w in workers if w.ref is not None)
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
        # The first answer's cost lookup would read the price lists on the event loop,
        # holding up every other call for ~150 ms: read them now, off the loop.
        await anyio.to_thread.run_sync(load_price_lists)
        pool = _PoolActor(provider, size, options, close_provider=close_provider)
        supervisor = await host.spawn(
            pool,
            name=name,
            supervision=supervision
            or Supervision(strategy=Strategy.ONE_FOR_ONE, max_restarts=size * 3, within=10.0),
        )
        # spawn() returned once on_start had spawned (and started) every worker.
        return cls(deployment, supervisor, pool.workers, model)

    @property
    def size(self) -> int:
        return len(self._workers)

    @property
    def workers(self) -> tuple[ActorRef, ...]:
        """The workers' references, in start order."""
        return self._refs

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
        if timeout is None:
            worker = await self._lease(math.inf, None)
            try:
                # ProviderWorker.call's common path, written out: its coroutine would stay
                # alive (tracked by the collector) across the whole model wait.
                answering = worker._begin(request)
                if answering is None:
                    return await worker.call(request)
                try:
                    answer = await answering
                except Exception as exc:
                    return await worker._after_first(request, exc)
                _count_usage(request, answer)
                return answer
            except RateLimited as exc:
                self._note_failure(exc)
                raise
            finally:
                self._release(worker)
        deadline = anyio.current_time() + timeout
        worker = await self._lease(deadline, timeout)
        left = time_left(deadline)
        try:
            return await worker.call(request, deadline, left)
        except AskTimeout as exc:
            self._note_wait(exc, timeout, left)
            raise
        except RateLimited as exc:
            self._note_failure(exc)
            raise
        finally:
            self._release(worker)

    async def stream(
        self, request: CompletionRequest, *, timeout: float | None = None
    ) -> AsyncIterator[StreamEvent]:
        """A streamed completion: TOKEN, TOOL_CALL, USAGE events, then DONE with the result.

        Retried while nothing has been streamed yet; a failure after the first event ends the
        stream with the error raised. ``timeout`` covers the whole stream, the wait for a free
        worker included (:class:`AskTimeout` when it passes). Close the stream (``aclose``)
        when leaving it early: it holds a leased worker.
        """
        request = self._prepare(request)
        deadline = deadline_after(timeout)
        worker = await self._lease(deadline, timeout)
        left = time_left(deadline)
        events = worker.events(request, deadline, left)
        try:
            async for event in events:
                yield event
        except AskTimeout as exc:
            self._note_wait(exc, timeout, left)
            raise
        except RateLimited as exc:
            self._note_failure(exc)
            raise
        finally:
            await events.aclose()
            self._release(worker)

    async def _lease(self, deadline: float, timeout: float | None) -> ProviderWorker:
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
        """Say on a call's timeout how much of it went to waiting for a free worker."""
        if timeout is not None and left is not None and left < timeout:
            error.add_note(
                f"{timeout - left:.3f} s of the call's timeout of {timeout} s went to waiting "
                f"for a free worker of pool {self.name}"
            )

    def _release(self, worker: ProviderWorker) -> None:
        ref = worker.ref
        if ref is not None and ref.alive:
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
