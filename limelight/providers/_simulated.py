"""The simulated LLM backend: OpenAI-like latency, output, tool calls, quotas and faults,
without a model. :class:`SimEngine` decides everything about request N as pure data (a
:class:`Plan`); :class:`Simulated` plays plans in-process and ``limelight sim`` on the wire.
"""

from __future__ import annotations

import enum
import hashlib
import math
import random
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Literal, TypeGuard

import anyio
import anyio.lowlevel
import anyio.to_thread
import msgspec

from .._token_bucket import EPSILON, Bucket
from ..errors import (
    BadRequest,
    BadResponse,
    ConfigError,
    ProviderConnectionError,
    ProviderError,
    RateLimited,
    ServerError,
)
from ..schemas import (
    CompletionRequest,
    CompletionResult,
    EmbeddingRequest,
    EmbeddingResult,
    ModelInfo,
    ModelList,
    StreamEvent,
    StreamEventType,
    ToolCall,
    ToolSpec,
    Usage,
)
from ..schemas._openai import error_body

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_OUTPUT_BUDGET",
    "DEFAULT_EMBEDDING_DIMENSIONS",
    "DEFAULT_FAULT_RETRY_AFTER",
    "DEFAULT_MODEL",
    "DEFAULT_OUTPUT_TOKENS",
    "DEFAULT_SEED",
    "DEFAULT_TOKENS_PER_SECOND",
    "DEFAULT_TOOL_CALL_PROBABILITY",
    "DEFAULT_TTFT",
    "DEFAULT_TTFT_JITTER",
    "INLINE_EMBEDDING_VALUES",
    "MAX_ARGUMENTS_LENGTH",
    "MAX_EMBEDDING_DIMENSIONS",
    "MAX_EMBEDDING_INPUTS",
    "MAX_EMBEDDING_VALUES",
    "MAX_MESSAGES",
    "MAX_MESSAGE_TOOL_CALLS",
    "MAX_OUTPUT_TOKENS",
    "MAX_SCHEMA_ARRAY_ITEMS",
    "MAX_SCHEMA_DEPTH",
    "MAX_SCHEMA_NODES",
    "MAX_SCHEMA_STRING_LENGTH",
    "MAX_TOOLS",
    "FixedLength",
    "LogNormalLength",
    "Outcome",
    "OutputLength",
    "Plan",
    "Quota",
    "QuotaDecision",
    "SimEngine",
    "Simulated",
    "SimulatedConfig",
    "UniformLength",
    "check_request",
    "embed_text",
    "estimate_prompt_tokens",
    "estimate_tokens",
    "format_duration",
    "parse_output_length",
    "plan_error",
]

DEFAULT_MODEL = "sim-1"
DEFAULT_TTFT = 0.1
DEFAULT_TTFT_JITTER = 0.02
DEFAULT_TOKENS_PER_SECOND = 100.0
DEFAULT_OUTPUT_TOKENS = 64
DEFAULT_TOOL_CALL_PROBABILITY = 0.5
DEFAULT_OUTPUT_BUDGET = 256
DEFAULT_EMBEDDING_DIMENSIONS = 256
DEFAULT_FAULT_RETRY_AFTER = 0.05
DEFAULT_SEED = 0

# Caps on what one request may ask for. Beyond them the simulator answers 400 naming the cap
# (and a config beyond them is refused), so that no request makes it generate without bound
# or hold its event loop.

#: Most output tokens a request may ask for (``max_tokens``) and the longest answer a
#: :class:`SimulatedConfig` may set: 128 Ki, the largest output of OpenAI's models.
MAX_OUTPUT_TOKENS = 131_072
#: Most messages in one chat request.
MAX_MESSAGES = 10_000
#: Most tool calls in the messages of one chat request, all messages together.
MAX_MESSAGE_TOOL_CALLS = 10_000
#: Most tools one request may offer (OpenAI's own limit).
MAX_TOOLS = 128
#: Deepest JSON nesting of one tool's ``parameters`` or one ``response_format`` schema.
MAX_SCHEMA_DEPTH = 64
#: Most JSON values (objects, arrays, strings, numbers...) in all the schemas of a request.
MAX_SCHEMA_NODES = 20_000
#: Largest ``minLength`` a schema may ask of a generated string.
MAX_SCHEMA_STRING_LENGTH = 16_384
#: Largest ``minItems`` a schema may ask of a generated array.
MAX_SCHEMA_ARRAY_ITEMS = 1_024
#: Most bytes of JSON the arguments generated for one tool call may take.
MAX_ARGUMENTS_LENGTH = 65_536
#: Most inputs in one embedding request (OpenAI's own limit).
MAX_EMBEDDING_INPUTS = 2_048
#: Largest ``dimensions`` of an embedding.
MAX_EMBEDDING_DIMENSIONS = 8_192
#: Most numbers one embedding request may ask for, inputs times dimensions (2048 x 1024).
MAX_EMBEDDING_VALUES = 2_097_152
#: Embeddings of up to this many numbers are computed on the event loop (a few ms); larger
#: ones in a worker thread, so that the loop keeps serving.
INLINE_EMBEDDING_VALUES = 4_096

#: The prompt-token estimate: one token per 4 characters (rounded up), as OpenAI's
#: rule of thumb for English, and at least one token per message.
CHARS_PER_TOKEN = 4

#: Tool-call arguments are streamed in fragments of this many characters, one per "token".
_ARGUMENT_FRAGMENT = 4

_ORGANIZATION = "org-sim"
_OWNED_BY = "limelight-sim"
_MODELS_CREATED = 1_700_000_000


# --------------------------------------------------------------------------------------
# Output length distributions


class FixedLength(msgspec.Struct, frozen=True, kw_only=True, tag="fixed"):
    """Every answer has ``tokens`` tokens."""

    tokens: int


