"""limelight.compat.insidellm's framework hooks on the real frameworks, offline:

- ``InsideLLMCallback`` on langchain-core's fake chat models (real ``BaseChatModel``
  subclasses answering from a script) in a real prompt | model | parser chain, and the SDK's
  langchain example (its manual callback calls);
- ``CrewAIInsideLLMCallbackHandler`` registered in LiteLLM, on ``litellm.completion`` /
  ``acompletion`` with ``mock_response`` (LiteLLM's whole callback machinery runs), and the
  SDK's CrewAI example's handler calls (CrewAI itself is not installed);
- the Vertex AI Agent Builder wrapper on google-cloud-discoveryengine's own clients: the sync
  client over REST (``transport="rest"``) against a local HTTP server answering the
  ``:converse`` and ``:answer`` endpoints with the JSON the API returns, and the async client
  over gRPC against a local gRPC server (the real request/response types, serialized by the
  library). The SDK's own Vertex example assigned stand-in ``answer`` objects to a real
  ``ConverseConversationResponse`` (which has no such field); its duck-typed steps are fed
  through a small sync stand-in client instead.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import grpc
import pytest
from google.api_core import exceptions as google_errors
from google.auth.credentials import AnonymousCredentials
from google.cloud import discoveryengine_v1 as de
from google.cloud.discoveryengine_v1.services.conversational_search_service.transports import (
    ConversationalSearchServiceGrpcAsyncIOTransport,
)
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

import limelight.compat.insidellm as insidellm
from limelight import analytics
from limelight.compat.insidellm import (
    CrewAIInsideLLMCallbackHandler,
    InsideLLMCallback,
    InsideLLMClient,
    InsideLLMVertexAgentBuilderConversationalSearchClient,
)
from limelight.errors import ConfigError
from limelight.integrations import disable_litellm_analytics
from limelight.integrations.vertex import track_conversational_search
from limelight.providers._litellm import import_litellm
from limelight.schemas import Event as NativeEvent
from limelight.schemas import EventType as Kind
from limelight.sinks import read_jsonl

from . import _insidellm_examples as examples
from .test_insidellm import EXTRA, TYPE
from .test_insidellm import env as env  # the fixture, shared

litellm = import_litellm()


def events_of(client: InsideLLMClient, folder: Path, run: str, count: int) -> list[NativeEvent]:
    """The run's events in the client's JSON-lines file, once ``count`` arrived (LiteLLM
    runs its callbacks after the call returns)."""
    path = folder / "insidellm_logs" / "events.jsonl"
    deadline = time.monotonic() + 10
    while True:
        assert client.flush(10)
        found = [e for e in read_jsonl(path) if e.run_id == run] if path.exists() else []
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


# -- LangChain -------------------------------------------------------------------------------


def test_langchain_callback_on_a_real_chain(env: Path) -> None:
    client = insidellm.initialize(api_key="your-api-key", local_testing=True)
    # README: "Create LangChain callback", then "Use with any LangChain component".
    callback = insidellm.InsideLLMCallback(
        client=insidellm.get_client(), user_id="user-123", metadata={"app": "readme"}
    )
    llm = FakeListChatModel(responses=["Paris", "Rome"], callbacks=[callback])
    chain = (
        ChatPromptTemplate.from_messages([("human", "Capital of {country}?")])
        | llm
        | StrOutputParser()
    )
    assert chain.invoke({"country": "France"}, config={"callbacks": [callback]}) == "Paris"
    assert llm.invoke("and Italy?").content == "Rome"
    events = events_of(client, env, callback.run_id, 8)
    kinds = [e.event_type for e in events]
    assert kinds.count(Kind.LLM_REQUEST) == kinds.count(Kind.LLM_RESPONSE) == 2
    assert Kind.AGENT_PLANNING in kinds  # the chain
    assert Kind.AGENT_RESPONSE in kinds
    assert {e.user_id for e in events} == {"user-123"}
    assert all(e.metadata["app"] == "readme" for e in events)
    answers = [e.payload.content for e in events if e.event_type is Kind.LLM_RESPONSE]
    assert answers == ["Paris", "Rome"]
    requests = {e.event_id for e in events if e.event_type is Kind.LLM_REQUEST}
    assert {e.parent_event_id for e in events if e.event_type is Kind.LLM_RESPONSE} == requests


def test_langchain_switches_turn_parts_off(env: Path) -> None:
    client = insidellm.initialize(local_testing=True)
    callback = InsideLLMCallback(client, "u-1", track_chain_calls=False, track_errors=False)
    llm = FakeListChatModel(responses=["ok"])
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | llm | StrOutputParser()
    assert chain.invoke({"q": "x"}, config={"callbacks": [callback]}) == "ok"
    events = events_of(client, env, callback.run_id, 2)
    assert [e.event_type for e in events] == [Kind.LLM_REQUEST, Kind.LLM_RESPONSE]


def test_the_sdks_langchain_example(env: Path) -> None:
    client = insidellm.initialize(api_key="iilmn-sample-key", local_testing=True)
    llm_run, tool_run, chain_run = examples.langchain_example_flows(client)
    llm = events_of(client, env, llm_run, 2)
    assert [e.event_type for e in llm] == [Kind.LLM_REQUEST, Kind.LLM_RESPONSE]
    assert llm[0].payload.model == "gpt-3.5-turbo"
    assert llm[1].payload.content == "The capital of France is Paris."
    assert (llm[1].payload.input_tokens, llm[1].payload.output_tokens) == (10, 10)
    assert llm[0].metadata["test"] == "basic_llm_flow"
    tool = events_of(client, env, tool_run, 2)
    assert [e.event_type for e in tool] == [Kind.TOOL_CALL, Kind.TOOL_RESPONSE]
    assert tool[1].payload.result == "4"
    chain = events_of(client, env, chain_run, 2)
    assert [e.event_type for e in chain] == [Kind.AGENT_PLANNING, Kind.AGENT_RESPONSE]
    assert chain[0].payload.agent_name == "qa_chain"


# -- CrewAI (LiteLLM) -----------------------------------------------------------------------

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def crew(env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CrewAIInsideLLMCallbackHandler]:
    """The README's registration, on a client built directly; LiteLLM's callback lists are
    put back afterwards."""
    monkeypatch.setattr(litellm, "suppress_debug_info", True)
    monkeypatch.setattr(litellm, "callbacks", list(litellm.callbacks))
    client = InsideLLMClient(api_key="YOUR_INSIDELLM_API_KEY", local_testing=True)
    crewai_callback_handler = CrewAIInsideLLMCallbackHandler(client=client, debug=True)
    if not hasattr(litellm, "callbacks") or not litellm.callbacks:
        litellm.callbacks = []
    if not any(isinstance(cb, CrewAIInsideLLMCallbackHandler) for cb in litellm.callbacks):
        litellm.callbacks.append(crewai_callback_handler)
    try:
        yield crewai_callback_handler
    finally:
        disable_litellm_analytics(crewai_callback_handler)
        client.shutdown()
    assert crewai_callback_handler.failed == 0


def call_events(client: InsideLLMClient, folder: Path, run: str, text: str) -> list[NativeEvent]:
    """The request and the response of the one call answered ``text`` in the run. LiteLLM
    may still hand logging tasks of earlier tests' calls, revived on this test's event loop,
    to the handler registered now: those are other calls, told apart by their answer."""
    deadline = time.monotonic() + 10
    while True:
        found = events_of(client, folder, run, 0)
        answers = [
            e
            for e in found
            if e.event_type == Kind.LLM_RESPONSE and getattr(e.payload, "content", None) == text
        ]
        if answers or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert len(answers) == 1, found
    return [e for e in found if e.event_id == answers[0].parent_event_id] + answers


def check_call(events: list[NativeEvent], text: str) -> None:
    assert [e.event_type for e in events] == [Kind.LLM_REQUEST, Kind.LLM_RESPONSE]
    request, answer = events
    assert answer.parent_event_id == request.event_id
    assert answer.payload.content == text
    assert answer.payload.output_tokens > 0
    assert answer.payload.cost is not None
    assert answer.payload.cost > 0
    assert {e.user_id for e in events} == {"crewai_system"}
    assert answer.metadata["crewai_metadata"] == {
        "crew_name": "TravelCrew",
        "agent_name": "Researcher",
    }


def test_crewai_handler_records_litellm_calls(
    crew: CrewAIInsideLLMCallbackHandler, env: Path
) -> None:
    litellm.completion(
        model="gpt-4o-mini",
        messages=MESSAGES,
        mock_response="Paris.",
        metadata={"crew_name": "TravelCrew", "agent_name": "Researcher"},
    )
    events = call_events(crew.client, env, crew.run_id, "Paris.")
    time.sleep(0.05)  # LiteLLM's pre/post-call hooks must not have added events
    assert call_events(crew.client, env, crew.run_id, "Paris.") == events
    check_call(events, "Paris.")


@pytest.mark.anyio
async def test_crewai_handler_records_async_calls(
    crew: CrewAIInsideLLMCallbackHandler, env: Path, anyio_backend: str
) -> None:
    """LiteLLM's async API is asyncio-only: on trio the sync call runs in a worker thread."""
    call: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "mock_response": "Lyon.",
        "metadata": {"crew_name": "TravelCrew", "agent_name": "Researcher"},
    }
    crew.run_id = run = uuid.uuid4().hex  # the SDK's tests set it, too
    if anyio_backend == "asyncio":
        await litellm.acompletion(**call)
    else:
        await anyio.to_thread.run_sync(lambda: litellm.completion(**call))
    events = await anyio.to_thread.run_sync(call_events, crew.client, env, run, "Lyon.")
    check_call(events, "Lyon.")


