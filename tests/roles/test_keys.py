"""The API key given to ``set_role_models(key=...)`` reaches the backend: a real HTTP server
that requires the key answers only requests carrying it, on the OpenAI-compatible backend
and through LiteLLM, from sync calls and from async ones (asyncio and trio)."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest

from limelight.errors import AuthenticationError
from limelight.roles import get_llm, llm_text, set_role_models

from .._key_server import KeyServer, key_server

KEY = "sk-role-key-0123456789abcdef"
DEADLINE = 20.0


@pytest.fixture
def server() -> Iterator[KeyServer]:
    with key_server(KEY) as running:
        yield running


@pytest.mark.parametrize(
    ("backend", "model"), [("openai-compatible", "m"), ("litellm", "openai/m")]
)
def test_the_key_of_set_role_models_reaches_the_server(
    server: KeyServer, backend: str, model: str
) -> None:
    set_role_models(executor=model, optimizer=model, backend=backend, key=KEY, base_url=server.url)
    assert llm_text("hi") == "served m"
    assert llm_text("hi", role="optimizer") == "served m"
    assert server.seen == [f"Bearer {KEY}"] * 2


@pytest.mark.anyio
async def test_the_key_reaches_the_server_from_async_calls(server: KeyServer) -> None:
    set_role_models(executor="m", backend="openai-compatible", key=KEY, base_url=server.url)
    with anyio.fail_after(DEADLINE):
        result = await get_llm("executor").acall(prompt="hi")
    assert result.content == "served m"
    assert server.seen == [f"Bearer {KEY}"]


def test_a_default_key_reaches_every_role(server: KeyServer) -> None:
    set_role_models(backend="openai-compatible", key=KEY, base_url=server.url)
    set_role_models(executor="m", critic="m")
    assert llm_text("hi") == "served m"
    assert llm_text("hi", role="critic") == "served m"
    assert server.seen == [f"Bearer {KEY}"] * 2


def test_without_the_key_the_server_refuses(server: KeyServer) -> None:
    set_role_models(executor="m", backend="openai-compatible", base_url=server.url)
    with pytest.raises(AuthenticationError) as caught:
        llm_text("hi")
    assert caught.value.status_code == 401
    assert server.seen == [None]
    set_role_models(executor="m", key="sk-wrong-key-0123456789")
    with pytest.raises(AuthenticationError) as wrong:
        llm_text("hi")
    assert "sk-wrong-key-0123456789" not in str(wrong.value)
    assert server.seen[-1] == "Bearer sk-wrong-key-0123456789"