class UniformLength(msgspec.Struct, frozen=True, kw_only=True, tag="uniform"):
    """Answer lengths uniform in ``[low, high]`` tokens."""

    low: int
    high: int


class LogNormalLength(msgspec.Struct, frozen=True, kw_only=True, tag="lognormal"):
    """Log-normal answer lengths with this mean and standard deviation (of the lengths
    themselves, not of their logarithm), as real chat traffic roughly has."""

    mean: float
    sd: float


OutputLength = FixedLength | UniformLength | LogNormalLength


def parse_output_length(text: str) -> OutputLength:
    """Parse the ``--output-tokens`` syntax: ``64`` (fixed), ``32-128`` (uniform) or
    ``lognormal:200:80`` (mean 200, standard deviation 80).

    :raises ConfigError: when ``text`` is none of these.
    """
    try:
        if text.startswith("lognormal:"):
            _, mean, sd = text.split(":")
            return LogNormalLength(mean=float(mean), sd=float(sd))
        if "-" in text:
            low, high = text.split("-")
            return UniformLength(low=int(low), high=int(high))
        return FixedLength(tokens=int(text))
    except ValueError:
        raise ConfigError(
            f"output length {text!r} not understood: expected N, LOW-HIGH or "
            "lognormal:MEAN:SD, such as 64, 32-128 or lognormal:200:80"
        ) from None


def _validate_length(length: OutputLength) -> None:
    if isinstance(length, FixedLength):
        if not 1 <= length.tokens <= MAX_OUTPUT_TOKENS:
            raise ConfigError(
                f"output_tokens must be within [1, {MAX_OUTPUT_TOKENS}] "
                f"(MAX_OUTPUT_TOKENS), got {length.tokens}"
            )
    elif isinstance(length, UniformLength):
        if not 1 <= length.low <= length.high <= MAX_OUTPUT_TOKENS:
            raise ConfigError(
                f"uniform output length needs 1 <= low <= high <= {MAX_OUTPUT_TOKENS} "
                f"(MAX_OUTPUT_TOKENS), got {length.low}-{length.high}"
            )
    elif not (0 < length.mean < math.inf and 0 <= length.sd < math.inf):
        raise ConfigError(
            f"lognormal output length needs a finite mean > 0 and sd >= 0, "
            f"got mean={length.mean}, sd={length.sd}"
        )


def _sample_length(length: OutputLength, rng: random.Random) -> int:
    if isinstance(length, FixedLength):
        return length.tokens
    if isinstance(length, UniformLength):
        return rng.randint(length.low, length.high)
    if length.sd == 0:
        return max(1, round(min(length.mean, MAX_OUTPUT_TOKENS)))
    # Moment matching: the log-normal whose own mean and sd are the configured ones.
    sigma2 = math.log1p((length.sd / length.mean) ** 2)
    mu = math.log(length.mean) - sigma2 / 2
    # Long tails are cut at the cap (a draw can even overflow to infinity).
    return max(1, round(min(rng.lognormvariate(mu, math.sqrt(sigma2)), MAX_OUTPUT_TOKENS)))


# --------------------------------------------------------------------------------------
# Configuration


class SimulatedConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How the simulated backend behaves.

    :ivar models: the model names served; the first is the default for requests without one.
    :ivar strict_models: refuse (404 ``model_not_found``) models not in ``models``; by default
        any name is accepted and echoed back.
    :ivar ttft: mean seconds to the first token.
    :ivar ttft_jitter: the first token comes uniformly within ``ttft ± ttft_jitter``.
    :ivar tokens_per_second: decode speed after the first token; ``None`` for no delay.
    :ivar output_tokens: answer length before ``max_tokens`` caps it: an int (fixed) or a
        :data:`OutputLength`. A capped answer ends with finish reason ``"length"``.
    :ivar tool_call_probability: chance that a request offering tools gets a tool call.
    :ivar server_error_rate: chance of a 5xx answer.
    :ivar rate_limit_error_rate: chance of a 429 that no quota explains (an upstream limit).
    :ivar connection_reset_rate: chance the connection drops (mid-stream when streaming).
    :ivar truncated_rate: chance the answer stops early, without finish reason or ``[DONE]``.
    :ivar malformed_rate: chance of an invalid JSON body or chunk.
    :ivar fault_retry_after: the ``Retry-After`` (seconds) of injected 429s.
    :ivar rpm: requests per minute quota; ``None`` for none.
    :ivar tpm: tokens per minute quota; ``None`` for none.
    :ivar max_concurrency: requests in flight at once; ``None`` for no cap.
    :ivar default_output_budget: output tokens a request without ``max_tokens`` is charged
        against ``tpm``, as OpenAI reserves before it knows the answer's length.
    :ivar embedding_dimensions: length of embedding vectors when the request names none.
    :ivar seed: with the same seed and the same sequence of requests, every answer, fault and
        tool call repeats exactly.
    """

    models: tuple[str, ...] = (DEFAULT_MODEL,)
    strict_models: bool = False
    ttft: float = DEFAULT_TTFT
    ttft_jitter: float = DEFAULT_TTFT_JITTER
    tokens_per_second: float | None = DEFAULT_TOKENS_PER_SECOND
    output_tokens: int | OutputLength = DEFAULT_OUTPUT_TOKENS
    tool_call_probability: float = DEFAULT_TOOL_CALL_PROBABILITY
    server_error_rate: float = 0.0
    rate_limit_error_rate: float = 0.0
    connection_reset_rate: float = 0.0
    truncated_rate: float = 0.0
    malformed_rate: float = 0.0
    fault_retry_after: float = DEFAULT_FAULT_RETRY_AFTER
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None
    default_output_budget: int = DEFAULT_OUTPUT_BUDGET
    embedding_dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("models must name at least one model")
        if self.ttft < 0 or self.ttft_jitter < 0:
            raise ConfigError(
                f"ttft and ttft_jitter must be >= 0, got {self.ttft} and {self.ttft_jitter}"
            )
        if self.tokens_per_second is not None and not self.tokens_per_second > 0:
            raise ConfigError(
                f"tokens_per_second must be > 0 (or None for no delay), "
                f"got {self.tokens_per_second}"
            )
        _validate_length(self.output_length)
        rates = {
            "tool_call_probability": self.tool_call_probability,
            "server_error_rate": self.server_error_rate,
            "rate_limit_error_rate": self.rate_limit_error_rate,
            "connection_reset_rate": self.connection_reset_rate,
            "truncated_rate": self.truncated_rate,
            "malformed_rate": self.malformed_rate,
        }
        for name, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ConfigError(f"{name} must be within [0, 1], got {rate}")
        if sum(self._fault_rates()) > 1.0 + EPSILON:
            raise ConfigError(
                f"the fault rates add up to {sum(self._fault_rates())}, more than 1: lower them"
            )
        for name, limit in (
            ("rpm", self.rpm),
            ("tpm", self.tpm),
            ("max_concurrency", self.max_concurrency),
        ):
            if limit is not None and limit < 1:
                raise ConfigError(f"{name} must be at least 1 (or None for no limit), got {limit}")
        if (
            self.default_output_budget < 0
            or not 1 <= self.embedding_dimensions <= MAX_EMBEDDING_DIMENSIONS
            or (self.fault_retry_after < 0)
        ):
            raise ConfigError(
                "default_output_budget and fault_retry_after must be >= 0 and "
                f"embedding_dimensions within [1, {MAX_EMBEDDING_DIMENSIONS}] "
                f"(MAX_EMBEDDING_DIMENSIONS), got {self.default_output_budget}, "
                f"{self.fault_retry_after} and {self.embedding_dimensions}"
            )

    @property
    def output_length(self) -> OutputLength:
        """``output_tokens`` as a distribution (an int means :class:`FixedLength`)."""
        if isinstance(self.output_tokens, int):
            return FixedLength(tokens=self.output_tokens)
        return self.output_tokens

    def _fault_rates(self) -> tuple[float, float, float, float, float]:
        return (
            self.server_error_rate,
            self.rate_limit_error_rate,
            self.connection_reset_rate,
            self.truncated_rate,
            self.malformed_rate,
        )


# --------------------------------------------------------------------------------------
# Quotas: OpenAI's continuously refilling buckets


def format_duration(seconds: float) -> str:
    """A duration the way OpenAI's ``x-ratelimit-reset-*`` headers write it (Go's format,
    milliseconds rounded up): ``"120ms"``, ``"1s"``, ``"1.5s"``, ``"6m0s"``, ``"1h0m0s"``."""
    if seconds <= 0:
        return "0s"
    ms = math.ceil(seconds * 1000 - 1e-6)
    if ms < 1000:
        return f"{max(ms, 1)}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = str(rest // 1000) if rest % 1000 == 0 else f"{rest / 1000:.3f}".rstrip("0")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


class QuotaDecision(msgspec.Struct, frozen=True, kw_only=True):
    """The answer of :meth:`Quota.try_acquire`.

    :ivar ticket: on admission, what to hand to :meth:`Quota.release` when the request ends.
    :ivar limited_by: on refusal, which limit refused.
    :ivar too_large: the request costs more tokens than the per-minute limit: it can never be
        admitted, so there is no ``retry_after``.
    :ivar headers: the ``x-ratelimit-*`` headers after the decision (plus ``retry-after`` and
        ``retry-after-ms`` on refusal).
    """

    admitted: bool
    ticket: int | None = None
    limited_by: Literal["requests", "tokens", "concurrency"] | None = None
    limit: int = 0
    used: int = 0
    requested: int = 0
    retry_after: float | None = None
    too_large: bool = False
    headers: dict[str, str] = {}


class Quota:
    """Requests-per-minute, tokens-per-minute and concurrency limits, enforced as OpenAI
    does: a request is admitted when the requests bucket holds 1 and the tokens bucket holds
    its estimated cost, and both are charged at once; nothing is refunded afterwards.

    :param rpm: requests per minute, or ``None``.
    :param tpm: tokens per minute, or ``None``.
    :param max_concurrency: requests in flight at once, or ``None``.
    :param clock: returns the current time in seconds (monotonic).
    """

    def __init__(
        self,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        max_concurrency: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self._clock = clock
        self._rpm = rpm
        self._tpm = tpm
        self._requests: Bucket | None = None
        self._tokens: Bucket | None = None
        self.max_concurrency = max_concurrency
        # ticket -> when that request is expected to end, to tell a refused caller when a
        # slot frees up.
        self._in_flight: dict[int, float] = {}
        self._next_ticket = 0

    @property
    def in_flight(self) -> int:
        """Admitted requests not yet released."""
        return len(self._in_flight)

    def _buckets(self, now: float) -> tuple[Bucket | None, Bucket | None]:
        # Buckets start full at their first use, so the clock is only read inside a loop.
        if self._requests is None and self._rpm is not None:
            self._requests = Bucket(self._rpm, now=now)
        if self._tokens is None and self._tpm is not None:
            self._tokens = Bucket(self._tpm, now=now)
        return self._requests, self._tokens

    def headers(self) -> dict[str, str]:
        """The current ``x-ratelimit-*`` headers (none for a limit that is not set)."""
        return self._headers(self._clock())

    def _headers(self, now: float) -> dict[str, str]:
        requests, tokens = self._buckets(now)
        headers: dict[str, str] = {}
        if requests is not None:
            headers["x-ratelimit-limit-requests"] = str(int(requests.limit))
            headers["x-ratelimit-remaining-requests"] = str(math.floor(requests.level(now)))
            headers["x-ratelimit-reset-requests"] = format_duration(requests.reset_time(now))
        if tokens is not None:
            headers["x-ratelimit-limit-tokens"] = str(int(tokens.limit))
            headers["x-ratelimit-remaining-tokens"] = str(math.floor(tokens.level(now)))
            headers["x-ratelimit-reset-tokens"] = format_duration(tokens.reset_time(now))
        return headers

    def try_acquire(self, tokens: int, *, expected_duration: float = 0.0) -> QuotaDecision:
        """Admit a request costing one request and ``tokens`` tokens, or say why not.

        :param tokens: the request's estimated token cost (prompt + output budget).
        :param expected_duration: how long the request will hold its concurrency slot, used
            to tell refused callers when to retry.
        """
        now = self._clock()
        requests, token_bucket = self._buckets(now)
        refusal: QuotaDecision | None = None
        request_wait = 0.0 if requests is None else requests.wait_time(1, now)
        token_wait = 0.0 if token_bucket is None else token_bucket.wait_time(tokens, now)
        if token_bucket is not None and tokens > token_bucket.limit:
            refusal = QuotaDecision(
                admitted=False,
                limited_by="tokens",
                limit=int(token_bucket.limit),
                used=math.ceil(token_bucket.limit - token_bucket.level(now) - EPSILON),
                requested=tokens,
                too_large=True,
            )
        elif request_wait > 0 or token_wait > 0:
            # Name the limit that binds longest; the hint covers both, so that a retry after
            # it is admitted.
            bucket, requested = (
                (requests, 1) if request_wait >= token_wait else (token_bucket, tokens)
            )
            assert bucket is not None
            refusal = QuotaDecision(
                admitted=False,
                limited_by="requests" if bucket is requests else "tokens",
                limit=int(bucket.limit),
                used=math.ceil(bucket.limit - bucket.level(now) - EPSILON),
                requested=requested,
                retry_after=max(request_wait, token_wait),
            )
        elif self.max_concurrency is not None and len(self._in_flight) >= self.max_concurrency:
            soonest = min(self._in_flight.values())
            refusal = QuotaDecision(
                admitted=False,
                limited_by="concurrency",
                limit=self.max_concurrency,
                used=len(self._in_flight),
                requested=1,
                # A slot that should have freed already frees any moment: say 1 ms.
                retry_after=max(soonest - now, 0.001),
            )
        if refusal is not None:
            headers = self._headers(now)
            if refusal.retry_after is not None:
                headers["retry-after"] = str(max(1, math.ceil(refusal.retry_after)))
                headers["retry-after-ms"] = str(max(1, math.ceil(refusal.retry_after * 1000)))
            return msgspec.structs.replace(refusal, headers=headers)
        for bucket, amount in ((requests, 1), (token_bucket, tokens)):
            if bucket is not None:
                # OpenAI's bucket stops at empty: an amount admitted within the slack of the
                # level empties it.
                bucket.take(min(amount, bucket.level(now)), now)
        ticket = self._next_ticket
        self._next_ticket += 1
        self._in_flight[ticket] = now + expected_duration
        return QuotaDecision(admitted=True, ticket=ticket, headers=self._headers(now))

    def release(self, ticket: int) -> None:
        """End an admitted request: its concurrency slot frees. Releasing twice is harmless."""
        self._in_flight.pop(ticket, None)


def _rate_limit_body(model: str, decision: QuotaDecision) -> dict[str, Any]:
    """OpenAI's 429 body for a quota refusal."""
    if decision.limited_by == "concurrency":
        message = (
            f"Rate limit reached for {model} in organization {_ORGANIZATION} on concurrent "
            f"requests: Limit {decision.limit}, Current {decision.used}. Please try again in "
            f"{format_duration(decision.retry_after or 0.0)}."
        )
        return error_body(message, type="requests", code="rate_limit_exceeded")
    unit = "requests per min (RPM)" if decision.limited_by == "requests" else "tokens per min (TPM)"
    if decision.too_large:
        message = (
            f"Request too large for {model} in organization {_ORGANIZATION} on {unit}: "
            f"Limit {decision.limit}, Requested {decision.requested}. The input or output "
            "tokens must be reduced in order to run successfully. (limelight simulator)"
        )
    else:
        message = (
            f"Rate limit reached for {model} in organization {_ORGANIZATION} on {unit}: "
            f"Limit {decision.limit}, Used {decision.used}, Requested {decision.requested}. "
            f"Please try again in {format_duration(decision.retry_after or 0.0)}. "
            "(limelight simulator)"
        )
    return error_body(message, type=str(decision.limited_by), code="rate_limit_exceeded")


