"""The rate limiter: one actor owning every deployment's quota, and the workers' hook.

One actor owns the quota of every deployment; provider workers reserve through its hook before
each attempt and reconcile after it.

How waiting works without blocking the actor's mailbox: the caller makes a :class:`Ticket`
and asks :class:`Acquire` with it; the answer comes at once, admitted or queued. A queued
ticket is admitted later by the actor, in turn (FIFO per priority), when a finishing call or
the refill makes room; the caller waits on the ticket's event in its own task, under its own
deadline. A small child actor, the timer, wakes the limiter when the refill (or the end of a
pause) can admit the head of a queue. A caller that leaves (deadline, cancellation, even while
the ask itself is in flight) marks its ticket abandoned at once (one event loop: the actor
never admits it after that) and tells the limiter :class:`Leave`, which gives back whatever
the ticket holds: no reservation leaks. The worker calls the hook's ``after`` shielded, so the
reconciliation happens even when the caller was cancelled.

The arithmetic (buckets, the queue, header adoption, why a reservation from a full bucket
holds back the refill) is in :mod:`limelight._buckets`.

Configuration from the environment (for deployments not configured in code), the deployment
name upper-cased with every character outside ``A-Z0-9`` turned into ``_``:

- ``LIMELIGHT_RPM_<DEPLOYMENT>``: requests per minute;
- ``LIMELIGHT_TPM_<DEPLOYMENT>``: tokens per minute;
- ``LIMELIGHT_MAX_CONCURRENCY_<DEPLOYMENT>``: requests in flight at once;
- ``LIMELIGHT_REFUND_UNUSED_<DEPLOYMENT>``: ``1``/``true`` when the server counts real
  usage and so gives back unused output tokens (OpenAI and ``limelight sim`` charge
  ``max_tokens`` at admission and give nothing back: the default);
- ``LIMELIGHT_DEFAULT_OUTPUT_TOKENS_<DEPLOYMENT>``: output tokens reserved for a request
  without ``max_tokens``.

A deployment with no quota at all is not limited until its server's ``x-ratelimit-limit-*``
headers tell one.

One module: one protocol. The actor, its messages, the :class:`Ticket` a caller waits on, the
timer child and the :class:`RateLimitHook` that speaks to it change together. The pure
arithmetic is already out, in :mod:`limelight._buckets`.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final

import anyio
import anyio.to_thread
import msgspec

from .._buckets import Budget, DeploymentLimits, Priority, Reservation, Waiter
from .._instrument import Attempt
from .._leases import LeasedBudget, SharedQuota
from ..errors import ActorStopped, ConfigError, ProviderError, RateLimited
from ..errors import RateLimitTimeout as RateLimitTimeout
from ..runtime import Actor, ActorRef, Context, Runtime
from ..runtime._errors import ActorError
from ..schemas import CompletionRequest, CompletionResult
from ._leaser import Deposit, Leaser, give_back_all, plan

__all__ = [
    "DEFAULT_DEADLINE_MARGIN",
    "Acquire",
    "Configure",
    "DeploymentStatistics",
    "GetStatistics",
    "Leave",
    "RateLimitHook",
    "RateLimitTimeout",
    "RateLimiter",
    "RateLimiterStatistics",
    "Settle",
    "Ticket",
    "count_prompt_tokens",
    "env_key",
    "limits_from_env",
]

#: A waiter leaves this many seconds before its caller's own deadline, with
#: :class:`RateLimitTimeout`, so that the caller learns why rather than seeing only its own
#: timeout.
DEFAULT_DEADLINE_MARGIN: Final = 0.02
#: Wait times kept per deployment for the percentiles.
_WAIT_SAMPLES: Final = 10_000
_STATE_KEY: Final = "limelight.ratelimit"
_ENV_FIELDS: Final = {
    "RPM": "rpm",
    "TPM": "tpm",
    "MAX_CONCURRENCY": "max_concurrency",
    "REFUND_UNUSED": "refund_unused",
    "DEFAULT_OUTPUT_TOKENS": "default_output_tokens",
}


def env_key(deployment: str) -> str:
    """The environment-variable suffix of a deployment name: ``gpt-4o/eu`` -> ``GPT_4O_EU``."""
    return re.sub(r"[^A-Z0-9]", "_", deployment.upper())


def limits_from_env(environ: Mapping[str, str] | None = None) -> dict[str, DeploymentLimits]:
    """The quotas set by ``LIMELIGHT_<FIELD>_<DEPLOYMENT>`` variables, keyed by
    :func:`env_key` of the deployment.

    :raises ConfigError: a value is not a number (or a boolean, for ``REFUND_UNUSED``).
    """
    environ = os.environ if environ is None else environ
    found: dict[str, dict[str, Any]] = {}
    # Longest prefixes first: MAX_CONCURRENCY before a deployment named CONCURRENCY_x.
    prefixes = sorted(_ENV_FIELDS, key=len, reverse=True)
    for name, value in environ.items():
        if not name.startswith("LIMELIGHT_"):
            continue
        rest = name[len("LIMELIGHT_") :]
        for prefix in prefixes:
            if rest.startswith(prefix + "_") and len(rest) > len(prefix) + 1:
                field = _ENV_FIELDS[prefix]
                found.setdefault(rest[len(prefix) + 1 :], {})[field] = _env_value(
                    name, field, value
                )
                break
    return {key: DeploymentLimits(**fields) for key, fields in found.items()}


def _env_value(name: str, field: str, value: str) -> int | bool:
    if field == "refund_unused":
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}={value!r}: expected true or false (1/0)")
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r}: expected a whole number") from None


_tiktoken_encoding: Any = None


def _load_tiktoken() -> Any:
    """tiktoken's ``o200k_base`` encoding, or ``False`` when it cannot be had (not installed,
    or its data not cached and no network): loaded once, lazily."""
    global _tiktoken_encoding
    if _tiktoken_encoding is None:
        try:
            import tiktoken

            _tiktoken_encoding = tiktoken.get_encoding("o200k_base")
        except Exception:
            _tiktoken_encoding = False
    return _tiktoken_encoding


def count_prompt_tokens(request: CompletionRequest) -> int:
    """Prompt tokens of a request: counted with tiktoken's ``o200k_base`` encoding when
    tiktoken is installed (and its data available), else one token per 4 characters (rounded
    up), the simulator's rule and OpenAI's rule of thumb. Each message adds 3 tokens of
    framing either way."""
    encoding = _load_tiktoken()
    texts: list[str] = []
    if request.prompt is not None:
        texts.append(request.prompt)
    for message in request.messages:
        texts.extend(t for t in (message.content, message.name) if t)
        for call in message.tool_calls:
            texts.extend((call.name, call.arguments))
    if encoding:
        count = sum(len(encoding.encode(t, disallowed_special=())) for t in texts)
    else:
        count = sum(-(-len(t) // 4) for t in texts)
    return max(1, count + 3 * len(request.messages))


# -- messages --------------------------------------------------------------------------


class Acquire(msgspec.Struct, frozen=True, kw_only=True):
    """Ask for capacity for the call of a :class:`Ticket`. The reply comes at once: ``True``
    when admitted; otherwise the ticket is queued, admitted later, and the caller waits for
    that with :meth:`Ticket.wait`.

    The caller creates the ticket, so that if it is cancelled while asking, it still holds
    the ticket and can :class:`Leave` with it: nothing the limiter admits is lost.
    """

    ticket: Ticket


class Settle(msgspec.Struct, frozen=True, kw_only=True):
    """Tell the limiter how a call of an admitted ticket ended.

    :ivar sent: ``False`` when the call never reached the server: everything is given back.
    :ivar rate_limited: the server answered 429: the reservation is given back (the server
        did not count the call) and the deployment pauses for ``retry_after``.
    """

    ticket: Ticket
    sent: bool = True
    total_tokens: int | None = None
    completion_tokens: int | None = None
    headers: dict[str, str] = {}
    rate_limited: bool = False
    retry_after: float | None = None


class Configure(msgspec.Struct, frozen=True, kw_only=True):
    """Set (or replace) the quota of a deployment."""

    deployment: str
    limits: DeploymentLimits


class Leave(msgspec.Struct, frozen=True, kw_only=True):
    """Tell the limiter that the caller of a ticket left without sending its call: what the
    ticket holds is given back.

    :ivar timed_out: it left at its deadline (else it was cancelled).
    """

    ticket: Ticket
    timed_out: bool = False


class GetStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Ask for a :class:`RateLimiterStatistics`."""