def test_crewai_handler_records_a_failed_call(
    crew: CrewAIInsideLLMCallbackHandler, env: Path
) -> None:
    with pytest.raises(litellm.exceptions.InternalServerError):
        litellm.completion(
            model="gpt-4o-mini", messages=MESSAGES, mock_response=Exception("upstream said no")
        )
    deadline = time.monotonic() + 10
    while True:  # this call's error (other tests' calls may be logged into the run too)
        found = events_of(crew.client, env, crew.run_id, 0)
        errors = [
            e
            for e in found
            if e.event_type == Kind.ERROR and "upstream said no" in e.payload.message
        ]
        if errors or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert len(errors) == 1, found
    requests = [e for e in found if e.event_id == errors[0].parent_event_id]
    assert [e.event_type for e in requests] == [Kind.LLM_REQUEST]


def test_the_sdks_crewai_example_calls(env: Path) -> None:
    client = insidellm.initialize(api_key="your_api_key_here", local_testing=True)
    handler = CrewAIInsideLLMCallbackHandler(
        client=client,
        user_id=insidellm.generate_uuid(),
        run_id=insidellm.generate_uuid(),
        metadata={"test_environment": True, "framework": "crewai"},
        track_llm_calls=True,
        track_tool_calls=True,
        track_agent_actions=True,
        track_task_execution=True,
        track_errors=True,
    )
    examples.crewai_callback_calls(handler)
    events = events_of(client, env, handler.run_id, 15)
    assert [e.metadata[TYPE] for e in events] == [
        "agent.reasoning",  # crew start
        "agent.reasoning",
        "agent.response",
        "agent.reasoning",
        "agent.response",
        "tool.call",  # task
        "tool.response",
        "tool.call",  # tool
        "tool.response",
        "llm.request",  # by hand: no LiteLLM call id
        "llm.response",
        "error",
        "custom.event",
        "agent.response",  # crew end
    ]
    assert all(e.metadata["framework"] == "crewai" for e in events)
    by_type = {e.metadata[TYPE]: e for e in events}
    assert by_type["llm.response"].parent_event_id == by_type["llm.request"].event_id
    assert by_type["llm.response"].payload.content == "Hello! How can I help you today?"
    assert by_type["llm.response"].payload.input_tokens == 10
    assert by_type["error"].metadata[EXTRA]["error_code"] == "ValueError"
    assert by_type["custom.event"].metadata[EXTRA]["value"] == 42
    assert events[6].parent_event_id == events[5].event_id  # task end under its start


