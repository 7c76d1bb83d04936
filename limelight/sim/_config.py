"""How the simulated model behaves: :class:`SimulatedConfig`.

It holds the output length distributions and the caps on what one request may ask for."""

from __future__ import annotations

import math
import random

import msgspec

from .._buckets import EPSILON
from ..errors import (
    ConfigError,
)

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


def sample_length(length: OutputLength, rng: random.Random) -> int:
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
