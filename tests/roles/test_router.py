"""The role router's settings (calls, environment, the default role), its handles (sync and
async, asyncio and trio) and usage counted per role."""

from __future__ import annotations

import threading

import anyio
import pytest

from limelight.errors import ConfigError, RateLimited
from limelight.providers import Reply, Scripted
from limelight.roles import (
    DEFAULT_ROLE,
    RoleConfig,
    allm_text,
    clear_role_config,
    get_llm,
    get_role_config,
    llm_text,
    set_role_config,
    set_role_models,
)
from limelight.schemas import CompletionRequest, CompletionResult, Message, Usage
from limelight.usage import cost_of, get_tokens_by_role, get_usage_summary, usage_run


def echo(request: CompletionRequest) -> str:
    """Answer with the model name, temperature, max_tokens and the last message."""
    last = request.messages[-1].content
    return f"{request.model}|{request.temperature}|{request.max_tokens}|{last}"


# -- settings -------------------------------------------------------------------------------


def test_set_role_models_sets_each_role() -> None:
    set_role_models(executor="gpt-4o-mini", optimizer="mlx:/m/q", metaoptimizer="o3-mini")
    assert get_role_config("executor").model == "gpt-4o-mini"
    assert get_role_config("optimizer").model == "mlx:/m/q"
    assert get_role_config("metaoptimizer").model == "o3-mini"
    set_role_models(critic="x-model", backend="openai-compatible")  # any role name
    assert get_role_config("critic").backend == "openai-compatible"
    assert get_role_config("critic").model == "x-model"
    assert get_role_config("executor").backend is None
    set_role_models(backend="litellm")  # no model: the default backend of every role
    assert get_role_config("executor").backend == "litellm"


def test_set_role_config_updates_only_the_fields_given() -> None:
    set_role_config("executor", model="a", temperature=0.2, top_p=0.9)
    set_role_config("executor", max_tokens=50, seed=1)
    config = get_role_config("executor")
    assert config.model == "a"
    assert config.temperature == 0.2
    assert config.max_tokens == 50
    assert config.options == {"top_p": 0.9, "seed": 1}


def test_precedence_call_then_role_env_then_default_then_default_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIMELIGHT_DEFAULT_BACKEND", "scripted")
    monkeypatch.setenv("LIMELIGHT_DEFAULT_MODEL", "env-default")
    monkeypatch.setenv("LIMELIGHT_DEFAULT_TEMPERATURE", "0.1")
    monkeypatch.setenv("LIMELIGHT_MODEL_META_OPTIMIZER", "env-meta")
    monkeypatch.setenv("LIMELIGHT_MAX_TOKENS_META_OPTIMIZER", "77")
    monkeypatch.setenv("LIMELIGHT_BASE_URL_EXECUTOR", "http://env/v1")
    assert get_role_config("anything").model == "env-default"
    assert get_role_config("anything").backend == "scripted"
    meta = get_role_config("meta-optimizer")  # non-alphanumerics become _ in the name
    assert meta.model == "env-meta"
    assert meta.max_tokens == 77
    assert meta.temperature == 0.1
    set_role_config("default", model="set-default", temperature=0.3)
    assert get_role_config("anything").model == "set-default"  # set default beats env default
    assert get_role_config("meta-optimizer").model == "env-meta"  # role env beats set default
    assert get_role_config("anything").temperature == 0.3
    set_role_config("meta-optimizer", model="set-meta")
    assert get_role_config("meta-optimizer").model == "set-meta"  # set role beats all
    assert get_role_config("executor").base_url == "http://env/v1"
    clear_role_config("meta-optimizer")
    assert get_role_config("meta-optimizer").model == "env-meta"
    clear_role_config()
    assert get_role_config("anything").model == "env-default"


