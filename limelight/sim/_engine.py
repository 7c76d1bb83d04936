"""The simulated model: :class:`SimEngine` decides everything about a request as pure data.

For request N it makes a :class:`Plan` (answer, timing, fault, quota admission); the
in-process provider and the HTTP server only play plans."""

from __future__ import annotations

import enum
import math
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from ..errors import (
    BadRequest,
    BadResponse,
    ProviderConnectionError,
    ProviderError,
    RateLimited,
    ServerError,
)
from ..schemas import (
    CompletionRequest,
    EmbeddingRequest,
    ModelInfo,
    ModelList,
    ToolCall,
    ToolSpec,
    Usage,
)
from ..schemas._openai import error_body
from ._checks import check_request
from ._config import SimulatedConfig, sample_length
from ._generate import embed_text, estimate_prompt_tokens, estimate_tokens, tool_arguments, words
from ._quotas import ORGANIZATION, Quota, QuotaDecision, format_duration, rate_limit_body

#: Tool-call arguments are streamed in fragments of this many characters, one per "token".
_ARGUMENT_FRAGMENT = 4

_OWNED_BY = "limelight-sim"
_MODELS_CREATED = 1_700_000_000


def _pick_tool(
    request: CompletionRequest, rng: random.Random, probability: float
) -> ToolSpec | None:
    """The tool to call, honouring ``tool_choice`` ("none", "required", a named function)."""
    if not request.tools:
        return None
    choice = request.tool_choice
    if choice == "none":
        return None
    if isinstance(choice, Mapping):
        function = choice.get("function")
        wanted = function.get("name") if isinstance(function, Mapping) else choice.get("name")
        named = [t for t in request.tools if t.name == wanted]
        return named[0] if named else None
    draw = rng.random()
    if choice != "required" and draw >= probability:
        return None
    return rng.choice(request.tools)


