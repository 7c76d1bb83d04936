"""Test helpers for code built on limelight.

The deterministic Scripted provider, and the simulator server running in a thread so tests
on any event loop can reach it over HTTP."""

from __future__ import annotations

from .providers._scripted import Reply as Reply
from .providers._scripted import Scripted as Scripted
from .providers._scripted import ScriptExhausted as ScriptExhausted
from .sim._server import serve_in_thread as serve_in_thread
from .sim._server import serve_in_thread_async as serve_in_thread_async

__all__ = ["Reply", "ScriptExhausted", "Scripted", "serve_in_thread", "serve_in_thread_async"]
