"""API keys never survive in an event, an error message or an error body: keys of any shape
in free text (``OPENAI_API_KEY=...``, JSON ``"api_key": "..."``, ``Bearer ...``), and the
server's error bodies that quote the key back, on every path an error body is kept (the
OpenAI-compatible provider's calls and streams, the sync client, LiteLLM, the role router),
over real HTTP against a server that requires a key."""

from __future__ import annotations

import json
import string
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from limelight.client import LLM
from limelight.errors import (
    APIError,
    AuthenticationError,
    BadRequest,
    LLMAPIError,
    ProviderError,
    RateLimited,
    ServerError,
    SinkRejected,
)
from limelight.providers import LiteLLM, OpenAICompatible
from limelight.roles import clear_role_config, get_llm, set_role_config
from limelight.schemas import (
    REDACTED,
    CompletionRequest,
    EmbeddingRequest,
    Event,
    Message,
    encode_event,
    redact,
)

from ._key_server import KeyServer, key_server

DEADLINE = 20.0
relaxed = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=200)

#: What API keys are made of: OpenAI's sk-..., Anthropic's sk-ant-..., hex, base64 (+/=),
#: JWTs (dots), Google's AIza... (letters, digits, -_).
_KEY_CHARS = string.ascii_letters + string.digits + "-_.~+/="
_body_of_key = st.text(alphabet=_KEY_CHARS, min_size=8, max_size=64)
keys = st.one_of(
    _body_of_key,
    st.builds(lambda rest: "sk-" + rest, st.text(alphabet=_KEY_CHARS[:-6], min_size=12)),
    st.builds(lambda rest: "sk-proj-" + rest, _body_of_key),
    st.builds(lambda a, b, c: f"eyJ{a}.{b}.{c}", _body_of_key, _body_of_key, _body_of_key),
)

#: Where keys turn up in text: shell exports, .env lines, JSON (also JSON inside JSON),
#: headers, URLs, config dumps. {key} is replaced by the key.
CONTEXTS = [
    "OPENAI_API_KEY={key}",
    "export OPENAI_API_KEY={key}",
    "export ANTHROPIC_API_KEY='{key}'",
    'OPENAI_API_KEY="{key}" python run.py',
    "the .env has\nAPI_KEY={key}\nDEBUG=1",
    "api-key: {key}",
    "x-api-key: {key}",
    "apiKey={key}",
    "Authorization: Bearer {key}",
    "Authorization: Basic {key}",
    "curl -H 'Authorization: Bearer {key}' https://api.example.com",
    "https://api.example.com/v1/models?key={key}&alt=json",
    "client_secret={key}",
    "password: {key}",
    "access_token={key}",
    "Incorrect API key provided: {key}. You can find your API key at https://x.invalid.",
    "Incorrect API key provided: Bearer {key}.",
]
JSON_CONTEXTS = [
    lambda key: json.dumps({"api_key": key}),
    lambda key: json.dumps({"model": "m", "api_key": key, "temperature": 0.2}),
    lambda key: json.dumps({"config": {"openai": {"apiKey": key}}}),
    lambda key: json.dumps({"headers": {"Authorization": f"Bearer {key}"}}),
    lambda key: json.dumps({"args": json.dumps({"api_key": key})}),  # JSON inside JSON
    lambda key: f"call the tool with {json.dumps({'token': key})} now",
    lambda key: json.dumps({"api_key": key}, indent=2),
]


def _fits(key: str, text: str) -> None:
    """Skip a key that is part of the text around it (then "not in" proves nothing)."""
    assume(key not in text.replace(key, "\0"))


# -- free text and events -------------------------------------------------------------------


@relaxed
@given(key=keys, where=st.sampled_from(CONTEXTS))
def test_a_key_in_text_is_redacted_whatever_its_shape(key: str, where: str) -> None:
    text = where.format(key=key)
    _fits(key, text)
    cleaned = redact(text)
    assert key not in cleaned
    assert REDACTED in cleaned
    assert redact(cleaned) == cleaned
    event = Event.create_user_input(text)
    assert key.encode() not in encode_event(event)


@relaxed
@given(key=keys, build=st.sampled_from(JSON_CONTEXTS))
def test_a_key_in_json_text_or_tool_arguments_is_redacted(key: str, build: Any) -> None:
    text = build(key)
    _fits(key, text)
    cleaned = redact(text)
    assert key not in cleaned
    if text.startswith("{"):
        json.loads(cleaned)  # still JSON: only the value inside its quotes was replaced
    event = Event.create_tool_call(
        "http_get", {"raw": text, "nested": {"note": text}, "list": [text]}
    )
    assert key.encode() not in encode_event(event)
    reasoning = Event.create_agent_reasoning("a", text)
    assert key.encode() not in encode_event(reasoning)


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens: 1000",
        "token: 100",
        "key_count=1234",
        "the monkey sat on the keyboard",
        '{"api_key": null, "max_tokens": 64}',
        "tokenizer: bpe-32000",
        "re-authenticate: please",
    ],
)
def test_text_without_secrets_is_left_alone(text: str) -> None:
    assert redact(text) == text


# -- errors built from a server's body ------------------------------------------------------

ERROR_CLASSES = [APIError, BadRequest, AuthenticationError, RateLimited, ServerError, LLMAPIError]