class _Pump(msgspec.Struct, frozen=True):
    """From the timer: the refill may admit someone now."""


class _Run(msgspec.Struct, frozen=True):
    """To the timer: start ticking."""


class DeploymentStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """One deployment's counters.

    :ivar admitted: calls admitted.
    :ivar waited: admitted calls that had to queue first.
    :ivar timed_out: waiters that left at their deadline.
    :ivar cancelled: waiters (or admitted calls never sent) whose caller was cancelled.
    :ivar rate_limited: 429s the server answered.
    :ivar wait_p50: median seconds from asking to admission, over admitted calls.
    :ivar utilisation: of the binding limit (requests or tokens, whichever is used more),
        the fraction of what the quota offered since the first call (a full bucket plus the
        refill) that admitted calls consumed; ``None`` without a limit.
    """

    admitted: int
    waited: int
    timed_out: int
    cancelled: int
    rate_limited: int
    waiting: int
    in_flight: int
    wait_p50: float
    wait_p90: float
    wait_p99: float
    wait_max: float
    requests_utilisation: float | None
    tokens_utilisation: float | None
    utilisation: float | None
    paused_for: float
    limits: DeploymentLimits


class RateLimiterStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Every deployment's :class:`DeploymentStatistics`, and their totals."""

    deployments: dict[str, DeploymentStatistics]
    admitted: int
    waited: int
    timed_out: int
    rate_limited: int


