"""LiteLLM specifics, driven offline through LiteLLM's own ``mock_response`` (no network
here): its exceptions become the project's, embeddings, cost from its cost map, the trio
path through worker threads, and ``import limelight`` never importing it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Any

import anyio
import pytest

from limelight.errors import (
    AuthenticationError,
    BadRequest,
    ConfigError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from limelight.providers import LiteLLM, resolve
from limelight.providers._litellm import import_litellm
from limelight.schemas import CompletionRequest, EmbeddingRequest, Message

pytestmark = pytest.mark.anyio

litellm = import_litellm()
HELLO = [Message.user("hello")]
KEY = "sk-secret-key-123"


def _errors() -> list[tuple[Exception, type[ProviderError]]]:
    common = {"llm_provider": "openai", "model": "gpt-4o-mini"}
    return [
        (litellm.AuthenticationError(f"bad key {KEY}", **common), AuthenticationError),
        (
            litellm.PermissionDeniedError("no", response=_response(403), **common),
            AuthenticationError,
        ),
        (litellm.BadRequestError("bad", **common), BadRequest),
        (litellm.NotFoundError("no such model", **common), BadRequest),
        (litellm.ContextWindowExceededError("too long", **common), BadRequest),
        (litellm.RateLimitError("slow down", headers={"retry-after": "7"}, **common), RateLimited),
        (litellm.ServiceUnavailableError("down", **common), ServerError),
        (litellm.InternalServerError("boom", **common), ServerError),
        (litellm.Timeout("too slow", **common), ProviderTimeout),
        (litellm.APIConnectionError("refused", **common), ProviderConnectionError),
    ]


def _response(status: int) -> Any:
    import httpx

    return httpx.Response(status, request=httpx.Request("POST", "https://example.invalid"))


@pytest.mark.parametrize(
    ("error", "expected"),
    _errors(),
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else "",
)
async def test_litellm_exceptions_become_the_projects(
    error: Exception, expected: type[ProviderError]
) -> None:
    provider = LiteLLM("gpt-4o-mini", api_key=KEY, mock_response=error)
    with pytest.raises(expected) as caught:
        await provider.complete(CompletionRequest(messages=HELLO))
    assert type(caught.value) is expected
    assert KEY not in str(caught.value)
    assert caught.value.__cause__ is not None
    if expected is RateLimited:
        assert caught.value.retry_after == 7.0
    if isinstance(error, litellm.ContextWindowExceededError):
        assert "context window" in str(caught.value)
    with pytest.raises(expected):
        async for _ in provider.stream(CompletionRequest(messages=HELLO)):
            pass


async def test_usage_and_cost_come_from_litellms_response() -> None:
    provider = LiteLLM("gpt-4o-mini", mock_response="Hi there")
    result = await provider.complete(CompletionRequest(messages=HELLO))
    assert result.content == "Hi there"
    assert result.usage is not None
    assert result.usage.total_tokens > 0
    prompt_cost, completion_cost = litellm.cost_per_token(
        model="gpt-4o-mini",
        prompt_tokens=result.usage.prompt_tokens,
        completion_tokens=result.usage.completion_tokens,
    )
    assert result.cost == pytest.approx(prompt_cost + completion_cost)
    assert result.cost > 0
    # A model LiteLLM has no price for: no cost, and no error.
    unknown = LiteLLM("openai/limelight-unpriced-model", mock_response="Hi")
    assert (await unknown.complete(CompletionRequest(messages=HELLO))).cost is None


async def test_request_fields_reach_litellm() -> None:
    provider = LiteLLM("gpt-4o-mini", mock_response="ok", api_base="http://127.0.0.1:9/v1")
    kwargs = provider._kwargs(
        CompletionRequest(
            messages=[Message.system("be brief"), *HELLO],
            prompt="and this",
            temperature=0.2,
            max_tokens=5,
            stop=["\n"],
            response_format={"type": "json_object"},
            extra={"user": "u1"},
        ),
        stream=True,
    )
    assert kwargs["response_format"] == {"type": "json_object"}
    assert kwargs["messages"][-1] == {"role": "user", "content": "and this"}
    assert kwargs["messages"][0] == {"role": "system", "content": "be brief"}
    assert (kwargs["temperature"], kwargs["max_tokens"], kwargs["stop"]) == (0.2, 5, ["\n"])
    assert kwargs["api_base"] == "http://127.0.0.1:9/v1"
    assert kwargs["user"] == "u1"
    assert kwargs["stream_options"] == {"include_usage": True}
    with pytest.raises(ConfigError, match="neither messages nor a prompt"):
        provider._kwargs(CompletionRequest(), stream=False)


async def test_embeddings() -> None:
    provider = LiteLLM("text-embedding-3-small", mock_response=[0.5, 0.25, 0.125])
    result = await provider.embed(EmbeddingRequest(input=["a", "b"]))
    assert result.embeddings
    assert all(v == [0.5, 0.25, 0.125] for v in result.embeddings)
    assert result.model == "text-embedding-3-small"


async def test_resolved_model_strings_call_litellm() -> None:
    provider = resolve("gpt-4o-mini", mock_response="resolved").provider
    assert (await provider.complete(CompletionRequest(messages=HELLO))).content == "resolved"


def _run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    ).stdout


def test_import_limelight_and_resolving_do_not_import_litellm() -> None:
    out = _run(
        "import sys, json, limelight\n"
        "from limelight.providers import resolve\n"
        "resolve('gpt-4o-mini'); resolve('mlx:/m'); resolve('hf:/m')\n"
        "print(json.dumps(sorted(m for m in ('litellm', 'torch', 'transformers', 'mlx_lm') "
        "if m in sys.modules)))\n"
    )
    assert json.loads(out) == []


def test_without_litellm_installed_the_error_names_the_extra() -> None:
    out = _run(
        "import sys; sys.modules['litellm'] = None\n"
        "from limelight.errors import MissingExtra\n"
        "from limelight.providers import resolve\n"
        "try:\n"
        "    resolve('gpt-4o-mini')\n"
        "except MissingExtra as exc:\n"
        "    print(exc.extra, '|', exc)\n"
    )
    assert out.startswith("litellm |")
    assert "pip install 'limelight[litellm]'" in out


def test_litellm_async_cannot_run_on_trio_so_the_backend_uses_threads() -> None:
    """Why trio takes the thread path: LiteLLM's own async call fails there."""
    import trio

    async def direct() -> None:
        await litellm.acompletion(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], mock_response="y"
        )

    # "trio.run received unrecognized yield message", or no asyncio loop to find at all.
    with pytest.raises((litellm.APIConnectionError, RuntimeError)):
        trio.run(direct)

    async def ours() -> str | None:
        provider = LiteLLM("gpt-4o-mini", mock_response="from a thread")
        return (await provider.complete(CompletionRequest(messages=HELLO))).content

    assert trio.run(ours) == "from a thread"


