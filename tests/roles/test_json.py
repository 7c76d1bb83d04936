"""JSON out of answers: extract_text over every response shape, try_parse_json (property
tested), and llm_json's schema handling and re-asks, sync and async."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from limelight.client import ChatChoice, ChatCompletion, ChatMessage, TextChoice, TextCompletion
from limelight.errors import ConfigError, JSONOutputError, MissingExtra
from limelight.providers import Scripted
from limelight.roles import (
    JSONSpec,
    allm_json,
    extract_text,
    llm_json,
    set_role_config,
    try_parse_json,
)
from limelight.schemas import CompletionRequest, CompletionResult, Message
from limelight.usage import get_usage_summary

POINT = {
    "type": "object",
    "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
    "required": ["x", "y"],
}


class Point(msgspec.Struct):
    x: int
    y: int


@dataclasses.dataclass
class Pair:
    name: str
    score: float


# -- extract_text ---------------------------------------------------------------------------


def test_extract_text_of_every_shape() -> None:
    chat = ChatCompletion(choices=[ChatChoice(message=ChatMessage(content="from chat"))])
    text = TextCompletion(choices=[TextChoice(text="from text")])
    shapes: list[tuple[Any, str]] = [
        ("plain", "plain"),
        (b"bytes", "bytes"),
        (CompletionResult(content="result"), "result"),
        (CompletionResult(), ""),  # tool calls only
        (Message.assistant("message"), "message"),
        (chat, "from chat"),
        (text, "from text"),
        ({"choices": [{"message": {"content": "dict chat"}}]}, "dict chat"),
        ({"choices": [{"text": "dict text"}]}, "dict text"),
        ({"choices": [{"delta": {"content": "chunk"}}]}, "chunk"),
        ({"choices": []}, ""),
        ({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}, "ab"),
    ]
    for response, expected in shapes:
        assert extract_text(response) == expected, response


def test_extract_text_of_an_unknown_shape_is_an_error() -> None:
    with pytest.raises(ConfigError, match="cannot find the text"):
        extract_text(42)
    with pytest.raises(ConfigError):
        extract_text({"answer": "no known key"})


def test_extract_text_of_a_litellm_response() -> None:
    if importlib.util.find_spec("litellm") is None:
        pytest.skip("pip install 'limelight[litellm]'")
    from limelight.providers._litellm import import_litellm

    litellm = import_litellm()  # the local cost map, and its import-time warning silenced
    response = litellm.completion(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], mock_response="mocked"
    )
    assert extract_text(response) == "mocked"


# -- try_parse_json -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ("  [1, 2]  ", [1, 2]),
        ("42", 42),
        ('"s"', "s"),
        ('```json\n{"a": [1, {"b": null}]}\n```', {"a": [1, {"b": None}]}),
        ("Sure! Here it is:\n```\n[true]\n```\nAnything else?", [True]),
        ('The answer is {"x": 1, "y": 2}. Hope it helps.', {"x": 1, "y": 2}),
        ('Braces {like these} first, then {"ok": true}', {"ok": True}),
        ('```json\n{"cut": "fence"}', {"cut": "fence"}),
        ("no json here", None),
        ("", None),
        ('{"broken": ', None),
    ],
)
def test_try_parse_json(text: str, expected: Any) -> None:
    assert try_parse_json(text) == expected


def test_try_parse_json_reads_responses() -> None:
    assert try_parse_json(CompletionResult(content='ok: {"a": 2}')) == {"a": 2}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)
containers = st.one_of(
    st.lists(json_values, max_size=4), st.dictionaries(st.text(max_size=5), json_values)
)
prose = st.text(
    alphabet=st.characters(categories=("L", "Zs"), exclude_characters="{}[]`"), max_size=30
)


@given(value=containers, before=prose, after=prose, fenced=st.booleans())
def test_a_json_object_or_array_is_found_in_any_prose(
    value: Any, before: str, after: str, fenced: bool
) -> None:
    body = json.dumps(value)
    if fenced:
        body = f"```json\n{body}\n```"
    assert try_parse_json(f"{before}\n{body}\n{after}") == value


@given(value=json_values)
def test_any_json_value_alone_parses(value: Any) -> None:
    assert try_parse_json(json.dumps(value)) == value


# -- JSONSpec -------------------------------------------------------------------------------


def test_json_spec_from_a_schema_or_a_type() -> None:
    spec = JSONSpec(POINT)
    assert spec.response_format() == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": POINT},
    }
    assert spec.validate({"x": 1, "y": 2}) == {"x": 1, "y": 2}
    with pytest.raises(ValueError, match="'y' is a required property"):
        spec.validate({"x": 1})
    with pytest.raises(ValueError, match="at x"):
        spec.validate({"x": "one", "y": 2})
    typed = JSONSpec(Point)
    assert typed.name == "Point"
    assert typed.schema is not None
    assert typed.validate({"x": 1, "y": 2}) == Point(x=1, y=2)
    with pytest.raises(ValueError, match="Expected `int`"):
        typed.validate({"x": 1, "y": "two"})
    assert JSONSpec(None).response_format() == {"type": "json_object"}
    assert JSONSpec(None).validate([1]) == [1]


def test_a_bad_schema_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a valid JSON schema"):
        JSONSpec({"type": "nonsense"})
    with pytest.raises(ConfigError, match="json_schema must be"):
        JSONSpec(object())


# -- llm_json -------------------------------------------------------------------------------


class Recorder:
    """Scripted answers that remember each request."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = list(answers)
        self.requests: list[CompletionRequest] = []

    def __call__(self, request: CompletionRequest) -> str:
        self.requests.append(request)
        return self.answers.pop(0)


