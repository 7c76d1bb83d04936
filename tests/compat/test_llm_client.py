"""The earlier agent client (``llm_client``) through ``limelight.compat.llm_client``: its
README's examples (quick start, core concepts, model profiles, caching, the backward
compatible ``OpenAIClient``, and the first README's ``OpenAIClient`` examples) with only the
import line changed, against the simulator over real HTTP as "OpenAI" (reached through
``OPENAI_BASE_URL``, as the earlier package allowed). Each example's ``main()`` is awaited
instead of ``asyncio.run(main())``, so that it runs on asyncio and on trio.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import limelight.models as native_models
import limelight.usage as native_usage
from limelight.compat.llm_client import (
    GPT5,
    Agent,
    AgentConfig,
    AgentResult,
    BufferingAdapter,
    CallbackAdapter,
    CompletionResult,
    Conversation,
    GPT5Mini,
    GPT5Nano,
    GPT5Point1,
    GPT5Point2,
    ModelProfile,
    OpenAIClient,
    OpenAIProvider,
    SSEAdapter,
    StreamEventType,
    TextEmbedding3Large,
    TextEmbedding3Small,
    ToolRegistry,
    collect_stream,
    sync_tool,
    tool,
)

from ._llm_client_sim import openai_sim

pytestmark = pytest.mark.anyio


# -- the README's quick start ---------------------------------------------------------------


async def test_quick_start_simple_completion(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with openai_sim(monkeypatch, output_tokens=4):

        async def main():
            provider = OpenAIProvider(model="gpt-5-nano")
            result = await provider.complete("Hello, world!")
            print(result.content)
            await provider.close()

        await main()
    printed = capsys.readouterr().out.strip()
    assert len(printed.split()) == 4  # the simulated model's four words


@tool
async def get_weather(city: str) -> str:
    """Get weather for a city."""
    return f"Weather in {city}: Sunny, 72°F"


@tool
async def search_web(query: str) -> str:
    """Search the web."""
    return f"Results for: {query}"


async def test_quick_start_agent_with_tools(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # With this seed the simulated model calls one tool, then answers.
    async with openai_sim(monkeypatch, tool_call_probability=0.5, seed=5):

        async def main():
            agent = Agent(
                provider=OpenAIProvider(model="gpt-5-nano"),
                tools=[get_weather, search_web],
                system_message="You are a helpful assistant with access to tools.",
            )

            result = await agent.run("What's the weather in Tokyo?")
            print(result.content)
            print(f"Tool calls made: {[tc.name for tc in result.all_tool_calls]}")
            return agent, result

        agent, result = await main()
        await agent.close()  # the example leaves it to the process's end
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "Tool calls made: ['get_weather']"
    assert result.status == "success"
    assert result.num_turns == 2
    # The tool really ran with the model's arguments, and its answer went back to the model.
    (call,) = result.all_tool_calls
    city = call.parse_arguments()["city"]
    (turn, last) = result.turns
    assert turn.tool_results[0].content == f"Weather in {city}: Sunny, 72°F"
    assert turn.tool_results[0].success
    assert last.content == result.content == lines[0]
    tool_message = result.conversation[-2]
    assert tool_message.tool_call_id == call.id
    assert result.total_usage.total_tokens > 0
    assert result.total_usage.total_cost > 0  # priced as limelight prices gpt-5-nano


async def test_quick_start_streaming(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with openai_sim(monkeypatch, output_tokens=5):

        async def main():
            provider = OpenAIProvider(model="gpt-5-nano")

            async for event in provider.stream("Write a haiku about coding"):
                if event.type == StreamEventType.TOKEN:
                    print(event.data, end="", flush=True)
                elif event.type == StreamEventType.DONE:
                    print(f"\nTokens used: {event.data.usage.total_tokens}")

            await provider.close()

        await main()
    text, used = capsys.readouterr().out.splitlines()
    assert len(text.split()) == 5
    total = int(used.removeprefix("Tokens used: "))
    assert total > 5  # the prompt's tokens and the five of the answer


async def test_quick_start_backward_compatible_client(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with openai_sim(monkeypatch, output_tokens=3):
        client = OpenAIClient(model="gpt-5-nano", cache_backend=None)
        response = await client.get_response(messages=[{"role": "user", "content": "Hello!"}])
        print(response["output"])
        await client.close()
    assert len(capsys.readouterr().out.split()) == 3
    assert response["status"] == 200
    assert response["error"] == "OK"
    assert response["params"]["model"] == "gpt-5-nano-2025-08-07"
    usage = response["usage"]
    assert usage["input_tokens"] + usage["output_tokens"] == usage["total_tokens"]
    assert usage["output_tokens"] == 3
    assert usage["total_cost"] == pytest.approx(usage["input_cost"] + usage["output_cost"])


# -- core concepts ---------------------------------------------------------------------------


async def test_providers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    async with openai_sim(monkeypatch, output_tokens=4, embedding_dimensions=16):
        provider = OpenAIProvider(
            model="gpt-5",
            cache_backend="fs",
            cache_dir="./cache",
        )

        # Completion
        result: CompletionResult = await provider.complete(
            messages=[{"role": "user", "content": "Hello"}],
            temperature=0.7,
        )

        # Streaming
        events = []
        async for event in provider.stream("Tell me a story"):
            events.append(event)

        # Embeddings (with embedding model)
        embed_provider = OpenAIProvider(model="text-embedding-3-small")
        embedded = await embed_provider.embed("Text to embed")
        await provider.close()
        await embed_provider.close()
    assert result.ok
    assert len(result.content.split()) == 4
    assert result.model == "gpt-5-2025-08-07"
    assert result.finish_reason == "stop"
    kinds = [e.type for e in events]
    assert kinds[0] is StreamEventType.META
    assert events[0].data == {"model": "gpt-5-2025-08-07"}
    assert kinds.count(StreamEventType.TOKEN) == 4
    assert kinds[-2:] == [StreamEventType.USAGE, StreamEventType.DONE]
    done = events[-1].data
    assert done.content == "".join(e.data for e in events if e.type is StreamEventType.TOKEN)
    assert embedded.ok
    assert len(embedded.embedding) == 16
    assert embedded.usage.input_tokens > 0
    assert embedded.usage.output_tokens == 0


@tool
async def calculate(expression: str) -> str:
    """Evaluate a math expression.

    Args:
        expression: Math expression like "2 + 2"
    """
    return str(eval(expression))


@sync_tool  # For synchronous functions
def get_time() -> str:
    """Get current time."""
    from datetime import datetime

    return datetime.now().isoformat()


async def test_tools(capsys: pytest.CaptureFixture[str]) -> None:
    # Register tools
    registry = ToolRegistry([calculate, get_time])

    # Execute a tool
    result = await registry.execute("calculate", '{"expression": "2 + 2"}')
    print(result.content)  # "4"

    assert capsys.readouterr().out == "4\n"
    # The schema and the argument's doc come from the signature and the docstring.
    spec = calculate.to_openai_format()["function"]
    assert spec["description"] == "Evaluate a math expression."
    assert spec["parameters"]["properties"]["expression"] == {
        "type": "string",
        "description": 'Math expression like "2 + 2"',
    }
    assert spec["parameters"]["required"] == ["expression"]
    # The sync tool runs (in a worker thread) through the same registry.
    now = await registry.execute("get_time", "{}")
    assert now.success
    assert now.content[:2] == "20"
    assert registry.names == ["calculate", "get_time"]
    # Bad calls are error results, never exceptions.
    unknown = await registry.execute("nope", "{}")
    assert not unknown.success
    assert "no tool named 'nope'" in unknown.error
    bad = await registry.execute("calculate", '{"expression": 4}')
    assert not bad.success
    assert "invalid arguments" in bad.to_string()
    assert bad.to_string().startswith("Error: ")


def test_conversations(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    conv = Conversation(
        system_message="You are helpful.",
        max_tokens=4000,
        truncation_strategy="sliding",  # or "drop_oldest", "drop_middle"
    )

    conv.add_user("What is Python?")
    conv.add_assistant("Python is a programming language...")
    conv.add_user("Show me an example")

    # Get messages for API (auto-truncated if needed)
    messages = conv.get_messages(model=GPT5Nano)

    # Fork conversation for branching
    forked = conv.fork()

    # Save/load
    conv.save("conversation.json")
    loaded = Conversation.load("conversation.json")

    assert [m.role.value for m in messages] == ["system", "user", "assistant", "user"]
    forked.add_user("a side question")
    assert (len(conv), len(forked)) == (3, 4)
    assert forked.session_id != conv.session_id
    assert loaded.to_dict()["messages"] == conv.to_dict()["messages"]
    assert loaded.session_id == conv.session_id
    assert loaded.system_message == "You are helpful."
    saved = json.loads((tmp_path / "conversation.json").read_text())
    assert set(saved) == {"session_id", "system_message", "messages", "config", "metadata"}
    # A tight window keeps the newest messages that fit (tokens as limelight counts them).
    tight = Conversation(system_message="Be brief.", max_tokens=60, reserve_tokens=20)
    for i in range(10):
        tight.add_user(f"Message {i}: " + "x" * 40)
        tight.add_assistant(f"Response {i}: " + "y" * 40)
    kept = tight.get_messages(model=GPT5Nano)
    assert kept[0].role.value == "system"
    assert 1 < len(kept) < 21
    assert kept[-1].content == tight[-1].content
    assert len(tight.get_messages()) == 21  # no model: no truncation, as before


async def test_agents(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []

    @tool
    async def search(query: str) -> str:
        """Search the web."""
        seen.append(query)
        return f"Results for: {query}"

    async with openai_sim(monkeypatch, tool_call_probability=0.5, seed=3):
        agent = Agent(
            provider=OpenAIProvider(model="gpt-5"),
            tools=[search],
            system_message="You are a research assistant.",
            config=AgentConfig(
                max_turns=10,
                parallel_tool_execution=True,
                tool_timeout=30.0,
            ),
        )

        # Run to completion
        result = await agent.run("Research quantum computing")
        print(result.content)
        print(f"Turns: {result.num_turns}")
        print(f"Status: {result.status}")

        # Stream with tool execution
        events = []
        async for event in agent.stream("Search for Python tutorials"):
            events.append(event)
            if event.type == StreamEventType.TOKEN:
                print(event.data, end="")
            elif event.type == StreamEventType.META:  # noqa: SIM102 - the README's lines
                if event.data.get("event") == "tool_result":
                    print(f"\n[Tool: {event.data['tool_name']}]")

        streamed = list(seen)

        # Continue conversation
        result2 = await agent.run("Now search for JavaScript")
        before_reset = len(agent.conversation)

        # Reset for new conversation
        agent.reset()
        await agent.close()
    out = capsys.readouterr().out
    assert f"Turns: {result.num_turns}\nStatus: success\n" in out
    assert result.num_turns == len(result.turns) >= 1
    # Every tool call the stream announced ran, and said so in a META event.
    metas = [e.data for e in events if e.type is StreamEventType.META]
    results = [m for m in metas if m.get("event") == "tool_result"]
    ends = [e.data for e in events if e.type is StreamEventType.TOOL_CALL_END]
    assert [m["tool_call_id"] for m in results] == [c.id for c in ends]
    assert all(m["tool_name"] == "search" and m["success"] for m in results)
    ran = streamed[len(streamed) - len(ends) :]
    assert [m["content"] for m in results] == [f"Results for: {q}" for q in ran]
    assert out.count("[Tool: search]") == len(ends)
    turn_starts = [m["turn"] for m in metas if m.get("event") == "turn_start"]
    assert turn_starts == list(range(len(turn_starts)))
    final = events[-1]
    assert final.type is StreamEventType.DONE
    assert isinstance(final.data, AgentResult)
    assert final.data.num_turns == len(turn_starts)
    assert [c.id for c in final.data.all_tool_calls] == [c.id for c in ends]
    # Three runs continued one conversation; reset() forgot it, the system message stays.
    assert result2.status == "success"
    assert before_reset >= 6
    assert len(agent.conversation) == 0
    assert agent.conversation.system_message == "You are a research assistant."


async def test_streaming_adapters(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    prompt = "Tell me a story"
    async with openai_sim(monkeypatch, output_tokens=3):
        provider = OpenAIProvider(model="gpt-5-nano")

        # SSE for web servers
        adapter = SSEAdapter()
        frames = [sse_string async for sse_string in adapter.transform(provider.stream(prompt))]

        # Callbacks for custom handling
        adapter = CallbackAdapter(
            on_token=lambda t: print(t, end=""),
            on_done=lambda r: print(f"\nDone: {r.content}"),
        )
        await adapter.consume(provider.stream(prompt))

        # Buffering for full response
        buffer = BufferingAdapter()
        async for _event in buffer.wrap(provider.stream(prompt)):
            pass  # Process events
        print(buffer.content)  # Full accumulated text

        # Utility: collect to CompletionResult
        result = await collect_stream(provider.stream(prompt))
        await provider.close()
    assert frames[0] == 'event: meta\ndata: {"model": "gpt-5-nano-2025-08-07"}\n\n'
    assert sum(f.startswith("event: token\n") for f in frames) == 3
    assert frames[-1].startswith("event: done\ndata: {")
    assert json.loads(frames[-1].split("data: ", 1)[1])["status"] == 200
    tokens, done, buffered = capsys.readouterr().out.splitlines()
    assert done == f"Done: {tokens}"
    assert buffered == buffer.get_result().content
    assert len(buffer.events) == 6  # meta, 3 tokens, usage, done
    assert result.ok
    assert len(result.content.split()) == 3


def test_model_profiles() -> None:
    table = {
        "gpt-5": (GPT5, "completions"),
        "gpt-5-mini": (GPT5Mini, "completions"),
        "gpt-5-nano": (GPT5Nano, "completions"),
        "gpt-5.1": (GPT5Point1, "completions"),
        "gpt-5.2": (GPT5Point2, "completions"),
        "text-embedding-3-large": (TextEmbedding3Large, "embeddings"),
        "text-embedding-3-small": (TextEmbedding3Small, "embeddings"),
    }
    for key, (profile, category) in table.items():
        assert ModelProfile.get(key) is profile
        assert profile.category == category
        native = native_models.get_model_profile(key)
        assert native is not None, key  # the native API knows them too
        assert profile.context_window == native.context_window
    # All completion models support reasoning with configurable effort levels.
    for profile in (GPT5, GPT5Mini, GPT5Nano, GPT5Point1, GPT5Point2):
        assert profile.reasoning_model
        assert "low" in profile.reasoning_efforts
        assert profile.context_window == 400_000
        assert profile.max_output == 128_000
    assert GPT5Nano.default_reasoning_effort == "medium"
    assert GPT5Point1.reasoning_efforts[0] == "none"
    assert "xhigh" in GPT5Point2.reasoning_efforts
    assert TextEmbedding3Small.output_dimensions == 1536
    assert TextEmbedding3Large.output_dimensions == 3072
    assert not TextEmbedding3Small.reasoning_model
    # Prices, USD per token, as limelight prices calls (genai-prices, LiteLLM's map).
    price = native_usage.model_price("gpt-5-nano")
    assert price is not None
    assert GPT5Nano.usage_costs["input"] == pytest.approx(price.input / 1e6)
    assert GPT5Nano.usage_costs["output"] == pytest.approx(price.output / 1e6)
    usage = GPT5Nano.parse_usage(
        {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
    )
    assert usage["total_cost"] == pytest.approx(1000 * price.input / 1e6 + 100 * price.output / 1e6)
    assert GPT5Nano.count_tokens("one two three four") >= 1
    with pytest.raises(ValueError, match="unknown model key 'gpt-9'"):
        ModelProfile.get("gpt-9")


async def test_caching(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    async with openai_sim(monkeypatch, output_tokens=5):
        # Filesystem
        provider = OpenAIProvider(
            model="gpt-5",
            cache_backend="fs",
            cache_dir="./cache",
        )

        # PostgreSQL + Redis (production)
        pg_provider = OpenAIProvider(
            model="gpt-5",
            cache_backend="pg_redis",
            pg_dsn="postgresql://...",
            redis_url="redis://...",
        )

        # Qdrant
        qdrant_provider = OpenAIProvider(
            model="gpt-5",
            cache_backend="qdrant",
            qdrant_url="http://localhost:6333",
        )

        # With caching enabled
        result = await provider.complete(
            "Hello",
            cache_response=True,
            cache_collection="my_cache",
        )
        again = await provider.complete("Hello", cache_response=True, cache_collection="my_cache")
        elsewhere = await provider.complete("Hello", cache_response=True)
        fresh = await provider.complete("Hello")
        regenerated = await provider.complete(
            "Hello", cache_response=True, cache_collection="my_cache", regen_cache=True
        )
        after = await provider.complete("Hello", cache_response=True, cache_collection="my_cache")
        for p in (provider, pg_provider, qdrant_provider):
            await p.close()
    assert result.ok
    assert again.content == result.content
    assert again.usage == result.usage  # with the stored usage, as before
    assert elsewhere.content != result.content  # another collection: a miss
    assert fresh.content not in (result.content, elsewhere.content)  # not cached: the model
    assert regenerated.content != result.content
    assert after.content == regenerated.content
    assert sorted(p.name for p in (tmp_path / "cache").glob("*.sqlite3")) == [
        "default.sqlite3",
        "my_cache.sqlite3",
    ]
    # The server backends map to limelight's server caches (reached only when used).
    assert pg_provider.cache.settings.backend == "pg_redis"
    assert qdrant_provider.cache.settings.qdrant_url == "http://localhost:6333"


# -- the first README: OpenAIClient ---------------------------------------------------------


async def test_first_readme_quickstart_and_profiles(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with openai_sim(monkeypatch, output_tokens=4):

        async def main() -> None:
            client = OpenAIClient(GPT5Nano, cache_backend=None)

            messages = [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Hello, how are you?"},
            ]

            response = await client.get_response(messages=messages)
            print(response["output"])
            await client.close()

        await main()
        client = OpenAIClient(GPT5Point1)
        # or
        client2 = OpenAIClient("gpt-5.1")  # uses ModelProfile.get(...)
        assert client.model is client2.model is GPT5Point1
        response = await client.get_response(
            messages=[{"role": "user", "content": "Tell me a joke."}],
            cache_response=False,
            timeout=30.0,
        )
        print(response["status"], response["error"])
        print(response["output"])  # model completion
        print(response["usage"])  # normalized usage and cost
        await client.close()
        await client2.close()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines[0].split()) == 4
    assert lines[1] == "200 OK"
    assert set(response) >= {"params", "output", "usage", "status", "error", "identifier"}
    assert response["params"]["model"] == "gpt-5.1-2025-11-13"
    assert response["usage"]["output_tokens"] == 4


async def test_first_readme_embeddings_and_fs_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    async with openai_sim(monkeypatch, embedding_dimensions=8):
        client = OpenAIClient(TextEmbedding3Small)
        resp = await client.get_response(input="Some text to embed")
        emb = resp["output"]  # list[float] or list[list[float]]
        several = await client.get_response(input=["one", "two"])
        await client.close()

        client = OpenAIClient(
            GPT5Nano,
            cache_backend="fs",
            cache_dir=Path("cache/completions"),
        )
        first = await client.get_response(
            messages=[{"role": "user", "content": "Cached?"}],
            cache_response=True,
        )
        second = await client.get_response(
            messages=[{"role": "user", "content": "Cached?"}],
            cache_response=True,
        )
        await client.close()
    assert len(emb) == 8
    assert all(isinstance(v, float) for v in emb)
    assert len(several["output"]) == 2
    assert all(len(v) == 8 for v in several["output"])
    assert "output_tokens" not in resp["usage"]
    assert resp["usage"]["input_tokens"] > 0
    assert second["output"] == first["output"]
    assert second["identifier"] == first["identifier"]
    assert (tmp_path / "cache" / "completions" / "default.sqlite3").exists()
