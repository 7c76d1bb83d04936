"""The two client paths of the harness against the simulator over HTTP: the lean HTTP/1.1
client (asyncio, http://, chat and stream workloads) and the provider's streaming API (trio,
or ``client="provider"``). Both measure the same things and name failures the same way."""

from __future__ import annotations

import msgspec
import pytest

from limelight.harness import BenchConfig, ClosedLoop, Target, Workload, run
from limelight.providers import SimulatedConfig
from limelight.testing import serve_in_thread_async

pytestmark = pytest.mark.anyio

BASE = SimulatedConfig(ttft=0.005, ttft_jitter=0.0, tokens_per_second=5000.0, output_tokens=9)


@pytest.mark.parametrize("client", ["auto", "provider"])
@pytest.mark.parametrize("kind", ["chat", "stream"])
async def test_both_paths_measure_the_same_answers(
    anyio_backend: str, client: str, kind: str
) -> None:
    async with serve_in_thread_async(BASE) as url:
        config = BenchConfig(
            target=Target(base_url=url),
            workload=Workload(kind=kind, output_tokens="20"),  # type: ignore[arg-type]
            load=ClosedLoop(concurrency=2),
            requests=6,
            client=client,  # type: ignore[arg-type]
        )
        result = await run(config)
    lean = client == "auto" and anyio_backend == "asyncio"
    assert ("lean HTTP/1.1 client" in result.client) is lean
    assert ("OpenAICompatible" in result.client) is not lean
    s = result.summary
    assert (s.completed, s.failed) == (6, 0)
    # The simulator answers 9 tokens (below max_tokens=20), in 9 content chunks.
    assert s.output_tokens == 54
    if kind == "stream":
        assert s.ttft is not None
        assert s.ttft.count == 6
        assert s.itl is not None
        assert s.itl.count == 6 * 8  # 9 chunks, 8 gaps per answer
    else:
        assert s.ttft is None


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the lean client is asyncio's
@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"server_error_rate": 1.0}, {"ServerError"}),
        ({"truncated_rate": 1.0}, {"BadResponse"}),
        ({"connection_reset_rate": 1.0}, {"ProviderConnectionError", "BadResponse"}),
        ({"malformed_rate": 1.0}, {"BadResponse"}),
    ],
)
async def test_both_paths_name_failures_alike(
    anyio_backend: str, fault: dict[str, float], expected: set[str]
) -> None:
    from limelight.harness._fastclient import FastHTTP
    from limelight.providers import OpenAICompatible
    from limelight.schemas import CompletionRequest, Message

    messages = [Message.user("hello")]
    async with serve_in_thread_async(msgspec.structs.replace(BASE, **fault)) as url:
        lean = FastHTTP(url)
        provider = OpenAICompatible(url)
        try:
            for _ in range(3):
                body = FastHTTP.body("sim-1", messages, 5, stream=True)
                outcome = await lean.exchange(body, stream=True)
                assert outcome.error in expected, outcome.error_message
                assert outcome.error_message
                with pytest.raises(Exception) as caught:
                    async for _event in provider.stream(
                        CompletionRequest(messages=messages, max_tokens=5)
                    ):
                        pass
                assert type(caught.value).__name__ in expected
        finally:
            await lean.aclose()
            await provider.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_lean_client_reuses_its_connections(anyio_backend: str) -> None:
    from limelight.harness._fastclient import FastHTTP
    from limelight.schemas import Message

    async with serve_in_thread_async(BASE) as url:
        lean = FastHTTP(url)
        try:
            for stream in (True, False, True):
                body = FastHTTP.body("sim-1", [Message.user("hi")], 4, stream=stream)
                outcome = await lean.exchange(body, stream=stream)
                assert outcome.error is None, outcome.error_message
                assert outcome.usage is not None
                assert outcome.usage.completion_tokens == 4
                assert (outcome.first is not None) is stream
            assert len(lean._all) == 1  # one keep-alive connection served all three
        finally:
            await lean.aclose()


def test_lean_client_speaks_plain_http_only() -> None:
    from limelight.errors import ConfigError
    from limelight.harness._fastclient import FastHTTP

    with pytest.raises(ConfigError, match="plain http"):
        FastHTTP("https://api.openai.com/v1")