def test_environment_drives_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMELIGHT_DEFAULT_BACKEND", "scripted")
    monkeypatch.setenv("LIMELIGHT_MODEL_EXECUTOR", "from-env")
    monkeypatch.setenv("LIMELIGHT_TEMPERATURE_EXECUTOR", "0.25")
    set_role_config("default", responses=echo)
    assert llm_text("hi") == "from-env|0.25|None|hi"


def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="role"):
        set_role_config("  ", model="x")
    with pytest.raises(ConfigError, match="max_tokens"):
        set_role_config("executor", max_tokens=0)
    with pytest.raises(ConfigError, match="temperature"):
        set_role_config("executor", temperature=-1)
    with pytest.raises(ConfigError, match="Provider"):
        set_role_config("executor", provider=object())  # type: ignore[arg-type]
    monkeypatch.setenv("LIMELIGHT_MAX_TOKENS_EXECUTOR", "lots")
    with pytest.raises(ConfigError, match="LIMELIGHT_MAX_TOKENS_EXECUTOR"):
        get_role_config("executor")


def test_a_role_without_model_says_how_to_set_one() -> None:
    with pytest.raises(ConfigError, match="LIMELIGHT_MODEL_OPTIMIZER"):
        get_llm("optimizer")(prompt="hi")


def test_an_unknown_backend_is_refused_when_it_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="unknown backend 'carrier-pigeon'") as caught:
        set_role_config("executor", backend="carrier-pigeon", model="x")
    for name in ("litellm", "openai-compatible", "mlx", "transformers", "sim", "scripted"):
        assert name in str(caught.value)  # the valid ones, named
    with pytest.raises(ConfigError, match="did you mean 'openai-compatible'"):
        set_role_config("executor", backend="openai_compatible")
    with pytest.raises(ConfigError, match="unknown backend 'lite-llm'"):
        set_role_models(executor="gpt-4o-mini", optimizer="o3-mini", backend="lite-llm")
    assert get_role_config("executor") == RoleConfig()  # nothing was set
    assert get_role_config("optimizer") == RoleConfig()
    with pytest.raises(ConfigError, match="unknown backend"):
        set_role_models(backend="nope")
    assert get_role_config(DEFAULT_ROLE) == RoleConfig()
    set_role_config("executor", backend=" OpenAI ", model="x")  # names are case-blind aliases
    assert get_llm("executor").backend == "openai-compatible"
    monkeypatch.setenv("LIMELIGHT_BACKEND_CRITIC", "carrier-pigeon")
    with pytest.raises(ConfigError, match="LIMELIGHT_BACKEND_CRITIC: unknown backend"):
        get_role_config("critic")


def test_settings_given_to_set_role_models_are_not_roles() -> None:
    with pytest.raises(ConfigError, match=r"'api_key' is a setting, not a role: .* key="):
        set_role_models(executor="gpt-4o-mini", api_key="sk-abcdefghijklmnop")
    with pytest.raises(ConfigError, match="'model', 'temperature' are settings"):
        set_role_models(model="m", temperature="0.1")
    with pytest.raises(ConfigError, match="model name"):
        set_role_models(executor=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="key="):
        set_role_models(executor="m", key="")
    for role in ("executor", "api_key", "model", "temperature"):
        assert get_role_config(role) == RoleConfig()  # nothing was set


def test_set_role_models_sets_the_key_and_server_of_the_roles_it_names() -> None:
    set_role_models(executor="m", backend="openai-compatible", key="k1", base_url="http://h/v1")
    executor = get_role_config("executor")
    assert (executor.model, executor.api_key, executor.base_url) == ("m", "k1", "http://h/v1")
    assert get_role_config("optimizer").api_key is None
    assert get_role_config("key") == RoleConfig()  # no role named "key"
    set_role_models(key="k2")  # no model: the default of every role
    assert get_role_config("optimizer").api_key == "k2"
    assert get_role_config("executor").api_key == "k1"  # its own key wins


