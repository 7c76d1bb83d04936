"""``limelight.compat.llm_client`` on limelight's engine: calls take the one pipeline (a
provider pool's attempt hooks: the rate limiter, usage), failures come back in the earlier
shapes, bad input raises clear errors, streams close when left early, ``.env`` loads on
import, and the public module only re-exports. Against the simulator over real HTTP."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import anyio
import psycopg
import pytest
import redis as redis_py
import sniffio

from limelight.actors import GetStatistics, ProviderPool, RateLimiter, RateLimiterStatistics
from limelight.compat import _llm_client_dotenv, _llm_client_host
from limelight.compat import llm_client as compat
from limelight.compat.llm_client import (
    Agent,
    AgentConfig,
    Conversation,
    ModelProfile,
    OpenAIClient,
    OpenAIProvider,
    StreamEventType,
    Tool,
    tool,
)
from limelight.errors import ConfigError, RuntimeNotRunning
from limelight.models import get_model_profile
from limelight.runtime import Runtime
from limelight.usage import configure_usage, get_usage_summary, reset_usage

from ..caches._servers import PostgresServer, RedisServer
from ._llm_client_sim import openai_sim

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


@tool
async def lookup(term: str) -> str:
    """Look a term up.

    :param term: what to look up.
    """
    return f"{term}: found"


async def test_calls_go_through_a_callers_rate_limiter_and_count_in_usage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure_usage(enabled=True)
    reset_usage()
    async with openai_sim(monkeypatch, tool_call_probability=0.5, seed=5) as url, Runtime() as rt:
        limiter = await RateLimiter.start(rt, environ={})
        provider = OpenAIProvider(model="gpt-5-nano", limiter=limiter)
        assert provider.host.runtime is rt
        first = await provider.complete("one")
        assert first.ok
        events = [e async for e in provider.stream("two")]
        assert events[-1].type is StreamEventType.DONE
        agent = Agent(provider=provider, tools=[lookup])
        result = await agent.run("three")
        await agent.close()
        stats = await limiter.ask(GetStatistics())
    assert isinstance(stats, RateLimiterStatistics)
    (deployment,) = stats.deployments
    assert deployment == f"llm-client:gpt-5-nano-2025-08-07@{url.split('/')[2]}"
    calls = 2 + result.num_turns
    assert stats.deployments[deployment].admitted == calls
    # Each call was counted once in limelight's usage, with the tokens the facade reported.
    totals = get_usage_summary().total
    assert totals.calls == calls
    reported = (first.usage, events[-1].data.usage, result.total_usage)
    assert totals.completion_tokens == sum(u.output_tokens for u in reported)
    assert totals.prompt_tokens == sum(u.input_tokens for u in reported)
    assert totals.cost == pytest.approx(sum(u.total_cost for u in reported))
    reset_usage()


async def test_the_facades_own_limiter_holds_the_profiles_rate_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with openai_sim(monkeypatch) as url:
        provider = OpenAIProvider(model="gpt-5-mini")
        assert (await provider.complete("hi")).ok
        runtime = provider.host.runtime
        limiter = _llm_client_host._limiters[runtime]
        stats = await provider.host.call(limiter.ask, GetStatistics())
        await provider.close()
    assert isinstance(stats, RateLimiterStatistics)
    mine = stats.deployments[f"llm-client:gpt-5-mini-2025-08-07@{url.split('/')[2]}"]
    assert mine.admitted == 1
    assert (mine.limits.rpm, mine.limits.tpm) == (10_000, 10_000_000)


async def test_server_failures_come_back_as_statuses(monkeypatch: pytest.MonkeyPatch) -> None:
    async with openai_sim(monkeypatch, server_error_rate=1.0):
        provider = OpenAIProvider(model="gpt-5-nano")
        failed = await provider.complete("hi", attempts=2, backoff=0.0)
        events = [e async for e in provider.stream("hi")]
        client = OpenAIClient("gpt-5-nano", cache_backend="memory")
        answer = await client.get_response(
            messages=[{"role": "user", "content": "hi"}], attempts=1, cache_response=True
        )
        again = await client.get_response(
            messages=[{"role": "user", "content": "hi"}], attempts=1, cache_response=True
        )
        await provider.close()
        await client.close()
    assert not failed.ok
    assert failed.status >= 500
    assert "gave up after 2 attempts" in failed.error
    assert [e.type for e in events][-1] is StreamEventType.ERROR
    assert events[-1].data["status"] >= 500
    assert answer["status"] >= 500
    assert (answer["output"], answer["usage"]) == (None, {})
    assert again["status"] >= 500  # a failure is never cached


async def test_a_429_is_reported_as_rate_limit_exceeded(monkeypatch: pytest.MonkeyPatch) -> None:
    async with openai_sim(monkeypatch, rate_limit_error_rate=1.0, fault_retry_after=0.0):
        provider = OpenAIProvider(model="gpt-5-nano")
        result = await provider.complete("hi", attempts=1)
        await provider.close()
    assert (result.status, result.error.split(":")[0]) == (429, "Rate limit exceeded")


async def test_bad_input_is_refused_with_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async with openai_sim(monkeypatch):
        with pytest.raises(ConfigError, match="unknown model key 'gpt-4-turbo'"):
            OpenAIProvider(model="gpt-4-turbo")
        with pytest.raises(ConfigError, match="cache_backend must be one of"):
            OpenAIProvider(model="gpt-5", cache_backend="s3")
        with pytest.raises(ConfigError, match="pass cache_dir="):
            OpenAIProvider(model="gpt-5", cache_backend="fs")
        with pytest.raises(ConfigError, match="use_responses_api"):
            OpenAIProvider(model="gpt-5", use_responses_api=True)
        provider = OpenAIProvider(model="gpt-5-nano")
        with pytest.raises(ValueError, match="invalid reasoning effort 'extreme'"):
            await provider.complete("hi", reasoning_effort="extreme")
        with pytest.raises(ConfigError, match="only one of"):
            await provider.complete("hi", reasoning_effort="low", reasoning={"effort": "high"})
        with pytest.raises(ConfigError, match="needs the word 'json'"):
            await provider.complete("hi", response_format="json_object")
        with pytest.raises(ConfigError, match="does not make embeddings"):
            await provider.embed("hi")
        with pytest.raises(ConfigError, match="needs a cache"):
            await provider.complete("hi", cache_response=True)
        with pytest.raises(ConfigError, match="a role of"):
            await provider.complete([{"content": "no role"}])
        with pytest.raises(ConfigError, match=r"complete\(\) does not stream"):
            await provider.complete("hi", stream=True)
        answer = await provider.complete("hi", reasoning_effort="minimal", seed=3, timeout=5)
        assert answer.ok
        assert answer.raw_response.model == "gpt-5-nano-2025-08-07"
        await provider.close()
        with pytest.raises(RuntimeNotRunning, match="closed"):
            await provider.complete("hi")
        with pytest.raises(ConfigError, match="needs messages="):
            await OpenAIClient("gpt-5-nano").get_response(input="x")
        with pytest.raises(ConfigError, match="takes no user"):
            await OpenAIProvider(model="text-embedding-3-small").embed("x", user="me")
        with pytest.raises(ConfigError, match="not supported"):
            Agent(
                provider=OpenAIProvider(model="gpt-5"), config=AgentConfig(stop_on_tool_error=True)
            )
        agent = Agent(provider=OpenAIProvider(model="gpt-5"))
        with pytest.raises(ConfigError, match="temperature, max_tokens as options, not top_k"):
            await agent.run("hi", top_k=3)
        with pytest.raises(ConfigError, match="truncation_strategy must be"):
            Conversation(truncation_strategy="random")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="not a valid name"):
            OpenAIProvider(model="gpt-5", cache_backend="memory", cache_collection="../up")
        await agent.close()
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ConfigError, match="no OpenAI API key: set OPENAI_API_KEY"):
        OpenAIProvider(model="gpt-5")


async def test_rewrite_keeps_older_entries_and_json_answers_are_parsed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    messages = [{"role": "user", "content": "Answer in json."}]
    async with openai_sim(monkeypatch, output_tokens=3):
        client = OpenAIClient("gpt-5-nano", cache_backend="fs", cache_dir=tmp_path)
        first = await client.get_response(messages=messages, cache_response=True)
        rewritten = await client.get_response(
            messages=messages, cache_response=True, rewrite_cache=True
        )
        still = await client.get_response(messages=messages, cache_response=True)
        own = await client.get_response(
            identifier="mine", messages=[{"role": "user", "content": "x"}], cache_response=True
        )
        shaped = await client.get_response(
            messages=messages, response_format="json_object", body={"job": 1}
        )
        await client.close()
    assert rewritten["output"] != first["output"]
    assert still["output"] == first["output"]  # the older entry is still the one read
    cache = client.cache.get_cache(None)
    assert (await cache.get(first["identifier"] + "_0")).content == rewritten["output"]
    assert (await cache.get("mine")).content == own["output"]
    # The simulator's words are not JSON: kept as text, the body carries the completion.
    assert shaped["params"]["response_format"] == {"type": "json_object"}
    assert shaped["body"] == {"job": 1, "completion": shaped["output"]}


async def all_idle(pool: ProviderPool) -> None:
    """Wait (boundedly) until every worker of ``pool`` is back: a stream's source closes
    on the host's loop, just after the reader let go."""
    with anyio.fail_after(5):
        while pool.idle() != pool.size:
            await anyio.sleep(0.01)


