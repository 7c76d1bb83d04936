"""A real OpenAI-compatible HTTP server that requires an API key, for tests about keys: it
answers a chat completion (its text names the model) when the ``Authorization`` header carries
the expected key, and a 401 quoting the header back otherwise, as OpenAI does ("Incorrect API
key provided: Bearer sk-..."); a request for the model ``"bad-request"`` gets that body with
a 400, key or not. A request for the model ``"mid-stream-error"`` with
``stream: true`` gets one token, then an error event quoting the header, then the end marker.

A stdlib ``ThreadingHTTPServer`` in a background thread: it answers any event loop.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["KeyServer", "key_server"]


@dataclass
class KeyServer:
    """What the running server expects and saw.

    :ivar url: the API root, ending in ``/v1``.
    :ivar expected: the key that opens it (``None``: no key opens it).
    :ivar seen: the ``Authorization`` header of each request, in order.
    """

    url: str
    expected: str | None
    seen: list[str | None] = field(default_factory=list)


def _completion(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"served {model}"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


def _refusal(authorization: str | None) -> dict[str, Any]:
    return {
        "error": {
            "message": f"Incorrect API key provided: {authorization}. You can find your API key "
            "at https://example.invalid/keys.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # pytest runs with warnings as errors; stderr noise helps nobody

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self) -> tuple[bool, str | None]:
        authorization = self.headers.get("authorization")
        owner = self.server.owner
        with self.server.lock:
            owner.seen.append(authorization)
        ok = owner.expected is not None and authorization == f"Bearer {owner.expected}"
        return ok, authorization

    def do_GET(self) -> None:
        ok, authorization = self._authorized()
        if not ok:
            self._send(401, json.dumps(_refusal(authorization)).encode())
            return
        self._send(200, json.dumps({"object": "list", "data": []}).encode())

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        request = json.loads(raw or b"{}")
        model = str(request.get("model") or "m")
        if request.get("stream") and model == "mid-stream-error":
            authorization = self.headers.get("authorization")
            token = {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}],
            }
            error = _refusal(authorization)
            error["error"]["code"] = "401"
            events = [token, error]
            body = b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events)
            self._send(200, body + b"data: [DONE]\n\n", "text/event-stream")
            return
        ok, authorization = self._authorized()
        if not ok or model == "bad-request":
            status = 400 if model == "bad-request" else 401
            self._send(status, json.dumps(_refusal(authorization)).encode())
            return
        self._send(200, json.dumps(_completion(model)).encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: KeyServer) -> None:
        self.owner = owner
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)


@contextmanager
def key_server(expected: str | None = None) -> Iterator[KeyServer]:
    """Run the server until the block ends; yields its :class:`KeyServer`."""
    owner = KeyServer(url="", expected=expected)
    server = _Server(owner)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        owner.url = f"http://{host!s}:{port}/v1"
        yield owner
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
