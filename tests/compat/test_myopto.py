"""The earlier role router (``myopto.utils``) through ``limelight.compat.myopto``: its README's
examples (quick start, each backend, JSON output, environment variables, migration, API
reference) with only the import line changed, on real backends: the simulator over HTTP
(``"CustomLLM"``), LiteLLM with ``mock_response`` (given as the limelight ``default`` role's
option, so the examples' own lines stay as printed), transformers and MLX on tiny models
built here (``"LocalSLM"``), and a real key-checking HTTP server for ``key=``. Each call is
checked to have gone through the role's pool: counted in limelight's usage under its role.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

import limelight.roles as native
from limelight.compat.myopto import (
    AbstractModel,
    AutoGenLLM,
    ChatResponse,
    CustomLLM,
    LiteLLM,
    LocalSLM,
    clear_role_config,
    configure_usage,
    extract_text,
    get_cost_by_role,
    get_llm,
    get_role_config,
    get_tokens_by_role,
    get_total_cost,
    get_usage_summary,
    llm_json,
    llm_text,
    print_usage_summary,
    reset_usage,
    set_role_config,
    set_role_models,
    track_response,
    try_parse_json,
)
from limelight.errors import ConfigError, JSONOutputError
from limelight.providers import SimulatedConfig, serve_in_thread
from limelight.usage import get_usage_summary as native_summary

from .._key_server import KeyServer, key_server

MOCK = "Hello from the mock."
HELLO = [{"role": "user", "content": "Hello!"}]
DEADLINE = 30.0


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No role settings, no TRACE_* / LIMELIGHT_* environment, an empty usage tracker."""
    for key in list(os.environ):
        if key.startswith(("TRACE_", "LIMELIGHT_")) or key == "DEFAULT_LITELLM_MODEL":
            monkeypatch.delenv(key)
    clear_role_config()
    native.clear_role_config()
    configure_usage(True)
    reset_usage()
    yield
    clear_role_config()
    native.clear_role_config()
    configure_usage(True)
    reset_usage()


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    """The simulator over HTTP; yields its API root (``.../v1``)."""
    config = SimulatedConfig(ttft=0.0, ttft_jitter=0.0, tokens_per_second=None, output_tokens=6)
    with serve_in_thread(config) as url:
        yield url


def mock_litellm(answer: str = MOCK) -> None:
    """LiteLLM answers ``answer`` for every role (its ``mock_response``), offline."""
    if importlib.util.find_spec("litellm") is None:
        pytest.skip("pip install 'limelight[litellm]'")
    native.set_role_config("default", mock_response=answer)


def calls(role: str) -> int:
    totals = native_summary().by_role.get(role)
    return 0 if totals is None else totals.calls


@pytest.fixture(scope="module")
def tiny_hf_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny llama model for transformers, built with the backend suite's builder."""
    pytest.importorskip("torch", reason="pip install 'limelight[transformers]'")
    pytest.importorskip("transformers", reason="pip install 'limelight[transformers]'")
    from ..backends.conftest import build_tiny_transformers_model

    return build_tiny_transformers_model(tmp_path_factory.mktemp("hf-compat") / "tiny-llama")


# -- Quick start ---------------------------------------------------------------------------


def test_quick_start() -> None:
    mock_litellm()
    # The README's quick start, as printed:
    # Configure models for each role
    set_role_models(
        executor="gpt-4o-mini",
        optimizer="gpt-4o",
        metaoptimizer="gpt-4o",
    )

    # Get LLM instance and call
    llm = get_llm("executor")
    response = llm(messages=[{"role": "user", "content": "Hello!"}])

    assert isinstance(llm, LiteLLM)
    assert response.choices[0].message.content == MOCK
    assert response["choices"][0]["message"]["content"] == MOCK  # the LocalSLM dict shape
    assert response.model == "gpt-4o-mini"
    assert response.usage.total_tokens > 0
    assert calls("executor") == 1
    assert get_tokens_by_role()["executor"] == response.usage.total_tokens
    assert get_cost_by_role()["executor"] > 0  # gpt-4o-mini has a known price
    assert get_llm("optimizer").model_name == "gpt-4o"


# -- Backends ------------------------------------------------------------------------------


