"""The router and its helpers with every backend kind: the simulator over HTTP and
``mlx_lm.server`` (openai-compatible), MLX and transformers in process on tiny models built
here, LiteLLM with ``mock_response``, the in-process simulator and Scripted; sync and async
(asyncio and trio)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from limelight.errors import JSONOutputError
from limelight.providers import SimulatedConfig, serve_in_thread
from limelight.roles import allm_json, allm_text, get_llm, llm_json, llm_text, set_role_config
from limelight.usage import get_usage_summary

POINT = {
    "type": "object",
    "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
    "required": ["x", "y"],
}
POINT_JSON = '{"x": 1, "y": 2}'


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    config = SimulatedConfig(ttft=0.0, ttft_jitter=0.0, tokens_per_second=None)
    with serve_in_thread(config) as url:
        yield url


def sim_http(request: pytest.FixtureRequest, answer: str | None) -> dict[str, Any]:
    return {
        "backend": "openai-compatible",
        "model": "sim-model",
        "base_url": request.getfixturevalue("sim_url"),
    }


def mlx_server(request: pytest.FixtureRequest, answer: str | None) -> dict[str, Any]:
    return {
        "model": "openai-compatible:default_model",
        "base_url": request.getfixturevalue("mlx_server"),
        "temperature": 0.0,
        "timeout": 60.0,
    }


def mlx_local(request: pytest.FixtureRequest, answer: str | None) -> dict[str, Any]:
    return {"model": f"mlx:{request.getfixturevalue('tiny_model')}", "max_new_tokens": 4}


def transformers_local(request: pytest.FixtureRequest, answer: str | None) -> dict[str, Any]:
    return {
        "backend": "hf",
        "model": str(request.getfixturevalue("tiny_hf_model")),
        "device": "cpu",
        "torch_dtype": "float32",
        "max_new_tokens": 4,
    }


def litellm_mock(request: pytest.FixtureRequest, answer: str | None) -> dict[str, Any]:
    if importlib.util.find_spec("litellm") is None:
        pytest.skip("pip install 'limelight[litellm]'")
    return {"model": "gpt-4o-mini", "mock_response": answer or "Hello from the mock."}


def sim_local(request: pytest.FixtureRequest, answer: str | None) -> dict[str, Any]:
    return {"model": "sim:tiny", "ttft": 0.0, "ttft_jitter": 0.0, "tokens_per_second": None}


def scripted(request: pytest.FixtureRequest, answer: str | None) -> dict[str, Any]:
    return {"backend": "scripted", "responses": lambda _: answer or "Scripted hello."}


#: kind → (settings maker, whether its model can answer JSON on request).
BACKENDS: dict[str, tuple[Callable[[pytest.FixtureRequest, str | None], dict[str, Any]], bool]] = {
    "sim-http": (sim_http, False),
    "mlx-server": (mlx_server, False),
    "mlx": (mlx_local, False),
    "transformers": (transformers_local, False),
    "litellm": (litellm_mock, True),
    "sim": (sim_local, False),
    "scripted": (scripted, True),
}
KIND_OF = {
    "sim-http": "openai-compatible",
    "mlx-server": "openai-compatible",
    "mlx": "mlx",
    "transformers": "transformers",
    "litellm": "litellm",
    "sim": "sim",
    "scripted": "scripted",
}


def configure(request: pytest.FixtureRequest, kind: str, answer: str | None = None) -> bool:
    """Point the executor role at ``kind``; whether its model can answer JSON."""
    make, answers_json = BACKENDS[kind]
    set_role_config("executor", **make(request, answer))
    return answers_json


@pytest.mark.parametrize("kind", BACKENDS)
def test_llm_text_with_every_backend(request: pytest.FixtureRequest, kind: str) -> None:
    configure(request, kind)
    assert get_llm("executor").backend == KIND_OF[kind]
    first = llm_text("Hello there!", max_tokens=4)
    second = llm_text("Hello again!", max_tokens=4)
    assert isinstance(first, str)
    assert isinstance(second, str)
    totals = get_usage_summary().by_role["executor"]
    assert totals.calls == 2
    assert totals.prompt_tokens > 0
    assert 1 <= totals.completion_tokens <= 8 or kind in ("litellm", "scripted")


@pytest.mark.anyio
@pytest.mark.parametrize("kind", BACKENDS)
async def test_allm_text_with_every_backend(request: pytest.FixtureRequest, kind: str) -> None:
    configure(request, kind)
    text = await allm_text("Hello there!", max_tokens=4)
    assert isinstance(text, str)
    result = await get_llm("executor").acall(prompt="Hi", max_tokens=3)
    assert result.usage is not None
    assert result.usage.completion_tokens <= 3 or kind in ("litellm", "scripted")
    assert get_usage_summary().by_role["executor"].calls == 2


@pytest.mark.parametrize("kind", BACKENDS)
def test_llm_json_with_every_backend(request: pytest.FixtureRequest, kind: str) -> None:
    """Backends told to answer JSON return it validated; the tiny random models cannot, so
    they are asked max_attempts times and a JSONOutputError says why."""
    if configure(request, kind, answer=POINT_JSON):
        assert llm_json("Give a point.", POINT) == {"x": 1, "y": 2}
        assert get_usage_summary().by_role["executor"].calls == 1
        return
    with pytest.raises(JSONOutputError) as caught:
        llm_json("Give a point.", POINT, max_attempts=2, max_tokens=4)
    assert caught.value.attempts == 2
    assert get_usage_summary().by_role["executor"].calls == 2


@pytest.mark.anyio
@pytest.mark.parametrize("kind", BACKENDS)
async def test_allm_json_with_every_backend(request: pytest.FixtureRequest, kind: str) -> None:
    if configure(request, kind, answer=POINT_JSON):
        assert await allm_json("Give a point.", POINT) == {"x": 1, "y": 2}
        return
    with pytest.raises(JSONOutputError) as caught:
        await allm_json("Give a point.", POINT, max_attempts=2, max_tokens=4)
    assert caught.value.attempts == 2
    assert get_usage_summary().by_role["executor"].calls == 2


def _record_prompts(
    monkeypatch: pytest.MonkeyPatch, kind: str, settings: dict[str, Any]
) -> list[str]:
    """Record the text of each prompt the local model is given (its token ids decoded), by
    wrapping the generation call of the model the role's backend loads."""
    prompts: list[str] = []
    if kind == "mlx":
        import mlx_lm

        from limelight.providers import MLX

        original = mlx_lm.stream_generate

        def stream_generate(model: Any, tokenizer: Any, prompt: Any, **options: Any) -> Any:
            prompts.append(tokenizer.decode(list(prompt)))
            return original(model, tokenizer, prompt=prompt, **options)

        MLX(settings["model"].removeprefix("mlx:")).loaded()
        monkeypatch.setattr(mlx_lm, "stream_generate", stream_generate)
        return prompts
    from limelight.providers import Transformers

    model, tokenizer = Transformers(settings["model"]).loaded()
    generate = model.generate

    def spy(**options: Any) -> Any:
        prompts.append(tokenizer.decode(options["input_ids"][0].tolist()))
        return generate(**options)

    monkeypatch.setattr(model, "generate", spy)
    return prompts


