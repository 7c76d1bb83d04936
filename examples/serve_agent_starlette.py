"""Serve an agent's stream from a Starlette app: server-sent events on ``GET /chat`` and a
websocket on ``/ws``. One Runtime lives as long as the app (its lifespan); each request runs
its own agent in it, sharing one provider pool.

Run it with any ASGI server, e.g. ``uvicorn examples.serve_agent_starlette:app``, then
``curl -N 'localhost:8000/chat?prompt=What+is+2+%2B+3%3F'``. By default the model is the
scripted test double; set ``LIMELIGHT_BASE_URL`` (and ``LIMELIGHT_MODEL``) to use any
OpenAI-compatible server instead (``limelight sim`` starts a local one).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from limelight.actors import ProviderPool
from limelight.agents import Agent, AgentConfig
from limelight.providers import Provider
from limelight.runtime import Runtime
from limelight.schemas import CompletionRequest, ToolCall
from limelight.streaming import SSEAdapter, WebSocketAdapter
from limelight.testing import Scripted
from limelight.tools import tool

_ids = itertools.count(1)


@tool
async def add(a: int, b: int) -> int:
    """Add two integers.

    :param a: the first.
    :param b: the second.
    """
    return a + b


def _scripted_answer(request: CompletionRequest) -> str | list[ToolCall]:
    # A stand-in model: call the tool once, then answer with its result.
    last = request.messages[-1]
    if last.role == "tool":
        return f"The answer is {last.content}."
    return [ToolCall(id="call-1", name="add", arguments='{"a": 2, "b": 3}')]


def make_provider() -> Provider:
    base_url = os.environ.get("LIMELIGHT_BASE_URL")
    if base_url:
        from limelight.providers import OpenAICompatible

        return OpenAICompatible(base_url)
    return Scripted(_scripted_answer)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with Runtime() as runtime:
        app.state.runtime = runtime
        app.state.pool = await ProviderPool.start(
            runtime,
            make_provider(),
            name="model",
            model=os.environ.get("LIMELIGHT_MODEL", ""),
            size=16,
        )
        yield


def new_agent(request: Request | WebSocket) -> Agent:
    return Agent(
        model=request.app.state.pool,
        tools=[add],
        system="You are a calculator.",
        config=AgentConfig(max_turns=4, deadline=60),
        name=f"session-{next(_ids)}",
        runtime=request.app.state.runtime,
    )


async def chat(request: Request) -> StreamingResponse:
    agent = new_agent(request)
    prompt = request.query_params.get("prompt", "What is 2 + 3?")

    async def frames() -> AsyncIterator[str]:
        try:
            async with agent.stream(prompt) as events:
                async for frame in SSEAdapter(events):
                    yield frame
        finally:
            if agent.ref is not None:
                await agent.ref.stop()

    return StreamingResponse(frames(), media_type=SSEAdapter.media_type)


async def chat_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    agent = new_agent(websocket)
    try:
        prompt = await websocket.receive_text()
        async with agent.stream(prompt) as events:
            await WebSocketAdapter(websocket.send_text).send_stream(events)
        await websocket.close()
    finally:
        if agent.ref is not None:
            await agent.ref.stop()


app = Starlette(
    routes=[Route("/chat", chat), WebSocketRoute("/ws", chat_ws)],
    lifespan=lifespan,
)
