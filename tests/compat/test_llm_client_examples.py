"""The earlier agent client's ``examples/`` folder (agent_with_tools, provider_streaming,
conversation_management, basic_completions_fs_cache, simple_generation, tool_registry)
through ``limelight.compat.llm_client``, with only the import line changed (and
``await main()`` for ``asyncio.run(main())``), against the simulator over real HTTP."""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

import pytest

from limelight.compat.llm_client import (
    Agent,
    BufferingAdapter,
    CallbackAdapter,
    Conversation,
    GPT5Nano,
    Message,
    OpenAIClient,
    OpenAIProvider,
    SSEAdapter,
    StreamEventType,
    Tool,
    ToolCall,
    ToolRegistry,
    ToolResult,
    collect_stream,
    stream_to_string,
    sync_tool,
    tool,
    tool_from_function,
)

from ._llm_client_sim import openai_sim

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def temporary_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The examples' ``tempfile.mkdtemp()`` folders go under the test's own."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


# -- examples/agent_with_tools.py -------------------------------------------------------------


@tool
async def get_weather(city: str, units: str = "celsius") -> str:
    """Get the current weather for a city.

    Args:
        city: Name of the city
        units: Temperature units (celsius or fahrenheit)
    """
    # Simulated weather data
    weather_data = {
        "new york": {"temp": 22, "condition": "sunny"},
        "london": {"temp": 15, "condition": "cloudy"},
        "tokyo": {"temp": 28, "condition": "humid"},
        "paris": {"temp": 18, "condition": "rainy"},
    }

    city_lower = city.lower()
    if city_lower in weather_data:
        data = weather_data[city_lower]
        temp = data["temp"]
        if units == "fahrenheit":
            temp = int(temp * 9 / 5 + 32)
            unit_symbol = "°F"
        else:
            unit_symbol = "°C"
        return f"Weather in {city}: {data['condition']}, {temp}{unit_symbol}"

    return f"Weather data not available for {city}"


@tool
async def search_web(query: str, max_results: int = 3) -> str:
    """Search the web for information.

    Args:
        query: Search query string
        max_results: Maximum number of results to return
    """
    # Simulated search results
    return f"""Search results for "{query}":
1. {query} - Wikipedia overview
2. Latest news about {query}
3. {query} official documentation

(Showing {max_results} results)"""


@tool
async def calculate(expression: str) -> str:
    """Evaluate a mathematical expression.

    Args:
        expression: Math expression to evaluate (e.g., "2 + 2 * 3")
    """
    try:
        # Simple safe eval for basic math
        allowed = set("0123456789+-*/(). ")
        if not all(c in allowed for c in expression):
            return "Error: Invalid characters in expression"
        result = eval(expression)
        return f"{expression} = {result}"
    except Exception as e:
        return f"Error evaluating expression: {e}"


# You can also use sync_tool for synchronous functions
@sync_tool
def get_current_time() -> str:
    """Get the current date and time."""
    from datetime import datetime

    return datetime.now().strftime("%Y-%m-%d %H:%M:%S")