# --------------------------------------------------------------------------------------
# Deterministic text, tokens and embeddings

_SYLLABLES = (
    "ka", "lo", "mi", "ren", "tas", "vo", "shi", "nu",
    "pe", "dra", "li", "om", "qua", "zel", "fi", "ther",
)  # fmt: skip
#: 256 pseudo-words; answers are drawn from these.
_WORDS = tuple(a + b for a in _SYLLABLES for b in _SYLLABLES)


def estimate_tokens(text: str | None) -> int:
    """Tokens in ``text`` by the documented estimate: characters / 4, rounded up."""
    if not text:
        return 0
    return -(-len(text) // CHARS_PER_TOKEN)


_tools_encoder = msgspec.json.Encoder()


def estimate_prompt_tokens(request: CompletionRequest) -> int:
    """Prompt tokens of a request, deterministically: for each message, the estimate of its
    content, name and tool calls, at least 1; plus the estimate of the tools' JSON. A text
    completion counts its prompt, at least 1."""
    if not request.messages:
        return max(1, estimate_tokens(request.prompt))
    total = 0
    for message in request.messages:
        count = estimate_tokens(message.content) + estimate_tokens(message.name)
        for call in message.tool_calls:
            count += estimate_tokens(call.name) + estimate_tokens(call.arguments)
        total += max(1, count)
    if request.tools:
        total += estimate_tokens(_tools_encoder.encode(request.tools).decode())
    return total


def embed_text(text: str, dimensions: int) -> list[float]:
    """A unit vector that depends only on ``text`` and ``dimensions`` (a hash of the text
    seeds Gaussian components): equal texts embed equally, different ones almost never."""
    digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
    rng = random.Random(digest)
    vector = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(math.fsum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


# Tokens as streamed: each word with its leading space; one in ten ends a sentence.
_TOKENS = tuple(" " + w for w in _WORDS) * 9 + tuple(" " + w + "." for w in _WORDS)


def _words(rng: random.Random, count: int) -> list[str]:
    """``count`` tokens of pseudo-text: words with a leading space (none on the first), a
    sentence ending now and then, and at the end."""
    tokens = rng.choices(_TOKENS, k=count)
    if tokens:
        tokens[0] = tokens[0][1:]
        if not tokens[-1].endswith("."):
            tokens[-1] += "."
    return tokens


# Words are ASCII letters: a generated string's JSON is its length plus two quotes.
_WORD_CHARS = max(len(w) for w in _WORDS)
# Longest JSON of a float (``-1.7976931348623157e+308`` is 24 characters), with room to spare.
_NUMBER_CHARS = 32
_arguments_encoder = msgspec.json.Encoder()


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _count(schema: Mapping[str, Any], key: str, default: int | None) -> int | None:
    """A non-negative integer keyword (``minLength``, ``maxItems``...), checked beforehand."""
    value = schema.get(key)
    return int(value) if _is_number(value) else default


def _kind_of(schema: Mapping[str, Any]) -> object:
    """The JSON type a value for ``schema`` is generated as."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if kinds else "null"
    if kind is None and "properties" in schema:
        kind = "object"
    return kind


def _int_range(schema: Mapping[str, Any]) -> tuple[int, int]:
    """The integers to draw from: the schema's bounds (draft 4's boolean ``exclusive*`` too),
    else 0 to 100."""
    minimum, maximum = schema.get("minimum"), schema.get("maximum")
    low_excl, high_excl = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    lows, highs = [], []
    if _is_number(minimum):
        lows.append(math.floor(minimum) + 1 if low_excl is True else math.ceil(minimum))
    if _is_number(low_excl):
        lows.append(math.floor(low_excl) + 1)
    if _is_number(maximum):
        highs.append(math.ceil(maximum) - 1 if high_excl is True else math.floor(maximum))
    if _is_number(high_excl):
        highs.append(math.ceil(high_excl) - 1)
    high = min(highs) if highs else None
    low = max(lows) if lows else (0 if high is None or high >= 0 else high - 100)
    return low, max(low, low + 100 if high is None else high)


def _number_range(schema: Mapping[str, Any]) -> tuple[float, float]:
    """The numbers to draw from: the schema's bounds, else 0 to 100."""
    lows = [float(v) for k in ("minimum", "exclusiveMinimum") if _is_number(v := schema.get(k))]
    highs = [float(v) for k in ("maximum", "exclusiveMaximum") if _is_number(v := schema.get(k))]
    high = min(highs) if highs else None
    low = max(lows) if lows else (0.0 if high is None or high >= 0 else high - 100.0)
    return low, min(low + 100.0, sys.float_info.max) if high is None else high


def _array_length(schema: Mapping[str, Any]) -> tuple[int, int]:
    """The lengths to draw from: ``minItems`` (1 by default) to two more, within
    ``maxItems``."""
    most = _count(schema, "maxItems", None)
    fewest = _count(schema, "minItems", 1 if most is None else min(1, most))
    assert fewest is not None
    top = fewest + 2 if most is None else min(most, fewest + 2)
    return fewest, max(fewest, top)


def _value_for(schema: object, rng: random.Random) -> Any:
    """A value valid against a simple JSON schema (types, enums, bounds, nested objects and
    arrays); ``None`` where the schema is beyond that. The schema passed
    :func:`check_request`, so the value's JSON takes at most :func:`_size_bound` bytes."""
    return _generate(schema, rng, {}, 0)


def _generate(schema: object, rng: random.Random, memo: dict[int, Any], depth: int) -> Any:
    """:func:`_value_for`. ``memo`` keeps what is derived from a part of the schema (by its
    id), so that the items of an array cost their output, not their schema's size again."""
    if not isinstance(schema, Mapping) or depth > MAX_SCHEMA_DEPTH:
        return None
    if "const" in schema:
        return schema["const"]
    enum_values = schema.get("enum")
    if isinstance(enum_values, list) and enum_values:
        return rng.choice(enum_values)
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            usable = memo.get(id(options))
            if usable is None:
                usable = memo[id(options)] = [
                    o for o in options if isinstance(o, Mapping) and o.get("type") != "null"
                ] or options
            return _generate(rng.choice(usable), rng, memo, depth + 1)
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1:
        return _generate(all_of[0], rng, memo, depth + 1)
    kind = _kind_of(schema)
    if kind == "string":
        min_length = _count(schema, "minLength", 1)
        assert min_length is not None
        max_length = _count(schema, "maxLength", None)
        text = " ".join(rng.choices(_WORDS, k=rng.randint(1, 3)))
        while len(text) < min_length:
            text += rng.choice(_WORDS)
        return text if max_length is None else text[:max_length]
    if kind == "integer":
        return rng.randint(*_int_range(schema))
    if kind == "number":
        low_f, high_f = _number_range(schema)
        share = rng.random()
        # Weighted this way, the sum cannot overflow whatever the bounds.
        value = round(low_f * (1.0 - share) + high_f * share, 2)
        return min(max(value, low_f), high_f)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array":
        items = schema.get("items", {})
        count = rng.randint(*_array_length(schema))
        return [_generate(items, rng, memo, depth + 1) for _ in range(count)]
    if kind == "object":
        properties = schema.get("properties", {})
        required = memo.get(id(schema))
        if required is None:
            required = memo[id(schema)] = frozenset(schema.get("required", ()))
        result: dict[str, Any] = {}
        if isinstance(properties, Mapping):
            for name, sub in properties.items():
                if name in required or rng.random() < 0.5:
                    result[name] = _generate(sub, rng, memo, depth + 1)
        return result
    return None


def _size_bound(schema: object, limit: int, depth: int = 0) -> int:
    """The most bytes of JSON :func:`_value_for` can generate for ``schema``, or a number
    above ``limit`` once it is known to be above (so the arithmetic stays small)."""
    if not isinstance(schema, Mapping) or depth > MAX_SCHEMA_DEPTH:
        return len(b"null")
    if "const" in schema:
        return len(_arguments_encoder.encode(schema["const"]))
    enum_values = schema.get("enum")
    if isinstance(enum_values, list) and enum_values:
        return max(len(_arguments_encoder.encode(v)) for v in enum_values)
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return max(_size_bound(o, limit, depth + 1) for o in options)
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1:
        return _size_bound(all_of[0], limit, depth + 1)
    kind = _kind_of(schema)
    if kind == "string":
        min_length = _count(schema, "minLength", 1)
        assert min_length is not None
        longest = max(3 * _WORD_CHARS + 2, min_length + _WORD_CHARS - 1)
        max_length = _count(schema, "maxLength", None)
        return 2 + (longest if max_length is None else min(longest, max_length))
    if kind == "integer":
        low, high = _int_range(schema)
        return max(len(str(low)), len(str(high)))
    if kind == "number":
        return _NUMBER_CHARS
    if kind == "boolean":
        return len(b"false")
    if kind == "array":
        _, most = _array_length(schema)
        item = _size_bound(schema.get("items", {}), limit, depth + 1)
        return min(2 + most * (item + 1), limit + 1)
    if kind == "object":
        properties = schema.get("properties", {})
        total = 2
        if isinstance(properties, Mapping):
            for name, sub in properties.items():
                total += len(_arguments_encoder.encode(name)) + 2
                total += _size_bound(sub, limit, depth + 1)
                if total > limit:
                    return limit + 1
        return total
    return len(b"null")


# --------------------------------------------------------------------------------------
# Request validation: what OpenAI refuses with a 400, and the simulator's caps

_JSON_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")
# Keywords whose value is a schema; a list of schemas; an object of schemas.
_SCHEMA_KEYWORDS = frozenset(
    {
        "additionalItems", "additionalProperties", "contains", "else", "if", "items", "not",
        "propertyNames", "then", "unevaluatedItems", "unevaluatedProperties",
    }
)  # fmt: skip
_SCHEMA_LIST_KEYWORDS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_MAP_KEYWORDS = frozenset(
    {"$defs", "definitions", "dependentSchemas", "patternProperties", "properties"}
)
_COUNT_KEYWORDS = frozenset(
    {
        "maxContains", "maxItems", "maxLength", "maxProperties", "minContains", "minItems",
        "minLength", "minProperties",
    }
)  # fmt: skip
_NUMBER_KEYWORDS = frozenset({"maximum", "minimum", "multipleOf"})
_EXCLUSIVE_KEYWORDS = frozenset({"exclusiveMaximum", "exclusiveMinimum"})
_STRING_KEYWORDS = frozenset(
    {"$anchor", "$comment", "$id", "$ref", "$schema", "description", "format", "pattern", "title"}
)
_BOOLEAN_KEYWORDS = frozenset({"deprecated", "nullable", "readOnly", "uniqueItems", "writeOnly"})
_CAPPED_COUNTS = {
    "minLength": (MAX_SCHEMA_STRING_LENGTH, "MAX_SCHEMA_STRING_LENGTH"),
    "minItems": (MAX_SCHEMA_ARRAY_ITEMS, "MAX_SCHEMA_ARRAY_ITEMS"),
}
_TOOL_CHOICES = ("none", "auto", "required")
_RESPONSE_FORMATS = ("text", "json_object", "json_schema")


class _SchemaError(Exception):
    """What is wrong in a schema, and where (the keys leading to it, as OpenAI says it)."""

    def __init__(self, context: tuple[str, ...], problem: str) -> None:
        super().__init__(problem)
        self.context = context
        self.problem = problem


def _json_kind(value: object) -> str:
    """``value``'s JSON type, with its article, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _shown(value: object) -> str:
    """``value`` as JSON, cut short for a message."""
    text = _arguments_encoder.encode(value).decode()
    return text if len(text) <= 60 else text[:57] + "..."


def _check_json(value: object, budget: int) -> int:
    """Walk ``value`` (iteratively: any depth is safe) and count its JSON values.

    :raises _SchemaError: ``value`` is not plain JSON (only dicts with string keys, lists,
        strings, finite numbers, booleans and ``None``), is nested deeper than
        :data:`MAX_SCHEMA_DEPTH` or holds more than ``budget`` values.
    """
    stack: list[tuple[object, int]] = [(value, 1)]
    count = 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > budget:
            raise _SchemaError(
                (),
                f"the schemas of this request hold more than {MAX_SCHEMA_NODES} JSON values, "
                "the simulator's cap (MAX_SCHEMA_NODES)",
            )
        children: Any = ()
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                raise _SchemaError((), "object keys must be strings")
            children = item.values()
        elif isinstance(item, list):
            children = item
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise _SchemaError((), f"{item} is not a JSON number")
        elif not (item is None or isinstance(item, str | int)):
            raise _SchemaError((), f"it holds {_json_kind(item)}, which is not JSON")
        if children and depth >= MAX_SCHEMA_DEPTH:
            raise _SchemaError(
                (),
                f"it is nested deeper than {MAX_SCHEMA_DEPTH} levels, the simulator's cap "
                "(MAX_SCHEMA_DEPTH)",
            )
        stack.extend((child, depth + 1) for child in children)
    return count


def _check_keyword(key: str, value: object, context: tuple[str, ...]) -> None:
    """Check one keyword of a schema; recurse into the schemas it holds."""
    if key == "type":
        names = value if isinstance(value, list) and value else [value]
        if not all(isinstance(n, str) and n in _JSON_TYPES for n in names):
            allowed = ", ".join(f"'{t}'" for t in _JSON_TYPES)
            raise _SchemaError(
                context,
                f"'type' must be one of {allowed}, or an array of them, got {_shown(value)}",
            )
    elif key in _SCHEMA_KEYWORDS:
        if key == "items" and isinstance(value, list):  # drafts 4-7: one schema per position
            for i, sub in enumerate(value):
                _check_schema(sub, (*context, key, str(i)))
        else:
            _check_schema(value, (*context, key))
    elif key in _SCHEMA_LIST_KEYWORDS:
        if not isinstance(value, list) or not value:
            raise _SchemaError(
                context, f"'{key}' must be a non-empty array of schemas, got {_shown(value)}"
            )
        for i, sub in enumerate(value):
            _check_schema(sub, (*context, key, str(i)))
    elif key in _SCHEMA_MAP_KEYWORDS:
        if not isinstance(value, dict):
            raise _SchemaError(
                context, f"'{key}' must be an object of schemas, got {_json_kind(value)}"
            )
        for name, sub in value.items():
            _check_schema(sub, (*context, key, name))
    elif key == "required":
        if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
            raise _SchemaError(
                context, f"'required' must be an array of strings, got {_shown(value)}"
            )
    elif key == "enum":
        if not isinstance(value, list):
            raise _SchemaError(context, f"'enum' must be an array, got {_shown(value)}")
    elif key in _COUNT_KEYWORDS:
        if not (_is_number(value) and value >= 0 and value == int(value)):
            raise _SchemaError(
                context, f"'{key}' must be a non-negative integer, got {_shown(value)}"
            )
        cap = _CAPPED_COUNTS.get(key)
        if cap is not None and value > cap[0]:
            raise _SchemaError(
                context,
                f"'{key}' is {_shown(value)}, above the simulator's cap of {cap[0]} ({cap[1]})",
            )
    elif key in _NUMBER_KEYWORDS or key in _EXCLUSIVE_KEYWORDS:
        if isinstance(value, bool) and key in _EXCLUSIVE_KEYWORDS:
            return  # draft 4: a flag on minimum / maximum
        if not _is_number(value):
            raise _SchemaError(context, f"'{key}' must be a number, got {_shown(value)}")
        try:
            as_float = float(value)
        except OverflowError:
            as_float = math.inf
        if not math.isfinite(as_float):
            raise _SchemaError(context, f"'{key}' is out of range, got {_shown(value)}")
        if key == "multipleOf" and not as_float > 0:
            raise _SchemaError(context, f"'multipleOf' must be above 0, got {_shown(value)}")
    elif key in _STRING_KEYWORDS:
        if not isinstance(value, str):
            raise _SchemaError(context, f"'{key}' must be a string, got {_shown(value)}")
    elif key in _BOOLEAN_KEYWORDS and not isinstance(value, bool):
        raise _SchemaError(context, f"'{key}' must be a boolean, got {_shown(value)}")


def _check_schema(schema: object, context: tuple[str, ...]) -> None:
    """Check that ``schema`` is a JSON schema whose keywords have the types JSON Schema gives
    them, within the simulator's caps. Unknown keywords pass, as JSON Schema says."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise _SchemaError(
            context, f"a schema must be an object or a boolean, got {_json_kind(schema)}"
        )
    for key, value in schema.items():
        _check_keyword(key, value, context)


