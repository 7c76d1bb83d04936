"""The resolver: model strings and explicit backend names to providers, user backends,
and clear errors for what cannot work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from limelight.errors import ConfigError
from limelight.providers import (
    MLX,
    LiteLLM,
    OpenAICompatible,
    Provider,
    Resolved,
    Scripted,
    Simulated,
    Transformers,
    backend_names,
    register_backend,
    resolve,
    resolve_backend,
    takes_json_schema,
)
from limelight.schemas import CompletionRequest, Message


@pytest.mark.parametrize(
    ("model", "backend", "cls", "name"),
    [
        ("gpt-4o-mini", "litellm", LiteLLM, "gpt-4o-mini"),
        (
            "anthropic/claude-3-5-haiku-latest",
            "litellm",
            LiteLLM,
            "anthropic/claude-3-5-haiku-latest",
        ),
        ("ollama/llama3:8b", "litellm", LiteLLM, "ollama/llama3:8b"),
        ("litellm:gpt-4o", "litellm", LiteLLM, "gpt-4o"),
        ("sim:fast", "sim", Simulated, "fast"),
        ("sim", "sim", Simulated, ""),
        ("scripted", "scripted", Scripted, ""),
        ("mlx:/models/tiny", "mlx", MLX, "/models/tiny"),
        ("hf:/models/tiny", "transformers", Transformers, "/models/tiny"),
        ("transformers:/models/tiny", "transformers", Transformers, "/models/tiny"),
    ],
)
def test_model_strings_pick_their_backend(model: str, backend: str, cls: type, name: str) -> None:
    resolved = resolve(model)
    assert isinstance(resolved, Resolved)
    assert (resolved.backend, resolved.model) == (backend, name)
    assert type(resolved.provider) is cls
    assert isinstance(resolved.provider, Provider)


def test_a_base_url_means_an_openai_compatible_server() -> None:
    resolved = resolve("llama3", base_url="http://127.0.0.1:8000/v1", api_key="sk-x")
    assert resolved.backend == "openai-compatible"
    assert isinstance(resolved.provider, OpenAICompatible)
    assert resolved.provider.base_url == "http://127.0.0.1:8000/v1"
    assert resolved.provider.model == "llama3"
    explicit = resolve("openai-compatible:qwen:7b", base_url="http://127.0.0.1:9/v1")
    assert (explicit.backend, explicit.model) == ("openai-compatible", "qwen:7b")


def test_options_reach_the_backend() -> None:
    mlx = resolve("mlx:/m", max_new_tokens=7, temperature=0.5).provider
    assert isinstance(mlx, MLX)
    assert (mlx.max_tokens, mlx.temperature) == (7, 0.5)
    hf = resolve_backend("hf", "/m", device="cpu", max_tokens=9, torch_dtype="bfloat16").provider
    assert isinstance(hf, Transformers)
    assert (hf.max_tokens, hf.torch_dtype) == (9, "bfloat16")
    sim = resolve("sim:x", ttft=0.0, seed=3).provider
    assert isinstance(sim, Simulated)
    assert (sim.config.models, sim.config.ttft, sim.config.seed) == (("x",), 0.0, 3)


@pytest.mark.parametrize(
    ("backend", "cls"),
    [
        ("litellm", LiteLLM),
        ("openai", OpenAICompatible),
        ("openai-compatible", OpenAICompatible),
        ("mlx", MLX),
        ("transformers", Transformers),
        ("hf", Transformers),
        ("sim", Simulated),
        ("scripted", Scripted),
    ],
)
def test_explicit_backend_names_and_aliases(backend: str, cls: type) -> None:
    resolved = (
        resolve_backend(backend, "some-model", base_url="http://127.0.0.1:1/v1")
        if cls is OpenAICompatible
        else resolve_backend(backend, "some-model")
    )
    assert type(resolved.provider) is cls
    assert resolved.model == "some-model"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: resolve(""), "non-empty"),
        (lambda: resolve("openai-compatible:gpt-4o"), "needs base_url"),
        (lambda: resolve("mlx:"), "model path"),
        (lambda: resolve("mlx:/m", base_url="http://x/v1"), "base_url is for remote"),
        (lambda: resolve("hf:/m", colour="red"), "takes no option 'colour'"),
        (lambda: resolve("hf:/m", device="tpu"), "device must be"),
        (lambda: resolve("sim:x", wobble=1), "SimulatedConfig"),
        (lambda: resolve_backend("nope", "m"), "unknown backend 'nope'"),
        (lambda: resolve_backend("litellm", ""), "needs a model"),
        (lambda: resolve("mlx:/m", max_tokens=3, max_new_tokens=4), "not both"),
    ],
)
def test_misconfiguration_is_a_config_error_saying_what_to_do(call: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        call()


@pytest.mark.anyio
async def test_scripted_echoes_by_default_and_takes_responses() -> None:
    echo = resolve("scripted").provider
    result = await echo.complete(CompletionRequest(messages=[Message.user("ping")]))
    assert result.content == "echo: ping"
    fixed = resolve("scripted", responses=["pong"]).provider
    assert (await fixed.complete(CompletionRequest(prompt="x"))).content == "pong"


def test_the_registry_says_which_backends_take_json_schemas() -> None:
    for name in ("litellm", "openai", "openai-compatible", "mlx", "hf", "transformers"):
        assert takes_json_schema(name), name
    for name in ("sim", "scripted", "no-such-backend"):
        assert not takes_json_schema(name), name


def test_users_register_their_own_backends(tmp_path: Path) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def factory(rest: str, options: dict[str, Any]) -> Provider:
        seen.append((rest, dict(options)))
        return Scripted(["hi"], model=rest)

    register_backend("mine-test", factory)
    try:
        resolved = resolve("mine-test:big/model:v2", api_key="k", depth=3)
        assert resolved.backend == "mine-test"
        assert resolved.model == "big/model:v2"
        assert seen == [("big/model:v2", {"api_key": "k", "depth": 3})]
        assert "mine-test" in backend_names()
        assert resolve_backend("mine-test", "m").provider.model == "m"  # type: ignore[attr-defined]
        with pytest.raises(ConfigError, match="already registered"):
            register_backend("mine-test", factory)
        with pytest.raises(ConfigError, match="letters, digits"):
            register_backend("bad prefix", factory)
        assert not takes_json_schema("mine-test")
        register_backend("mine-test", factory, replace=True, native_json=True)
        assert takes_json_schema("mine-test")
        register_backend("mine-test", lambda rest, options: object(), replace=True)  # type: ignore[arg-type,return-value]
        with pytest.raises(ConfigError, match="not a Provider"):
            resolve("mine-test:x")
    finally:
        from limelight.providers import _resolve

        _resolve._BACKENDS.pop("mine-test", None)
        _resolve._NAMES.pop("mine-test", None)