def test_the_key_is_hidden_from_repr() -> None:
    config = set_role_config("executor", model="gpt-4o-mini", api_key="sk-hide-me-123")
    assert "sk-hide-me-123" not in repr(config)
    assert "sk-hide-me-123" not in repr(get_role_config("executor"))
    assert "api_key='***'" in repr(config)


def test_role_config_merged_keeps_own_fields() -> None:
    own = RoleConfig(model="a", options={"x": 1})
    merged = own.merged(RoleConfig(model="b", temperature=0.5, options={"x": 2, "y": 3}))
    assert merged.model == "a"
    assert merged.temperature == 0.5
    assert merged.options == {"x": 1, "y": 3}


# -- calls ----------------------------------------------------------------------------------


def test_a_sync_call_carries_the_role_settings_and_counts_usage() -> None:
    set_role_config("executor", backend="scripted", model="m1", temperature=0.4, max_tokens=9)
    set_role_config("executor", responses=echo)
    llm = get_llm("executor")
    result = llm(messages=[{"role": "user", "content": "hello"}])
    assert result.content == "m1|0.4|9|hello"
    assert result.metadata["role"] == "executor"
    again = llm(prompt="bye", temperature=0.9, max_tokens=3)  # the call's settings win
    assert again.content == "m1|0.9|3|bye"
    assert llm.backend == "scripted"
    tokens = get_tokens_by_role()["executor"]
    assert result.usage is not None
    assert again.usage is not None
    assert tokens == result.usage + again.usage


def test_sync_calls_keep_one_provider_until_the_settings_change() -> None:
    """The scripted backend built from settings answers in order across calls, so one
    provider served both; new settings build a new one (the script starts over)."""
    set_role_config("executor", backend="scripted", responses=["one", "two", "three"])
    assert llm_text("a") == "one"
    assert llm_text("b") == "two"
    set_role_config("executor", temperature=0.1)
    assert llm_text("c") == "one"


def test_a_handle_follows_the_router() -> None:
    llm = get_llm("executor")
    set_role_config("executor", provider=Scripted(["first"]))
    assert llm(prompt="x").content == "first"
    set_role_config("executor", provider=Scripted(["second"]))
    assert llm(prompt="x").content == "second"


def test_max_new_tokens_stands_for_max_tokens_on_remote_backends() -> None:
    set_role_config("executor", backend="scripted", max_new_tokens=12, responses=echo)
    assert llm_text("x").split("|")[2] == "12"


def test_system_messages_and_message_lists() -> None:
    seen: list[list[Message]] = []

    def answer(request: CompletionRequest) -> str:
        seen.append(request.messages)
        return "ok"

    set_role_config("executor", provider=Scripted(answer))
    llm_text("question", system="Be brief.")
    llm_text([Message.user("a"), {"role": "assistant", "content": "b"}, Message.user("c")])
    assert [m.role for m in seen[0]] == ["system", "user"]
    assert seen[0][0].content == "Be brief."
    assert [m.content for m in seen[1]] == ["a", "b", "c"]


def test_bad_calls_are_refused() -> None:
    set_role_config("executor", provider=Scripted(["x"] * 5))
    llm = get_llm("executor")
    with pytest.raises(ConfigError, match="nothing to answer"):
        llm()
    with pytest.raises(ConfigError, match="list of chat messages"):
        llm(messages="hello")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"messages\[0\]"):
        llm(messages=[{"role": "wizard", "content": "x"}])
    with pytest.raises(ConfigError, match="prompt must be"):
        llm_text(42)  # type: ignore[arg-type]


def test_provider_errors_reach_the_caller() -> None:
    error = RateLimited("slow down", status_code=429)
    set_role_config("executor", provider=Scripted([error]))
    with pytest.raises(RateLimited):
        llm_text("x")
    assert "executor" not in get_usage_summary().by_role  # nothing answered, nothing counted


