"""Real local HTTP servers for analytics tests: an event ingestion endpoint that can fail on
demand (503/429 with Retry-After, refused connections, hanging requests) and dedupes by
``event_id``, and an OTLP/HTTP trace receiver that decodes the protobuf exports.

Both are stdlib ``ThreadingHTTPServer``s in a background thread: they answer whatever the
test's event loop is (asyncio or trio), and a test can stop one (connections refused, open
keep-alive connections dropped) and start it again on the same port.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from limelight.errors import EventDecodeError
from limelight.schemas import Event, decode_events

__all__ = ["Fail", "IngestServer", "OTLPReceiver", "ingest_server", "otlp_receiver"]


class Fail:
    """One planned failure: answer ``status`` (with ``Retry-After: retry_after`` when given)."""

    def __init__(self, status: int, *, retry_after: float | None = None, body: str = "") -> None:
        self.status = status
        self.retry_after = retry_after
        self.body = body or f"planned failure {status}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: pytest runs with warnings as errors, and stderr noise helps nobody

    def do_POST(self) -> None:
        owner = self.server.owner
        if not owner.accepting:  # "down": drop the (keep-alive) connection without an answer
            self.close_connection = True
            return
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        status, headers, payload = owner.handle(self.path, dict(self.headers.items()), body)
        if not owner.accepting:  # stopped while this request hung
            self.close_connection = True
            return
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: _Base) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Kept for the test to inspect instead of printed (a client dropping a connection
        # while the server is "down" is expected).
        self.owner.errors.append(sys.exc_info()[1])


class _Base:
    """Start/stop plumbing and the failure plan shared by both servers."""

    path = "/"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.accepting = False
        self.port = 0
        self.requests = 0
        self.statuses: list[int] = []
        #: time.monotonic() of every answer, in order (with ``statuses``).
        self.times: list[float] = []
        self.errors: list[BaseException | None] = []
        self.plan: collections.deque[Fail] = collections.deque()
        self.fail_every: tuple[int, Fail] | None = None
        self._hang = threading.Event()  # set: requests hang until released
        self._release = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self) -> None:
        """Listen (again, on the same port after a :meth:`stop`)."""
        server = _Server(("127.0.0.1", self.port), self)
        self.port = server.server_address[1]
        self._server = server
        self.accepting = True
        self._release.clear()
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Go down: new connections are refused, open ones dropped, hanging requests end."""
        self.accepting = False
        self._release.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def fail_next(self, *failures: Fail) -> None:
        """Answer the next requests with these failures, in order."""
        with self.lock:
            self.plan.extend(failures)

    def hang(self) -> None:
        """Make requests hang (no answer) until :meth:`release` or :meth:`stop`."""
        self._release.clear()
        self._hang.set()

    def release(self) -> None:
        self._hang.clear()
        self._release.set()

    def _planned(self) -> Fail | None:
        with self.lock:
            self.requests += 1
            if self.plan:
                return self.plan.popleft()
            if self.fail_every is not None and self.requests % self.fail_every[0] == 0:
                return self.fail_every[1]
            return None

    def handle(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if self._hang.is_set():
            self._release.wait(timeout=55)
        fail = self._planned()
        if fail is not None:
            out = {"content-type": "text/plain"}
            if fail.retry_after is not None:
                out["retry-after"] = f"{fail.retry_after:g}"
            self._record(fail.status)
            return fail.status, out, fail.body.encode()
        status, out, payload = self.accept(path, headers, body)
        self._record(status)
        return status, out, payload

    def _record(self, status: int) -> None:
        with self.lock:
            self.statuses.append(status)
            self.times.append(time.monotonic())

    def accept(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        raise NotImplementedError


class IngestServer(_Base):
    """An analytics ingestion endpoint: ``POST /v1/events`` with a JSON array of events.

    It checks the bearer key (401 when wrong), answers 400 to a body that is not events, and
    stores each ``event_id`` once (``events``), counting every event received
    (``received``, duplicates included).
    """

    path = "/v1/events"

    def __init__(self, *, api_key: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.received = 0
        self.stored: dict[uuid.UUID, Event] = {}
        self.authorizations: list[str | None] = []

    @property
    def events(self) -> list[Event]:
        with self.lock:
            return list(self.stored.values())

    def accept(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        lowered = {k.lower(): v for k, v in headers.items()}
        auth = lowered.get("authorization")
        with self.lock:
            self.authorizations.append(auth)
        if path != self.path:
            return 404, {}, b"no such endpoint"
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            return 401, {}, b'{"error": "invalid API key"}'
        try:
            batch = decode_events(body)
        except EventDecodeError as exc:
            return 400, {}, str(exc).encode()
        with self.lock:
            self.received += len(batch)
            for event in batch:
                self.stored.setdefault(event.event_id, event)
        return 200, {"content-type": "application/json"}, b'{"accepted": %d}' % len(batch)


class OTLPReceiver(_Base):
    """An OTLP/HTTP trace collector: decodes each protobuf ``ExportTraceServiceRequest``."""

    path = "/v1/traces"

    def __init__(self) -> None:
        super().__init__()
        self.exports: list[Any] = []  # ExportTraceServiceRequest messages
        self.content_types: list[str | None] = []

    def spans(self) -> list[Any]:
        """Every span received, flattened out of resource and scope spans."""
        with self.lock:
            return [
                span
                for export in self.exports
                for resource in export.resource_spans
                for scope in resource.scope_spans
                for span in scope.spans
            ]

    def accept(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        if path != self.path:
            return 404, {}, b"no such endpoint"
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        with self.lock:
            self.exports.append(message)
            self.content_types.append(
                {k.lower(): v for k, v in headers.items()}.get("content-type")
            )
        payload = ExportTraceServiceResponse().SerializeToString()
        return 200, {"content-type": "application/x-protobuf"}, payload


@contextmanager
def ingest_server(*, api_key: str | None = None) -> Iterator[IngestServer]:
    server = IngestServer(api_key=api_key)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def otlp_receiver() -> Iterator[OTLPReceiver]:
    server = OTLPReceiver()
    server.start()
    try:
        yield server
    finally:
        server.stop()