@pytest.mark.parametrize("kind", ["mlx", "transformers"])
def test_llm_json_on_a_local_backend_puts_the_schema_in_the_models_prompt(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    settings = BACKENDS[kind][0](request, None)
    set_role_config("executor", **settings)
    prompts = _record_prompts(monkeypatch, kind, settings)
    with pytest.raises(JSONOutputError):
        llm_json("Give a point.", POINT, max_attempts=2, max_tokens=4)
    assert len(prompts) == 2
    schema = json.dumps(POINT, sort_keys=True)
    first, second = prompts
    assert "Give a point." in first
    # Once: the backend turns response_format into the instruction; the router adds none.
    assert first.count(schema) == 1
    assert "JSON schema" in first
    # The re-ask goes to the model too, with what was wrong.
    assert "That answer was not valid" in second


def test_local_roles_share_one_loaded_model(request: pytest.FixtureRequest) -> None:
    """Two roles on the same MLX model: greedy answers match, one model in memory."""
    path = request.getfixturevalue("tiny_model")
    set_role_config("executor", model=f"mlx:{path}", max_new_tokens=5)
    set_role_config("optimizer", backend="mlx", model=str(path), max_new_tokens=5)
    assert llm_text("Same prompt.") == llm_text("Same prompt.", role="optimizer")
    summary = get_usage_summary()
    assert summary.by_role["executor"].calls == summary.by_role["optimizer"].calls == 1