def test_litellm_backend_examples() -> None:
    mock_litellm()
    # OpenAI
    set_role_models(executor="gpt-4o-mini")
    # Anthropic (today's LiteLLM needs the provider prefix for this alias)
    set_role_models(optimizer="anthropic/claude-3-5-sonnet-latest")
    assert get_llm("executor")(messages=HELLO).choices[0].message.content == MOCK
    assert get_llm("optimizer")(messages=HELLO).model == "claude-3-5-sonnet-latest"
    # Azure
    set_role_models(executor="azure/gpt-4o")
    assert get_llm("executor")(messages=HELLO).choices[0].message.content == MOCK
    assert calls("executor") == 2
    assert calls("optimizer") == 1


def test_local_slm_on_transformers(tiny_hf_model: Path) -> None:
    model = str(tiny_hf_model)  # instead of "Qwen/Qwen2-0.5B-Instruct": nothing downloads
    # Basic local SLM setup
    set_role_models(executor=model, optimizer=model, backend="LocalSLM")
    # Fine-grained control
    set_role_config(
        "executor",
        backend="LocalSLM",
        model=model,
        device="cpu",  # mps (Apple), cuda, or cpu
        max_new_tokens=3,
        torch_dtype="float32",
    )
    llm = get_llm("executor")
    assert isinstance(llm, LocalSLM)
    response = llm(messages=HELLO)
    assert isinstance(response.choices[0].message.content, str)
    assert 1 <= response.usage.completion_tokens <= 3
    assert calls("executor") == 1
    assert get_llm("optimizer").config.torch_dtype == "float16"  # the earlier default


def test_local_slm_with_mlx(tiny_model: Path) -> None:
    # MLX backend (faster on Apple Silicon)
    set_role_config(
        "executor",
        backend="LocalSLM",
        model=str(tiny_model),  # instead of "mlx-community/Qwen2-0.5B-Instruct"
        use_mlx=True,
        max_new_tokens=4,
    )
    llm = get_llm("executor")
    assert llm.config.use_mlx
    assert native.get_role_config("executor").backend == "mlx"  # limelight's mlx backend
    response = llm(messages=HELLO)
    assert isinstance(response.choices[0].message.content, str)
    assert 1 <= response.usage.completion_tokens <= 4
    assert response.choices[0].finish_reason in ("stop", "length")
    short = llm(messages=HELLO, max_new_tokens=1)  # the earlier per-call name
    assert short.usage.completion_tokens == 1
    assert calls("executor") == 2


def test_custom_llm_examples(sim_url: str) -> None:
    # LiteLLM proxy server (here: the simulator)
    set_role_config(
        "executor",
        backend="CustomLLM",
        model="gpt-4o",
        base_url=sim_url,
        api_key="sk-xxx",
    )
    # vLLM server (here: the simulator too)
    set_role_config(
        "optimizer",
        backend="CustomLLM",
        model="meta-llama/Llama-2-7b-chat-hf",
        base_url=sim_url,
    )
    executor = get_llm("executor")
    assert isinstance(executor, CustomLLM)
    assert executor.base_url == sim_url
    assert executor(messages=HELLO).model == "gpt-4o"
    reply = get_llm("optimizer")(messages=HELLO)
    assert reply.model == "meta-llama/Llama-2-7b-chat-hf"
    assert reply.usage.completion_tokens == 6
    assert calls("executor") == 1
    assert calls("optimizer") == 1


KEY = "sk-role-key-0123456789abcdef"


@pytest.fixture
def keyed() -> Iterator[KeyServer]:
    with key_server(KEY) as running:
        yield running


def test_the_key_of_set_role_models_reaches_a_custom_server(
    keyed: KeyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACE_CUSTOMLLM_URL", keyed.url)
    set_role_models(executor="m", optimizer="m", backend="CustomLLM", key=KEY)
    assert llm_text("hi") == "served m"
    assert llm_text("hi", role="optimizer") == "served m"
    assert keyed.seen == [f"Bearer {KEY}"] * 2
    assert KEY not in repr(get_role_config("executor"))


def test_the_key_of_set_role_models_reaches_litellm(keyed: KeyServer) -> None:
    if importlib.util.find_spec("litellm") is None:
        pytest.skip("pip install 'limelight[litellm]'")
    set_role_config("executor", base_url=keyed.url)  # a LiteLLM proxy
    set_role_models(executor="openai/m", key=KEY)
    assert get_llm("executor")(messages=HELLO).choices[0].message.content == "served m"
    assert keyed.seen == [f"Bearer {KEY}"]
    assert calls("executor") == 1


# -- JSON schema output --------------------------------------------------------------------

PERSON = {
    "name": "person_info",
    "schema": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    },
    "strict": True,
}