class Spy:
    """LiteLLM's own completion calls, wrapped: the arguments of each call and whether
    LiteLLM's call has returned."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.returned = threading.Event()


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    recorded = Spy()
    completion, acompletion = litellm.completion, litellm.acompletion

    def sync(**kwargs: Any) -> Any:  # trio: in a worker thread
        recorded.calls.append(kwargs)
        try:
            return completion(**kwargs)
        finally:
            recorded.returned.set()

    async def async_(**kwargs: Any) -> Any:  # asyncio
        recorded.calls.append(kwargs)
        response = await acompletion(**kwargs)
        recorded.returned.set()
        return response

    monkeypatch.setattr(litellm, "completion", sync)
    monkeypatch.setattr(litellm, "acompletion", async_)
    return recorded


async def test_response_format_reaches_litellms_call(spy: Spy) -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "p", "schema": schema}}
    provider = LiteLLM("gpt-4o-mini", mock_response='{"x": 1}')
    result = await provider.complete(
        CompletionRequest(messages=HELLO, response_format=response_format)
    )
    assert result.content == '{"x": 1}'
    [call] = spy.calls
    assert call["response_format"] == response_format
    assert call["messages"] == [{"role": "user", "content": "hello"}]


async def test_a_cancelled_complete_returns_without_waiting_for_litellm(
    spy: Spy, anyio_backend: str
) -> None:
    """On asyncio LiteLLM's async call is cancelled; on trio the call returns at once and
    the worker thread finishes LiteLLM's blocking call on its own (as documented)."""
    provider = LiteLLM("gpt-4o-mini", mock_response="late", mock_delay=2.0)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_once_called() -> None:
                while not spy.calls:
                    await anyio.sleep(0.005)
                scope.cancel()

            tg.start_soon(cancel_once_called)
            await provider.complete(CompletionRequest(messages=HELLO))
    assert scope.cancelled_caught
    assert spy.calls
    # complete() came back while LiteLLM's call (2 s of mock delay) was still under way.
    assert not spy.returned.is_set()
    if anyio_backend == "trio":
        # The abandoned thread ends by itself; wait for it, so nothing outlives the test.
        assert await anyio.to_thread.run_sync(spy.returned.wait, 30.0)
    # The backend still answers afterwards.
    answer = await LiteLLM("gpt-4o-mini", mock_response="again").complete(
        CompletionRequest(messages=HELLO)
    )
    assert answer.content == "again"
