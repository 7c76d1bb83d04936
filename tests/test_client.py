"""The sync client over real HTTP: the project's simulator (with its fault injection for
retries and errors) and ``mlx_lm.server`` serving a tiny model built here; shared by 16
threads at once; the API key never in a log line, an error or a repr."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import anyio.to_thread
import msgspec
import pytest
from structlog.testing import capture_logs

from limelight.client import LLM, LLMConfig
from limelight.errors import (
    APIError,
    ConfigError,
    LLMAPIError,
    LLMConnectionError,
    LLMError,
    LLMTimeout,
    ProviderConnectionError,
    RuntimeNotRunning,
)
from limelight.providers import SimulatedConfig, serve_in_thread
from limelight.schemas import Message
from limelight.usage import get_usage_summary, reset_usage

SECRET = "sk-never-log-me-0123456789"
FAST = SimulatedConfig(ttft=0.0, ttft_jitter=0.0, tokens_per_second=None, output_tokens=12)


def sim_config(**options: Any) -> SimulatedConfig:
    """The fast simulator with ``options`` (faults, models) changed."""
    return msgspec.structs.replace(FAST, **options)


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    """The simulator, answering at once; yields its root URL without ``/v1``."""
    with serve_in_thread(FAST) as url:
        yield url.removesuffix("/v1")


def user(text: str = "Say something.") -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def attempts_failed(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == "llm.attempt_failed"]


# -- shapes ------------------------------------------------------------------------------


def test_chat_completion_is_shaped_like_openai(sim: str) -> None:
    reset_usage()
    with LLM(LLMConfig(base_url=sim, model="gpt-4o-mini", max_tokens=5)) as llm:
        reply = llm.chat_completion(user())
        longer = llm.chat_completion(user(), max_tokens=10, temperature=0.0, seed=7)
    content = reply.choices[0].message.content
    assert isinstance(content, str)
    assert content
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason == "length"  # config.max_tokens reached the server
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 5
    assert longer.usage is not None
    assert longer.usage.completion_tokens == 10  # the call's max_tokens wins over config's
    assert reply.model == "gpt-4o-mini"
    assert reply.id.startswith("chatcmpl")
    summary = get_usage_summary()
    assert summary.by_model["gpt-4o-mini"].calls == 2
    assert summary.by_role["default"].completion_tokens == 15
    assert summary.total.cost > 0  # gpt-4o-mini has a known price


def test_messages_may_be_limelight_messages(sim: str) -> None:
    with LLM(base_url=sim) as llm:
        reply = llm.chat_completion([Message.system("Be brief."), Message.user("Hi")])
    assert reply.choices[0].message.content


def test_text_completion(sim: str) -> None:
    with LLM(base_url=sim + "/v1", max_tokens=3) as llm:
        reply = llm.completion("Once upon a time")
    assert isinstance(reply.choices[0].text, str)
    assert reply.choices[0].text
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 3
    assert reply.object == "text_completion"


def test_list_models_last_response_and_count() -> None:
    config = sim_config(models=("alpha", "beta"))
    with serve_in_thread(config) as url, LLM(base_url=url) as llm:
        assert llm.get_last_response() is None
        assert llm.get_request_count() == 0
        models = llm.list_models()
        assert [m.id for m in models.data] == ["alpha", "beta"]
        assert llm.get_last_response() is models
        reply = llm.chat_completion(user())
        assert llm.get_last_response() is reply
        assert llm.get_request_count() == 2
        llm.reset_session()  # connections dropped; the client goes on with new ones
        assert llm.get_last_response() is None
        assert llm.completion("x").choices[0].text
        assert llm.get_request_count() == 3


def test_api_root_gets_v1_unless_it_has_a_version() -> None:
    assert LLMConfig(base_url="http://h:8000").api_root == "http://h:8000/v1"
    assert LLMConfig(base_url="http://h:8000/").api_root == "http://h:8000/v1"
    assert LLMConfig(base_url="http://h/v1/").api_root == "http://h/v1"
    assert LLMConfig(base_url="http://h/api/v1beta").api_root == "http://h/api/v1beta"


# -- many threads --------------------------------------------------------------------------


def run_threads(work: Callable[[int], object], threads: int = 16) -> list[object]:
    """Run ``work(i)`` in ``threads`` threads released at once; return results in order,
    re-raising the first failure."""
    barrier = threading.Barrier(threads)
    results: list[object] = [None] * threads
    errors: list[BaseException] = []

    def target(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=target, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    return results


def test_sixteen_threads_share_one_client_against_the_simulator(sim: str) -> None:
    reset_usage()
    with LLM(base_url=sim, model="sim-model", max_tokens=4) as llm:

        def work(i: int) -> list[str]:
            return [
                llm.chat_completion(user(f"thread {i} call {n}")).choices[0].message.content or ""
                for n in range(5)
            ]

        results = run_threads(work)
        assert llm.get_request_count() == 80
    assert all(len(r) == 5 and all(r) for r in results)  # type: ignore[arg-type]
    totals = get_usage_summary().by_model["sim-model"]
    assert totals.calls == 80
    assert totals.completion_tokens == 80 * 4


def test_sixteen_threads_share_one_client_against_mlx_server(mlx_server: str) -> None:
    with LLM(base_url=mlx_server, temperature=0.0, max_tokens=3, timeout=60) as llm:

        def work(i: int) -> tuple[str, str]:
            chat = llm.chat_completion(user("What is the capital of France?"))
            text = llm.completion(f"Tokens stream {i}")
            return chat.choices[0].message.content or "", text.choices[0].text

        results = run_threads(work)
        assert llm.get_request_count() == 32
    chats = {r[0] for r in results}  # type: ignore[index]
    assert len(chats) == 1  # greedy decoding: the same answer in every thread
    assert all(r[0] and isinstance(r[1], str) for r in results)  # type: ignore[index]


def test_mlx_server_shapes(mlx_server: str) -> None:
    with LLM(base_url=mlx_server, temperature=0.0, max_tokens=4, timeout=60) as llm:
        reply = llm.chat_completion(user())
        text = llm.completion("Tokens stream", max_tokens=2)
        models = llm.list_models()
    assert reply.choices[0].message.content
    assert reply.usage is not None
    assert 1 <= reply.usage.completion_tokens <= 4
    assert text.usage is not None
    assert text.usage.completion_tokens <= 2
    assert models.data
    assert all(m.id for m in models.data)


@pytest.mark.anyio
async def test_worker_threads_of_an_async_program_share_a_client(sim: str) -> None:
    """From asyncio or trio, blocking calls go to worker threads; the client serves them all
    on its own loop."""
    with LLM(base_url=sim, max_tokens=2) as llm:
        answers: list[str] = []

        async def one(i: int) -> None:
            reply = await anyio.to_thread.run_sync(llm.chat_completion, user(str(i)))
            answers.append(reply.choices[0].message.content or "")

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(one, i)
    assert len(answers) == 8
    assert all(answers)


# -- retries and errors --------------------------------------------------------------------


def test_429_is_retried_after_the_servers_retry_after() -> None:
    """retry_delay is 10 ms, but the server asks for 50 ms: the client waits what it is told."""
    config = sim_config(rate_limit_error_rate=1.0, fault_retry_after=0.05)
    with (
        serve_in_thread(config) as url,
        LLM(base_url=url, retry_delay=0.01, max_retries=2) as llm,
        capture_logs() as logs,
        pytest.raises(LLMAPIError) as caught,
    ):
        llm.chat_completion(user())
    failed = attempts_failed(logs)
    assert [f["attempt"] for f in failed] == [1, 2, 3]
    assert [f["retry_in"] for f in failed] == [0.05, 0.05, None]
    assert all(f["status_code"] == 429 for f in failed)
    error = caught.value
    assert error.status_code == 429
    assert isinstance(error, APIError)
    assert isinstance(error, LLMError)
    assert isinstance(error.body, dict)
    assert error.body["error"]["type"] == "requests"
    assert "after 3 attempts" in str(error)


def test_a_server_delay_shorter_than_the_backoff_does_not_shorten_it() -> None:
    """A server asking for 1 ms (the simulator's least ``retry-after-ms``) never turns backoff
    off: the client's own exponential delays from retry_delay still apply. (A literal 0 over
    HTTP: test_a_zero_server_delay_over_http_still_backs_off in tests/actors.)"""
    config = sim_config(rate_limit_error_rate=1.0, fault_retry_after=0.0)
    with (
        serve_in_thread(config) as url,
        LLM(base_url=url, retry_delay=0.02, max_retries=2) as llm,
        capture_logs() as logs,
        pytest.raises(LLMAPIError),
    ):
        llm.chat_completion(user())
    assert [f["retry_in"] for f in attempts_failed(logs)] == [0.02, 0.04, None]


def test_server_errors_back_off_exponentially_from_retry_delay() -> None:
    config = sim_config(server_error_rate=1.0)
    with (
        serve_in_thread(config) as url,
        LLM(base_url=url, retry_delay=0.01, max_retries=3) as llm,
        capture_logs() as logs,
        pytest.raises(LLMAPIError) as caught,
    ):
        llm.completion("x")
    failed = attempts_failed(logs)
    assert [f["retry_in"] for f in failed] == [0.01, 0.02, 0.04, None]
    assert {f["status_code"] for f in failed} <= {500, 502, 503}
    assert caught.value.status_code in (500, 502, 503)
    assert [e["attempts"] for e in logs if e["event"] == "llm.error"] == [4]


def test_transient_server_errors_are_retried_until_success() -> None:
    config = sim_config(server_error_rate=0.5, seed=3)
    with (
        serve_in_thread(config) as url,
        LLM(base_url=url, retry_delay=0.001, max_retries=8) as llm,
        capture_logs() as logs,
    ):
        replies = [llm.chat_completion(user(str(i))) for i in range(12)]
    assert all(r.choices[0].message.content for r in replies)
    assert len(attempts_failed(logs)) >= 1  # half the requests fail: some were retried
    assert not [e for e in logs if e["event"] == "llm.error"]


def test_bad_requests_are_not_retried() -> None:
    config = sim_config(models=("known",), strict_models=True)
    with serve_in_thread(config) as url, LLM(base_url=url, model="unknown", retry_delay=0) as llm:
        with capture_logs() as logs, pytest.raises(LLMAPIError) as caught:
            llm.chat_completion(user())
        with pytest.raises(LLMAPIError) as bad_role:
            llm.chat_completion([{"role": "wizard", "content": "hi"}], model="known")
    assert caught.value.status_code == 404
    assert [f["retry_in"] for f in attempts_failed(logs)] == [None]  # one attempt, no retry
    assert bad_role.value.status_code == 400


class _StatusHandler(BaseHTTPRequestHandler):
    """Answers the statuses its server is given, one per request, then a chat completion."""

    def do_POST(self) -> None:
        server: Any = self.server
        self.rfile.read(int(self.headers["content-length"]))
        with server.lock:
            server.requests += 1
            status = server.statuses.pop(0) if server.statuses else 200
        if status == 200:
            body = msgspec.json.encode(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "model": "m",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "fine"},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
                }
            )
        else:
            body = msgspec.json.encode({"error": {"message": f"status {status}", "type": "x"}})
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def status_server() -> Iterator[Any]:
    """A real HTTP server started here, answering the statuses put in ``.statuses``."""
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _StatusHandler)
    server.statuses, server.requests, server.lock = [], 0, threading.Lock()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address
        server.url = f"http://{host}:{port}"
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_each_retryable_status_is_retried(status_server: Any, status: int) -> None:
    status_server.statuses += [status, status]
    with (
        LLM(base_url=status_server.url, retry_delay=0.001, max_retries=3) as llm,
        capture_logs() as logs,
    ):
        reply = llm.chat_completion(user())
    assert reply.choices[0].message.content == "fine"
    assert status_server.requests == 3  # two failures, each retried, then the answer
    failed = attempts_failed(logs)
    assert [f["status_code"] for f in failed] == [status, status]
    assert [f["retry_in"] for f in failed] == [0.001, 0.002]


@pytest.mark.parametrize("status", [400, 501])
def test_other_statuses_are_not_retried(status_server: Any, status: int) -> None:
    status_server.statuses += [status]
    with (
        LLM(base_url=status_server.url, retry_delay=0.001, max_retries=3) as llm,
        capture_logs() as logs,
        pytest.raises(LLMAPIError) as caught,
    ):
        llm.chat_completion(user())
    assert caught.value.status_code == status
    assert status_server.requests == 1
    assert [f["retry_in"] for f in attempts_failed(logs)] == [None]


def test_connection_refused_is_retried_then_raised() -> None:
    with serve_in_thread(FAST) as url:
        pass  # the server is gone: its port refuses connections now
    with (
        LLM(base_url=url, retry_delay=0.001, max_retries=2) as llm,
        capture_logs() as logs,
        pytest.raises(LLMConnectionError) as caught,
    ):
        llm.chat_completion(user())
    assert len(attempts_failed(logs)) == 3
    assert isinstance(caught.value, ProviderConnectionError)
    assert "after 3 attempts" in str(caught.value)


def test_a_slow_server_times_out() -> None:
    slow = sim_config(ttft=5.0)
    with (
        serve_in_thread(slow) as url,
        LLM(base_url=url, timeout=0.2, max_retries=0) as llm,
        pytest.raises(LLMTimeout) as caught,
    ):
        llm.chat_completion(user())
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value, LLMConnectionError)


def test_the_key_never_reaches_logs_errors_or_repr(sim: str) -> None:
    errors: list[BaseException] = []
    with capture_logs() as logs:
        with LLM(base_url=sim, api_key=SECRET, max_tokens=2) as llm:
            llm.chat_completion(user())
            llm.completion("x")
            llm.list_models()
            with pytest.raises(LLMAPIError) as caught:
                llm.chat_completion([{"role": "wizard", "content": SECRET[:5]}])
            errors.append(caught.value)
            shown = repr(llm) + repr(llm.config) + str(llm.config)
        with serve_in_thread(FAST) as gone:
            pass
        with LLM(base_url=gone, api_key=SECRET, max_retries=0) as dead:
            with pytest.raises(LLMConnectionError) as refused:
                dead.list_models()
            errors.append(refused.value)
    assert logs  # requests, responses and failures were logged
    assert {e["event"] for e in logs} >= {"llm.request", "llm.response", "llm.attempt_failed"}
    assert SECRET not in repr(logs)
    assert SECRET not in shown
    for error in errors:
        assert SECRET not in str(error)
        assert SECRET not in repr(error.__cause__)


# -- bad input and lifetime ----------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{"timeout": 0}, {"max_retries": -1}, {"retry_delay": -1.0}, {"max_tokens": 0}],
)
def test_bad_config_is_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        LLMConfig(**options)


def test_bad_calls_are_refused_before_sending(sim: str) -> None:
    with LLM(base_url=sim) as llm:
        with pytest.raises(ConfigError, match="list of chat messages"):
            llm.chat_completion("hello")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="empty"):
            llm.chat_completion([])
        with pytest.raises(ConfigError, match="role"):
            llm.chat_completion([{"content": "no role"}])
        with pytest.raises(ConfigError, match="does not stream"):
            llm.chat_completion(user(), stream=True)
        with pytest.raises(ConfigError, match="prompt must be a str"):
            llm.completion(["a"])  # type: ignore[arg-type]
        assert llm.get_request_count() == 0
    with pytest.raises(ConfigError, match="base_url"):
        LLM(base_url="not a url")


def test_a_closed_client_refuses_calls(sim: str) -> None:
    llm = LLM(base_url=sim)
    llm.chat_completion(user())
    llm.close()
    llm.close()  # a second close does nothing
    assert llm.closed
    with pytest.raises(RuntimeNotRunning, match="closed"):
        llm.chat_completion(user())


def test_a_client_never_closed_does_not_keep_the_program_alive(sim: str) -> None:
    code = (
        "from limelight.client import LLM\n"
        f"llm = LLM(base_url={sim!r})\n"
        "print(llm.list_models().data[0].id)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.strip()