# -- the ticket ------------------------------------------------------------------------


class Ticket:
    """A call's place with the limiter: admitted at once, or queued until the limiter admits
    it. Waited on by the caller (:meth:`wait`), mutated only by the limiter."""

    __slots__ = ("_event", "asked_at", "deployment", "error", "paused_until", "waiter")

    def __init__(
        self,
        deployment: str,
        *,
        prompt_tokens: int,
        max_tokens: int | None = None,
        priority: Priority = Priority.INTERACTIVE,
    ) -> None:
        self.deployment = deployment
        self.waiter = Waiter(
            prompt_tokens=max(0, prompt_tokens), output_tokens=max_tokens, priority=priority
        )
        self.waiter.owner = self
        self.asked_at = 0.0
        #: When queued: until when the deployment is paused after a 429.
        self.paused_until = -math.inf
        self.error: BaseException | None = None
        self._event: anyio.Event | None = None

    @property
    def admitted(self) -> bool:
        return self.waiter.reservation is not None

    @property
    def reservation(self) -> Reservation | None:
        return self.waiter.reservation

    def abandon(self) -> bool:
        """The caller leaves: from now on the limiter will not admit this ticket. Returns
        whether it was admitted already (then a :class:`Leave` must give it back)."""
        if self.waiter.reservation is not None:
            return True
        self.waiter.abandoned = True
        return False

    def _admit(self) -> None:
        if self._event is not None:
            self._event.set()

    def _fail(self, error: BaseException) -> None:
        self.error = error
        self._admit()

    async def wait(self) -> None:
        """Return once admitted.

        :raises ActorStopped: the limiter stopped before admitting it.
        """
        if self.waiter.reservation is None and self.error is None:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()
        if self.error is not None:
            raise self.error


# -- the actor -------------------------------------------------------------------------