def test_json_schema_output() -> None:
    mock_litellm('{"name": "John", "age": 30}')
    set_role_models(executor="gpt-4o-mini")
    result = llm_json(
        "Extract the person's name and age from: John is 30 years old.",
        json_schema=PERSON,
    )
    assert result == {"name": "John", "age": 30}
    assert calls("executor") == 1


def test_json_on_a_local_model_asks_in_the_prompt_and_re_asks(tiny_model: Path) -> None:
    """The tiny model answers nonsense: llm_json sends it back with what was wrong, then gives
    up with a typed error; every attempt went through the role's pool."""
    set_role_config(
        "executor", backend="LocalSLM", model=str(tiny_model), use_mlx=True, max_new_tokens=2
    )
    with pytest.raises(JSONOutputError) as caught:
        llm_json("Extract the name.", json_schema=PERSON, call_tag="extract")
    assert caught.value.attempts == 3
    assert isinstance(caught.value, ValueError)
    assert calls("executor") == 3


def test_llm_json_needs_a_schema() -> None:
    with pytest.raises(ConfigError, match="non-empty json_schema"):
        llm_json("x", json_schema={})


# -- Environment variables -----------------------------------------------------------------


def test_environment_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    llm = get_llm("executor")
    assert (llm.backend, llm.model_name) == ("LiteLLM", "gpt-4o")
    monkeypatch.setenv("TRACE_LITELLM_MODEL", "gpt-4o-mini")
    assert llm.model_name == "gpt-4o-mini"
    monkeypatch.setenv("TRACE_LLM_MODEL_EXECUTOR", "gpt-4.1")
    assert llm.model_name == "gpt-4.1"
    assert get_llm("optimizer").model_name == "gpt-4o-mini"

    monkeypatch.setenv("TRACE_DEFAULT_LLM_BACKEND", "LocalSLM")
    local = get_llm("optimizer")
    assert isinstance(local, LocalSLM)
    assert local.model_name == "Qwen/Qwen2-0.5B-Instruct"
    monkeypatch.setenv("TRACE_LOCALSLM_MODEL", "/models/tiny")
    assert local.model_name == "/models/tiny"

    monkeypatch.setenv("TRACE_LLM_BACKEND_OPTIMIZER", "CustomLLM")
    custom = get_llm("optimizer").config
    assert (custom.backend, custom.model) == ("CustomLLM", "gpt-4o")
    assert (custom.base_url, custom.api_key) == ("http://localhost:4000", "sk-placeholder")
    monkeypatch.setenv("TRACE_CUSTOMLLM_URL", "http://proxy:4000")
    monkeypatch.setenv("TRACE_CUSTOMLLM_API_KEY_OPTIMIZER", "sk-optimizer")
    monkeypatch.setenv("TRACE_CUSTOMLLM_MODEL", "served")
    custom = get_llm("optimizer").config
    assert (custom.base_url, custom.api_key, custom.model) == (
        "http://proxy:4000",
        "sk-optimizer",
        "served",
    )
    assert "sk-optimizer" not in repr(custom)