async def agent_with_tools_main():
    print("=" * 60)
    print("AGENT WITH TOOLS EXAMPLE")
    print("=" * 60)

    # Create provider
    provider = OpenAIProvider(model="gpt-5-nano")

    # Create agent with tools
    agent = Agent(
        provider=provider,
        tools=[get_weather, search_web, calculate, get_current_time],
        system_message=(
            "You are a helpful assistant with access to tools. "
            "Use tools when appropriate to answer questions accurately."
        ),
        max_turns=5,
    )

    # === Example 1: Single tool call ===
    print("\n" + "=" * 40)
    print("Example 1: Weather Query")
    print("=" * 40)

    result = await agent.run("What's the weather like in Tokyo?")

    print(f"\nFinal answer: {result.content}")
    print(f"Turns taken: {result.num_turns}")
    print(f"Tool calls: {[tc.name for tc in result.all_tool_calls]}")

    # Reset for next example
    agent.reset()

    # === Example 2: Multiple tool calls ===
    print("\n" + "=" * 40)
    print("Example 2: Multi-tool Query")
    print("=" * 40)

    result = await agent.run(
        "Compare the weather in New York and London, and tell me what time it is."
    )

    print(f"\nFinal answer: {result.content}")
    print(f"Turns taken: {result.num_turns}")
    print(f"Tool calls: {[tc.name for tc in result.all_tool_calls]}")

    # Reset for next example
    agent.reset()

    # === Example 3: Streaming with tools ===
    print("\n" + "=" * 40)
    print("Example 3: Streaming Response")
    print("=" * 40)

    print("\nStreaming response:")
    print("-" * 40)

    async for event in agent.stream("Calculate 15 * 23 + 7"):
        if event.type == StreamEventType.TOKEN:
            print(event.data, end="", flush=True)
        elif event.type == StreamEventType.META:
            if event.data.get("event") == "tool_result":
                print(f"\n[Tool: {event.data['tool_name']}] {event.data['content']}")
        elif event.type == StreamEventType.DONE:
            print("\n" + "-" * 40)
            agent_result = event.data
            print(f"Status: {agent_result.status}")

    # === Example 4: Multi-turn conversation ===
    print("\n" + "=" * 40)
    print("Example 4: Multi-turn Conversation")
    print("=" * 40)

    agent.reset()

    # First message
    result1 = await agent.run("Search for Python programming")
    print("\nUser: Search for Python programming")
    print(f"Assistant: {result1.content}")

    # Follow-up (conversation continues)
    result2 = await agent.run("Now search for JavaScript frameworks")
    print("\nUser: Now search for JavaScript frameworks")
    print(f"Assistant: {result2.content}")

    # Check conversation history
    print(f"\nTotal messages in conversation: {len(agent.conversation)}")

    # === Cleanup ===
    await provider.close()
    print("\n✅ Done!")
    return result1, result2