class _Alarm:
    """When the limiter next needs to be woken: written by the limiter, slept on by its
    timer child (both on the one event loop)."""

    __slots__ = ("at", "changed")

    def __init__(self) -> None:
        self.at = math.inf
        self.changed = anyio.Event()

    def set(self, at: float) -> None:
        if at != self.at:
            self.at = at
            self.changed.set()
            self.changed = anyio.Event()


class _Timer(Actor):
    """Tells the limiter :class:`_Pump` when its alarm time comes."""

    def __init__(self, alarm: _Alarm, limiter: ActorRef) -> None:
        self.alarm = alarm
        self.limiter = limiter

    async def handle(self, message: Any, ctx: Context) -> Any:
        match message:
            case _Run():
                alarm = self.alarm
                while True:
                    changed = alarm.changed
                    if alarm.at <= anyio.current_time():
                        alarm.at = math.inf
                        await self.limiter.tell(_Pump())
                        continue
                    with anyio.move_on_at(alarm.at):
                        await changed.wait()
        raise TypeError(f"rate limiter timer got an unexpected message {message!r}")


class _Deployment:
    """A budget and its counters."""

    __slots__ = ("admitted", "budget", "cancelled", "timed_out", "waited", "waits")

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.admitted = 0
        self.waited = 0
        self.timed_out = 0
        self.cancelled = 0
        self.waits: deque[float] = deque(maxlen=_WAIT_SAMPLES)