def test_sixteen_threads_call_roles_at_once() -> None:
    set_role_config("executor", backend="scripted", responses=echo, model="e")
    set_role_config("optimizer", backend="sim", ttft=0.0, tokens_per_second=None)
    barrier = threading.Barrier(16)
    answers: list[str] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        barrier.wait()
        role = "executor" if i % 2 else "optimizer"
        for n in range(5):
            text = llm_text(f"{i}-{n}", role=role, max_tokens=4)
            with lock:
                answers.append(text)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 80
    assert all(answers)
    summary = get_usage_summary()
    assert summary.by_role["executor"].calls == 40
    assert summary.by_role["optimizer"].calls == 40
    assert summary.by_role["optimizer"].completion_tokens == 40 * 4


def test_usage_run_counts_role_calls_under_a_run() -> None:
    set_role_config("executor", provider=Scripted(["a", "b", "c"]))
    with usage_run("batch-1"):
        llm_text("x")
        llm_text("y")
    llm_text("z")
    summary = get_usage_summary()
    assert summary.by_run["batch-1"].calls == 2
    assert summary.by_role["executor"].calls == 3


def test_the_cost_a_backend_reports_wins_else_it_is_computed() -> None:
    reported = CompletionResult(
        content="priced", usage=Usage.of(10, 2), cost=0.125, model="gpt-4o-mini"
    )
    unpriced = Reply(text="computed", usage=Usage.of(1000, 200))
    set_role_config("executor", provider=Scripted([reported, unpriced]), model="gpt-4o-mini")
    llm_text("x")
    assert get_usage_summary().by_role["executor"].cost == 0.125
    llm_text("y")
    expected = cost_of(Usage.of(1000, 200), "gpt-4o-mini")
    assert expected is not None
    assert expected > 0
    assert get_usage_summary().by_role["executor"].cost == pytest.approx(0.125 + expected)


# -- async ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_calls_on_the_callers_loop() -> None:
    set_role_config("executor", backend="scripted", model="m", responses=echo)
    set_role_config("optimizer", provider=Scripted(["a", "b"]))
    results: dict[int, str] = {}

    async def one(i: int) -> None:
        results[i] = await allm_text(str(i), temperature=0.5)

    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(one, i)
    assert results == {i: f"m|0.5|None|{i}" for i in range(10)}
    llm = get_llm("optimizer")
    assert (await llm.acall(prompt="x")).content == "a"
    assert (await llm.acall(prompt="x")).content == "b"  # a given provider is kept
    assert get_usage_summary().by_role["executor"].calls == 10


@pytest.mark.anyio
async def test_async_call_cancelled_mid_answer() -> None:
    set_role_config("executor", provider=Scripted([Reply(text="late", delay=30.0)]))
    with anyio.move_on_after(0.05) as scope:
        await allm_text("x")
    assert scope.cancelled_caught
    assert "executor" not in get_usage_summary().by_role


@pytest.mark.parametrize(
    ("settings", "kind"),
    [
        ({"model": "gpt-4o-mini"}, "litellm"),
        ({"model": "anthropic/claude-3-5-haiku-latest"}, "litellm"),
        ({"model": "served", "base_url": "http://h/v1"}, "openai-compatible"),
        ({"model": "openai:served", "base_url": "http://h/v1"}, "openai-compatible"),
        ({"model": "mlx:/models/q"}, "mlx"),
        ({"model": "hf:/models/l"}, "transformers"),
        ({"model": "sim:fast"}, "sim"),
        ({"model": "scripted"}, "scripted"),
        ({"model": "ollama/llama3:8b"}, "litellm"),
        ({"backend": "HF", "model": "/models/l"}, "transformers"),
        ({"provider": Scripted(["x"])}, "scripted"),
    ],
)
def test_the_backend_kind_follows_the_resolver(settings: dict[str, object], kind: str) -> None:
    set_role_config("executor", **settings)  # type: ignore[arg-type]
    assert get_llm("executor").backend == kind