def _invalid(message: str, param: str | None, code: str | None = None) -> dict[str, Any]:
    return error_body(message, type="invalid_request_error", param=param, code=code)


def _too_long(param: str, length: int, limit: int, cap: str) -> dict[str, Any]:
    return _invalid(
        f"Invalid '{param}': array too long. Expected an array with maximum length {limit} "
        f"(the simulator's cap, {cap}), but got an array with length {length} instead.",
        param,
        "array_above_max_length",
    )


def _out_of_range(
    param: str, value: float, low: float, high: float, cap: str | None = None
) -> dict[str, Any] | None:
    """OpenAI's 400 for a number outside ``[low, high]``; ``None`` when it is within.
    ``cap``: the name of the simulator's constant that ``high`` is, to name in the message."""
    if low <= value <= high:
        return None
    kind = "integer" if isinstance(value, int) else "decimal"
    if value < low:
        side, expected = "below minimum", f">= {low}"
    else:
        side, expected = "above maximum", f"<= {high}"
        if cap is not None:
            expected += f" (the simulator's cap, {cap})"
    return _invalid(
        f"Invalid '{param}': {kind} {side} value. Expected a value {expected}, but got "
        f"{value} instead.",
        param,
        f"{kind}_{side.replace('imum', '')}_value".replace(" ", "_"),
    )


