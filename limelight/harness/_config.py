"""What a benchmark run is: the target, the workload, the load and the limits.

They are plain frozen msgspec Structs, so a result file carries the exact configuration it
came from."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any, Final, Literal

import msgspec

from ..errors import ConfigError
from ..sim import (
    FixedLength,
    OutputLength,
    UniformLength,
    parse_output_length,
)

__all__ = [
    "DEFAULT_MODEL",
    "MAX_WORKERS",
    "BenchConfig",
    "ClosedLoop",
    "ConstantRate",
    "Gamma",
    "Load",
    "Poisson",
    "SimTarget",
    "Target",
    "Workload",
    "WorkloadKind",
    "arrivals",
    "check_workers",
    "parse_length",
]

DEFAULT_MODEL: Final = "sim-1"
DEFAULT_SWEEP_STEPS: Final = 3
#: The most worker processes one run may send from.
MAX_WORKERS: Final = 64

WorkloadKind = Literal["chat", "stream", "multiturn", "agent"]


def parse_length(text: str | int, *, what: str = "token length") -> OutputLength:
    """A token-length distribution: ``64`` (fixed), ``32-128`` (uniform) or
    ``lognormal:200:80``, as ``limelight sim --output-tokens`` takes it.

    :param what: what the length is of, named in the error (``--prompt-tokens``...).
    :raises ConfigError: the text is none of these, or describes no possible length (no
        token, an empty range, a mean <= 0).
    """
    try:
        length = parse_output_length(str(text))
    except ConfigError:
        raise ConfigError(
            f"{what} {str(text)!r} not understood: expected N, LOW-HIGH or lognormal:MEAN:SD, "
            "such as 64, 32-128 or lognormal:200:80"
        ) from None
    if isinstance(length, FixedLength):
        if length.tokens < 1:
            raise ConfigError(f"{what} {str(text)!r}: give at least 1 token")
    elif isinstance(length, UniformLength):
        if not 1 <= length.low <= length.high:
            raise ConfigError(
                f"{what} {str(text)!r}: LOW-HIGH needs 1 <= LOW <= HIGH, such as 32-128"
            )
    elif not (0 < length.mean < math.inf and 0 <= length.sd < math.inf):
        raise ConfigError(
            f"{what} {str(text)!r}: lognormal:MEAN:SD needs MEAN > 0 and SD >= 0, such as "
            "lognormal:200:80"
        )
    return length


class SimTarget(msgspec.Struct, frozen=True, kw_only=True):
    """The built-in simulator, started as a ``limelight sim`` subprocess for the run (its own
    process, so its CPU does not distort the client's numbers).

    :ivar price_input: USD per million prompt tokens to price the simulated model at.
    :ivar price_output: USD per million completion tokens.
    """

    ttft: float = 0.1
    ttft_jitter: float = 0.02
    tokens_per_second: float | None = 100.0
    output_tokens: str = "64"
    tool_call_probability: float = 0.5
    seed: int = 0
    server_error_rate: float = 0.0
    price_input: float | None = None
    price_output: float | None = None


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """What to load-test. With ``base_url``: any OpenAI-compatible server. Without it: the
    simulator (model ``sim`` or ``sim-1``, the default, started as a subprocess), or a model
    string for the backend resolver (LiteLLM model names, ``mlx:<path>``, ``hf:<path>``,
    ``sim:<name>`` for the in-process simulator).

    :ivar api_key_env: the environment variable holding the API key (never stored).
    :ivar price_input: USD per million prompt tokens, overriding the price data.
    :ivar price_output: USD per million completion tokens, overriding the price data.
    :ivar options: for a model string, the backend's own options, passed to the resolver
        (LiteLLM's ``api_base`` or ``mock_response``, a local model's ``max_new_tokens``...).
    """

    model: str = DEFAULT_MODEL
    base_url: str | None = None
    api_key_env: str | None = None
    sim: SimTarget | None = None
    price_input: float | None = None
    price_output: float | None = None
    options: dict[str, Any] = {}

    @property
    def simulated(self) -> bool:
        return self.base_url is None and (
            self.sim is not None or self.model in ("sim", DEFAULT_MODEL)
        )


class Workload(msgspec.Struct, frozen=True, kw_only=True):
    """What each request (or session) does.

    :ivar kind: ``chat`` (non-streamed completions), ``stream`` (streamed completions),
        ``multiturn`` (streamed conversations of ``turns`` user turns) or ``agent`` (an agent
        task with tool calls).
    :ivar prompt_tokens: prompt length distribution, in tokens (4 characters per token).
    :ivar output_tokens: the ``max_tokens`` asked for, a distribution.
    :ivar prompts_file: a JSONL file of prompts (``{"prompt": ...}`` or ``{"messages":
        [...]}``, optional ``"max_tokens"``), used in order, cycling.
    :ivar turns: user turns per conversation (``multiturn``).
    :ivar tools: scripted tools offered to the built-in agent (``agent``).
    :ivar tool_latency: seconds each scripted tool call takes.
    :ivar tool_latency_jitter: each call takes ``tool_latency ± jitter`` (uniform).
    :ivar max_turns: model calls per agent task.
    :ivar agent_factory: ``module:function`` returning an ``Agent`` for one task; it is called
        with the target's provider pool (``factory(model)``).
    :ivar ignore_eos: send ``ignore_eos`` (vLLM's option to force ``max_tokens`` tokens).
    :ivar seed: seeds prompt and length sampling.
    """

    kind: WorkloadKind = "stream"
    prompt_tokens: str = "128"
    output_tokens: str = "64"
    prompts_file: str | None = None
    turns: int = 3
    tools: int = 2
    tool_latency: float = 0.05
    tool_latency_jitter: float = 0.0
    max_turns: int = 4
    agent_factory: str | None = None
    ignore_eos: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        parse_length(self.prompt_tokens, what="prompt_tokens")
        parse_length(self.output_tokens, what="output_tokens")
        if self.turns < 1 or self.max_turns < 1 or self.tools < 0:
            raise ConfigError("turns and max_turns must be >= 1 and tools >= 0")
        if self.tool_latency < 0 or self.tool_latency_jitter < 0:
            raise ConfigError("tool_latency and tool_latency_jitter must be >= 0")
        if self.agent_factory is not None and ":" not in self.agent_factory:
            raise ConfigError(
                f"agent_factory {self.agent_factory!r} must be 'module:function', such as "
                "'myagents:make_agent'"
            )


class ClosedLoop(msgspec.Struct, frozen=True, kw_only=True, tag="closed"):
    """``concurrency`` clients, each sending its next request when the last one ends."""

    concurrency: int

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {self.concurrency}")


class ConstantRate(msgspec.Struct, frozen=True, kw_only=True, tag="constant"):
    """An open loop: requests at ``rate`` per second, evenly spaced."""

    rate: float

    def __post_init__(self) -> None:
        _check_rate(self.rate)


class Poisson(msgspec.Struct, frozen=True, kw_only=True, tag="poisson"):
    """An open loop: Poisson arrivals at ``rate`` per second (exponential gaps)."""

    rate: float
    seed: int = 0

    def __post_init__(self) -> None:
        _check_rate(self.rate)


class Gamma(msgspec.Struct, frozen=True, kw_only=True, tag="gamma"):
    """An open loop: gamma-distributed gaps with mean ``1/rate``; ``shape`` < 1 is burstier
    than Poisson, > 1 more regular (vLLM's ``--burstiness``)."""

    rate: float
    shape: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        _check_rate(self.rate)
        if not self.shape > 0:
            raise ConfigError(f"gamma shape must be > 0, got {self.shape}")


Load = ClosedLoop | ConstantRate | Poisson | Gamma


def _check_rate(rate: float) -> None:
    if not (rate > 0 and math.isfinite(rate)):
        raise ConfigError(f"rate must be a finite number > 0 (requests per second), got {rate}")


def arrivals(load: ConstantRate | Poisson | Gamma) -> Iterator[float]:
    """The intended send times (seconds from the start) of an open-loop load, endless."""
    t = 0.0
    if isinstance(load, ConstantRate):
        i = 0
        while True:
            yield i / load.rate
            i += 1
    rng = random.Random(load.seed)
    while True:
        yield t
        if isinstance(load, Poisson):
            t += rng.expovariate(load.rate)
        else:
            t += rng.gammavariate(load.shape, 1.0 / (load.rate * load.shape))


def check_workers(workers: int | None) -> None:
    """Check a number of worker processes (``None``: none, the run stays in this process).

    :raises ConfigError: it is not within 1 to :data:`MAX_WORKERS`.
    """
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(
            f"workers must be within 1 to {MAX_WORKERS} (processes sending the load), got {workers}"
        )


def with_rate(load: Load, rate: float) -> Load:
    """``load`` at another rate (a closed loop becomes a constant rate)."""
    if isinstance(load, (Poisson, Gamma)):
        return msgspec.structs.replace(load, rate=rate)
    return ConstantRate(rate=rate)


class BenchConfig(msgspec.Struct, frozen=True, kw_only=True):
    """One run.

    :ivar requests: requests (or sessions) to send; ``None`` means until ``duration``.
    :ivar duration: seconds to keep sending; the run ends when the last answer is in.
    :ivar warmup: seconds at the start whose requests are not measured.
    :ivar cooldown: seconds at the end whose requests are not measured.
    :ivar max_errors: stop sending after this many failed requests.
    :ivar timeout: seconds one request may take.
    :ivar slos: SLOs in ms (``{"ttft": 500}``) for goodput.
    :ivar percentiles: which percentiles to report.
    :ivar pool_size: provider workers shared by agent tasks under an open-loop load.
    :ivar client: ``auto`` sends chat and stream workloads to ``http://`` targets on asyncio
        through the harness's lean HTTP client (its CPU per request is a fraction of a
        general-purpose client's); ``provider`` always goes through the provider's own
        streaming API.
    """

    target: Target = msgspec.field(default_factory=Target)
    workload: Workload = msgspec.field(default_factory=Workload)
    load: Load = msgspec.field(default_factory=lambda: ClosedLoop(concurrency=8))
    requests: int | None = 100
    duration: float | None = None
    warmup: float = 0.0
    cooldown: float = 0.0
    max_errors: int | None = None
    timeout: float = 600.0
    slos: dict[str, float] = {}
    percentiles: tuple[float, ...] = (90.0, 99.0)
    pool_size: int = 256
    client: Literal["auto", "provider"] = "auto"

    def __post_init__(self) -> None:
        if self.requests is None and self.duration is None:
            raise ConfigError("give a number of requests, a duration, or both")
        if self.requests is not None and self.requests < 1:
            raise ConfigError(f"requests must be >= 1, got {self.requests}")
        if self.duration is not None and not self.duration > 0:
            raise ConfigError(f"duration must be > 0 s, got {self.duration}")
        if self.warmup < 0 or self.cooldown < 0:
            raise ConfigError("warmup and cooldown must be >= 0 s")
        if self.max_errors is not None and self.max_errors < 1:
            raise ConfigError(f"max_errors must be >= 1, got {self.max_errors}")
        if not self.timeout > 0:
            raise ConfigError(f"timeout must be > 0 s, got {self.timeout}")
        for q in self.percentiles:
            if not 0 <= q <= 100:
                raise ConfigError(f"percentiles are within [0, 100], got {q}")
        if self.pool_size < 1:
            raise ConfigError(f"pool_size must be >= 1, got {self.pool_size}")