def test_llm_json_re_asks_with_what_was_wrong() -> None:
    recorder = Recorder(["I cannot do JSON", '{"x": 1}', 'Here: {"x": 1, "y": 2}'])
    set_role_config("executor", provider=Scripted(recorder))
    assert llm_json("Give a point.", POINT) == {"x": 1, "y": 2}
    assert len(recorder.requests) == 3
    first, second, third = recorder.requests
    # Scripted does not understand response_format: the schema is in the prompt as well.
    assert first.response_format == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": POINT},
    }
    assert json.dumps(POINT, sort_keys=True) in (first.messages[-1].content or "")
    assert second.messages[-2] == Message.assistant("I cannot do JSON")
    assert "holds no JSON value" in (second.messages[-1].content or "")
    assert "'y' is a required property" in (third.messages[-1].content or "")
    assert get_usage_summary().by_role["executor"].calls == 3


def test_llm_json_gives_up_with_a_typed_error() -> None:
    recorder = Recorder(["nope", "[1]", "still no"])
    set_role_config("judge", provider=Scripted(recorder))
    with pytest.raises(JSONOutputError) as caught:
        llm_json("Give a point.", POINT, role="judge", max_attempts=3)
    error = caught.value
    assert error.attempts == 3
    assert error.text == "still no"
    assert "no JSON" in error.reason
    assert "judge" in str(error)
    assert isinstance(error, ValueError)
    assert len(recorder.requests) == 3


def test_llm_json_converts_to_a_type() -> None:
    set_role_config("executor", provider=Scripted(['{"name": "a", "score": 0.5}']))
    assert llm_json("Score it.", Pair) == Pair(name="a", score=0.5)
    set_role_config("executor", provider=Scripted(['{"x": 3, "y": 4}']))
    assert llm_json("Point.", Point) == Point(x=3, y=4)


def test_llm_json_without_schema_takes_any_json() -> None:
    recorder = Recorder(["```json\n[1, 2, 3]\n```"])
    set_role_config("executor", provider=Scripted(recorder))
    assert llm_json("List.") == [1, 2, 3]
    assert recorder.requests[0].response_format == {"type": "json_object"}


def test_llm_json_schema_in_prompt_can_be_turned_off() -> None:
    recorder = Recorder(['{"x": 1, "y": 1}'])
    set_role_config("executor", provider=Scripted(recorder))
    llm_json("Point.", POINT, schema_in_prompt=False, system="You are terse.")
    messages = recorder.requests[0].messages
    assert [m.role for m in messages] == ["system", "user"]
    assert "JSON schema" not in (messages[-1].content or "")