async def test_streams_left_early_are_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    async with openai_sim(monkeypatch, output_tokens=20, tokens_per_second=200.0):
        provider = OpenAIProvider(model="gpt-5-nano")
        stream = provider.stream("long")
        async for event in stream:
            if event.type is StreamEventType.TOKEN:
                break
        await stream.aclose()
        # The pool's worker came back: the next calls are served.
        pool = await provider.host.call(provider.pool)
        await all_idle(pool)
        with anyio.fail_after(10):
            async with provider.stream("again") as events:
                kinds = [e.type async for e in events]
        assert kinds[-1] is StreamEventType.DONE
        # A reader cancelled mid-stream ends the stream, and the worker is freed too.
        with anyio.move_on_after(0.02):
            async for _ in provider.stream("cancelled"):
                pass
        await all_idle(pool)
        await provider.close()


async def test_agent_tools_and_sessions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def manual(zone: str) -> str:
        return f"time in {zone}"

    clock = Tool(
        name="get_time",
        description="Get time in a specific zone.",
        parameters={
            "type": "object",
            "properties": {"zone": {"type": "string"}},
            "required": ["zone"],
        },
        handler=manual,
    )
    async with openai_sim(monkeypatch, tool_call_probability=1.0, seed=4):
        agent = Agent(provider=OpenAIProvider(model="gpt-5-nano"), tools=[clock], max_turns=2)
        result = await agent.run("What time is it in UTC?")
        assert (result.status, result.num_turns) == ("max_turns", 2)
        assert all(t.tool_results[0].content.startswith("time in ") for t in result.turns)
        agent.save_session(tmp_path / "session.json")
        with pytest.warns(UserWarning, match="get_time"):
            loaded = Agent.load_session(tmp_path / "session.json", provider=agent.provider)
        assert len(loaded.conversation) == len(agent.conversation)
        forked = agent.fork()
        agent.add_tool(lookup)
        again = await agent.run("And now?", max_turns=1)
        assert again.num_turns == 1
        assert again.all_tool_calls[0].name in ("get_time", "lookup")
        assert len(forked.conversation) == len(agent.conversation) - 3
        chat = await forked.chat("Say something.", max_tokens=2)
        assert chat is not None
        await agent.close()