@relaxed
@given(key=keys, cls=st.sampled_from(ERROR_CLASSES), bearer=st.booleans())
def test_an_api_error_keeps_no_key_in_its_body_or_message(
    key: str, cls: type[APIError], bearer: bool
) -> None:
    quoted = f"Bearer {key}" if bearer else key
    text = f"Incorrect API key provided: {quoted}. You can find your API key at x."
    _fits(key, text)
    bodies: list[object] = [
        {"error": {"message": text, "type": "invalid_request_error", "code": "invalid_api_key"}},
        text,
        [{"detail": text}],
        {"error": {"api_key": key}},
    ]
    for body in bodies:
        error = cls(f"POST /v1/chat/completions answered 401: {text}", status_code=401, body=body)
        assert key not in repr(error.body)
        assert key not in str(error)
        assert key not in repr(error)
    rejected = SinkRejected(f"401: {text}", status=401, body=text)
    assert key not in rejected.body
    assert key not in str(rejected)


# -- every path an error body is kept, over real HTTP ----------------------------------------

#: Keys the client is configured with: it replaces them whatever their shape.
CONFIGURED_KEYS = [
    "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "3f9a0c7e5b1d2468ace0bdf13579ace0",
    "abc.DEF~ghi/jkl+mno==",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    "k3y!",  # no pattern knows this one: only the configured key itself is replaced
]


@pytest.fixture(scope="module")
def server() -> Iterator[KeyServer]:
    """Requires the key "the-right-key": every key of these tests is refused, and quoted."""
    with key_server("the-right-key") as running:
        yield running


def _assert_no_key(error: BaseException, key: str) -> None:
    assert isinstance(error, ProviderError)
    assert key not in str(error)
    assert key not in repr(getattr(error, "body", None))
    assert REDACTED in str(error)


async def _drain(stream: AsyncIterator[Any]) -> None:
    async for _ in stream:
        pass


@pytest.mark.anyio
@pytest.mark.parametrize("key", CONFIGURED_KEYS)
async def test_openai_compatible_errors_hold_no_key(server: KeyServer, key: str) -> None:
    hi = [Message.user("hi")]
    async with OpenAICompatible(server.url, api_key=key, model="m") as provider:
        with anyio.fail_after(DEADLINE):
            with pytest.raises(AuthenticationError) as complete:
                await provider.complete(CompletionRequest(messages=hi))
            with pytest.raises(AuthenticationError) as stream:
                await _drain(provider.stream(CompletionRequest(messages=hi)))
            with pytest.raises(AuthenticationError) as midway:
                await _drain(
                    provider.stream(CompletionRequest(model="mid-stream-error", messages=hi))
                )
            with pytest.raises(AuthenticationError) as models:
                await provider.list_models()
            with pytest.raises(AuthenticationError) as embed:
                await provider.embed(EmbeddingRequest(input=["x"]))
            with pytest.raises(BadRequest) as post:
                await provider.post("chat/completions", b'{"model": "bad-request"}')
    assert server.seen[-1] == f"Bearer {key}"  # the server did see it, and quoted it back
    for caught in (complete, stream, models, embed, post):
        _assert_no_key(caught.value, key)
        assert isinstance(caught.value.body, dict)
        assert caught.value.body["error"]["code"] == "invalid_api_key"
    _assert_no_key(midway.value, key)  # mid-stream too, whatever the key's shape


@pytest.mark.anyio
@pytest.mark.parametrize("key", CONFIGURED_KEYS[:4])
async def test_a_key_the_provider_does_not_know_is_redacted_by_its_shape(
    server: KeyServer, key: str
) -> None:
    headers = {"Authorization": f"Bearer {key}"}  # sent as a plain header, not as api_key=
    async with OpenAICompatible(server.url, headers=headers, model="m") as provider:
        with anyio.fail_after(DEADLINE), pytest.raises(AuthenticationError) as caught:
            await provider.complete(CompletionRequest(messages=[Message.user("hi")]))
    assert server.seen[-1] == f"Bearer {key}"
    _assert_no_key(caught.value, key)


@pytest.mark.parametrize("key", CONFIGURED_KEYS)
def test_the_sync_clients_error_body_holds_no_key(server: KeyServer, key: str) -> None:
    with LLM(base_url=server.url, api_key=key, max_retries=0) as llm:
        with pytest.raises(LLMAPIError) as chat:
            llm.chat_completion([{"role": "user", "content": "hi"}])
        with pytest.raises(LLMAPIError) as models:
            llm.list_models()
    for caught in (chat, models):
        assert caught.value.status_code == 401
        _assert_no_key(caught.value, key)
        assert key not in repr(caught.value.__cause__)


@pytest.mark.anyio
@pytest.mark.parametrize("key", [CONFIGURED_KEYS[0], CONFIGURED_KEYS[2], CONFIGURED_KEYS[4]])
async def test_litellm_errors_hold_no_key(server: KeyServer, key: str) -> None:
    hi = CompletionRequest(messages=[Message.user("hi")])
    refused = LiteLLM("openai/m", api_key=key, api_base=server.url, num_retries=0)
    with anyio.fail_after(DEADLINE), pytest.raises(AuthenticationError) as auth:
        await refused.complete(hi)
    await refused.aclose()
    bad = LiteLLM("openai/bad-request", api_key=key, api_base=server.url, num_retries=0)
    with anyio.fail_after(DEADLINE), pytest.raises(BadRequest) as rejected:
        await bad.complete(hi)
    await bad.aclose()
    _assert_no_key(auth.value, key)
    _assert_no_key(rejected.value, key)
    assert isinstance(rejected.value.body, dict)  # LiteLLM kept the server's error object
    assert rejected.value.body["code"] == "invalid_api_key"


@pytest.mark.anyio
async def test_the_role_routers_errors_hold_no_key(server: KeyServer) -> None:
    key = CONFIGURED_KEYS[2]
    set_role_config("executor", backend="openai-compatible", model="m", base_url=server.url)
    set_role_config("executor", api_key=key)
    try:
        with anyio.fail_after(DEADLINE), pytest.raises(AuthenticationError) as caught:
            await get_llm("executor").acall(prompt="hi")
    finally:
        clear_role_config()
    _assert_no_key(caught.value, key)