async def test_agent_with_tools(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with openai_sim(monkeypatch, tool_call_probability=0.5, seed=7):
        result1, result2 = await agent_with_tools_main()
    out = capsys.readouterr().out
    assert out.endswith("\n✅ Done!\n")
    turns = [int(n) for n in re.findall(r"Turns taken: (\d+)", out)]
    calls = [eval(c) for c in re.findall(r"Tool calls: (\[.*\])", out)]
    assert len(turns) == 2
    assert all(1 <= t <= 5 for t in turns)
    names = {"get_weather", "search_web", "calculate", "get_current_time"}
    assert all(set(c) <= names for c in calls)
    # Every tool result the stream showed came from the tool (the sim's arguments are not
    # arithmetic, so calculate refuses them; the others answer).
    shown = re.findall(r"\[Tool: (\w+)\] (.*)", out)
    for name, content in shown:
        assert name in names
        if name == "calculate":
            assert content.startswith(("Error", "Error evaluating"))
    # Per turn a DONE with the turn's result (status 200), then the run's: success or
    # max_turns, as the earlier package streamed them.
    statuses = re.findall(r"Status: (\S+)", out)
    assert statuses[-1] in ("success", "max_turns")
    assert all(s == "200" for s in statuses[:-1])
    # The last two runs continued one conversation: each added a user message, the
    # assistant's turns and the tool results.
    total = int(re.findall(r"Total messages in conversation: (\d+)", out)[0])
    expected = sum(1 + r.num_turns + len(r.all_tool_calls) for r in (result1, result2))
    assert total == expected


# -- examples/provider_streaming.py -----------------------------------------------------------


async def test_provider_streaming(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with openai_sim(monkeypatch, output_tokens=4):
        provider = OpenAIProvider(model="gpt-5-nano")

        prompt = "Write a short poem about coding (4 lines max)."

        # === Example 1: Direct streaming ===
        async for event in provider.stream(prompt):
            if event.type == StreamEventType.TOKEN:
                print(event.data, end="", flush=True)
            elif event.type == StreamEventType.USAGE:
                usage = event.data
                print(f"\n\nUsage: {usage.input_tokens} in, {usage.output_tokens} out")
            elif event.type == StreamEventType.DONE:
                result = event.data
                print(f"Finish reason: {result.finish_reason}")

        # === Example 2: SSE Adapter (for web servers) ===
        adapter = SSEAdapter()
        event_count = 0

        async for sse_string in adapter.transform(provider.stream("Say hello in 3 words")):
            # In a real web app, you'd yield this to the HTTP response
            event_count += 1
            if event_count <= 5:  # Show first few events
                print(repr(sse_string))

        print(f"... ({event_count} total SSE events)")

        # === Example 3: Callback Adapter ===
        tokens_received = []

        def on_token(token: str):
            tokens_received.append(token)
            print("📝 ", end="")  # Visual indicator for each token

        def on_done(result):
            print(f"\n✅ Complete! Got {len(tokens_received)} tokens")

        adapter = CallbackAdapter(
            on_token=on_token,
            on_done=on_done,
        )

        await adapter.consume(provider.stream("Count from 1 to 5"))

        # === Example 4: Buffering Adapter ===
        buffer = BufferingAdapter()

        # Process events while buffering
        async for event in buffer.wrap(provider.stream("What is 2+2? Answer briefly.")):
            if event.type == StreamEventType.TOKEN:
                print(event.data, end="", flush=True)

        print("\n")
        print(f"Buffered content: {buffer.content!r}")
        print(f"Total events: {len(buffer.events)}")

        result = buffer.get_result()
        print(f"Usage: {result.usage.total_tokens if result.usage else 'N/A'} tokens")

        # === Example 5: Utility Functions ===
        # collect_stream: Get full CompletionResult
        result = await collect_stream(provider.stream("Say 'test'"))
        print(f"  Content: {result.content!r}")
        print(f"  Status: {result.status}")

        # stream_to_string: Get just the text
        text = await stream_to_string(provider.stream("Say 'hello'"))
        print(f"  Text: {text!r}")

        await provider.close()
    out = capsys.readouterr().out
    assert re.search(r"\n\nUsage: \d+ in, 4 out\nFinish reason: stop\n", out)
    assert "... (7 total SSE events)" in out  # meta, 4 tokens, usage, done
    assert "'event: meta\\ndata: " in out
    assert "\n✅ Complete! Got 4 tokens" in out
    assert "Total events: 7" in out
    content = re.search(r"Buffered content: '(.*)'", out)
    assert content is not None
    assert len(content.group(1).split()) == 4
    assert re.search(r"Usage: \d+ tokens", out)
    assert "  Status: 200" in out
    text = re.search(r"  Text: '(.*)'", out)
    assert text is not None
    assert len(text.group(1).split()) == 4


# -- examples/conversation_management.py ------------------------------------------------------


async def test_conversation_management(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with openai_sim(monkeypatch, output_tokens=3):
        # === Example 1: Basic Conversation ===
        conv = Conversation(
            system_message="You are a helpful coding assistant.",
            max_tokens=4000,
            truncation_strategy="sliding",
        )

        conv.add_user("What is Python?")
        conv.add_assistant(
            "Python is a high-level programming language known for its simplicity and readability."
        )
        conv.add_user("Show me a hello world example.")
        conv.add_assistant("```python\nprint('Hello, World!')\n```")

        print(f"Session ID: {conv.session_id}")
        print(f"Message count: {len(conv)}")
        print("\nConversation history:")
        print(conv.format_history())

        # === Example 2: Message Objects ===
        msg1 = Message.user("How do I read a file?")
        msg2 = Message.assistant("You can use the open() function...")

        conv.add_message(msg1)
        conv.add_message(msg2)

        print(f"Last user message: {conv.get_last_user_message().content[:50]}...")
        print(f"Last assistant message: {conv.get_last_assistant_message().content[:50]}...")

        messages_dict = conv.get_messages_dict()
        print("\nMessages as dict (first 2):")
        for msg in messages_dict[:2]:
            print(f"  {msg['role']}: {msg['content'][:40]}...")

        # === Example 3: Token Counting and Truncation ===
        small_conv = Conversation(
            system_message="Be brief.",
            max_tokens=500,
            reserve_tokens=100,
            truncation_strategy="sliding",
        )

        for i in range(10):
            small_conv.add_user(f"Message {i}: " + "x" * 100)
            small_conv.add_assistant(f"Response {i}: " + "y" * 100)

        print(f"Total messages: {len(small_conv)}")
        print(f"Token count (GPT5Nano): {small_conv.count_tokens(GPT5Nano)}")

        truncated = small_conv.get_messages(model=GPT5Nano)
        print(f"Messages after truncation: {len(truncated)}")

        # === Example 4: Forking and Branching ===
        original = Conversation(system_message="You are helpful.")
        original.add_user("Tell me about cats.")
        original.add_assistant("Cats are wonderful pets...")

        forked = original.fork()
        forked.add_user("What about dogs?")
        forked.add_assistant("Dogs are loyal companions...")

        print(f"Original messages: {len(original)}")
        print(f"Forked messages: {len(forked)}")
        print(f"Same session? {original.session_id == forked.session_id}")

        branched = original.branch(from_index=1)  # Keep only first message
        branched.add_user("Actually, tell me about birds.")

        print(f"Branched messages: {len(branched)}")

        # === Example 5: Serialization ===
        conv_dict = original.to_dict()
        print(f"Dict keys: {list(conv_dict.keys())}")

        conv_json = original.to_json()
        print(f"JSON length: {len(conv_json)} chars")

        restored = Conversation.from_json(conv_json)
        print(f"Restored messages: {len(restored)}")
        print(f"System message preserved: {restored.system_message is not None}")

        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            temp_path = Path(f.name)

        original.save(temp_path)
        loaded = Conversation.load(temp_path)
        print(f"Loaded from file: {len(loaded)} messages")

        temp_path.unlink()  # noqa: ASYNC240 - the example's lines

        # === Example 6: Tool Calls in Conversation ===
        tool_conv = Conversation()
        tool_conv.add_user("What's the weather in Paris?")

        tool_call = ToolCall(id="call_123", name="get_weather", arguments='{"city": "Paris"}')
        tool_conv.add_assistant_with_tools(None, [tool_call])

        tool_conv.add_tool_result("call_123", "Sunny, 18°C", "get_weather")

        print("Conversation with tool calls:")
        print(tool_conv.format_history())

        # === Example 7: Using with Provider ===
        provider = OpenAIProvider(model="gpt-5-nano")

        chat = Conversation(
            system_message="You are a math tutor. Be concise.",
        )

        chat.add_user("What is 5 + 3?")

        result = await provider.complete(chat.get_messages_dict())

        if result.ok:
            chat.add_assistant(result.content)
            print(f"Q: {chat.get_last_user_message().content}")
            print(f"A: {result.content}")

        chat.add_user("Now multiply that by 2")
        result = await provider.complete(chat.get_messages_dict())

        if result.ok:
            chat.add_assistant(result.content)
            print(f"\nQ: {chat.get_last_user_message().content}")
            print(f"A: {result.content}")

        print(f"\nFinal conversation length: {len(chat)} messages")

        await provider.close()
    out = capsys.readouterr().out
    assert "Message count: 4\n" in out
    assert "[System] You are a helpful coding assistant.\n[User] What is Python?\n" in out
    assert "Last user message: How do I read a file?..." in out
    assert "  system: You are a helpful coding assistant...." in out
    assert "Total messages: 20\n" in out
    kept = int(re.findall(r"Messages after truncation: (\d+)", out)[0])
    assert 2 <= kept < 21  # the system message and the newest that fit 400 tokens
    assert "Original messages: 2\nForked messages: 4\nSame session? False\n" in out
    assert "Branched messages: 2\n" in out
    assert "Dict keys: ['session_id', 'system_message', 'messages', 'config', 'metadata']" in out
    assert "Restored messages: 2\nSystem message preserved: True\n" in out
    assert "Loaded from file: 2 messages\n" in out
    assert '[tool calls: get_weather({"city": "Paris"})]' in out
    assert "[Tool get_weather] Sunny, 18°C" in out
    assert "Q: Now multiply that by 2\n" in out
    assert "Final conversation length: 4 messages" in out


# -- examples/basic_completions_fs_cache.py ---------------------------------------------------


async def test_basic_completions_fs_cache(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with openai_sim(monkeypatch, output_tokens=2):
        cache_dir = Path(tempfile.mkdtemp(prefix="llm_cache_"))
        print(f"📁 Cache directory: {cache_dir}")

        client = OpenAIClient(
            model="gpt-5-nano",  # Cheapest model for testing
            cache_backend="fs",
            cache_dir=cache_dir,
            cache_collection="default_collection",
        )

        # --- Test 1: Basic completion ---
        response = await client.get_response(
            messages=[{"role": "user", "content": "What is 2 + 2? Reply with just the number."}],
            cache_response=False,
        )

        print(f"Status: {response.get('status')}")
        print(f"Output: {response.get('output')}")
        print(f"Usage: {response.get('usage')}")

        # --- Test 2: Cached completion ---
        prompt = "What is the capital of France? Reply with just the city name."

        response1 = await client.get_response(
            messages=[{"role": "user", "content": prompt}],
            cache_response=True,
            cache_collection="geography_cache",
        )

        print(f"Status: {response1.get('status')}")
        print(f"Output: {response1.get('output')}")
        print(f"Identifier: {response1.get('identifier')}")

        # --- Test 3: Cache hit ---
        response2 = await client.get_response(
            messages=[{"role": "user", "content": prompt}],
            cache_response=True,
            cache_collection="geography_cache",
        )

        print(f"Status: {response2.get('status')}")
        print(f"Output: {response2.get('output')}")
        print(f"Same identifier? {response1.get('identifier') == response2.get('identifier')}")

        # --- Test 4: Different collection (no cache hit) ---
        response3 = await client.get_response(
            messages=[{"role": "user", "content": prompt}],
            cache_response=True,
            cache_collection="other_collection",
        )

        print(f"Status: {response3.get('status')}")
        print(f"Output: {response3.get('output')}")

        for item in cache_dir.rglob("*"):  # noqa: ASYNC240 - the example's lines
            if item.is_file():
                rel_path = item.relative_to(cache_dir)
                print(f"  📄 {rel_path}")

        await client.close()
    out = capsys.readouterr().out
    assert out.count("Status: 200") == 4
    assert response2["output"] == response1["output"]  # the cache answered
    assert response3["output"] != response1["output"]  # another collection: the model
    assert "Same identifier? True" in out
    assert "  📄 geography_cache.sqlite3" in out
    assert "  📄 other_collection.sqlite3" in out
    assert "default_collection.sqlite3" not in out  # nothing cached there
    assert str(cache_dir).startswith(tempfile.gettempdir())


# -- examples/simple_generation.py ------------------------------------------------------------


async def test_simple_generation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with openai_sim(monkeypatch, output_tokens=3):
        cache_dir = Path(tempfile.mkdtemp(prefix="llm_cache_"))

        # === Example 2: Different Input Formats ===
        provider = OpenAIProvider(model="gpt-5-nano")
        result1 = await provider.complete("Say 'hello'")
        print(f"\nString input: {result1.content}")
        result2 = await provider.complete({"role": "user", "content": "Say 'world'"})
        print(f"Dict input: {result2.content}")
        result3 = await provider.complete(Message.user("Say 'foo'"))
        print(f"Message input: {result3.content}")
        result4 = await provider.complete(
            [
                Message.system("You respond with single words only."),
                Message.user("What color is the sky?"),
            ]
        )
        print(f"List input: {result4.content}")
        await provider.close()

        # === Example 3: Completion Options ===
        provider = OpenAIProvider(model="gpt-5-nano")
        result = await provider.complete(
            "Generate a random 4-letter word",
            temperature=1.0,
            max_tokens=2,
        )
        print(f"\nHigh temperature: {result.content}")
        capped = result
        await provider.close()

        # === Example 4: Caching with Provider ===
        provider = OpenAIProvider(
            model="gpt-5-nano",
            cache_backend="fs",
            cache_dir=cache_dir,
        )
        prompt = "What is the capital of France? One word only."
        result1 = await provider.complete(prompt, cache_response=True, cache_collection="geography")
        result2 = await provider.complete(prompt, cache_response=True, cache_collection="geography")
        print(f"Cached call: {result2.content}")
        await provider.close()

        # === Example 5: Retry Logic ===
        provider = OpenAIProvider(model="gpt-5-nano")
        result = await provider.complete(
            "Say 'retry test successful'",
            attempts=3,  # Number of retry attempts
            backoff=0.5,  # Initial backoff delay (doubles each retry)
        )
        print(f"\nWith retry logic: {result.content}")
        await provider.close()

        # === Example 6: Error Handling ===
        provider = OpenAIProvider(model="gpt-5-nano")
        result = await provider.complete("Hello!")
        if result.ok:
            print(f"\n✅ Success: {result.content}")
        else:
            print(f"\n❌ Error ({result.status}): {result.error}")
        print(f"  - Model: {result.model}")
        print(f"  - Finish reason: {result.finish_reason}")
        print(f"  - Has tool calls: {result.has_tool_calls}")
        if result.usage:
            print(f"  - Cost: ${result.usage.total_cost:.6f}")
        await provider.close()

        # === Example 7: Context Manager ===
        async with OpenAIProvider(model="gpt-5-nano") as provider:
            result = await provider.complete("Say 'context manager works'")
            print(f"\nUsing context manager: {result.content}")
    out = capsys.readouterr().out
    for label in ("String", "Dict", "Message", "List"):
        assert re.search(rf"{label} input: \S+ \S+ \S+\n", out), label
    assert len(capped.content.split()) == 2
    assert capped.finish_reason == "length"
    assert result2.content == result1.content
    assert (cache_dir / "geography.sqlite3").exists()
    assert "✅ Success: " in out
    assert "  - Model: gpt-5-nano-2025-08-07\n  - Finish reason: stop\n" in out
    assert "  - Has tool calls: False\n" in out
    assert re.search(r"  - Cost: \$0\.0000\d\d\n", out)
    assert "Using context manager: " in out


# -- examples/tool_registry.py ----------------------------------------------------------------


@tool
async def search_database(
    query: str,
    table: str = "users",
    limit: int = 10,
    include_deleted: bool = False,
) -> str:
    """Search the database for matching records.

    Performs a full-text search across the specified table
    and returns matching records.

    Args:
        query: Search query string
        table: Database table to search (users, products, orders)
        limit: Maximum number of results to return
        include_deleted: Whether to include soft-deleted records

    Returns:
        JSON string containing matching records
    """
    results = [
        {"id": i, "table": table, "match": query, "deleted": False} for i in range(min(limit, 3))
    ]
    return json.dumps(results)


@tool
async def send_notification(
    user_id: int,
    message: str,
    channel: str = "email",
    priority: str = "normal",
) -> str:
    """Send a notification to a user.

    Args:
        user_id: The ID of the user to notify
        message: The notification message content
        channel: Notification channel (email, sms, push)
        priority: Message priority (low, normal, high, urgent)

    Returns:
        Confirmation message with notification ID
    """
    return f"Notification sent to user {user_id} via {channel} (priority: {priority})"


@sync_tool
def get_system_info() -> str:
    """Get current system information.

    Returns:
        JSON string with system information
    """
    import platform

    return json.dumps({"platform": platform.system(), "python": platform.python_version()})


def create_manual_tool():
    """Create a tool with explicit schema definition."""

    async def handler(city: str, units: str = "celsius") -> str:
        temps = {"new york": 20, "london": 15, "tokyo": 25}
        temp = temps.get(city.lower(), 22)
        if units == "fahrenheit":
            temp = int(temp * 9 / 5 + 32)
        return f"{temp}°{'F' if units == 'fahrenheit' else 'C'}"

    return Tool(
        name="get_weather",
        description="Get the current weather for a city",
        parameters={
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The name of the city"},
                "units": {
                    "type": "string",
                    "enum": ["celsius", "fahrenheit"],
                    "description": "Temperature units",
                    "default": "celsius",
                },
            },
            "required": ["city"],
        },
        handler=handler,
    )


async def test_tool_registry(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    print(f"  Name: {search_database.name}")
    print(f"  Description: {search_database.description}")
    parameters = search_database.parameters

    registry = ToolRegistry([search_database, send_notification, get_system_info])
    for name in registry.names:
        tool_obj = registry.get(name)
        print(f"  - {name}: {tool_obj.description[:50]}...")
    weather_tool = create_manual_tool()
    registry.register(weather_tool)
    print(f"\nAfter adding weather tool: {len(registry.tools)} tools")

    found = await registry.execute(
        "search_database", '{"query": "john", "table": "users", "limit": 5}'
    )
    info = await registry.execute("get_system_info", "{}")
    weather = await registry.execute("get_weather", '{"city": "Tokyo", "units": "fahrenheit"}')
    unknown = await registry.execute("unknown_tool", "{}")
    invalid = await registry.execute("search_database", "not valid json")
    sent = await registry.execute(
        "send_notification",
        json.dumps({"user_id": 123, "message": "Hello!", "channel": "push"}),
    )
    error_result = ToolResult.error_result("Something went wrong")

    # === Example 6: tool_from_function ===
    def calculate_area(length: float, width: float) -> float:
        """Calculate the area of a rectangle.

        Args:
            length: Length of the rectangle
            width: Width of the rectangle
        """
        return length * width

    async def fetch_url(url: str, timeout: int = 30) -> str:
        """Fetch content from a URL.

        Args:
            url: URL to fetch
            timeout: Request timeout in seconds
        """
        return f"Content from {url} (timeout: {timeout}s)"

    area_tool = tool_from_function(calculate_area)
    fetch_tool = tool_from_function(fetch_url)
    result1 = await area_tool.execute(length=5.0, width=3.0)
    result2 = await fetch_tool.execute(url="https://example.com", timeout=10)

    # === Example 8: Integration with Provider ===
    async with openai_sim(monkeypatch, tool_call_probability=1.0, seed=2):
        provider = OpenAIProvider(model="gpt-5-nano")
        query = "Search for a user named 'Alice' in the 'admin' table and send her a 'Hello' email."
        result = await provider.complete(query, tools=registry.tools, tool_choice="auto")
        executed = []
        if result.ok and result.has_tool_calls:
            for tc in result.tool_calls:
                executed.append(await registry.execute(tc.name, tc.arguments))
        await provider.close()

    out = capsys.readouterr().out
    assert "  Name: search_database\n" in out
    assert "  Description: Search the database for matching records." in out
    assert parameters["properties"]["limit"] == {
        "type": "integer",
        "default": 10,
        "description": "Maximum number of results to return",
    }
    assert parameters["required"] == ["query"]
    assert "  - send_notification: Send a notification to a user...." in out
    assert "After adding weather tool: 4 tools" in out
    assert found.success
    assert len(json.loads(found.content)) == 3
    assert info.success
    assert json.loads(info.content)["python"] == sys.version.split()[0]
    assert weather.success
    assert weather.content == "77°F"
    assert weather_tool.parameters["properties"]["units"]["enum"] == ["celsius", "fahrenheit"]
    assert not unknown.success
    assert "unknown_tool" in unknown.error
    assert not invalid.success
    assert "not valid JSON" in invalid.error
    assert sent.content == "Notification sent to user 123 via push (priority: normal)"
    assert sent.error is None
    assert sent.to_string() == sent.content
    assert error_result.to_string() == "Error: Something went wrong"
    assert area_tool.description == "Calculate the area of a rectangle."
    assert result1.content == "15.0"
    assert result2.content == "Content from https://example.com (timeout: 10s)"
    # The simulated model called one of the offered tools with valid arguments, and it ran.
    assert result.has_tool_calls
    assert executed
    assert all(r.success for r in executed), executed
