"""The earlier sync client (the ``LLM`` module) through ``limelight.compat.llm``: its README's
examples (setup, chat and text completion, models, context manager, configuration, errors,
each method, retries, logging) with only the import line changed, against the project's
simulator over real HTTP. Calls are checked to have gone through limelight's pipeline
(counted in its usage tracker), and the key never to reach a log line.

One test serves a list of prompts from a small stdlib HTTP server written here: the simulator
joins a list into one prompt, and the test must see the request body as the server got it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import anyio.to_thread
import msgspec
import pytest

from limelight.compat.llm import (
    LLM,
    ChatCompletionResponse,
    CompletionResponse,
    LLMAPIError,
    LLMConfig,
    LLMConnectionError,
    LLMError,
    Message,
    ModelsResponse,
)
from limelight.errors import ConfigError, RuntimeNotRunning
from limelight.providers import SimulatedConfig, serve_in_thread
from limelight.usage import get_usage_summary, reset_usage

SECRET = "sk-compat-never-log-me-0123456789"
FAST = SimulatedConfig(ttft=0.0, ttft_jitter=0.0, tokens_per_second=None, output_tokens=8)


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    """The simulator; yields its root URL without ``/v1`` (the earlier client added it)."""
    with serve_in_thread(FAST) as url:
        yield url.removesuffix("/v1")


@pytest.fixture(autouse=True)
def fresh_usage() -> Iterator[None]:
    reset_usage()
    yield
    reset_usage()


def served(**options: Any) -> Any:
    return serve_in_thread(msgspec.structs.replace(FAST, **options))


# -- Usage ---------------------------------------------------------------------------------


def test_basic_setup_and_chat_completion(sim: str) -> None:
    config = LLMConfig(
        base_url=sim,  # the README's "http://127.0.0.1:8000", here the simulator's
        model="gpt-4",
        temperature=0.7,
        timeout=30,
        max_retries=3,
    )

    llm = LLM(config)

    messages = [
        Message(role="system", content="You are helpful."),
        Message(role="user", content="Hello!"),
    ]

    response = llm.chat_completion(messages)
    print(response.choices[0].message.content)

    assert isinstance(response, ChatCompletionResponse)
    assert response.choices[0].message.content
    assert response.model == "gpt-4"
    assert response.usage is not None
    assert response.usage.total_tokens == response.usage.prompt_tokens + 8
    summary = get_usage_summary()
    assert summary.by_model["gpt-4"].calls == 1  # through the pipeline's usage hook
    assert summary.by_role["default"].completion_tokens == 8
    llm.close()


def test_text_completion_list_models_and_context_manager(sim: str) -> None:
    config = LLMConfig(base_url=sim)
    with LLM(config) as llm:
        response = llm.completion(prompt="Once upon a time", max_tokens=100)
        print(response.choices[0].text)
        assert isinstance(response, CompletionResponse)
        assert response.choices[0].text
        assert response.object == "text_completion"

        models = llm.list_models()
        for model in models.data:
            print(model.id)
        assert isinstance(models, ModelsResponse)
        assert [m.id for m in models.data] == ["sim-1"]
    # Automatically closes session
    assert llm.closed
    with pytest.raises(RuntimeNotRunning):
        llm.chat_completion([Message(role="user", content="Hello!")])
    assert get_usage_summary().by_model["gpt-4"].calls == 1


def test_messages_as_dicts_and_as_other_objects(sim: str) -> None:
    @dataclasses.dataclass
    class PydanticLikeMessage:  # the earlier client's messages had role, content, name
        role: str
        content: str
        name: str | None = None

    with LLM(LLMConfig(base_url=sim)) as llm:
        a = llm.chat_completion([{"role": "user", "content": "Hi"}])
        b = llm.chat_completion([PydanticLikeMessage("user", "Hi", name="ann")])
    assert a.choices[0].message.content
    assert b.choices[0].message.content


# -- Configuration ---------------------------------------------------------------------------


def test_config_defaults_and_checks() -> None:
    config = LLMConfig()
    assert config.base_url == "http://127.0.0.1:8000"
    assert config.api_key is None
    assert config.model == "gpt-4"
    assert config.temperature == 0.7
    assert config.max_tokens is None
    assert config.timeout == 30
    assert config.max_retries == 3
    assert config.retry_delay == 1.0
    for bad in ({"temperature": 2.5}, {"temperature": -0.1}, {"timeout": 0}, {"max_retries": -1}):
        with pytest.raises(ValueError):  # ConfigError is a ValueError, as before
            LLMConfig(**bad)
    assert "sk-" not in repr(LLMConfig(api_key=SECRET))


# -- Error handling --------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_error_handling_example(caplog: pytest.LogCaptureFixture) -> None:
    config = LLMConfig(base_url=f"http://127.0.0.1:{_closed_port()}", max_retries=0)
    llm = LLM(config)
    messages = [Message(role="user", content="Hello!")]
    caught = []
    with caplog.at_level(logging.INFO, logger="LLM"):
        try:
            llm.chat_completion(messages)
        except LLMConnectionError as e:
            # Handle connection failure
            caught.append(f"Connection failed: {e}")
        except LLMAPIError as e:
            # Handle API error
            caught.append(f"API error: {e}")
    llm.close()
    assert len(caught) == 1
    assert caught[0].startswith("Connection failed:")
    assert [r.getMessage().split(" {")[0] for r in caplog.records if r.levelname == "ERROR"] == [
        "[LLM] Connection error"
    ]
    assert llm.get_request_count() == 1  # a failed request counts, as before


def test_api_errors_are_llm_api_errors(caplog: pytest.LogCaptureFixture) -> None:
    with (
        served(models=("known",), strict_models=True) as url,
        LLM(LLMConfig(base_url=url, model="unknown", retry_delay=0)) as llm,
        caplog.at_level(logging.ERROR, logger="LLM"),
        pytest.raises(LLMAPIError) as caught,
    ):
        llm.chat_completion([{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 404
    assert isinstance(caught.value, LLMError)
    (record,) = caplog.records
    assert record.details["status"] == 404  # type: ignore[attr-defined]


# -- Methods ---------------------------------------------------------------------------------


def test_each_method(sim: str) -> None:
    with LLM(LLMConfig(base_url=sim, max_tokens=3)) as llm:
        assert llm.get_last_response() is None
        assert llm.get_request_count() == 0
        chat = llm.chat_completion([Message(role="user", content="Hi")], temperature=0.7)
        assert llm.get_last_response() is chat
        llm.list_models()  # not a request the earlier client counted, nor a last response
        assert llm.get_last_response() is chat
        text = llm.completion("Text to complete", temperature=0.7, max_tokens=2)
        assert llm.get_last_response() is text
        assert text.usage is not None
        assert text.usage.completion_tokens == 2
        assert llm.get_request_count() == 2
        llm.reset_session()  # connections dropped; the next call opens new ones
        assert llm.get_last_response() is None
        assert llm.get_request_count() == 2
        assert llm.chat_completion([{"role": "user", "content": "again"}]).choices
        assert llm.get_request_count() == 3
        llm.close()
        llm.close()  # a second close does nothing more


class _PromptsHandler(BaseHTTPRequestHandler):
    """Answers ``/v1/completions`` with one choice per prompt, as OpenAI's API does, keeping
    each body it got."""

    def do_POST(self) -> None:
        server: Any = self.server
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        server.bodies.append(body)
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        answer = {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 0,
            "model": body.get("model", ""),
            "choices": [
                {"index": i, "text": f" the end of {p!r}", "finish_reason": "stop"}
                for i, p in enumerate(prompts)
            ],
            "usage": {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10},
        }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_completion_of_a_list_of_prompts_is_one_request() -> None:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _PromptsHandler)
    server.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with LLM(LLMConfig(base_url=url, model="m")) as llm:
            reply = llm.completion(["Once upon a time", "In a galaxy"], max_tokens=5)
            with pytest.raises(ConfigError, match="list of str"):
                llm.completion([])
    finally:
        server.shutdown()
        server.server_close()
    assert server.bodies[0]["prompt"] == ["Once upon a time", "In a galaxy"]
    assert server.bodies[0]["max_tokens"] == 5
    assert [c.text for c in reply.choices] == [
        " the end of 'Once upon a time'",
        " the end of 'In a galaxy'",
    ]
    assert get_usage_summary().by_model["m"].calls == 1


def test_a_list_of_prompts_on_the_simulator(sim: str) -> None:
    with LLM(LLMConfig(base_url=sim, max_tokens=2)) as llm:
        reply = llm.completion(["a", "b"])
    assert reply.choices[0].text


# -- Retries -------------------------------------------------------------------------------


def test_server_errors_are_retried_then_raised() -> None:
    with (
        served(server_error_rate=1.0) as url,
        LLM(LLMConfig(base_url=url, max_retries=2, retry_delay=0.01)) as llm,
        pytest.raises(LLMAPIError) as caught,
    ):
        llm.chat_completion([{"role": "user", "content": "Hi"}])
    assert caught.value.status_code in (500, 502, 503)
    assert "after 3 attempts" in str(caught.value)
    assert llm.get_request_count() == 1


def test_transient_errors_are_retried_until_success() -> None:
    with (
        served(server_error_rate=0.5, seed=3) as url,
        LLM(LLMConfig(base_url=url, max_retries=8, retry_delay=0.001)) as llm,
    ):
        replies = [llm.chat_completion([{"role": "user", "content": str(i)}]) for i in range(8)]
    assert all(r.choices[0].message.content for r in replies)
    assert get_usage_summary().by_model["gpt-4"].calls == 8


# -- Logging ---------------------------------------------------------------------------------


def test_info_logging_of_each_event_never_shows_the_key(
    sim: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.DEBUG, logger="LLM"),
        LLM(LLMConfig(base_url=sim, api_key=SECRET)) as llm,
    ):
        llm.chat_completion([{"role": "user", "content": "Hi"}])
        llm.completion("Once")
        llm.list_models()
        llm.reset_session()
    records = [r for r in caplog.records if r.name == "LLM"]
    events = [(r.levelname, r.getMessage().split(" {")[0]) for r in records]
    assert events == [
        ("INFO", "[LLM] LLM wrapper initialized"),
        ("INFO", "[LLM] Chat completion request"),
        ("INFO", "[LLM] Chat completion response received"),
        ("INFO", "[LLM] Completion request"),
        ("INFO", "[LLM] Completion response received"),
        ("DEBUG", "[LLM] Listing models"),
        ("DEBUG", "[LLM] Models retrieved"),
        ("INFO", "[LLM] Session reset"),
        ("INFO", "[LLM] LLM wrapper closed"),
    ]
    details = {r.getMessage().split(" {")[0]: getattr(r, "details", {}) for r in records}
    assert details["[LLM] Chat completion request"]["messages_count"] == 1
    assert details["[LLM] Chat completion response received"]["tokens_used"] > 0
    assert details["[LLM] LLM wrapper closed"] == {"total_requests": 2}
    for record in records:
        assert SECRET not in record.getMessage()
        assert SECRET not in repr(vars(record))


# -- Threads and async programs (asyncio and trio) -----------------------------------------


@pytest.mark.anyio
async def test_worker_threads_of_an_async_program_share_a_client(sim: str) -> None:
    with LLM(LLMConfig(base_url=sim, max_tokens=2)) as llm:
        answers: list[str] = []

        async def one(i: int) -> None:
            reply = await anyio.to_thread.run_sync(
                llm.chat_completion, [{"role": "user", "content": str(i)}]
            )
            answers.append(str(reply.choices[0].message.content or ""))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for i in range(8):
                    tg.start_soon(one, i)
        assert llm.get_request_count() == 8
    assert len(answers) == 8
    assert all(answers)
    assert get_usage_summary().by_model["gpt-4"].calls == 8
