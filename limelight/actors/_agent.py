"""The Agent actor: a ReAct loop over a model and tools, with child agents as tools.

It runs the ReAct loop (conversation -> model -> tool calls in parallel -> repeat) within max
turns and a deadline, its provider calls through a ProviderPool and its tool calls through a
ToolExecutor child, both run in the agent's own task (a leased worker, the executor's
:meth:`~limelight.actors.ToolExecutor.call`). Child agents given as tools run as its
supervised children: an agent tree.

One module: one actor. The run state, the turn loop, the stream of a run
(:class:`AgentStream`) and the agent-as-a-tool adapter share the actor's state and its
deadline. The logic it drives lives in the cores (:mod:`limelight._conversation`,
:mod:`limelight._tools`, :mod:`limelight._tracing`, :mod:`limelight._usage`)."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Final, Literal

import anyio
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._conversation import Conversation, Truncation
from .._timeouts import warn_renamed
from .._tools import DEFAULT_TOOL_TIMEOUT, Tool, ToolRegistry
from .._tracing import Trace, analytics_client, current_trace, parse_event_id
from .._usage import UsageLimits, check_limits, cost_of, current_usage_run
from ..errors import (
    ActorError,
    BadResponse,
    ConfigError,
    DeadlineExceeded,
    ProviderError,
)
from ..errors import UsageLimitReached as UsageLimitReached
from ..providers._base import Provider
from ..runtime import Actor, ActorRef, Context, Runtime, current_runtime
from ..runtime._clock import loop_cancel_scope
from ..schemas import (
    CompletionRequest,
    CompletionResult,
    StreamEvent,
    StreamEventType,
    ToolCall,
    ToolResult,
    Usage,
)
from ._provider_worker import (
    DEFAULT_ATTEMPT_TIMEOUT,
    DEFAULT_PROVIDER_RETRY,
    USAGE_RUN_KEY,
    AttemptHook,
    ModelGroup,
    ProviderPool,
)
from ._tool_executor import DEFAULT_TOOL_CONCURRENCY, ToolExecutor

__all__ = [
    "DEFAULT_MAX_TURNS",
    "Agent",
    "AgentConfig",
    "AgentResult",
    "AgentStatus",
    "AgentStream",
    "AgentTool",
    "ResetAgent",
    "RunAgent",
]

DEFAULT_MAX_TURNS: Final = 10
#: Events buffered between a streaming agent and a slow consumer before the agent waits.
STREAM_BUFFER: Final = 64

_NO_CALLS: Final[tuple[ToolCall, ...]] = ()

AgentStatus = Literal["completed", "max_turns", "timeout", "cancelled", "error", "usage_limit"]


class AgentConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How an agent runs.

    :ivar max_turns: model calls per run; the run ends with status ``max_turns`` after them.
    :ivar parallel_tool_execution: run the tool calls of one answer concurrently.
    :ivar max_tool_concurrency: tool calls of this agent running at once.
    :ivar tool_timeout: seconds per tool call, unless the tool sets its own.
    :ivar deadline: seconds one run may take, every wait and retry, tools and child agents
        included (``None``: only the caller's own deadline applies). See
        :mod:`limelight._timeouts` for every timeout.
    :ivar temperature: passed to every model call.
    :ivar max_tokens: the answer limit of each model call.
    :ivar attempt_timeout: seconds per attempt of a provider call (``None``: the pool's
        default).
    :ivar request_timeout: the deprecated name of ``attempt_timeout`` (warns; read back as
        ``None``).
    :ivar pool_size: workers of the provider pool the agent starts for a bare Provider.
    :ivar context_tokens: a token budget for the conversation sent each turn.
    :ivar truncation: how the conversation is cut to fit (see :class:`Conversation`).
    :ivar usage_limits: the most one run may spend (tokens, USD), child agents included;
        the run stops with status ``usage_limit`` when it is reached.
    """

    max_turns: int = DEFAULT_MAX_TURNS
    parallel_tool_execution: bool = True
    max_tool_concurrency: int = DEFAULT_TOOL_CONCURRENCY
    tool_timeout: float | None = DEFAULT_TOOL_TIMEOUT
    deadline: float | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    attempt_timeout: float | None = None
    request_timeout: float | None = None
    pool_size: int = 1
    context_tokens: int | None = None
    truncation: Truncation = "sliding"
    usage_limits: UsageLimits | None = None

    def __post_init__(self) -> None:
        if self.request_timeout is not None:
            warn_renamed("AgentConfig", "request_timeout", "attempt_timeout")
            if self.attempt_timeout is None:
                msgspec.structs.force_setattr(self, "attempt_timeout", self.request_timeout)
            msgspec.structs.force_setattr(self, "request_timeout", None)
        if self.max_turns < 1:
            raise ConfigError(f"max_turns must be >= 1, got {self.max_turns}")
        if self.max_tool_concurrency < 1:
            raise ConfigError(f"max_tool_concurrency must be >= 1, got {self.max_tool_concurrency}")
        if self.pool_size < 1:
            raise ConfigError(f"pool_size must be >= 1, got {self.pool_size}")
        for label, value in (
            ("tool_timeout", self.tool_timeout),
            ("deadline", self.deadline),
            ("attempt_timeout", self.attempt_timeout),
        ):
            if value is not None and value <= 0:
                raise ConfigError(f"{label} must be > 0 or None, got {value}")


