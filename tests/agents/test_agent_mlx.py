"""A smoke run of an Agent against a third-party OpenAI-compatible server: ``mlx_lm.server``
serving a tiny llama model built here (random weights), on asyncio and trio."""

from __future__ import annotations

import pytest

try:
    import mlx.core  # noqa: F401
except ImportError as exc:  # the only reason to skip: MLX cannot run here
    pytest.skip(
        f"mlx is not importable ({exc}); install it with pip install 'limelight[mlx]'",
        allow_module_level=True,
    )

from limelight.agents import Agent, AgentConfig
from limelight.providers import OpenAICompatible
from limelight.schemas import StreamEventType

pytestmark = pytest.mark.anyio


async def test_an_agent_runs_and_streams_against_mlx_lm_server(mlx_server: str) -> None:
    agent = Agent(
        model=OpenAICompatible(mlx_server, api_key="sk-test"),
        system="Be brief.",
        config=AgentConfig(max_tokens=6, temperature=0.0, max_turns=2),
        name="mlx",
    )
    result = await agent.run("What is the capital of France?")
    assert result.status == "completed", result.error
    assert result.content  # the random model always says something within 6 tokens
    assert 1 <= result.usage.completion_tokens <= 6
    assert result.num_turns == 1
    async with agent.stream("And of Italy?") as events:
        seen = [e async for e in events]
    assert seen[-1].type is StreamEventType.DONE
    assert seen[-1].meta["status"] == "completed"
    text = "".join(e.content or "" for e in seen if e.type is StreamEventType.TOKEN)
    assert seen[-1].result is not None
    assert text == seen[-1].result.content
    # The second run continued the conversation: system, 2 user, 2 assistant messages.
    assert [m.role for m in agent.conversation.messages] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]