def _schema_problem(
    schema: object, budget: int, *, arguments: bool
) -> tuple[int, tuple[str, ...], str | None]:
    """Check one schema: (JSON values used, where the problem is, the problem or ``None``).
    ``arguments``: values are generated for it, so their size is capped too."""
    try:
        used = _check_json(schema, budget)
        _check_schema(schema, ())
    except _SchemaError as exc:
        return budget, exc.context, exc.problem
    if arguments:
        size = _size_bound(schema, MAX_ARGUMENTS_LENGTH)
        if size > MAX_ARGUMENTS_LENGTH:
            return (
                used,
                (),
                f"arguments valid against it can take more than {MAX_ARGUMENTS_LENGTH} "
                "bytes of JSON, the simulator's cap (MAX_ARGUMENTS_LENGTH): lower its "
                "minLength and minItems",
            )
    return used, (), None


def _check_tools(request: CompletionRequest) -> dict[str, Any] | None:
    if len(request.tools) > MAX_TOOLS:
        return _too_long("tools", len(request.tools), MAX_TOOLS, "MAX_TOOLS")
    choice = request.tool_choice
    if isinstance(choice, str) and choice not in _TOOL_CHOICES:
        return _invalid(
            f"Invalid value: {_shown(choice)}. Supported values are: 'none', 'auto', and "
            "'required'.",
            "tool_choice",
            "invalid_value",
        )
    budget = MAX_SCHEMA_NODES
    for i, tool in enumerate(request.tools):
        used, context, problem = _schema_problem(tool.parameters, budget, arguments=True)
        if problem is not None:
            return _invalid(
                f"Invalid schema for function '{tool.name}': In context={context!r}, {problem}.",
                f"tools[{i}].function.parameters",
                "invalid_function_parameters",
            )
        budget -= used
    response_format = request.response_format
    if response_format is None:
        return None
    kind = response_format.get("type")
    if kind not in _RESPONSE_FORMATS:
        return _invalid(
            f"Invalid value: {_shown(kind)}. Supported values are: 'json_object', "
            "'json_schema', and 'text'.",
            "response_format.type",
            "invalid_value",
        )
    if kind != "json_schema":
        return None
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict):
        return _invalid(
            "Missing required parameter: 'response_format.json_schema'.",
            "response_format.json_schema",
            "missing_required_parameter",
        )
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        return _invalid(
            "Missing required parameter: 'response_format.json_schema.name'.",
            "response_format.json_schema.name",
            "missing_required_parameter",
        )
    if "schema" in spec:
        _, context, problem = _schema_problem(spec["schema"], budget, arguments=False)
        if problem is not None:
            return _invalid(
                f"Invalid schema for response_format '{name}': In context={context!r}, {problem}.",
                "response_format.json_schema.schema",
                "invalid_json_schema",
            )
    return None


