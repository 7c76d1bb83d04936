"""Conformance of OpenAICompatible against a third-party OpenAI-compatible server:
``mlx_lm.server`` serving a tiny llama model built here (random weights, a tokenizer trained on
the spot), on asyncio and trio."""

from __future__ import annotations

from pathlib import Path

import pytest

try:
    import mlx.core  # noqa: F401
except ImportError as exc:  # the only reason to skip: MLX cannot run here
    pytest.skip(
        f"mlx is not importable ({exc}); install it with pip install 'limelight[mlx]'",
        allow_module_level=True,
    )

from limelight.errors import BadRequest
from limelight.providers import OpenAICompatible
from limelight.schemas import CompletionRequest, Message, StreamEventType, Usage

pytestmark = pytest.mark.anyio


def chat(max_tokens: int = 6, **kwargs: object) -> CompletionRequest:
    messages = [Message.system("Be brief."), Message.user("What is the capital of France?")]
    return CompletionRequest(messages=messages, max_tokens=max_tokens, temperature=0.0, **kwargs)  # type: ignore[arg-type]


async def test_chat_completion(mlx_server: str) -> None:
    async with OpenAICompatible(mlx_server, api_key="sk-test") as provider:
        first = await provider.complete(chat(metadata={"role": "executor"}))
        second = await provider.complete(chat())
        shorter = await provider.complete(chat(max_tokens=2))
        assert provider.statistics().in_use == 0
    assert isinstance(first.content, str)
    assert first.content  # the random model always says something within 6 tokens
    assert first.content == second.content  # greedy decoding is deterministic
    assert first.finish_reason in ("length", "stop")
    assert first.usage is not None
    assert 1 <= first.usage.completion_tokens <= 6
    assert first.usage.prompt_tokens > 0
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens
    assert shorter.usage is not None
    assert shorter.usage.completion_tokens <= 2  # max_tokens reached the server
    assert first.id
    assert first.id.startswith("chatcmpl")
    assert first.model
    assert first.provider == "openai-compatible"
    assert first.metadata == {"role": "executor"}
    assert first.latency is not None
    assert first.latency > 0
    assert first.ttft is None


async def test_chat_stream_matches_completion(mlx_server: str) -> None:
    async with OpenAICompatible(mlx_server) as provider:
        whole = await provider.complete(chat())
        events = [event async for event in provider.stream(chat())]
        assert provider.statistics().in_use == 0
    kinds = [e.type for e in events]
    assert kinds[-1] is StreamEventType.DONE
    assert kinds.count(StreamEventType.DONE) == 1
    assert kinds[-2] is StreamEventType.USAGE  # asked for with stream_options.include_usage
    tokens = [e.content for e in events if e.type is StreamEventType.TOKEN]
    assert len(tokens) >= 1
    result = events[-1].result
    assert result is not None
    assert result.content == "".join(t or "" for t in tokens) == whole.content
    assert result.usage == events[-2].usage
    assert result.usage is not None
    assert whole.usage is not None
    # The same counts, but the second call of the same prompt finds it in mlx_lm.server's
    # prompt cache, and the server says so (prompt_tokens_details.cached_tokens).
    assert same_counts(result.usage, whole.usage)
    assert 0 < result.usage.cached_tokens <= result.usage.prompt_tokens
    assert result.finish_reason == whole.finish_reason
    assert result.ttft is not None
    assert result.latency is not None
    assert 0 < result.ttft <= result.latency


async def test_text_completion_plain_and_streamed(mlx_server: str) -> None:
    request = CompletionRequest(prompt="The quick brown fox", max_tokens=5, temperature=0.0)
    async with OpenAICompatible(mlx_server) as provider:
        whole = await provider.complete(request)
        events = [event async for event in provider.stream(request)]
    assert isinstance(whole.content, str)
    assert whole.usage is not None
    assert 1 <= whole.usage.completion_tokens <= 5
    result = events[-1].result
    assert result is not None
    streamed = "".join(e.content or "" for e in events if e.type is StreamEventType.TOKEN)
    assert result.content == (streamed or None)
    assert result.usage is not None
    assert same_counts(result.usage, whole.usage)


async def test_list_models(mlx_server: str, tiny_model: Path) -> None:
    expected = str(tiny_model.resolve())  # noqa: ASYNC240 - no I/O for an absolute path
    async with OpenAICompatible(mlx_server) as provider:
        models = await provider.list_models()
    assert expected in models.ids()


async def test_early_close_of_a_stream_releases_the_connection(mlx_server: str) -> None:
    async with OpenAICompatible(mlx_server) as provider:
        stream = provider.stream(chat(max_tokens=12))
        first = await stream.__anext__()
        assert first.type is StreamEventType.TOKEN
        assert provider.statistics().in_use == 1
        await stream.aclose()
        assert provider.statistics().in_use == 0
        # The provider still works after an abandoned stream.
        assert (await provider.complete(chat(max_tokens=2))).usage is not None


async def test_invalid_parameter_is_a_bad_request(mlx_server: str) -> None:
    async with OpenAICompatible(mlx_server, api_key="sk-very-secret") as provider:
        with pytest.raises(BadRequest) as caught:
            await provider.complete(chat(top_p=2.0))
    error = caught.value
    assert error.status_code == 400
    assert "top_p must be at most 1" in str(error)
    assert error.body == {"error": "top_p must be at most 1"}
    assert "sk-very-secret" not in str(error)


async def test_unknown_path_is_a_bad_request(mlx_server: str) -> None:
    async with OpenAICompatible(mlx_server.removesuffix("/v1") + "/v2") as provider:
        with pytest.raises(BadRequest) as caught:
            await provider.list_models()
    assert caught.value.status_code == 404
    assert caught.value.body == "Not Found"


def same_counts(a: Usage, b: Usage) -> bool:
    """Equal but for ``cached_tokens``: mlx_lm.server reports the prompt cache's hits, so a
    second call of the same prompt differs there."""
    counts = ("prompt_tokens", "completion_tokens", "total_tokens")
    return [getattr(a, c) for c in counts] == [getattr(b, c) for c in counts]