def test_bad_llm_json_arguments() -> None:
    set_role_config("executor", provider=Scripted(["{}"]))
    with pytest.raises(ConfigError, match="max_attempts"):
        llm_json("x", POINT, max_attempts=0)
    with pytest.raises(ConfigError, match="not a valid JSON schema"):
        llm_json("x", {"type": 12})


@pytest.mark.anyio
async def test_allm_json_re_asks_too() -> None:
    recorder = Recorder(["```\nnot json\n```", '{"x": 5, "y": 6}'])
    set_role_config("executor", provider=Scripted(recorder))
    assert await allm_json("Point.", Point) == Point(x=5, y=6)
    assert len(recorder.requests) == 2
    recorder = Recorder(["a", "b"])
    set_role_config("executor", provider=Scripted(recorder))
    with pytest.raises(JSONOutputError):
        await allm_json("Point.", Point, max_attempts=2)


# -- native response_format over HTTP -------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """A minimal OpenAI-compatible chat endpoint: records each body and answers the next
    scripted content."""

    def do_POST(self) -> None:
        server: Any = self.server
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        server.bodies.append(body)
        content = server.answers.pop(0)
        reply = json.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": body.get("model", ""),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recording_server() -> Iterator[Any]:
    """A real HTTP server started here, recording request bodies."""
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.bodies, server.answers = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_openai_compatible_gets_response_format_natively(recording_server: Any) -> None:
    recording_server.answers += ['{"x": 1}', '{"x": 1, "y": 2}']
    host, port = recording_server.server_address
    set_role_config(
        "executor",
        backend="openai-compatible",
        model="served",
        base_url=f"http://{host}:{port}/v1",
    )
    assert llm_json("Point.", POINT, schema_name="point") == {"x": 1, "y": 2}
    first, second = recording_server.bodies
    assert first["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "point", "schema": POINT},
    }
    assert first["model"] == "served"
    assert first["messages"] == [{"role": "user", "content": "Point."}]  # no schema in prompt
    assert second["messages"][1] == {"role": "assistant", "content": '{"x": 1}'}
    assert "'y' is a required property" in second["messages"][2]["content"]
    assert get_usage_summary().by_role["executor"].total_tokens == 30


def test_litellm_gets_response_format_natively(monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("litellm") is None:
        pytest.skip("pip install 'limelight[litellm]'")
    from limelight.providers._litellm import import_litellm

    litellm = import_litellm()
    calls: list[dict[str, Any]] = []
    completion, acompletion = litellm.completion, litellm.acompletion

    def sync(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return completion(**kwargs)

    async def async_(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return await acompletion(**kwargs)

    # Whichever loop the router runs on, LiteLLM's own call is what is watched.
    monkeypatch.setattr(litellm, "completion", sync)
    monkeypatch.setattr(litellm, "acompletion", async_)
    set_role_config("executor", model="gpt-4o-mini", mock_response='{"x": 1, "y": 2}')
    assert llm_json("Point.", POINT, schema_name="point") == {"x": 1, "y": 2}
    [call] = calls
    assert call["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "point", "schema": POINT},
    }
    assert call["model"] == "gpt-4o-mini"
    assert call["messages"] == [{"role": "user", "content": "Point."}]  # no schema in prompt


def test_without_jsonschema_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "jsonschema" or m.startswith("jsonschema.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "jsonschema", None)
    set_role_config("executor", provider=Scripted(['{"x": 1, "y": 2}']))
    for call in (lambda: JSONSpec(POINT), lambda: llm_json("Point.", POINT)):
        with pytest.raises(MissingExtra) as caught:
            call()
        assert caught.value.extra == "usage"
        assert "pip install 'limelight[usage]'" in str(caught.value)
        assert "jsonschema" in str(caught.value)
    # A type or no schema needs no jsonschema.
    assert llm_json("Point.", Point) == Point(x=1, y=2)


# -- OpenAI's json_schema object (name, schema, strict) ---------------------------------------

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def test_openais_json_schema_object_is_unwrapped_and_validated(recording_server: Any) -> None:
    """The form the role router's users pass: {"name", "schema", "strict"}. Its schema is
    what is sent and checked, so {"name": "John"} is refused for lack of an age."""
    recording_server.answers += ['{"name": "John"}', '{"name": "John", "age": 30}']
    host, port = recording_server.server_address
    set_role_config(
        "executor", backend="openai-compatible", model="m", base_url=f"http://{host}:{port}/v1"
    )
    wrapped = {"name": "person", "schema": PERSON, "strict": True}
    assert llm_json("Who?", json_schema=wrapped) == {"name": "John", "age": 30}
    first, second = recording_server.bodies
    assert first["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": PERSON, "strict": True},
    }
    assert "'age' is a required property" in second["messages"][-1]["content"]


def test_a_json_schema_object_answer_missing_a_field_is_never_returned() -> None:
    recorder = Recorder(['{"name": "John"}'] * 2)
    set_role_config("executor", provider=Scripted(recorder))
    wrapped = {"name": "person", "schema": PERSON, "strict": True}
    with pytest.raises(JSONOutputError, match="'age' is a required property"):
        llm_json("Who?", json_schema=wrapped, max_attempts=2)
    assert len(recorder.requests) == 2
    # Scripted ignores response_format: the prompt carries the inner schema, not the wrapper.
    assert json.dumps(PERSON, sort_keys=True) in (recorder.requests[0].messages[-1].content or "")


def test_a_whole_response_format_is_unwrapped_too() -> None:
    recorder = Recorder(['{"name": "Ann", "age": 4}'])
    set_role_config("executor", provider=Scripted(recorder))
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": PERSON, "description": "a person"},
    }
    assert llm_json("Who?", response_format) == {"name": "Ann", "age": 4}
    assert recorder.requests[0].response_format == {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": PERSON, "description": "a person"},
    }


@pytest.mark.anyio
async def test_allm_json_unwraps_the_json_schema_object_too() -> None:
    recorder = Recorder(['{"name": "John"}', '{"name": "John", "age": 30}'])
    set_role_config("executor", provider=Scripted(recorder))
    wrapped = {"name": "person", "schema": PERSON}
    assert await allm_json("Who?", wrapped) == {"name": "John", "age": 30}
    assert recorder.requests[0].response_format == {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": PERSON},
    }


def test_a_schema_with_a_stray_name_is_still_a_schema() -> None:
    recorder = Recorder(['{"x": 1, "y": 2}'])
    set_role_config("executor", provider=Scripted(recorder))
    assert llm_json("Point.", {**POINT, "name": "point"}) == {"x": 1, "y": 2}


@pytest.mark.parametrize(
    ("json_schema", "message"),
    [
        ({"name": "person", "strict": True}, "has no 'schema'"),
        ({"name": "person", "schema": "object"}, "a 'schema' of 'object'"),
        ({"name": "person", "schema": PERSON, "type": "object"}, "mixes .* with 'type'"),
        ({"name": 3, "schema": PERSON}, "'name' must be a string"),
        ({"name": "p", "schema": PERSON, "strict": "yes"}, "'strict' must be True or False"),
        ({"type": "json_schema", "json_schema": "person"}, "is 'person', not an object"),
        ({"type": "json_schema", "json_schema": {"name": "p"}}, "has no 'schema'"),
        ({"name": "p", "schema": {"type": 12}}, "not a valid JSON schema"),
    ],
)
def test_a_json_schema_shape_llm_json_cannot_use_is_refused(
    json_schema: dict[str, Any], message: str
) -> None:
    recorder = Recorder(['{"name": "John"}'])
    set_role_config("executor", provider=Scripted(recorder))
    with pytest.raises(ConfigError, match=message):
        llm_json("Who?", json_schema)
    assert recorder.requests == []  # refused before any call


def test_schema_name_and_the_objects_name_must_agree() -> None:
    set_role_config("executor", provider=Scripted(['{"name": "a", "age": 1}'] * 2))
    with pytest.raises(ConfigError, match="differ"):
        llm_json("Who?", {"name": "person", "schema": PERSON}, schema_name="human")
    wrapped = {"name": "person", "schema": PERSON}
    assert llm_json("Who?", wrapped, schema_name="person") == {"name": "a", "age": 1}