def check_request(
    request: CompletionRequest | EmbeddingRequest, *, embedding_dimensions: int
) -> dict[str, Any] | None:
    """OpenAI's 400 body for what is wrong in ``request`` (values out of range, tool or
    ``response_format`` schemas with keywords of the wrong type) or above one of the
    simulator's caps; ``None`` for a request it can answer.

    :param embedding_dimensions: the vectors' length when the request names none.
    """
    if isinstance(request, EmbeddingRequest):
        if not request.input:
            return _invalid("'input' must not be empty.", "input")
        if len(request.input) > MAX_EMBEDDING_INPUTS:
            return _too_long(
                "input", len(request.input), MAX_EMBEDDING_INPUTS, "MAX_EMBEDDING_INPUTS"
            )
        if request.dimensions is not None:
            bad = _out_of_range(
                "dimensions",
                request.dimensions,
                1,
                MAX_EMBEDDING_DIMENSIONS,
                "MAX_EMBEDDING_DIMENSIONS",
            )
            if bad is not None:
                return bad
        dimensions = request.dimensions or embedding_dimensions
        values = len(request.input) * dimensions
        if values > MAX_EMBEDDING_VALUES:
            return _invalid(
                f"This request asks for {len(request.input)} embeddings of {dimensions} "
                f"dimensions, {values} numbers: above the simulator's cap of "
                f"{MAX_EMBEDDING_VALUES} per request (MAX_EMBEDDING_VALUES). Send fewer inputs "
                "or ask for fewer dimensions.",
                "input",
            )
        return None
    if not request.messages and request.prompt is None:
        return _invalid(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    if len(request.messages) > MAX_MESSAGES:
        return _too_long("messages", len(request.messages), MAX_MESSAGES, "MAX_MESSAGES")
    calls = sum(len(message.tool_calls) for message in request.messages)
    if calls > MAX_MESSAGE_TOOL_CALLS:
        return _invalid(
            f"The messages of this request hold {calls} tool calls: above the simulator's cap "
            f"of {MAX_MESSAGE_TOOL_CALLS} (MAX_MESSAGE_TOOL_CALLS).",
            "messages",
        )
    if request.max_tokens is not None:
        if request.max_tokens < 1:
            return _out_of_range("max_tokens", request.max_tokens, 1, MAX_OUTPUT_TOKENS)
        if request.max_tokens > MAX_OUTPUT_TOKENS:
            return _invalid(
                f"max_tokens is too large: {request.max_tokens}. The simulator supports at most "
                f"{MAX_OUTPUT_TOKENS} completion tokens (MAX_OUTPUT_TOKENS), whereas you "
                f"provided {request.max_tokens}.",
                "max_tokens",
                "invalid_value",
            )
    for param, value, high in (
        ("temperature", request.temperature, 2.0),
        ("top_p", request.top_p, 1.0),
    ):
        if value is not None:
            bad = _out_of_range(param, value, 0.0, high)
            if bad is not None:
                return bad
    return _check_tools(request)


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


# --------------------------------------------------------------------------------------
# The engine: what happens to request N


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
            error=_rate_limit_body(model, decision),
            retry_after=decision.retry_after,
            headers=decision.headers,
        )

    def _injected_429(self, index: int, ident: str, model: str, prompt_tokens: int) -> Plan:
        retry_after = self.config.fault_retry_after
        headers = self.quota.headers()
        headers["retry-after"] = str(max(1, math.ceil(retry_after)))
        headers["retry-after-ms"] = str(max(1, math.ceil(retry_after * 1000)))
        message = (
            f"Rate limit reached for {model} in organization {_ORGANIZATION}: the service is "
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
            arguments = _arguments_encoder.encode(_value_for(tool.parameters, rng) or {}).decode()
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
            wanted = _sample_length(self.config.output_length, rng)
            cap = request.max_tokens
            length = wanted if cap is None else min(wanted, cap)
            tokens = tuple(_words(rng, length))
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


# --------------------------------------------------------------------------------------
# The in-process provider


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