class RateLimiter(Actor):
    """Owns the quota of every deployment: requests and tokens per minute, concurrency.

    Spawn one per runtime (:meth:`start`) and give each :class:`ProviderPool` a
    :class:`RateLimitHook` on it. Quotas come from ``limits`` (by deployment name), else
    from the environment (see the module docs), else from the server's headers.

    :param limits: quotas by deployment name.
    :param environ: where ``LIMELIGHT_*`` variables are read; ``os.environ`` by default,
        ``{}`` to ignore the environment.
    :param promote_after: seconds after which a batch waiter is served as interactive.
    :param send_delay: the longest a call takes from its admission here to the server
        (:data:`~limelight._buckets.DEFAULT_SEND_DELAY` by default).
    :param shared: a quota shared with other processes (:class:`~limelight.cluster.RedisQuota`,
        the Ray quota actor): this limiter then spends units it leases from there instead of
        buckets of its own, gives back what it does not use, and sends the server's
        ``x-ratelimit-*`` headers and 429s there (:mod:`limelight._leases`).
    """

    def __init__(
        self,
        limits: Mapping[str, DeploymentLimits] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        promote_after: float | None = None,
        send_delay: float | None = None,
        shared: SharedQuota | None = None,
    ) -> None:
        self.limits = dict(limits or {})
        self.env_limits = limits_from_env(environ)
        self.promote_after = promote_after
        self.send_delay = send_delay
        self.shared = shared
        self._deployments: dict[str, _Deployment] = {}
        self._alarm: _Alarm | None = None
        self._leaser: ActorRef | None = None
        self._holder = f"{os.getpid()}-{id(self):x}"

    @classmethod
    async def start(
        cls,
        runtime: Runtime,
        limits: Mapping[str, DeploymentLimits] | None = None,
        *,
        name: str = "ratelimiter",
        environ: Mapping[str, str] | None = None,
        promote_after: float | None = None,
        send_delay: float | None = None,
        shared: SharedQuota | None = None,
    ) -> ActorRef:
        """Spawn a limiter at ``/<name>`` and return its reference."""
        return await runtime.spawn(
            lambda: cls(
                limits,
                environ=environ,
                promote_after=promote_after,
                send_delay=send_delay,
                shared=shared,
            ),
            name=name,
            mailbox_size=math.inf,
        )

    async def on_start(self, ctx: Context) -> None:
        # A restart starts over with fresh budgets: the calls in flight are the workers'.
        self._deployments = {}
        self._alarm = _Alarm()
        timer = await ctx.spawn(_Timer(self._alarm, ctx.self), name="timer", mailbox_size=1)
        await timer.tell(_Run())
        if self.shared is not None:
            self._leaser = await ctx.spawn(
                Leaser(self.shared, self._holder, ctx.self), name="leaser", mailbox_size=math.inf
            )

    async def on_stop(self, ctx: Context) -> None:
        if self.shared is not None:
            leased = [
                (name, d.budget)
                for name, d in self._deployments.items()
                if isinstance(d.budget, LeasedBudget)
            ]
            await give_back_all(self.shared, self._holder, leased, anyio.current_time())
        # Whoever still waits learns that no admission will come.
        for deployment in self._deployments.values():
            for waiter in list(deployment.budget.waiters()):
                deployment.budget.abandon(waiter)
                if isinstance(waiter.owner, Ticket):
                    waiter.owner._fail(
                        ActorStopped(
                            f"rate limiter {ctx.path} stopped before admitting this call",
                            path=ctx.path,
                        )
                    )

    def _deployment(self, name: str, now: float) -> _Deployment:
        deployment = self._deployments.get(name)
        if deployment is None:
            limits = self.limits.get(name) or self.env_limits.get(env_key(name))
            options: dict[str, Any] = {}
            if self.promote_after is not None:
                options["promote_after"] = self.promote_after
            if self.send_delay is not None:
                options["send_delay"] = self.send_delay
            if self.shared is not None:
                budget: Budget = LeasedBudget(
                    limits or DeploymentLimits(),
                    now=now,
                    promote_after=self.promote_after,
                    lease_fraction=self.shared.lease_fraction,
                )
            else:
                budget = Budget(limits or DeploymentLimits(), now=now, **options)
            deployment = self._deployments[name] = _Deployment(budget)
        return deployment

    async def handle(self, message: Any, ctx: Context) -> Any:
        now = anyio.current_time()
        match message:
            case Acquire():
                reply: Any = self._acquire(message, now)
            case Settle():
                self._settle(message, now)
                reply = None
            case Leave():
                self._leave(message, now)
                reply = None
            case _Pump():
                reply = None
            case Deposit(deployment=name, grant=grant):
                budget = self._deployment(name, now).budget
                if isinstance(budget, LeasedBudget):
                    budget.deposit(grant, now)
                reply = None
            case Configure(deployment=name, limits=limits):
                self.limits[name] = limits
                self._deployment(name, now).budget.configure(limits, now=now)
                reply = None
            case GetStatistics():
                return self._statistics(now)
            case _:
                raise TypeError(f"RateLimiter got an unexpected message {message!r}")
        self._grant_all(now)
        return reply

    def _acquire(self, message: Acquire, now: float) -> bool:
        ticket = message.ticket
        waiter = ticket.waiter
        if waiter.abandoned or waiter.reservation is not None:
            return waiter.reservation is not None
        ticket.asked_at = now
        deployment = self._deployment(ticket.deployment, now)
        budget = deployment.budget
        if not budget.waiting:
            reservation = budget.try_reserve(
                budget.cost(waiter), now, prompt_tokens=waiter.prompt_tokens
            )
            if reservation is not None:
                waiter.reservation = reservation
                deployment.admitted += 1
                deployment.waits.append(0.0)
                return True
        budget.enqueue(waiter, now)
        ticket.paused_until = budget.paused_until
        return False

    def _grant_all(self, now: float) -> None:
        wake = math.inf
        for name, deployment in self._deployments.items():
            budget = deployment.budget
            if budget.waiting:
                for waiter in budget.grant(now):
                    ticket = waiter.owner
                    assert isinstance(ticket, Ticket)
                    deployment.admitted += 1
                    deployment.waited += 1
                    deployment.waits.append(now - ticket.asked_at)
                    ticket._admit()
                wake = min(wake, budget.next_wake(now))
            if isinstance(budget, LeasedBudget) and self._leaser is not None:
                assert self.shared is not None
                wake = min(wake, plan(self._leaser, self.shared, name, budget, now))
        if self._alarm is not None:
            self._alarm.set(wake)

    def _settle(self, message: Settle, now: float) -> None:
        ticket = message.ticket
        reservation = ticket.reservation
        if reservation is None:
            return
        budget = self._deployment(ticket.deployment, now).budget
        if message.rate_limited:
            budget.rate_limited_by_server(
                reservation, now, retry_after=message.retry_after, headers=message.headers
            )
        elif not message.sent:
            budget.release(reservation, now)
        elif message.total_tokens is None:
            budget.fail(reservation, now)
            if message.headers:
                budget.adopt_headers(message.headers, now, reservation=None)
        else:
            budget.reconcile(
                reservation,
                now,
                total_tokens=message.total_tokens,
                completion_tokens=message.completion_tokens,
                headers=message.headers,
            )

    def _leave(self, message: Leave, now: float) -> None:
        ticket = message.ticket
        deployment = self._deployment(ticket.deployment, now)
        if message.timed_out:
            deployment.timed_out += 1
        else:
            deployment.cancelled += 1
        reservation = deployment.budget.abandon(ticket.waiter)
        if reservation is not None:
            deployment.budget.release(reservation, now)

    def _statistics(self, now: float) -> RateLimiterStatistics:
        stats = {name: _deployment_statistics(d, now) for name, d in self._deployments.items()}
        return RateLimiterStatistics(
            deployments=stats,
            admitted=sum(s.admitted for s in stats.values()),
            waited=sum(s.waited for s in stats.values()),
            timed_out=sum(s.timed_out for s in stats.values()),
            rate_limited=sum(s.rate_limited for s in stats.values()),
        )


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def _deployment_statistics(deployment: _Deployment, now: float) -> DeploymentStatistics:
    budget = deployment.budget
    waits = sorted(deployment.waits)
    requests = (
        None
        if budget.requests is None
        else budget.requests.consumed / budget.requests.capacity(now)
    )
    tokens = None if budget.tokens is None else budget.tokens.consumed / budget.tokens.capacity(now)
    used = [u for u in (requests, tokens) if u is not None]
    return DeploymentStatistics(
        admitted=deployment.admitted,
        waited=deployment.waited,
        timed_out=deployment.timed_out,
        cancelled=deployment.cancelled,
        rate_limited=budget.rate_limited,
        waiting=budget.waiting,
        in_flight=budget.in_flight,
        wait_p50=_percentile(waits, 0.5),
        wait_p90=_percentile(waits, 0.9),
        wait_p99=_percentile(waits, 0.99),
        wait_max=waits[-1] if waits else 0.0,
        requests_utilisation=requests,
        tokens_utilisation=tokens,
        utilisation=max(used) if used else None,
        paused_for=max(0.0, budget.paused_until - now),
        limits=budget.limits,
    )


