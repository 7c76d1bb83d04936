"""A local Pusher HTTP API for tests: real HTTP, requests checked as Pusher's server checks them.

It answers ``POST /apps/<app_id>/events`` and ``/batch_events`` like Pusher: the signature is
recomputed from the query string and the secret (``401`` when it differs, when ``body_md5`` is
not the body's MD5, when the key is unknown or the timestamp more than 600 s off), an event's
data over the size limit is ``413``, a batch of more than 10 events ``400``. Every accepted
request is recorded with the time it arrived. A stdlib ``ThreadingHTTPServer`` in a thread,
so it serves an asyncio or a trio client alike; it can fail on demand (planned statuses,
dropped connections).
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["PusherServer", "Received", "pusher_server"]

APP_ID = "4242"
KEY = "278d425bdf160c739803"
SECRET = "7ad3773142a6692b25b8"


@dataclass
class Received:
    """One accepted request: when it arrived (``time.monotonic()``), its path, its events
    as ``(channel, name, data)``."""

    at: float
    path: str
    events: list[tuple[str, str, str]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        owner = self.server.owner
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if not owner.accepting:  # "down": drop the connection without an answer
            self.close_connection = True
            return
        status, payload = owner.handle(self.path, body)
        if status == 0:  # went down on this request
            self.close_connection = True
            return
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: PusherServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)


class PusherServer:
    """The API of one app (``APP_ID``, ``KEY``, ``SECRET``).

    :ivar received: the accepted requests, in order of arrival.
    :ivar answers: the status of every request answered, in order.
    """

    def __init__(self, *, max_data_bytes: int = 10_240, max_batch: int = 10) -> None:
        self.max_data_bytes = max_data_bytes
        self.max_batch = max_batch
        self.accepting = True
        self.received: list[Received] = []
        self.answers: list[int] = []
        self.plan: collections.deque[int] = collections.deque()
        self.drop_after: int | None = None
        self._lock = threading.Lock()
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail_next(self, *statuses: int) -> None:
        """Answer the next requests with these statuses (after checking their signature)."""
        with self._lock:
            self.plan.extend(statuses)

    def _answer(self, status: int, message: str | dict[str, Any]) -> tuple[int, bytes]:
        self.answers.append(status)
        text = message if isinstance(message, dict) else {"error": message}
        return status, json.dumps(text).encode()

    def handle(self, target: str, body: bytes) -> tuple[int, bytes]:
        with self._lock:
            return self._handle(target, body)

    def _handle(self, target: str, body: bytes) -> tuple[int, bytes]:
        split = urlsplit(target)
        path = split.path
        if path not in (f"/apps/{APP_ID}/events", f"/apps/{APP_ID}/batch_events"):
            return self._answer(404, f"no such resource {path}")
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        problem = self._auth_problem(path, params, body)
        if problem:
            return self._answer(401, problem)
        if self.plan:
            return self._answer(self.plan.popleft(), "planned failure")
        if self.drop_after is not None and len(self.received) >= self.drop_after:
            self.accepting = False  # down from now on; this request gets no answer either
            return self._answer(0, "dropped")
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._answer(400, "the body is not UTF-8 JSON")
        if path.endswith("/batch_events"):
            events = payload.get("batch")
            if not isinstance(events, list) or not 1 <= len(events) <= self.max_batch:
                return self._answer(400, f"a batch holds 1 to {self.max_batch} events")
        else:
            events = [payload]
        got = Received(time.monotonic(), path)
        for event in events:
            channel = event.get("channel") or (event.get("channels") or [None])[0]
            name, data = event.get("name"), event.get("data")
            if not (isinstance(channel, str) and isinstance(name, str) and isinstance(data, str)):
                return self._answer(400, "an event needs a channel, a name and string data")
            if len(data.encode("utf-8")) > self.max_data_bytes:
                return self._answer(413, "event data too large")
            got.events.append((channel, name, data))
        self.received.append(got)
        if path.endswith("/batch_events"):
            return self._answer(200, {"batch": [{} for _ in events]})
        return self._answer(200, {})

    @staticmethod
    def _auth_problem(path: str, params: dict[str, str], body: bytes) -> str:
        """What is wrong with the request's authentication, as Pusher checks it; '' if
        nothing."""
        for name in ("auth_key", "auth_timestamp", "auth_version", "auth_signature"):
            if name not in params:
                return f"missing {name}"
        if params["auth_key"] != KEY:
            return "unknown auth_key"
        if params["auth_version"] != "1.0":
            return "auth_version must be 1.0"
        if abs(int(params["auth_timestamp"]) - time.time()) > 600:
            return "auth_timestamp is more than 600 s off"
        if body and params.get("body_md5") != hashlib.md5(body).hexdigest():
            return "body_md5 does not match the body"
        signed = sorted((k.lower(), v) for k, v in params.items() if k != "auth_signature")
        query = "&".join(f"{k}={v}" for k, v in signed)
        expected = hmac.new(
            SECRET.encode(), f"POST\n{path}\n{query}".encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, params["auth_signature"]):
            return "invalid signature"
        return ""

    def events(self) -> list[tuple[str, str, str]]:
        """Every accepted event, in order."""
        return [event for got in self.received for event in got.events]


@contextmanager
def pusher_server(**options: Any) -> Iterator[PusherServer]:
    server = PusherServer(**options)
    server._thread.start()
    try:
        yield server
    finally:
        server._server.shutdown()
        server._server.server_close()
        server._thread.join(10)
