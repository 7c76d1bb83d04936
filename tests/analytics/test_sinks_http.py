"""HTTPSink against a real local ingestion server (tests/analytics/_servers.py) that fails on
demand: 503/429 with Retry-After, other 4xx, refused connections, hanging requests. On asyncio
(aiohttp's transport under httpx) and trio (httpx's own)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import anyio
import pytest
import structlog.testing

from limelight.errors import ConfigError, SinkRejected, SinkUnavailable
from limelight.schemas import Event
from limelight.sinks import HTTPSink, Sink

from ._servers import Fail, IngestServer, ingest_server

pytestmark = pytest.mark.anyio

KEY = "sk-test-" + "0123456789abcdef"


@pytest.fixture
def server() -> Iterator[IngestServer]:
    with ingest_server(api_key=KEY) as running:
        yield running


def batch_of(n: int, run_id: str = "r") -> list[Event]:
    return [
        Event.create_llm_response("m", input_tokens=i, output_tokens=1, run_id=run_id)
        for i in range(n)
    ]


async def test_a_batch_arrives_with_the_bearer_key(server: IngestServer) -> None:
    sink = HTTPSink(server.url, api_key=KEY)
    assert isinstance(sink, Sink)
    assert sink.dedupes
    batch = batch_of(5)
    await sink.write(batch)
    await sink.aclose()
    assert server.events == batch
    assert server.authorizations == [f"Bearer {KEY}"]
    assert sink.sent == 5


async def test_503_and_429_are_unavailable_with_retry_after(server: IngestServer) -> None:
    sink = HTTPSink(server.url, api_key=KEY)
    server.fail_next(Fail(503, retry_after=1.5), Fail(429, retry_after=0.25), Fail(502))
    batch = batch_of(3)
    for expected_status, expected_wait in ((503, 1.5), (429, 0.25), (502, None)):
        with pytest.raises(SinkUnavailable, match=f"answered {expected_status}") as info:
            await sink.write(batch)
        assert info.value.retry_after == expected_wait
        assert info.value.sink == "http"
    await sink.write(batch)
    await sink.write(batch)  # a retry after a lost answer: the server keeps one copy
    await sink.aclose()
    assert server.events == batch
    assert server.received == 6
    assert server.statuses == [503, 429, 502, 200, 200]


async def test_other_4xx_are_rejected_and_the_key_never_shows(server: IngestServer) -> None:
    sink = HTTPSink(server.url, api_key=KEY)
    server.fail_next(Fail(422, body=f"schema mismatch for key {KEY}"))
    with (
        structlog.testing.capture_logs() as logs,
        pytest.raises(SinkRejected, match="answered 422") as info,
    ):
        await sink.write(batch_of(2))
    assert info.value.status == 422
    assert "schema mismatch" in info.value.body
    assert KEY not in str(info.value)
    assert KEY not in info.value.body
    assert KEY not in repr(sink)
    assert KEY not in repr(logs)
    wrong = HTTPSink(server.url, api_key="sk-wrong-" + "x" * 16)
    with pytest.raises(SinkRejected, match="check the analytics API key") as denied:
        await wrong.write(batch_of(1))
    assert denied.value.status == 401
    server.fail_next(Fail(307))
    with pytest.raises(SinkRejected, match="redirects are not followed"):
        await sink.write(batch_of(1))
    await sink.aclose()
    await wrong.aclose()
    assert server.events == []


async def test_a_server_that_is_down_is_unavailable_then_comes_back(server: IngestServer) -> None:
    sink = HTTPSink(server.url, api_key=KEY, timeout=5)
    first = batch_of(2, "a")
    await sink.write(first)  # opens a keep-alive connection
    server.stop()
    with pytest.raises(SinkUnavailable, match="failed"):
        await sink.write(batch_of(2, "b"))
    with pytest.raises(SinkUnavailable, match="failed"):  # refused outright
        await sink.write(batch_of(2, "b"))
    server.start()
    second = batch_of(2, "b")
    await sink.write(second)
    await sink.aclose()
    assert server.events == first + second


async def test_a_hanging_server_times_out_as_unavailable(server: IngestServer) -> None:
    sink = HTTPSink(server.url, api_key=KEY, timeout=0.2)
    server.hang()
    try:
        with pytest.raises(SinkUnavailable, match="failed"):
            await sink.write(batch_of(1))
    finally:
        server.release()
    await sink.aclose()


async def test_a_flaky_server_gets_every_event_exactly_once_with_retries(
    server: IngestServer,
) -> None:
    """A plain retry loop over HTTPSink (the shipper's job, reduced to its core) against a
    server failing every third request: every event is stored once, some were sent twice."""
    server.fail_every = (3, Fail(503, retry_after=0))
    sink = HTTPSink(server.url, api_key=KEY)
    rng = random.Random(7)
    sent: list[Event] = []
    failures = 0
    for i in range(20):
        batch = batch_of(rng.randint(1, 5), run_id=f"r{i}")
        sent += batch
        while True:
            try:
                await sink.write(batch)
                break
            except SinkUnavailable as exc:
                failures += 1
                await anyio.sleep(exc.retry_after or 0)
    await sink.aclose()
    assert failures >= 6
    assert sorted(e.event_id for e in server.events) == sorted(e.event_id for e in sent)
    assert server.statuses.count(503) == failures


async def test_concurrent_writes_share_the_pool(server: IngestServer) -> None:
    sink = HTTPSink(server.url, api_key=KEY, max_connections=2)
    batches = [batch_of(3, f"r{i}") for i in range(10)]
    async with anyio.create_task_group() as tg:
        for batch in batches:
            tg.start_soon(sink.write, batch)
    await sink.aclose()
    assert len(server.events) == 30


@pytest.mark.parametrize("endpoint", ["not a url", "ftp://host/x", "http://"])
def test_a_bad_endpoint_is_a_config_error(endpoint: str) -> None:
    with pytest.raises(ConfigError, match="endpoint"):
        HTTPSink(endpoint)