# -- the hook --------------------------------------------------------------------------


class RateLimitHook:
    """The :class:`~limelight.actors.AttemptHook` through which a deployment's workers use
    a :class:`RateLimiter`: ``before`` reserves (waiting in turn, within the caller's
    deadline), ``after`` reconciles with the answer's usage and headers, or pauses the
    deployment on a 429.

    :param limiter: the limiter's reference (:meth:`RateLimiter.start`).
    :param priority: the priority of calls whose request does not say
        (``metadata={"priority": "batch"}`` or ``"interactive"``).
    :param estimator: counts a request's prompt tokens; :func:`count_prompt_tokens` by
        default. Give the server's own rule when it is known (the simulator's
        ``count_prompt_tokens``), so the limiter charges what the server charges.
    :param max_wait: seconds a call may wait for capacity; ``None``: until the caller's
        deadline (less :data:`DEFAULT_DEADLINE_MARGIN`).
    """

    def __init__(
        self,
        limiter: ActorRef,
        *,
        priority: Priority = Priority.INTERACTIVE,
        estimator: Callable[[CompletionRequest], int] | None = None,
        max_wait: float | None = None,
    ) -> None:
        if max_wait is not None and max_wait < 0:
            raise ConfigError(f"max_wait must be >= 0 (or None), got {max_wait}")
        self.limiter = limiter
        self.priority = priority
        self.estimator = estimator or count_prompt_tokens
        self.max_wait = max_wait

    def _priority(self, request: CompletionRequest) -> Priority:
        label = request.metadata.get("priority")
        if label is None:
            return self.priority
        try:
            return Priority[label.upper()]
        except KeyError:
            raise ConfigError(
                f"request metadata priority={label!r}: expected 'interactive' or 'batch'"
            ) from None

    async def before(self, attempt: Attempt) -> None:
        request = attempt.request
        if _tiktoken_encoding is None and self.estimator is count_prompt_tokens:
            # Loading may download the encoding's data: never on the event loop.
            await anyio.to_thread.run_sync(_load_tiktoken)
        ticket = Ticket(
            attempt.deployment,
            prompt_tokens=self.estimator(request),
            max_tokens=request.max_tokens,
            priority=self._priority(request),
        )
        await self.acquire(ticket)
        attempt.state[_STATE_KEY] = ticket

    async def acquire(self, ticket: Ticket) -> None:
        """Get ``ticket`` admitted: ask, then wait in turn until the deadline.

        :raises RateLimitTimeout: the deadline came first, or the deployment is paused after a
            429 until past it; the ticket left the queue.
        """
        now = anyio.current_time()
        deadline = anyio.current_effective_deadline() - DEFAULT_DEADLINE_MARGIN
        if self.max_wait is not None:
            deadline = min(deadline, now + self.max_wait)
        try:
            if await self.limiter.ask(Acquire(ticket=ticket)):
                return
            # Paused after a 429 past the deadline: waiting is pointless; leaving now lets a
            # ModelGroup fail over at once.
            paused = ticket.paused_until > deadline
            if not paused:
                with anyio.move_on_at(deadline):
                    await ticket.wait()
        except BaseException:
            await self._leave(ticket, timed_out=False)
            raise
        if ticket.admitted:
            return
        await self._leave(ticket, timed_out=True)
        if paused:
            raise RateLimitTimeout(
                f"deployment {ticket.deployment!r} is paused for "
                f"{ticket.paused_until - now:.3f} s after a 429, past this call's deadline; the "
                "call was not sent. Fail over to another deployment or allow a longer timeout"
            )
        waited = anyio.current_time() - now
        raise RateLimitTimeout(
            f"waited {waited:.3f} s for rate-limit capacity on deployment "
            f"{ticket.deployment!r} and the deadline came first; the call was not sent. "
            "Raise the deployment's quota, send less, allow a longer timeout or fail over to "
            "another deployment"
        )

    async def _leave(self, ticket: Ticket, *, timed_out: bool) -> None:
        ticket.abandon()
        with anyio.CancelScope(shield=True):
            # A stopped limiter holds nothing to give back any more.
            with contextlib.suppress(ActorError):
                await self.limiter.tell(Leave(ticket=ticket, timed_out=timed_out))

    async def after(
        self, attempt: Attempt, result: CompletionResult | None, error: BaseException | None
    ) -> None:
        ticket = attempt.state.pop(_STATE_KEY, None)
        if not isinstance(ticket, Ticket):
            return
        if result is not None:
            usage = result.usage
            settle = Settle(
                ticket=ticket,
                total_tokens=None if usage is None else usage.total_tokens,
                completion_tokens=None if usage is None else usage.completion_tokens,
                headers=result.rate_limit,
            )
        elif isinstance(error, RateLimited):
            settle = Settle(
                ticket=ticket,
                rate_limited=True,
                retry_after=error.retry_after,
                headers=error.headers,
            )
        elif isinstance(error, ProviderError):
            settle = Settle(ticket=ticket, headers=error.headers)
        else:
            settle = Settle(ticket=ticket)
        with contextlib.suppress(ActorError):  # a stopped limiter has nothing to reconcile
            await self.limiter.tell(settle)