# -- Vertex AI Agent Builder ------------------------------------------------------------------

CONVERSATION = (
    "projects/p/locations/global/collections/default_collection/dataStores/d/conversations/-"
)
SERVING = (
    "projects/p/locations/global/collections/default_collection/engines/e/servingConfigs/default"
)
REPLY = {
    "reply": {"summary": {"summaryText": "LLMs are large language models."}},
    "searchResults": [
        {"id": "doc-1", "document": {"name": "projects/p/documents/doc-1", "id": "doc-1"}}
    ],
}
ANSWER = {
    "answer": {
        "answerText": "Two papers found.",
        "state": "SUCCEEDED",
        "steps": [
            {
                "state": "SUCCEEDED",
                "description": "Searching for papers",
                "thought": "I should search.",
                "actions": [
                    {
                        "searchAction": {"query": "LLM papers"},
                        "observation": {
                            "searchResults": [
                                {
                                    "document": "projects/p/documents/doc-1",
                                    "uri": "https://x/1",
                                    "title": "Paper 1",
                                }
                            ]
                        },
                    }
                ],
            },
            {
                "state": "FAILED",
                "description": "Searching again",
                "thought": "The second search failed.",
                "actions": [{"searchAction": {"query": "more papers"}}],
            },
        ],
    }
}