async def test_dotenv_loads_on_import_and_set_variables_win(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async with openai_sim(monkeypatch) as url:
        (tmp_path / ".env").write_text(
            f"OPENAI_BASE_URL={url}\nOPENAI_API_KEY=sk-from-dotenv\nLLM_CLIENT_FLAG=file\n",
            encoding="utf-8",
        )
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("OPENAI_BASE_URL")
        monkeypatch.delenv("OPENAI_API_KEY")
        monkeypatch.setenv("LLM_CLIENT_FLAG", "environment")
        module = importlib.reload(_llm_client_dotenv)
        assert module.DOTENV_LOADED
        assert os.environ["OPENAI_API_KEY"] == "sk-from-dotenv"
        assert os.environ["LLM_CLIENT_FLAG"] == "environment"  # already set: it wins
        # The earlier examples now reach the server the file names, with no argument.
        provider = OpenAIProvider(model="gpt-5-nano")
        assert (await provider.complete("Hello, world!")).ok
        await provider.close()


def test_importing_the_module_loads_the_dotenv_of_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PG_DSN=postgresql://from-dotenv/db\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PG_DSN"}
    env["PYTHONPATH"] = str(ROOT)
    code = (
        "import os; import limelight.compat.llm_client as m; "
        "print(m.DOTENV_LOADED, os.environ['PG_DSN'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, check=True, capture_output=True
    ).stdout
    assert out.decode().split() == ["True", "postgresql://from-dotenv/db"]


def test_user_profiles_are_registered_with_limelight() -> None:
    class HouseModel(ModelProfile):
        key = "house-llm-compat-test"
        context_window = 32_000
        max_output = 4_000
        usage_costs: ClassVar[dict[str, float]] = {"input": 1e-6, "output": 2e-6}
        rate_limits: ClassVar[dict[str, int]] = {"req_per_min": 60, "tkn_per_min": 100_000}

    native = get_model_profile("house-llm-compat-test")
    assert native is not None
    assert (native.context_window, native.input_price, native.output_price) == (32_000, 1.0, 2.0)
    assert HouseModel.model_name == "house-llm-compat-test"
    assert ModelProfile.get("house-llm-compat-test") is HouseModel
    with pytest.raises(ConfigError, match="duplicate model key"):
        type("Again", (ModelProfile,), {"key": "house-llm-compat-test"})


def test_the_public_module_only_reexports() -> None:
    from tests.test_public_api import _statements_that_define

    tree = ast.parse(Path(compat.__file__).read_text(encoding="utf-8"))
    assert _statements_that_define(tree) == []
    assert len(compat.__all__) == len(set(compat.__all__))
    for name in compat.__all__:
        value = getattr(compat, name)
        where = getattr(value, "__module__", None)
        if isinstance(where, str) and where.startswith("limelight"):
            assert where.startswith("limelight.compat._llm_client"), (name, where)


def test_server_backends_map_to_limelights_server_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only built here, never connected (the caches' own tests drive the servers)."""
    from limelight.cache import PostgresRedisCache, QdrantSemanticCache

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    pg = OpenAIProvider(
        model="gpt-5",
        cache_backend="pg_redis",
        cache_collection="llm_cache",
        pg_dsn="postgresql://user@127.0.0.1:1/db",
        redis_url="redis://127.0.0.1:1/0",
    )
    assert isinstance(pg.cache.get_cache(None), PostgresRedisCache)
    assert pg.cache.get_cache("other") is not pg.cache.get_cache(None)  # a table each
    qdrant = OpenAIProvider(model="gpt-5", cache_backend="qdrant", qdrant_url="http://q:6333")
    assert isinstance(qdrant.cache.get_cache("completions_cache"), QdrantSemanticCache)
    monkeypatch.delenv("REDIS_URL", raising=False)
    bare = OpenAIProvider(model="gpt-5", cache_backend="pg_redis", pg_dsn="postgresql://u@h/db")
    with pytest.raises(ConfigError, match="REDIS_URL"):
        bare.cache.get_cache(None)


async def test_the_pg_redis_backend_caches_on_real_servers(
    monkeypatch: pytest.MonkeyPatch, redis: RedisServer, postgres: PostgresServer
) -> None:
    """``cache_backend="pg_redis"`` against a real redis-server and PostgreSQL (started by
    the cache tests' fixtures): the second identical call is answered from the cache."""
    messages = [{"role": "user", "content": "Name three colours."}]
    table = f"compat_{sniffio.current_async_library()}"
    async with openai_sim(monkeypatch, output_tokens=5):
        client = OpenAIClient(
            "gpt-5-nano",
            cache_backend="pg_redis",
            cache_collection=table,
            pg_dsn=postgres.dsn,
            redis_url=redis.url,
        )
        first = await client.get_response(messages=messages, cache_response=True)
        again = await client.get_response(messages=messages, cache_response=True)
        fresh = await client.get_response(messages=messages)  # not read from the cache
        await client.close()
    assert first["status"] == again["status"] == 200
    assert again["output"] == first["output"] != fresh["output"]
    # The entry is in PostgreSQL (durable) and in Redis (hot), as the earlier pg_redis kept it.
    with psycopg.connect(postgres.dsn, autocommit=True) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_name LIKE %s",
                (f"%{table}%",),
            )
        ]
        assert len(tables) == 1, tables
        rows = connection.execute(f'SELECT count(*) FROM "{tables[0]}"').fetchone()
    assert rows is not None
    assert rows[0] == 1
    keys = redis_py.Redis.from_url(redis.url).keys("*")
    assert any(table.encode() in key or first["identifier"].encode() in key for key in keys)
