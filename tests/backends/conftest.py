"""Fixtures of the backend conformance suite: a tiny transformers model built here, and one
:class:`Case` per backend saying how to make it and how to ask it for each behaviour."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from limelight.errors import BadRequest, ProviderError, RateLimited
from limelight.providers import Provider
from limelight.schemas import CompletionRequest, Message, ToolCall, ToolSpec
from limelight.sim import SimulatedConfig

ADD = ToolSpec(
    name="add",
    description="Add two numbers.",
    parameters={
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"],
    },
)
HELLO = [Message.user("Hello there! How are you today?")]
ANSWER = "The quick brown fox jumps over the lazy dog."


def build_tiny_transformers_model(path: Path, *, seed: int = 0) -> Path:
    """A tiny llama model for transformers (random weights, the tokenizer trained by
    tests/providers/_tiny_mlx.py), saved with ``save_pretrained``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ..providers._tiny_mlx import build_tokenizer, model_config

    build_tokenizer(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = model_config(len(tokenizer), tokenizer.convert_tokens_to_ids("</s>"))
    del config["model_type"], config["architectures"]
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**config))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_hf_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny llama model saved for transformers, built once per session."""
    pytest.importorskip("torch", reason="pip install 'limelight[transformers]' torch==2.13.0")
    pytest.importorskip("transformers", reason="pip install 'limelight[transformers]'")
    return build_tiny_transformers_model(tmp_path_factory.mktemp("hf") / "tiny-llama")


@dataclasses.dataclass(frozen=True)
class Case:
    """How one backend is made and asked for each behaviour the suite checks.

    :ivar make: an async context manager factory yielding the provider.
    :ivar request: a short request answered with text.
    :ivar long_request: a request whose answer streams many tokens (for cancellation).
    :ivar tool_request: a request answered with a call of ``add`` (a=1, b=2), or ``None``
        when the backend does not parse tool calls (offering tools must then fail clearly).
    :ivar error_request: a request the backend refuses with ``error``.
    :ivar threads: whether the backend generates in worker threads (checked for leftovers).
    """

    name: str
    make: Callable[[], contextlib.AbstractAsyncContextManager[Provider]]
    request: CompletionRequest
    long_request: CompletionRequest
    tool_request: CompletionRequest | None
    error_request: CompletionRequest
    error: type[ProviderError]
    threads: bool = False


def _provider(factory: Callable[[], Provider]) -> Callable[[], Any]:
    @contextlib.asynccontextmanager
    async def make() -> AsyncIterator[Provider]:
        provider = factory()
        try:
            yield provider
        finally:
            await provider.aclose()

    return make


def _litellm_tool_response() -> Any:
    from limelight.providers._litellm import import_litellm

    return import_litellm().ModelResponse(
        model="gpt-4o-mini",
        choices=[
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
                        }
                    ],
                },
            }
        ],
    )


def litellm_case() -> Case:
    """LiteLLM driven offline by its own ``mock_response`` (nothing else can run here
    without a network): the real LiteLLM code path from arguments to response objects."""
    if importlib.util.find_spec("litellm") is None:  # importorskip would import it too early
        pytest.skip("pip install 'limelight[litellm]'")
    from limelight.providers import LiteLLM
    from limelight.providers._litellm import import_litellm

    litellm = import_litellm()

    rate_limited = litellm.RateLimitError(
        "quota exceeded", llm_provider="openai", model="gpt-4o-mini", headers={"retry-after": "2"}
    )
    text = CompletionRequest(messages=HELLO, max_tokens=16)
    return Case(
        name="litellm",
        make=_provider(lambda: LiteLLM("gpt-4o-mini", mock_response=ANSWER)),
        request=text,
        long_request=CompletionRequest(
            messages=HELLO, extra={"mock_response": " ".join([ANSWER] * 40)}
        ),
        tool_request=CompletionRequest(
            messages=HELLO, tools=[ADD], extra={"mock_response": _litellm_tool_response()}
        ),
        error_request=CompletionRequest(messages=HELLO, extra={"mock_response": rate_limited}),
        error=RateLimited,
        threads=True,
    )


def mlx_case(model: Path) -> Case:
    from limelight.providers import MLX

    return Case(
        name="mlx",
        make=_provider(lambda: MLX(str(model), max_tokens=12)),
        request=CompletionRequest(messages=HELLO),
        long_request=CompletionRequest(messages=HELLO, max_tokens=400),
        tool_request=None,
        error_request=CompletionRequest(messages=HELLO, response_format={"type": "grammar"}),
        error=BadRequest,
        threads=True,
    )


def transformers_case(model: Path) -> Case:
    from limelight.providers import Transformers

    return Case(
        name="transformers",
        make=_provider(lambda: Transformers(str(model), max_new_tokens=12)),
        request=CompletionRequest(messages=HELLO),
        long_request=CompletionRequest(messages=HELLO, max_tokens=400),
        tool_request=None,
        error_request=CompletionRequest(messages=HELLO, max_tokens=0),
        error=BadRequest,
        threads=True,
    )


#: Fast simulated answers: tools always called when offered; unknown models refused (404).
SIM = SimulatedConfig(
    models=("sim-model",),
    strict_models=True,
    ttft=0.0,
    ttft_jitter=0.0,
    tokens_per_second=2000.0,
    output_tokens=300,
    tool_call_probability=1.0,
)


def simulated_case() -> Case:
    from limelight.providers import Simulated

    return Case(
        name="simulated",
        make=_provider(lambda: Simulated(SIM)),
        request=CompletionRequest(messages=HELLO, max_tokens=8),
        long_request=CompletionRequest(messages=HELLO),
        tool_request=CompletionRequest(messages=HELLO, tools=[ADD], tool_choice="required"),
        error_request=CompletionRequest(model="no-such-model", messages=HELLO),
        error=BadRequest,
    )


def openai_compatible_case(base_url: str) -> Case:
    from limelight.providers import OpenAICompatible

    return Case(
        name="openai-compatible",
        make=_provider(lambda: OpenAICompatible(base_url, api_key="sk-test", model="sim-model")),
        request=CompletionRequest(messages=HELLO, max_tokens=8),
        long_request=CompletionRequest(messages=HELLO),
        tool_request=CompletionRequest(messages=HELLO, tools=[ADD], tool_choice="required"),
        error_request=CompletionRequest(model="no-such-model", messages=HELLO),
        error=BadRequest,
    )


def scripted_case() -> Case:
    from limelight.testing import Scripted

    def answer(request: CompletionRequest) -> Any:
        if request.metadata.get("fail"):
            return RateLimited("scripted 429", status_code=429, retry_after=1.0)
        if request.tools:
            return ToolCall(id="call_1", name="add", arguments='{"a": 1, "b": 2}')
        if request.metadata.get("long"):
            return " ".join([ANSWER] * 40)
        return ANSWER

    return Case(
        name="scripted",
        make=_provider(lambda: Scripted(answer)),
        request=CompletionRequest(messages=HELLO),
        long_request=CompletionRequest(messages=HELLO, metadata={"long": "1"}),
        tool_request=CompletionRequest(messages=HELLO, tools=[ADD]),
        error_request=CompletionRequest(messages=HELLO, metadata={"fail": "1"}),
        error=RateLimited,
    )


@pytest.fixture(scope="session")
def sim_url() -> Iterator[str]:
    """The simulator server (real HTTP) in a thread, for the whole session."""
    from limelight.sim import serve_in_thread

    with serve_in_thread(SIM) as base_url:
        yield base_url


BACKENDS = ["litellm", "mlx", "transformers", "openai-compatible", "simulated", "scripted"]


@pytest.fixture(params=BACKENDS)
def case(request: pytest.FixtureRequest) -> Case:
    """Each backend in turn (local ones build their tiny model once per session)."""
    name = request.param
    if name == "litellm":
        return litellm_case()
    if name == "mlx":
        return mlx_case(request.getfixturevalue("tiny_model"))
    if name == "transformers":
        return transformers_case(request.getfixturevalue("tiny_hf_model"))
    if name == "openai-compatible":
        return openai_compatible_case(request.getfixturevalue("sim_url"))
    if name == "simulated":
        return simulated_case()
    return scripted_case()