class Outcome(enum.Enum):
    """What a planned request does."""

    OK = "ok"
    BAD_REQUEST = "bad_request"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    CONNECTION_RESET = "connection_reset"
    TRUNCATED = "truncated"
    MALFORMED = "malformed"


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """Everything about one request, decided up front: the in-process provider and the HTTP
    server only play it.

    The answer is a sequence of *pieces* delivered at ``ttft + i * itl`` seconds after the
    request: first the text ``tokens``, then each tool call's argument fragments
    (``tool_call_pieces``). A mid-stream fault strikes after ``fault_at`` pieces.

    :ivar status: the HTTP status to answer (200 unless an error is answered).
    :ivar error: OpenAI's error body, for BAD_REQUEST, RATE_LIMITED and SERVER_ERROR.
    :ivar headers: ``x-ratelimit-*`` headers (and ``retry-after*`` on 429).
    :ivar ticket: the quota ticket to release when the request ends.
    :ivar inputs: an embedding request's texts, embedded ``dimensions`` long by
        :meth:`embeddings`.
    """

    index: int
    id: str
    model: str
    created: int
    outcome: Outcome
    prompt_tokens: int
    tokens: tuple[str, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_pieces: tuple[tuple[str, ...], ...] = ()
    finish_reason: str = "stop"
    ttft: float = 0.0
    itl: float = 0.0
    fault_at: int = 0
    status: int = 200
    error: dict[str, Any] | None = None
    retry_after: float | None = None
    headers: dict[str, str] = {}
    ticket: int | None = None
    inputs: tuple[str, ...] = ()
    dimensions: int = 0

    @property
    def content(self) -> str | None:
        """The answer's text, ``None`` for a tool-calling answer."""
        return "".join(self.tokens) if self.tokens or not self.tool_calls else None

    def embeddings(self) -> list[list[float]]:
        """An embedding request's vectors (:func:`embed_text` of each input). CPU work in
        proportion to :attr:`embedding_values`: on an event loop, run a large one in a worker
        thread."""
        return [embed_text(text, self.dimensions) for text in self.inputs]

    @property
    def embedding_values(self) -> int:
        """How many numbers :meth:`embeddings` computes (at most
        :data:`MAX_EMBEDDING_VALUES`)."""
        return len(self.inputs) * self.dimensions

    @property
    def completion_tokens(self) -> int:
        if self.dimensions:
            return 0
        return len(self.tokens) + sum(
            len(pieces) + estimate_tokens(call.name)
            for call, pieces in zip(self.tool_calls, self.tool_call_pieces, strict=True)
        )

    @property
    def usage(self) -> Usage:
        return Usage.of(self.prompt_tokens, self.completion_tokens)

    @property
    def pieces(self) -> int:
        """How many pieces the answer is delivered in."""
        return len(self.tokens) + sum(len(p) for p in self.tool_call_pieces)

    @property
    def duration(self) -> float:
        """Seconds from the request to the answer's last piece."""
        return self.ttft + max(self.pieces - 1, 0) * self.itl

    def at(self, piece: int) -> float:
        """Seconds from the request to the delivery of piece number ``piece``."""
        return self.ttft + piece * self.itl


def plan_error(plan: Plan) -> ProviderError:
    """The project error a faulty plan raises in-process."""
    message = str((plan.error or {}).get("error", {}).get("message", ""))
    if plan.outcome is Outcome.RATE_LIMITED:
        return RateLimited(
            message,
            status_code=plan.status,
            body=plan.error,
            retry_after=plan.retry_after,
            headers=plan.headers,
        )
    if plan.outcome is Outcome.BAD_REQUEST:
        return BadRequest(message, status_code=plan.status, body=plan.error, headers=plan.headers)
    if plan.outcome is Outcome.SERVER_ERROR:
        return ServerError(message, status_code=plan.status, body=plan.error, headers=plan.headers)
    if plan.outcome is Outcome.CONNECTION_RESET:
        return ProviderConnectionError(
            f"simulated connection reset during request {plan.id} (after {plan.fault_at} "
            "pieces): the connection dropped; retry"
        )
    if plan.outcome is Outcome.TRUNCATED:
        return BadResponse(
            f"simulated truncated answer to request {plan.id}: it stopped after "
            f"{plan.fault_at} pieces without a finish reason; retry"
        )
    if plan.outcome is Outcome.MALFORMED:
        return BadResponse(f"simulated malformed JSON in the answer to request {plan.id}; retry")
    raise AssertionError(f"plan {plan.id} is not a fault: {plan.outcome}")


_SERVER_ERRORS = (
    (500, "The server had an error while processing your request. Sorry about that!"),
    (502, "Bad gateway."),
    (503, "The engine is currently overloaded, please try again later."),
)


class SimEngine:
    """The simulated model: turns request number N into a :class:`Plan`.

    Deterministic given ``config.seed`` and the order of requests: request N draws from its
    own random generator, seeded with ``(seed, N)``, so what happened to earlier requests
    (refused, faulty, cancelled) does not change it. Not thread-safe: use one engine per
    event loop.

    :param config: the behaviour to simulate.
    :param clock: the monotonic clock the quotas refill with.
    """

    def __init__(
        self, config: SimulatedConfig | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or SimulatedConfig()
        self.quota = Quota(
            rpm=self.config.rpm,
            tpm=self.config.tpm,
            max_concurrency=self.config.max_concurrency,
            clock=clock,
        )
        self._index = 0
        self._itl = (
            0.0 if self.config.tokens_per_second is None else 1.0 / self.config.tokens_per_second
        )

    @property
    def requests_seen(self) -> int:
        """How many requests were planned so far."""
        return self._index

    def _next(self) -> tuple[int, random.Random]:
        index = self._index
        self._index += 1
        # An int seed is stable across processes (no hash randomisation) and cheaper than a
        # string's; (seed, index) pairs map to distinct ints.
        return index, random.Random((self.config.seed % 2**64) << 64 | index)

    def _model(self, requested: str) -> str:
        return requested or self.config.models[0]

    def _ttft(self, rng: random.Random) -> float:
        jitter = self.config.ttft_jitter
        return max(0.0, self.config.ttft + (rng.uniform(-jitter, jitter) if jitter else 0.0))

    def _fault(self, rng: random.Random) -> Outcome:
        draw = rng.random()
        for outcome, rate in zip(
            (
                Outcome.SERVER_ERROR,
                Outcome.RATE_LIMITED,
                Outcome.CONNECTION_RESET,
                Outcome.TRUNCATED,
                Outcome.MALFORMED,
            ),
            self.config._fault_rates(),
            strict=True,
        ):
            if draw < rate:
                return outcome
            draw -= rate
        return Outcome.OK

    def _bad_request(self, request: CompletionRequest | EmbeddingRequest) -> dict[str, Any] | None:
        model = request.model
        if self.config.strict_models and model and model not in self.config.models:
            return error_body(
                f"The model `{model}` does not exist or you do not have access to it.",
                type="invalid_request_error",
                param="model",
                code="model_not_found",
            )
        return check_request(request, embedding_dimensions=self.config.embedding_dimensions)

    def _refusal(
        self, index: int, ident: str, model: str, prompt_tokens: int, decision: QuotaDecision
    ) -> Plan:
        return Plan(
            index=index,
            id=ident,
            model=model,
            created=int(time.time()),
            outcome=Outcome.RATE_LIMITED,
            prompt_tokens=prompt_tokens,
            status=429,
            error=rate_limit_body(model, decision),
            retry_after=decision.retry_after,
            headers=decision.headers,
        )

    def _injected_429(self, index: int, ident: str, model: str, prompt_tokens: int) -> Plan:
        retry_after = self.config.fault_retry_after
        headers = self.quota.headers()
        headers["retry-after"] = str(max(1, math.ceil(retry_after)))
        headers["retry-after-ms"] = str(max(1, math.ceil(retry_after * 1000)))
        message = (
            f"Rate limit reached for {model} in organization {ORGANIZATION}: the service is "
            f"busy. Please try again in {format_duration(retry_after)}. "
            "(limelight simulator, injected fault)"
        )
        return Plan(
            index=index,
            id=ident,
            model=model,
            created=int(time.time()),
            outcome=Outcome.RATE_LIMITED,
            prompt_tokens=prompt_tokens,
            status=429,
            error=error_body(message, type="requests", code="rate_limit_exceeded"),
            retry_after=retry_after,
            headers=headers,
        )

    def plan(self, request: CompletionRequest) -> Plan:
        """Decide request N: its answer, timing, fault and quota admission. An admitted plan
        holds a quota ticket: pass it to :meth:`release` when the request ends."""
        index, rng = self._next()
        prefix = "chatcmpl-" if request.messages or request.prompt is None else "cmpl-"
        ident = prefix + f"{rng.getrandbits(96):024x}"
        model = self._model(request.model)
        created = int(time.time())
        bad = self._bad_request(request)
        if bad is not None:
            # Refused before anything is counted: a request this bad has no usage.
            status = 404 if bad["error"]["code"] == "model_not_found" else 400
            return Plan(
                index=index,
                id=ident,
                model=model,
                created=created,
                outcome=Outcome.BAD_REQUEST,
                prompt_tokens=0,
                status=status,
                error=bad,
            )
        prompt_tokens = estimate_prompt_tokens(request)
        # Draw everything in a fixed order, whatever the outcome, so request N's answer does
        # not depend on the faults and refusals before it.
        outcome = self._fault(rng)
        ttft = self._ttft(rng)
        tool = _pick_tool(request, rng, self.config.tool_call_probability)
        tokens: tuple[str, ...] = ()
        calls: tuple[ToolCall, ...] = ()
        call_pieces: tuple[tuple[str, ...], ...] = ()
        if tool is not None and request.messages:
            arguments = tool_arguments(tool.parameters, rng)
            call_id = f"call_{rng.getrandbits(96):024x}"
            calls = (ToolCall(id=call_id, name=tool.name, arguments=arguments),)
            call_pieces = (
                tuple(
                    arguments[i : i + _ARGUMENT_FRAGMENT]
                    for i in range(0, len(arguments), _ARGUMENT_FRAGMENT)
                ),
            )
            finish_reason = "tool_calls"
        else:
            wanted = sample_length(self.config.output_length, rng)
            cap = request.max_tokens
            length = wanted if cap is None else min(wanted, cap)
            tokens = tuple(words(rng, length))
            finish_reason = "length" if length < wanted else "stop"
        pieces = len(tokens) + sum(len(p) for p in call_pieces)
        fault_at = pieces // 2
        if outcome is Outcome.RATE_LIMITED:
            return self._injected_429(index, ident, model, prompt_tokens)
        budget = (
            request.max_tokens
            if request.max_tokens is not None
            else self.config.default_output_budget
        )
        expected = ttft + max(pieces - 1, 0) * self._itl
        decision = self.quota.try_acquire(prompt_tokens + budget, expected_duration=expected)
        if not decision.admitted:
            return self._refusal(index, ident, model, prompt_tokens, decision)
        status, error = 200, None
        if outcome is Outcome.SERVER_ERROR:
            status, text = rng.choice(_SERVER_ERRORS)
            error = error_body(text, type="server_error")
        return Plan(
            index=index,
            id=ident,
            model=model,
            created=created,
            outcome=outcome,
            prompt_tokens=prompt_tokens,
            tokens=tokens,
            tool_calls=calls,
            tool_call_pieces=call_pieces,
            finish_reason=finish_reason,
            ttft=ttft,
            itl=self._itl,
            fault_at=fault_at,
            status=status,
            error=error,
            headers=decision.headers,
            ticket=decision.ticket,
        )

    def plan_embedding(self, request: EmbeddingRequest) -> Plan:
        """Decide an embedding request: its inputs and ``dimensions`` for
        :meth:`Plan.embeddings`, usage from its input.
        Truncation is not a separate fault here: it counts as malformed."""
        index, rng = self._next()
        ident = f"emb-{rng.getrandbits(96):024x}"
        model = self._model(request.model)
        bad = self._bad_request(request)
        if bad is not None:
            status = 404 if bad["error"]["code"] == "model_not_found" else 400
            return Plan(
                index=index,
                id=ident,
                model=model,
                created=int(time.time()),
                outcome=Outcome.BAD_REQUEST,
                prompt_tokens=0,
                status=status,
                error=bad,
            )
        prompt_tokens = sum(max(1, estimate_tokens(text)) for text in request.input)
        outcome = self._fault(rng)
        if outcome is Outcome.TRUNCATED:
            outcome = Outcome.MALFORMED
        ttft = self._ttft(rng)
        if outcome is Outcome.RATE_LIMITED:
            return self._injected_429(index, ident, model, prompt_tokens)
        decision = self.quota.try_acquire(prompt_tokens, expected_duration=ttft)
        if not decision.admitted:
            return self._refusal(index, ident, model, prompt_tokens, decision)
        status, error = 200, None
        if outcome is Outcome.SERVER_ERROR:
            status, text = rng.choice(_SERVER_ERRORS)
            error = error_body(text, type="server_error")
        dimensions = request.dimensions or self.config.embedding_dimensions
        return Plan(
            index=index,
            id=ident,
            model=model,
            created=int(time.time()),
            outcome=outcome,
            prompt_tokens=prompt_tokens,
            ttft=ttft,
            status=status,
            error=error,
            headers=decision.headers,
            ticket=decision.ticket,
            inputs=tuple(request.input),
            dimensions=dimensions,
        )

    def release(self, plan: Plan) -> None:
        """The request of ``plan`` ended (answered, failed or cancelled): free its slot."""
        if plan.ticket is not None:
            self.quota.release(plan.ticket)

    def list_models(self) -> ModelList:
        """The served models."""
        return ModelList(
            models=[
                ModelInfo(id=name, owned_by=_OWNED_BY, created=_MODELS_CREATED)
                for name in self.config.models
            ]
        )