class AgentResult(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one :meth:`Agent.run`.

    :ivar content: the final answer (the last text the model gave, for a run that did not
        complete).
    :ivar status: ``completed`` (the model answered without tool calls), ``max_turns``,
        ``timeout`` (the deadline passed), ``cancelled`` or ``error`` (see ``error``).
    :ivar num_turns: model calls made.
    :ivar all_tool_calls: every tool call the model made, in order.
    :ivar tool_results: their results, in the same order.
    :ivar usage: tokens of this run, child agents' included.
    :ivar cost: USD of this run, when the model's price is known.
    :ivar conversation: a copy of the conversation after the run.
    :ivar error: what went wrong, for status ``error``.
    """

    content: str | None
    status: AgentStatus
    num_turns: int
    all_tool_calls: list[ToolCall]
    tool_results: list[ToolResult]
    usage: Usage
    cost: float | None
    conversation: Conversation
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "completed"


class RunAgent(msgspec.Struct, frozen=True, kw_only=True):
    """Ask an agent to run ``prompt``; the reply is an :class:`AgentResult`. With ``events``
    (a memory stream's send end), the run's :class:`StreamEvent` s are sent there too and it
    is closed at the end."""

    prompt: str
    events: Any = None
    #: The run and the event this run's analytics events hang under (a parent agent's
    #: tool call, for a child agent); a fresh run when None.
    run_id: str | None = None
    parent_event_id: str | None = None
    #: The caller's :func:`~limelight.usage.usage_run`: the run's calls count under it too.
    usage_run: str | None = None


class ResetAgent(msgspec.Struct, frozen=True, kw_only=True):
    """Ask an agent to forget its conversation."""


class _ConsumerGone(Exception):
    """The stream's reader went away: nobody wants the rest of the run."""


class AgentTool:
    """A child agent offered to a parent as a tool (see :meth:`Agent.as_tool`). The parent
    starts the child as its own supervised child actor."""

    __slots__ = ("agent", "description", "name", "timeout")

    def __init__(
        self, agent: Agent, *, name: str, description: str, timeout: float | None = None
    ) -> None:
        self.agent = agent
        self.name = name
        self.description = description
        self.timeout = timeout

    def bind(self, ref: ActorRef) -> Tool:
        """The tool that delegates to the running child at ``ref``."""

        async def delegate(task: str) -> ToolResult:
            """:param task: the complete task for the sub-agent, with everything it needs."""
            trace = current_trace.get()
            message = RunAgent(
                prompt=task,
                run_id=None if trace is None else trace.run_id,
                parent_event_id=None if trace is None else str(trace.parent),
                usage_run=current_usage_run.get(),
            )
            try:
                result: AgentResult = await ref.ask(message)
            except BaseException:
                # The parent gave up (cancelled, or its deadline passed): the child's run
                # stops too, instead of finishing for nobody.
                self.agent._cancel_run(message)
                raise
            content = result.content or ""
            if result.status != "completed":
                content = (
                    f"Sub-agent {self.name!r} ended with status {result.status}"
                    f"{': ' + result.error if result.error else ''}. Partial answer: {content}"
                )
            return ToolResult(
                content=content,
                is_error=result.status != "completed",
                usage=result.usage,
                cost=result.cost,
            )

        return Tool(delegate, name=self.name, description=self.description, timeout=self.timeout)


class _Run:
    """What one run has gathered so far (an object rather than closure cells: a run's
    state stays alive across model calls, and fewer objects keep the collector cheaper)."""

    __slots__ = (
        "calls",
        "content",
        "cost",
        "error",
        "pending",
        "results",
        "started",
        "trace",
        "turns",
        "usage",
        "usage_run",
    )

    def __init__(self, trace: Trace | None, usage_run: str | None) -> None:
        self.trace = trace
        self.usage_run = usage_run
        self.usage = Usage()
        self.cost: float | None = 0.0
        self.calls: list[ToolCall] = []
        self.results: list[ToolResult] = []
        #: The calls of the last answer that have no result in the conversation yet.
        self.pending: Sequence[ToolCall] = _NO_CALLS
        self.turns = 0
        self.content: str | None = None
        self.error: BaseException | None = None
        self.started = time.perf_counter()


def _record_result(trace: Trace, agent: str, result: AgentResult, duration: float) -> None:
    """The run's last events: ``agent_response`` (and ``error`` when it failed)."""
    from ..schemas._events import Event

    metadata: dict[str, Any] = {
        "status": result.status,
        "prompt_tokens": result.usage.prompt_tokens,
        "completion_tokens": result.usage.completion_tokens,
        "cost": result.cost,
        "tool_calls": len(result.all_tool_calls),
    }
    trace.client.log_event(
        Event.create_agent_response(
            agent,
            result.content or "",
            turns=result.num_turns,
            duration=duration,
            finish_reason=result.status,
            run_id=trace.run_id,
            parent_event_id=trace.parent,
            metadata=metadata,
        )
    )
    if result.error is not None:
        trace.client.log_event(
            Event.create_error(
                result.error,
                context={"agent": agent, "status": result.status},
                run_id=trace.run_id,
                parent_event_id=trace.parent,
            )
        )


def _failed_calls(calls: Sequence[ToolCall], why: str, what: str | None = None) -> list[ToolResult]:
    """An error result for each call that could not run (``what``: the start of the
    message, followed by the tool's name)."""
    return [
        ToolResult(
            content=f"Error: {what} {c.name!r}; {why}."
            if what is not None
            else f"Error: {why}; try again later.",
            is_error=True,
            name=c.name,
            tool_call_id=c.id,
        )
        for c in calls
    ]


def _model_name(model: Any) -> str:
    if isinstance(model, ProviderPool):
        return model.model
    if isinstance(model, ModelGroup):
        return model.pools[0].model
    return str(getattr(model, "model", "") or "")


class Agent(Actor):
    """A tool-using LLM agent, running as an actor.

    ::

        agent = Agent(model=OpenAICompatible(...), tools=[search], system="Be brief.")
        result = await agent.run("What is new in anyio 4?")

    Used inside a runtime's ``async with`` block (or from its actors), the agent joins that
    runtime on first use; ``runtime=`` names one explicitly, and ``await rt.spawn(agent,
    name="research")`` chooses its path. It then lives at a path, shows in ``rt.tree()``,
    and its provider pool, tool executor and child agents are its supervised children.
    With no runtime at all, each :meth:`run` opens one for the call.

    :param model: a model string (``"gpt-4o-mini"``, ``"sim:fast"``, ``"mlx:/path"``...,
        resolved by :func:`limelight.providers.resolve`), a
        :class:`~limelight.providers.Provider` (the agent starts a pool of
        ``config.pool_size`` workers for either), a :class:`ProviderPool` or a
        :class:`ModelGroup` (shared with other agents).
    :param tools: tools, plain functions, or child agents (:meth:`as_tool`).
    :param system: the system prompt.
    :param config: limits and options, see :class:`AgentConfig`.
    :param name: the actor name (default ``agent``).
    :param runtime: the runtime to spawn in on first use.
    :param model_name: the model to request and to price with, when not the pool's.
    :param conversation: start from this conversation instead of an empty one.
    :param hooks: attempt hooks for the pool the agent starts for a bare Provider (a rate
        limiter's, say); a pool passed as ``model`` keeps its own.
    """

    def __init__(
        self,
        *,
        model: str | Provider | ProviderPool | ModelGroup,
        tools: Sequence[Tool | AgentTool | Any] = (),
        system: str | None = None,
        config: AgentConfig | None = None,
        name: str = "agent",
        runtime: Runtime | None = None,
        model_name: str | None = None,
        conversation: Conversation | None = None,
        hooks: Sequence[AttemptHook] = (),
    ) -> None:
        if isinstance(model, str):
            from ..providers._resolve import resolve

            resolved = resolve(model)
            model, model_name = resolved.provider, model_name or resolved.model
        if not isinstance(model, (ProviderPool, ModelGroup)) and not (
            callable(getattr(model, "complete", None)) and callable(getattr(model, "stream", None))
        ):
            raise ConfigError(
                f"Agent(model=...) takes a model string, a Provider, a ProviderPool or a "
                f"ModelGroup, got "
                f"{type(model).__name__}"
            )
        self.config = config or AgentConfig()
        self.model = model
        self.name = name
        self.system = system
        self.model_name = model_name or _model_name(model)
        # The request metadata of a run with no analytics trace and no usage run: built once.
        self._metadata = {"role": name}
        self._runtime = runtime
        self._hooks = tuple(hooks)
        self._tools = list(tools)
        self._agent_tools = [t for t in self._tools if isinstance(t, AgentTool)]
        # Validate the plain tools now, so a bad tool fails at construction, not at start.
        ToolRegistry(t for t in self._tools if not isinstance(t, AgentTool))
        self.conversation = conversation if conversation is not None else self._fresh_conversation()
        self.last_result: AgentResult | None = None
        self._ref: ActorRef | None = None
        self._pool: ProviderPool | ModelGroup | None = None
        self._executor_actor: ToolExecutor | None = None
        self._specs: list[Any] = []
        #: The run's cancel scope (anyio's, or trio's own on trio: loop_cancel_scope).
        self._scope: anyio.CancelScope | Any = None
        self._cancel_requested = False
        self._current: RunAgent | None = None
        # True while a call runs the agent in a Runtime of its own (see run()).
        self._private_runtime = False

    def _fresh_conversation(self) -> Conversation:
        return Conversation(
            self.system,
            max_tokens=self.config.context_tokens,
            truncation=self.config.truncation,
        )

    # -- as an actor ------------------------------------------------------------------------

    async def on_start(self, ctx: Context) -> None:
        self._ref = ctx.self
        if isinstance(self.model, (ProviderPool, ModelGroup)):
            self._pool = self.model
        else:
            # The agent's own pool, its child at <path>/provider (also the deployment's name).
            self._pool = await ProviderPool.start(
                ctx,
                self.model,
                name="provider",
                size=self.config.pool_size,
                retry=DEFAULT_PROVIDER_RETRY,
                attempt_timeout=self.config.attempt_timeout or DEFAULT_ATTEMPT_TIMEOUT,
                hooks=self._hooks,
            )
        registry = ToolRegistry(
            (t for t in self._tools if not isinstance(t, AgentTool)),
            timeout=self.config.tool_timeout,
        )
        for agent_tool in self._agent_tools:
            child = await ctx.spawn(agent_tool.agent, name=agent_tool.name)
            registry.add(agent_tool.bind(child))
        self._specs = registry.specs()
        self._executor_actor = None
        if len(registry):
            # The agent's child at <path>/tools: the agent runs its calls in its own task
            # (ToolExecutor.call), the child stays the unit that is supervised and stopped.
            executor = ToolExecutor(registry, max_concurrency=self.config.max_tool_concurrency)
            await ctx.spawn(executor, name="tools")
            self._executor_actor = executor

    async def on_stop(self, ctx: Context) -> None:
        if not isinstance(self.model, (ProviderPool, ModelGroup)):
            self._pool = None  # its actor was our child and has stopped

    async def handle(self, message: Any, ctx: Context) -> Any:
        match message:
            case RunAgent(prompt=prompt, events=events):
                self._current = message
                try:
                    return await self._loop(
                        prompt, events, self._trace(prompt, message), message.usage_run
                    )
                except Exception as exc:
                    # A bug of ours: it crashes the actor (the asker gets ActorCrashed); a
                    # streaming caller is told before its stream ends, so the end is never
                    # mistaken for success.
                    if events is not None:
                        with contextlib.suppress(anyio.WouldBlock, anyio.BrokenResourceError):
                            events.send_nowait(
                                StreamEvent(
                                    type=StreamEventType.ERROR,
                                    error=f"agent crashed: {exc}",
                                    error_type=type(exc).__name__,
                                )
                            )
                    raise
                finally:
                    self._current = None
                    if events is not None:
                        events.close()
            case ResetAgent():
                self.conversation = self._fresh_conversation()
                return None
        raise TypeError(f"Agent got an unexpected message {message!r}")

    # -- the loop ---------------------------------------------------------------------------

    def _trace(self, prompt: str, message: RunAgent) -> Trace | None:
        """With analytics initialized: the run's first event (the prompt, as ``user_input``,
        under the parent's tool call for a child agent), which the run's other events hang
        under."""
        client = analytics_client()
        if client is None:
            return None
        import uuid

        from ..schemas._events import Event

        run_id = message.run_id or uuid.uuid4().hex
        root = Event.create_user_input(
            prompt,
            run_id=run_id,
            parent_event_id=parse_event_id(message.parent_event_id),
            metadata={"agent": self.name, "model": self.model_name},
        )
        client.log_event(root)
        return Trace(client, run_id, root.event_id)

    async def _loop(
        self,
        prompt: str,
        events: MemoryObjectSendStream[StreamEvent] | None,
        trace: Trace | None = None,
        usage_run: str | None = None,
    ) -> AgentResult:
        config = self.config
        conversation = self.conversation
        conversation.add_user(prompt)
        run = _Run(trace, usage_run)
        deadline = math.inf if config.deadline is None else anyio.current_time() + config.deadline
        self._cancel_requested = False
        recorded: AgentResult | None = None
        status: AgentStatus = "max_turns"
        # The labels every call of the run carries: the pool's worker counts the call's usage
        # under the role and usage run, analytics links its events into the run's tree.
        metadata = self._metadata
        if trace is not None or usage_run is not None:
            metadata = {"role": self.name}
            if trace is not None:
                metadata["run_id"] = trace.run_id
                metadata["parent_event_id"] = str(trace.parent)
            if usage_run is not None:
                metadata[USAGE_RUN_KEY] = usage_run
        scope = loop_cancel_scope()(deadline=deadline)
        # Entered and left by hand: a with statement keeps its bound __exit__ alive (and
        # tracked by the collector) for the whole run.
        scope.__enter__()
        try:
            self._scope = scope
            try:
                while run.turns < config.max_turns:
                    run.turns += 1
                    request = CompletionRequest(
                        model=self.model_name,
                        messages=conversation.get_messages(model=self.model_name),
                        tools=self._specs,
                        temperature=config.temperature,
                        max_tokens=config.max_tokens,
                        metadata=metadata,
                    )
                    if events is None:
                        assert self._pool is not None
                        result = await self._pool.complete(request)
                    else:
                        result = await self._stream_turn(request, events)
                    if result.usage is not None:
                        run.usage = run.usage + result.usage
                    run.cost = self._add_cost(run.cost, result)
                    conversation.add_assistant(result.content, tool_calls=result.tool_calls)
                    if result.content:
                        run.content = result.content
                    if not result.tool_calls:
                        status = "completed"
                        run.content = result.content
                        break
                    run.calls.extend(result.tool_calls)
                    run.pending = result.tool_calls
                    limit = check_limits(config.usage_limits, run.usage.total_tokens, run.cost)
                    if limit is not None:
                        status, run.error = "usage_limit", UsageLimitReached(limit)
                        break
                    # One result per call, in call order: all of them answered at once. They
                    # run here, in the agent's task, rather than asked of the executor: the
                    # run's cancellation and deadline reach the calls directly, and nothing
                    # hops between two tasks (see ToolExecutor.call).
                    executor = self._executor_actor
                    if executor is None:
                        tool_results = _failed_calls(
                            result.tool_calls, "this agent has no tools", "there is no tool named"
                        )
                    else:
                        try:
                            tool_results = await executor.call(
                                result.tool_calls,
                                parallel=config.parallel_tool_execution,
                                trace=trace,
                                usage_run=usage_run,
                            )
                        except ActorError as exc:
                            # The executor itself failed (a bug, or it stopped): the model
                            # hears about it.
                            tool_results = _failed_calls(
                                result.tool_calls, f"the tool executor failed ({exc})"
                            )
                    run.pending = _NO_CALLS
                    for r in tool_results:
                        conversation.add_tool_result(r.tool_call_id or "", r.content, name=r.name)
                        run.results.append(r)
                        if r.usage is not None:
                            run.usage = run.usage + r.usage
                        if r.cost is not None and run.cost is not None:
                            run.cost += r.cost
                    if events is not None:
                        for r in tool_results:
                            await _emit(events, _tool_result_event(r))
                    limit = check_limits(config.usage_limits, run.usage.total_tokens, run.cost)
                    if limit is not None:
                        status, run.error = "usage_limit", UsageLimitReached(limit)
                        break
            except _ConsumerGone:
                status = "cancelled"
            except (ProviderError, DeadlineExceeded, ActorError, ConfigError) as exc:
                status, run.error = "error", exc
            except anyio.get_cancelled_exc_class():
                # Recorded here, before the cancellation goes on: it may come from an
                # enclosing scope (the caller left and the kernel cancelled this request),
                # and then nothing after this block runs.
                timed_out = scope.cancel_called and not self._cancel_requested
                recorded = self._finish(run, "timeout" if timed_out else "cancelled")
                raise
            finally:
                self._scope = None
        except BaseException as left_by:
            if not scope.__exit__(type(left_by), left_by, left_by.__traceback__):
                raise
        else:
            scope.__exit__(None, None, None)
        if recorded is not None:
            agent_result = recorded
        else:
            if scope.cancelled_caught:
                status = "cancelled" if self._cancel_requested else "timeout"
            agent_result = self._finish(run, status)
        if events is not None:
            with contextlib.suppress(_ConsumerGone):
                if run.error is not None:
                    await _emit(
                        events,
                        StreamEvent(
                            type=StreamEventType.ERROR,
                            error=str(run.error),
                            error_type=type(run.error).__name__,
                        ),
                    )
                await _emit(events, _done_event(agent_result, self.model_name))
        return agent_result

    def _finish(self, run: _Run, status: AgentStatus) -> AgentResult:
        """The run's result (kept as :attr:`last_result`, recorded with analytics on)."""
        conversation = self.conversation
        # A call the model made must have an answer, or the next request is malformed.
        for call in run.pending:
            conversation.add_tool_result(
                call.id,
                f"Error: the run ended ({status}) before this tool call finished.",
                name=call.name,
            )
        error = run.error
        result = AgentResult(
            content=run.content,
            status=status,
            num_turns=run.turns,
            all_tool_calls=run.calls,
            tool_results=run.results,
            usage=run.usage,
            cost=run.cost,
            conversation=conversation.fork(),
            error=None if error is None else f"{type(error).__name__}: {error}",
        )
        self.last_result = result
        if run.trace is not None:
            _record_result(run.trace, self.name, result, time.perf_counter() - run.started)
        return result

    def _add_cost(self, cost: float | None, result: CompletionResult) -> float | None:
        """The run's cost with this call's added (``None`` once a price is unknown). The call
        itself was counted in the process-wide usage tracker by the pool's worker."""
        call_cost = result.cost
        usage = result.usage
        if call_cost is None and usage is not None:
            call_cost = cost_of(
                usage, result.model or self.model_name, cached_tokens=usage.cached_tokens
            )
        return None if cost is None or call_cost is None else cost + call_cost

    async def _stream_turn(
        self, request: CompletionRequest, events: MemoryObjectSendStream[StreamEvent]
    ) -> CompletionResult:
        assert self._pool is not None
        if isinstance(self._pool, ModelGroup):
            # A ModelGroup fails over whole calls; it does not stream. Stream the answer as
            # one piece instead.
            result = await self._pool.complete(request)
            if result.content:
                await _emit(events, StreamEvent.token(result.content))
            for call in result.tool_calls:
                await _emit(events, StreamEvent(type=StreamEventType.TOOL_CALL, tool_call=call))
            return result
        final: CompletionResult | None = None
        stream = self._pool.stream(request)
        try:
            async for event in stream:
                if event.type is StreamEventType.DONE:
                    final = event.result
                elif event.type in (StreamEventType.TOKEN, StreamEventType.TOOL_CALL):
                    await _emit(events, event)
        finally:
            # Close it here, not when collected: it holds a leased worker.
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        if final is None:
            raise BadResponse(f"the stream of {self.model_name!r} ended without a result")
        return final

    # -- the caller's side ------------------------------------------------------------------

    @property
    def ref(self) -> ActorRef | None:
        """The running actor, or ``None`` when the agent is not running in a runtime."""
        ref = self._ref
        return ref if ref is not None and ref.alive else None

    async def _ensure_ref(self) -> ActorRef | None:
        """The running actor; spawned first in ``runtime=``, else in the runtime the caller
        runs in (under its own name, or a numbered one when that is taken), if any."""
        ref = self.ref
        if ref is not None:
            return ref
        runtime = self._runtime
        if runtime is None:
            runtime = current_runtime()
            if runtime is None:
                return None
            name = self.name
            if runtime.get(f"/{name}") is not None:
                name = runtime.auto_name(name)
            return await runtime.spawn(self, name=name)
        return await runtime.spawn(self, name=self.name)

    async def run(self, prompt: str) -> AgentResult:
        """Run the agent on ``prompt``, continuing the conversation of earlier runs.

        Failures of the model or the tools end the run with a status, they are not raised:
        check :attr:`AgentResult.status`.

        :raises ConfigError: ``prompt`` is not a string.
        :raises ActorCrashed: the agent itself had a bug (the cause is attached).
        """
        if not isinstance(prompt, str):
            raise ConfigError(f"prompt must be a str, got {type(prompt).__name__}")
        if self._private_runtime:
            self._enter_private_runtime()  # raises: explains the clash
        ref = await self._ensure_ref()
        if ref is not None:
            message = RunAgent(prompt=prompt, usage_run=current_usage_run.get())
            try:
                result: AgentResult = await ref.ask(message)
            except BaseException:
                # Our caller gave up: the run stops rather than finishing for nobody.
                self._cancel_run(message)
                raise
            return result
        self._enter_private_runtime()
        try:
            async with Runtime() as rt:
                ref = await rt.spawn(self, name=self.name)
                result = await ref.ask(RunAgent(prompt=prompt, usage_run=current_usage_run.get()))
                return result
        finally:
            self._private_runtime = False

    def _enter_private_runtime(self) -> None:
        if self._private_runtime:
            raise ConfigError(
                f"agent {self.name!r} is already running a call in a runtime of its own, which "
                "ends with that call; to run calls concurrently, give it runtime= or spawn it "
                "in your Runtime"
            )
        self._private_runtime = True

    def stream(self, prompt: str) -> AgentStream:
        """Run the agent on ``prompt`` and iterate its :class:`StreamEvent` s: TOKEN and
        TOOL_CALL as the model produces them, TOOL_RESULT as tools finish (``tool_result`` is
        the :class:`ToolResult`), ERROR if the run failed, then DONE (``result`` holds
        the final answer, usage and cost; ``meta`` the status and turns).

        Use ``async with agent.stream(p) as events: async for e in events: ...``; the
        ``async with`` is required when the agent has no runtime (it opens one).
        """
        if not isinstance(prompt, str):
            raise ConfigError(f"prompt must be a str, got {type(prompt).__name__}")
        return AgentStream(self, prompt)

    async def reset(self) -> None:
        """Forget the conversation (the system prompt stays)."""
        ref = self.ref
        if ref is not None:
            await ref.ask(ResetAgent())
        else:
            self.conversation = self._fresh_conversation()

    def cancel(self) -> None:
        """Cancel the run in progress, if any; it ends with status ``cancelled``."""
        if self._scope is not None:
            self._cancel_requested = True
            self._scope.cancel()

    def _cancel_run(self, message: RunAgent) -> None:
        """Cancel the run of ``message`` if it is the one in progress (a queued one is
        dropped by the kernel once its asker has gone)."""
        if self._current is message:
            self.cancel()

    def as_tool(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
    ) -> AgentTool:
        """This agent as a tool for a parent agent: the parent starts it as a supervised child
        (at ``<parent path>/<name>``) and delegates tasks to it; its usage and cost count in
        the parent's, it runs within the parent's deadline, and stops with the parent.

        :param timeout: seconds per delegation (default: the parent's tool timeout).
        """
        tool_name = name or self.name
        return AgentTool(
            self,
            name=tool_name,
            description=description
            or f"Delegate a task to the {tool_name} agent and get its answer.",
            timeout=timeout,
        )

    def __repr__(self) -> str:
        where = self._ref.path if self.ref is not None and self._ref is not None else "not running"
        return f"<Agent {self.name} ({where})>"


class AgentStream:
    """The events of one :meth:`Agent.stream` run; an async iterator and context manager.

    :ivar result: the run's :class:`AgentResult`, once the DONE event was read.
    """

    def __init__(self, agent: Agent, prompt: str) -> None:
        self._agent = agent
        self._prompt = prompt
        self._runtime: Runtime | None = None
        self._receive: MemoryObjectReceiveStream[StreamEvent] | None = None
        self._started = False
        self.result: AgentResult | None = None

    async def __aenter__(self) -> AgentStream:
        agent = self._agent
        if agent._private_runtime:
            agent._enter_private_runtime()  # raises: explains the clash
        if await agent._ensure_ref() is None:
            agent._enter_private_runtime()
            self._runtime = Runtime()
            try:
                await self._runtime.__aenter__()
                await self._runtime.spawn(agent, name=agent.name)
            except BaseException as exc:
                await self._close_runtime(type(exc), exc, exc.__traceback__)
                raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self.close()
        return await self._close_runtime(exc_type, exc, tb)

    async def _close_runtime(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if self._runtime is None:
            return None
        runtime, self._runtime = self._runtime, None
        try:
            return await runtime.__aexit__(exc_type, exc, tb)
        finally:
            self._agent._private_runtime = False

    def close(self) -> None:
        """Stop listening; the agent ends the run (status ``cancelled``) at its next event."""
        if self._receive is not None:
            self._receive.close()

    def __aiter__(self) -> AgentStream:
        return self

    async def __anext__(self) -> StreamEvent:
        if not self._started:
            self._started = True
            ref = await self._agent._ensure_ref()
            if ref is None:
                raise ConfigError(
                    "this agent has no runtime: iterate its stream inside "
                    "`async with agent.stream(prompt) as events:`, or give it runtime="
                )
            send, self._receive = anyio.create_memory_object_stream[StreamEvent](STREAM_BUFFER)
            try:
                await ref.tell(
                    RunAgent(prompt=self._prompt, events=send, usage_run=current_usage_run.get())
                )
            except BaseException:
                send.close()
                raise
        if self._receive is None:
            raise StopAsyncIteration
        try:
            event = await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self.close()
            raise StopAsyncIteration from None
        if event.type is StreamEventType.DONE:
            self.result = self._agent.last_result
        return event


async def _emit(events: MemoryObjectSendStream[StreamEvent], event: StreamEvent) -> None:
    try:
        await events.send(event)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        raise _ConsumerGone from None


def _tool_result_event(result: ToolResult) -> StreamEvent:
    return StreamEvent(type=StreamEventType.TOOL_RESULT, tool_result=result)


def _done_event(result: AgentResult, model: str) -> StreamEvent:
    return StreamEvent(
        type=StreamEventType.DONE,
        result=CompletionResult(
            content=result.content,
            tool_calls=result.all_tool_calls,
            finish_reason=result.status,
            model=model,
            usage=result.usage,
            cost=result.cost,
        ),
        meta={"status": result.status, "num_turns": result.num_turns, "error": result.error},
    )