def test_a_call_configured_by_the_environment_alone(
    sim_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from limelight.compat.myopto.llm import LLM

    monkeypatch.setenv("TRACE_DEFAULT_LLM_BACKEND", "CustomLLM")
    monkeypatch.setenv("TRACE_CUSTOMLLM_URL", sim_url)
    monkeypatch.setenv("TRACE_CUSTOMLLM_MODEL", "sim-model")
    response = LLM(role="executor")(messages=HELLO)
    assert response.model == "sim-model"
    assert calls("executor") == 1


def test_the_deprecated_model_variable_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFAULT_LITELLM_MODEL", "gpt-3.5-turbo")
    with pytest.warns(DeprecationWarning, match="TRACE_LITELLM_MODEL"):
        assert get_llm("executor").model_name == "gpt-3.5-turbo"


def test_an_unknown_backend_in_the_environment_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACE_DEFAULT_LLM_BACKEND", "Bogus")
    with pytest.raises(ConfigError, match=r"'Bogus'.*'LiteLLM', 'CustomLLM'"):
        get_llm("executor")
    with pytest.raises(ConfigError, match="'Bogus'"):
        set_role_config("executor", model="gpt-4o-mini")
    monkeypatch.delenv("TRACE_DEFAULT_LLM_BACKEND")
    assert get_role_config("executor") is None  # settings that cannot be used are not kept


# -- Migration -----------------------------------------------------------------------------


def test_migration_before_and_after() -> None:
    mock_litellm()
    # Before (still works)
    from limelight.compat.myopto.llm import LLM

    llm: AbstractModel = LLM(role="executor")
    assert llm(messages=HELLO).choices[0].message.content == MOCK

    # After (recommended)
    set_role_models(executor="gpt-4o-mini")
    llm = get_llm("executor")
    assert llm(messages=HELLO).model == "gpt-4o-mini"
    assert calls("executor") == 2


def test_using_local_slms_through_the_environment(
    tiny_hf_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TRACE_DEFAULT_LLM_BACKEND", "TRACE_LOCALSLM_MODEL"):
        monkeypatch.setenv(name, "")  # so that the example's settings are undone after it
    # Set backend to LocalSLM
    os.environ["TRACE_DEFAULT_LLM_BACKEND"] = "LocalSLM"
    os.environ["TRACE_LOCALSLM_MODEL"] = str(tiny_hf_model)
    from limelight.compat.myopto.llm import LLM

    llm = LLM(role="executor", device="cpu", torch_dtype="float32", max_new_tokens=2)
    assert isinstance(llm, LLM)
    assert llm.backend == "LocalSLM"
    assert llm.model_name == str(tiny_hf_model)
    assert llm(messages=HELLO).usage.completion_tokens <= 2
    # Or use the router API (cleaner)
    set_role_models(executor=str(tiny_hf_model), backend="LocalSLM")
    set_role_config("executor", device="cpu", torch_dtype="float32", max_new_tokens=2)
    assert get_llm("executor")(messages=HELLO).choices[0].message.role == "assistant"
    assert calls("executor") == 2


# -- API reference -------------------------------------------------------------------------


def test_router_functions(sim_url: str) -> None:
    set_role_config("exec", backend="CustomLLM", model="sim-model", base_url=sim_url)
    config = get_role_config("executor")  # "exec" is the earlier alias
    assert config is not None
    assert (config.backend, config.model, config.max_new_tokens) == ("CustomLLM", "sim-model", 150)
    assert get_llm("executor") is get_llm("exec")  # the earlier instance cache

    handle = get_llm("executor")
    other = get_llm("executor", model="other-model")  # this handle only
    assert other(messages=HELLO).model == "other-model"
    assert handle(messages=HELLO).model == "sim-model"
    set_role_config("executor", model="next-model")
    assert handle(messages=HELLO).model == "next-model"  # handles follow the router
    assert calls("executor") == 3  # every handle's calls count under the role

    clear_role_config("executor")
    assert get_role_config("executor") is None
    assert native.get_role_config("executor").model is None  # limelight's settings gone too
    set_role_config("optimizer", backend="CustomLLM", model="sim-model", base_url=sim_url)
    clear_role_config()
    assert get_role_config("optimizer") is None


def test_call_helpers(sim_url: str) -> None:
    set_role_config("executor", backend="CustomLLM", model="sim-model", base_url=sim_url)
    text = llm_text("Summarize this article...", role="executor", system_prompt="Be brief.")
    assert isinstance(text, str)
    assert text
    assert llm_text("x", llm=get_llm("executor", model="m2"), call_tag="t")
    assert calls("executor") == 2

    response = get_llm("executor")(messages=HELLO)
    assert isinstance(response, ChatResponse)
    assert extract_text(response) == response.choices[0].message.content
    assert extract_text(response.model_dump()) == response.choices[0].message.content
    assert extract_text(None) == ""
    assert extract_text("plain") == "plain"
    assert extract_text({"choices": [{"text": "legacy"}]}) == "legacy"
    assert try_parse_json('```json\n{"a": 1}\n```') == {"a": 1}
    assert try_parse_json("Sure: [1, 2]") == [1, 2]
    with pytest.raises(json.JSONDecodeError):
        try_parse_json("no json here")


def test_usage_tracking(sim_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    set_role_config("executor", backend="CustomLLM", model="gpt-4o-mini", base_url=sim_url)
    configure_usage(enabled=True)
    reset_usage()
    reply = get_llm("executor")(messages=HELLO)
    tokens = reply.usage.total_tokens
    assert get_tokens_by_role() == {"executor": tokens}
    assert get_total_cost() == pytest.approx(get_cost_by_role()["executor"])
    assert get_total_cost() > 0
    assert get_usage_summary() == {
        "total_cost_usd": get_total_cost(),
        "cost_by_role": get_cost_by_role(),
        "tokens_by_role": {"executor": tokens},
    }
    print_usage_summary()
    printed = capsys.readouterr().out
    assert "=== Usage Summary ===" in printed
    assert f"executor: ${get_total_cost():.6f} ({tokens:,} tokens)" in printed

    record = track_response(
        {"model": "gpt-4o", "usage": {"prompt_tokens": 10, "completion_tokens": 5}},
        role="critic",
        backend="LiteLLM",
    )
    assert (record.total_tokens, record.role, record.model) == (15, "critic", "gpt-4o")
    assert record.usd > 0
    assert get_tokens_by_role()["critic"] == 15

    configure_usage(False)
    get_llm("executor")(messages=HELLO)
    assert get_tokens_by_role()["executor"] == tokens  # not counted while off
    reset_usage()
    assert get_total_cost() == 0.0
    assert get_usage_summary()["cost_by_role"] == {}


def test_bad_settings_are_refused_with_what_to_do() -> None:
    with pytest.raises(ConfigError, match="AutoGen backend is not available"):
        set_role_config("executor", backend="AutoGen", model="gpt-4o")
    with pytest.raises(ConfigError, match="AutoGen backend is not available"):
        AutoGenLLM(role="executor")
    with pytest.raises(ConfigError, match="unknown backend 'Ollama'"):
        set_role_models(executor="llama3", backend="Ollama")
    assert get_role_config("executor") is None  # nothing was set
    with pytest.raises(ConfigError, match="name at least one"):
        set_role_models(key="sk-lost")
    with pytest.raises(ConfigError, match="max_new_tokens"):
        set_role_config("executor", backend="LocalSLM", max_new_tokens=0)
    with pytest.raises(ConfigError, match="takes no 'colour'"):
        LiteLLM(role="executor", colour="red")
    with pytest.raises(ConfigError, match="llm= takes a model"):
        llm_text("x", llm=object())  # type: ignore[arg-type]


# -- Async (asyncio and trio) --------------------------------------------------------------


@pytest.mark.anyio
async def test_async_calls_through_the_router(sim_url: str) -> None:
    set_role_config("executor", backend="CustomLLM", model="sim-model", base_url=sim_url)
    llm = get_llm("executor")
    answers: list[str] = []

    async def one(i: int) -> None:
        reply = await llm.acall(messages=[{"role": "user", "content": f"call {i}"}])
        answers.append(reply.choices[0].message.content)

    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(one, i)
        # The earlier sync helpers from an async program: in worker threads.
        text = await anyio.to_thread.run_sync(llm_text, "hi")
    assert len(answers) == 6
    assert all(answers)
    assert text
    assert calls("executor") == 7


@pytest.mark.anyio
async def test_async_calls_on_litellm_and_a_settings_change(sim_url: str) -> None:
    mock_litellm()
    set_role_models(executor="gpt-4o-mini")
    llm = get_llm("executor")
    with anyio.fail_after(DEADLINE):
        first = await llm.acall(messages=HELLO)
        native.clear_role_config("default")  # the mock is LiteLLM's option only
        set_role_config("executor", backend="CustomLLM", model="sim-model", base_url=sim_url)
        second = await llm.acall(messages=HELLO)
    assert first.choices[0].message.content == MOCK
    assert second.model == "sim-model"  # the pool was rebuilt for the new settings
    assert calls("executor") == 2