class _AgentBuilder(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
        self.server.requests.append((self.path, body))
        query = body.get("query", {})
        if query.get("input") == "fail":
            status, answer = (
                400,
                {"error": {"code": 400, "message": "bad query", "status": "INVALID_ARGUMENT"}},
            )
        elif self.path.split("?")[0].endswith(":answer"):
            status, answer = 200, ANSWER
        else:
            status, answer = 200, REPLY
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def rest_client() -> Iterator[de.ConversationalSearchServiceClient]:
    """A real sync client, REST transport, talking to a local stand-in of the API."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AgentBuilder)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    client = de.ConversationalSearchServiceClient(
        credentials=AnonymousCredentials(),
        transport="rest",
        client_options={"api_endpoint": f"http://127.0.0.1:{server.server_address[1]}"},
    )
    try:
        yield client
    finally:
        client.transport.close()
        server.shutdown()
        server.server_close()
        thread.join(5)


def converse(text: str) -> de.ConverseConversationRequest:
    return de.ConverseConversationRequest(name=CONVERSATION, query=de.TextInput(input=text))


@pytest.mark.anyio
async def test_vertex_wrapper_records_a_conversation(
    env: Path, rest_client: de.ConversationalSearchServiceClient
) -> None:
    client = insidellm.initialize(local_testing=True)
    run_id = "vertex_interaction_run_001"
    wrapped = InsideLLMVertexAgentBuilderConversationalSearchClient(
        client=rest_client, insidellm_client=client, user_id="user-456", run_id=run_id, debug=True
    )
    response = await wrapped.converse_conversation(request=converse("Tell me about LLMs"))
    assert response.reply.summary.summary_text == "LLMs are large language models."
    assert wrapped.transport is rest_client.transport  # everything else is the client's
    with pytest.raises(google_errors.BadRequest):
        await wrapped.converse_conversation(request=converse("fail"))
    events = await anyio.to_thread.run_sync(events_of, client, env, run_id, 6)
    kinds = [e.event_type for e in events]
    assert kinds == [
        Kind.USER_INPUT,
        Kind.AGENT_RESPONSE,
        Kind.TOOL_CALL,
        Kind.TOOL_RESPONSE,
        Kind.USER_INPUT,
        Kind.ERROR,
    ]
    user, reply, call, result, failed_input, error = events
    assert user.payload.text == "Tell me about LLMs"
    assert reply.payload.content == "LLMs are large language models."
    assert reply.parent_event_id == user.event_id
    assert call.parent_event_id == reply.event_id
    assert result.parent_event_id == call.event_id
    assert call.payload.arguments == {"query": "Tell me about LLMs"}
    assert result.payload.result == [
        {"id": "doc-1", "document": {"id": "doc-1", "name": "projects/p/documents/doc-1"}}
    ]
    assert error.parent_event_id == failed_input.event_id
    assert "bad query" in error.payload.message
    assert {e.user_id for e in events} == {"user-456"}


def test_track_conversational_search_reads_the_answers_steps(
    env: Path, rest_client: de.ConversationalSearchServiceClient
) -> None:
    client = insidellm.initialize(local_testing=True)
    tracked = track_conversational_search(rest_client, run_id="r-answer", user_id="u-7")
    assert tracked is rest_client
    response = rest_client.answer_query(
        request=de.AnswerQueryRequest(serving_config=SERVING, query=de.Query(text="LLM papers?"))
    )
    assert response.answer.answer_text == "Two papers found."
    events = events_of(client, env, "r-answer", 6)
    assert [e.event_type for e in events] == [
        Kind.USER_INPUT,
        Kind.AGENT_RESPONSE,
        Kind.TOOL_CALL,
        Kind.TOOL_RESPONSE,
        Kind.TOOL_CALL,
        Kind.TOOL_RESPONSE,
    ]
    user, reply, first, first_result, second, second_result = events
    assert user.payload.text == "LLM papers?"
    assert (reply.payload.content, reply.payload.finish_reason) == (
        "Two papers found.",
        "SUCCEEDED",
    )
    assert first.payload.arguments == {"query": "LLM papers"}
    assert first.metadata["step_thought"] == "I should search."
    assert first_result.payload.result == [
        {"uri": "https://x/1", "title": "Paper 1", "document": "projects/p/documents/doc-1"}
    ]
    assert not first_result.payload.is_error
    assert second.payload.arguments == {"query": "more papers"}
    assert second_result.payload.is_error
    assert second_result.payload.result == "The second search failed."
    with pytest.raises(ConfigError, match="not SimpleNamespace"):
        track_conversational_search(SimpleNamespace())


def _converse(
    request: de.ConverseConversationRequest, context: Any
) -> de.ConverseConversationResponse:
    return de.ConverseConversationResponse(
        reply={"summary": {"summary_text": f"echo: {request.query.input}"}}
    )


@pytest.fixture
def grpc_port() -> Iterator[int]:
    """A local gRPC server answering ConverseConversation (the library's own message types
    serialize both ways)."""
    handler = grpc.method_handlers_generic_handler(
        "google.cloud.discoveryengine.v1.ConversationalSearchService",
        {
            "ConverseConversation": grpc.unary_unary_rpc_method_handler(
                _converse,
                request_deserializer=de.ConverseConversationRequest.deserialize,
                response_serializer=de.ConverseConversationResponse.serialize,
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(0).wait(5)


@pytest.mark.anyio
async def test_vertex_wrapper_over_the_async_grpc_client(
    env: Path, grpc_port: int, anyio_backend: str
) -> None:
    """The async client is grpc.aio's, asyncio only. Under trio grpc.aio cannot even make its
    channel (there is no asyncio loop), so the wrapper's refusal of an async client there is
    shown with an object whose ``converse_conversation`` is a coroutine function."""
    client = insidellm.initialize(local_testing=True)
    if anyio_backend == "trio":

        class AsyncClient:
            async def converse_conversation(self, request: Any) -> Any:
                raise AssertionError("never called under trio")

        refused = InsideLLMVertexAgentBuilderConversationalSearchClient(
            AsyncClient(), client, "u-grpc", "r-grpc"
        )
        with pytest.raises(ConfigError, match="asyncio only"):
            await refused.converse_conversation(request=converse("hi"))
        return
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}")
    sdk = de.ConversationalSearchServiceAsyncClient(
        transport=ConversationalSearchServiceGrpcAsyncIOTransport(channel=channel)
    )
    wrapped = InsideLLMVertexAgentBuilderConversationalSearchClient(sdk, client, "u-grpc", "r-grpc")
    try:
        response = await wrapped.converse_conversation(request=converse("hi"))
    finally:
        await channel.close()
    assert response.reply.summary.summary_text == "echo: hi"
    events = await anyio.to_thread.run_sync(events_of, client, env, "r-grpc", 2)
    assert [e.event_type for e in events] == [Kind.USER_INPUT, Kind.AGENT_RESPONSE]
    assert events[1].payload.content == "echo: hi"


class _ExampleStandIn:
    """The SDK example's mock client, sync: its steps have one ``action`` each, with a
    ``search_action`` or a ``tool_action`` (``tool``, ``tool_input`` as JSON) and an
    ``observation`` (``search_results`` or ``tool_output``)."""

    def converse_conversation(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        search = SimpleNamespace(
            description="Performing a search.",
            thought="I should search.",
            state=de.Answer.Step.State.SUCCEEDED,
            action=SimpleNamespace(
                search_action=de.Answer.Step.Action.SearchAction(query="topic X"),
                tool_action=None,
                observation=SimpleNamespace(
                    search_results=[
                        SimpleNamespace(document={"id": "doc_alpha", "content": "about X"})
                    ]
                ),
            ),
        )
        risky = SimpleNamespace(
            description="Using RiskyTool.",
            thought="RiskyTool failed: input must be positive.",
            state=de.Answer.Step.State.FAILED,
            action=SimpleNamespace(
                search_action=None,
                tool_action=SimpleNamespace(
                    tool="RiskyTool", tool_input=json.dumps({"input_value": -1})
                ),
                observation=SimpleNamespace(
                    search_results=[], tool_output=json.dumps({"error": "bad"})
                ),
            ),
        )
        return SimpleNamespace(
            reply=de.Reply(summary={"summary_text": "Mock reply."}),
            answer=SimpleNamespace(steps=[search, risky]),
            search_results=[],
        )


@pytest.mark.anyio
async def test_vertex_wrapper_with_the_sdk_examples_steps(env: Path) -> None:
    client = insidellm.initialize(local_testing=True)
    wrapped = InsideLLMVertexAgentBuilderConversationalSearchClient(
        client=_ExampleStandIn(),
        insidellm_client=client,
        user_id="vertex_example_user",
        run_id="r-ex",
    )
    response = await wrapped.converse_conversation(request=converse("Tell me about topic X"))
    assert response.reply.summary.summary_text == "Mock reply."
    events = await anyio.to_thread.run_sync(events_of, client, env, "r-ex", 6)
    calls = [e for e in events if e.event_type is Kind.TOOL_CALL]
    results = [e for e in events if e.event_type is Kind.TOOL_RESPONSE]
    assert [c.payload.tool_name for c in calls] == ["VertexAISearch", "RiskyTool"]
    assert calls[1].payload.arguments == {"input_value": -1}
    assert results[0].payload.result == [{"document": {"id": "doc_alpha", "content": "about X"}}]
    assert results[1].payload.is_error
    assert results[1].payload.result == "RiskyTool failed: input must be positive."


def test_analytics_is_untouched_by_a_direct_client(env: Path) -> None:
    with InsideLLMClient(local_testing=True) as client:
        assert analytics.current() is None
        assert repr(client).startswith("<InsideLLMClient sinks=[JSONLSink(")
    assert client.closed
