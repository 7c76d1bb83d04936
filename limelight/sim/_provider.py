"""The in-process simulated provider.

It plays each :class:`~limelight.sim.Plan` with anyio sleeps, on asyncio and trio, and raises
the project's errors for its faults."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel
import anyio.to_thread

from ..schemas import (
    CompletionRequest,
    CompletionResult,
    EmbeddingRequest,
    EmbeddingResult,
    ModelList,
    StreamEvent,
    StreamEventType,
    Usage,
)
from ._config import INLINE_EMBEDDING_VALUES, SimulatedConfig
from ._engine import Outcome, Plan, SimEngine, plan_error


class Simulated:
    """A :class:`~limelight.providers.Provider` that simulates an LLM in-process: the latency,
    answers, tool calls, quotas and faults of :class:`SimulatedConfig`, with anyio sleeps (on
    asyncio and trio). Faults raise the project's errors: :class:`~limelight.errors.RateLimited`
    (with ``retry_after`` and the headers), :class:`~limelight.errors.ServerError`,
    :class:`~limelight.errors.ProviderConnectionError`, :class:`~limelight.errors.BadResponse`.

    :param config: the behaviour; the defaults when ``None``.
    """

    name = "simulated"

    def __init__(self, config: SimulatedConfig | None = None) -> None:
        self.config = config or SimulatedConfig()
        # The event loop's clock, so that trio's MockClock drives the quotas too.
        self.engine = SimEngine(self.config, clock=anyio.current_time)

    async def _refuse_at_once(self, plan: Plan) -> None:
        """A bad request or a quota refusal is answered at once, as a server does."""
        if plan.outcome in (Outcome.BAD_REQUEST, Outcome.RATE_LIMITED):
            await anyio.lowlevel.checkpoint()
            raise plan_error(plan)

    async def _sleep_until(self, deadline: float) -> None:
        await anyio.sleep(max(0.0, deadline - anyio.current_time()))

    def _result(
        self, plan: Plan, *, latency: float, ttft: float | None, request: CompletionRequest
    ) -> CompletionResult:
        return CompletionResult(
            content=plan.content,
            tool_calls=list(plan.tool_calls),
            finish_reason=plan.finish_reason,
            model=plan.model,
            usage=plan.usage,
            latency=latency,
            ttft=ttft,
            id=plan.id,
            provider=self.name,
            metadata=dict(request.metadata),
            rate_limit=dict(plan.headers),
        )

    async def complete(self, request: CompletionRequest) -> CompletionResult:
        """Answer ``request`` after the simulated time to its last token.

        :raises ProviderError: the subclass of the simulated fault or refusal.
        """
        start = anyio.current_time()
        plan = self.engine.plan(request)
        try:
            await self._refuse_at_once(plan)
            if plan.outcome is not Outcome.OK:
                await self._sleep_until(start + plan.ttft)
                raise plan_error(plan)
            await self._sleep_until(start + plan.duration)
            return self._result(
                plan, latency=anyio.current_time() - start, ttft=None, request=request
            )
        finally:
            self.engine.release(plan)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Stream ``request``'s answer: TOKEN events, one TOOL_CALL per call, USAGE, DONE.
        Mid-stream faults raise after ``Plan.fault_at`` pieces."""
        start = anyio.current_time()
        plan = self.engine.plan(request)
        try:
            await self._refuse_at_once(plan)
            if plan.outcome is Outcome.SERVER_ERROR:
                await self._sleep_until(start + plan.ttft)
                raise plan_error(plan)
            midstream_fault = plan.outcome is not Outcome.OK
            first: float | None = None
            piece = 0
            for token in plan.tokens:
                if midstream_fault and piece == plan.fault_at:
                    raise plan_error(plan)
                await self._sleep_until(start + plan.at(piece))
                if first is None:
                    first = anyio.current_time() - start
                piece += 1
                yield StreamEvent.token(token)
            for call, fragments in zip(plan.tool_calls, plan.tool_call_pieces, strict=True):
                for _ in fragments:
                    if midstream_fault and piece == plan.fault_at:
                        raise plan_error(plan)
                    await self._sleep_until(start + plan.at(piece))
                    if first is None:
                        first = anyio.current_time() - start
                    piece += 1
                yield StreamEvent(type=StreamEventType.TOOL_CALL, tool_call=call)
            if midstream_fault:
                # An answer of no pieces fails at its end.
                raise plan_error(plan)
            usage = plan.usage
            yield StreamEvent(type=StreamEventType.USAGE, usage=usage)
            latency = anyio.current_time() - start
            yield StreamEvent.done(
                self._result(
                    plan, latency=latency, ttft=latency if first is None else first, request=request
                )
            )
        finally:
            self.engine.release(plan)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Embed each input deterministically (:func:`embed_text`), after ``ttft``.

        :raises ProviderError: the subclass of the simulated fault or refusal.
        """
        start = anyio.current_time()
        plan = self.engine.plan_embedding(request)
        try:
            await self._refuse_at_once(plan)
            await self._sleep_until(start + plan.ttft)
            if plan.outcome is not Outcome.OK:
                raise plan_error(plan)
            if plan.embedding_values <= INLINE_EMBEDDING_VALUES:
                embeddings = plan.embeddings()
            else:
                embeddings = await anyio.to_thread.run_sync(plan.embeddings)
            return EmbeddingResult(
                embeddings=embeddings,
                model=plan.model,
                usage=Usage.of(plan.prompt_tokens, 0),
            )
        finally:
            self.engine.release(plan)

    async def list_models(self) -> ModelList:
        """The configured models."""
        await anyio.lowlevel.checkpoint()
        return self.engine.list_models()

    async def aclose(self) -> None:
        """Nothing to release; a checkpoint, as every async function has."""
        await anyio.lowlevel.checkpoint()
